/* The error message lives per thread so that producer threads, workers and
 * the caller never overwrite each other's reason. It sits in kernels/, the
 * bottom layer, because every part above reports through it. */
#include "loom/error.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static _Thread_local char msg[1024];

const char *loom_error(void) { return msg; }

int loom_set_error(const char *fmt, ...) {
    char tmp[sizeof msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap); /* fmt may quote the old message */
    va_end(ap);
    snprintf(msg, sizeof msg, "%s", tmp);
    return LOOM_ERR;
}

void loom_clear_error(void) { msg[0] = 0; }

/* One handler for the process: set before threads start, read by any. */
static _Atomic(loom_warning_fn) warn_fn;
static void *_Atomic warn_user;

void loom_set_warning_handler(loom_warning_fn fn, void *user) {
    atomic_store(&warn_user, user);
    atomic_store(&warn_fn, fn);
}

void loom_warn(const char *fmt, ...) {
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    loom_warning_fn fn = atomic_load(&warn_fn);
    if (fn) fn(buf, atomic_load(&warn_user));
    else fprintf(stderr, "loom: warning: %s\n", buf);
}

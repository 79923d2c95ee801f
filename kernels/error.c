/* The error message lives per thread so that producer threads, workers and
 * the caller never overwrite each other's reason. It sits in kernels/, the
 * bottom layer, because every part above reports through it. */
#include "loom/error.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>

static _Thread_local char msg[1024];
static _Thread_local loom_error_kind_t kind;

const char *loom_error(void) { return msg; }
loom_error_kind_t loom_error_kind(void) { return kind; }

const char *loom_error_kind_name(loom_error_kind_t k) {
    static const char *const names[] = {"no error",  "invalid argument", "bad data",        "input/output error",
                                        "out of memory", "not supported", "training diverged"};
    return (int)k >= 0 && k <= LOOM_EDIVERGED ? names[k] : "unknown error";
}

static int set(loom_error_kind_t k, const char *fmt, va_list ap) {
    char tmp[sizeof msg];
    vsnprintf(tmp, sizeof tmp, fmt, ap); /* fmt may quote the old message */
    snprintf(msg, sizeof msg, "%s", tmp);
    kind = k;
    return LOOM_ERR;
}

int loom_fail(loom_error_kind_t k, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set(k, fmt, ap);
    va_end(ap);
    return LOOM_ERR;
}

int loom_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set(LOOM_EINVAL, fmt, ap);
    va_end(ap);
    return LOOM_ERR;
}

void loom_clear_error(void) {
    msg[0] = 0;
    kind = LOOM_ENONE;
}

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

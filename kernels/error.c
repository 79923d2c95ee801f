/* The error message lives per thread so that producer threads, workers and
 * the caller never overwrite each other's reason. It sits in kernels/, the
 * bottom layer, because every part above reports through it. */
#include "loom/error.h"

#include <stdarg.h>
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

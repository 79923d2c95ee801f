/* loom — error model: functions that can fail return a status (or NULL) and
 * leave a message here naming the file, the position and the reason. */
#ifndef LOOM_ERROR_H
#define LOOM_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by fallible functions. */
enum { LOOM_OK = 0, LOOM_ERR = -1 };

/* What kind of failure the last error was, for a caller to switch on. */
typedef enum {
    LOOM_ENONE = 0,     /* no error */
    LOOM_EINVAL,        /* a bad argument or setting: the caller's to change */
    LOOM_EFORMAT,       /* bad data: a file or text that is not what it claims to be */
    LOOM_EIO,           /* the system refused: a missing file, a read or write that failed */
    LOOM_ENOMEM,        /* out of memory */
    LOOM_EUNSUPPORTED,  /* well-formed, but not something loom does (a CMYK JPEG, an IDX of floats) */
    LOOM_EDIVERGED      /* training diverged: a loss or a value that is not finite */
} loom_error_kind_t;

/* The message of the last error on this thread ("" if none). */
const char *loom_error(void);
/* The kind of the last error on this thread (LOOM_ENONE if none). */
loom_error_kind_t loom_error_kind(void);
/* "invalid argument", "bad data", ... for a kind. */
const char *loom_error_kind_name(loom_error_kind_t kind);

/* Set this thread's error, printf-style: its kind and message. Always
 * returns LOOM_ERR, so `return loom_fail(LOOM_EIO, "%s: ...", path);`. */
int loom_fail(loom_error_kind_t kind, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* loom_fail with LOOM_EINVAL: for a program's own errors reported the same way. */
int loom_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Clear this thread's error message and kind. */
void loom_clear_error(void);

/* Warnings: what the user should hear about that does not stop the work (a
 * class without samples, an unreadable image skipped). They go to a handler,
 * process-wide and called from whichever thread warns; the default writes
 * "loom: warning: MESSAGE" to standard error. fn NULL restores the default. */
typedef void (*loom_warning_fn)(const char *msg, void *user);
void loom_set_warning_handler(loom_warning_fn fn, void *user);
void loom_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#ifdef __cplusplus
}
#endif
#endif

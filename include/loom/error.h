/* loom — error model: functions that can fail return a status (or NULL) and
 * leave a message here naming the file, the position and the reason. */
#ifndef LOOM_ERROR_H
#define LOOM_ERROR_H

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by fallible functions. */
enum { LOOM_OK = 0, LOOM_ERR = -1 };

/* The message of the last error on this thread ("" if none). */
const char *loom_error(void);

/* Set this thread's error message, printf-style; always returns LOOM_ERR. */
int loom_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Clear this thread's error message. */
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

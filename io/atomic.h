/* loom — atomic file writes. Every file loom writes (images, checkpoints, the
 * metrics log, predictions, generated data sets) is written to a temporary
 * file beside its path, flushed to disk and renamed over the path, so a crash
 * or a full disk leaves either the old file or the new one, never half of one. */
#ifndef LOOM_ATOMIC_H
#define LOOM_ATOMIC_H

#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Writes the whole content to f: LOOM_OK, or LOOM_ERR with the error set.
 * Unchecked fprintf/fwrite results are fine: loom_atomic_write checks
 * ferror(f) afterwards. */
typedef int (*loom_write_fn)(FILE *f, void *ctx);

/* Write path through fn: "<path>.tmp.XXXXXX" in the same directory (mode
 * 0644), fn, fflush + ferror check, fsync, fclose, rename over path, fsync of
 * the directory. A link to a file replaces the file it points to (the link
 * stays); a device, FIFO or socket (/dev/null, a pipe) is written through,
 * not replaced. On any
 * failure the temporary is removed, path is left as it was, and the error
 * names path and the reason. LOOM_OK or LOOM_ERR. */
int loom_atomic_write(const char *path, loom_write_fn fn, void *ctx);

/* fsync the folder holding path, so that a rename or an unlink in it
 * survives a crash. LOOM_OK or LOOM_ERR. */
int loom_fsync_dir_of(const char *path);

#ifdef __cplusplus
}
#endif
#endif

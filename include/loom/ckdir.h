/* loom — a checkpoint directory: where one training run keeps
 * last.safetensors (every epoch) and best.safetensors (the best validation
 * accuracy so far), consistent with each other whatever moment the process
 * dies at.
 *
 * A commit writes best.next.safetensors (when the epoch is a new best), then
 * last.next.safetensors, whose appearance is the commit point, then renames
 * best.next over best and last.next over last, and syncs the directory.
 * Opening the directory finishes a commit that reached its commit point
 * (rolls it forward) and drops one that did not, so last and best always
 * describe the same run. Opening also takes an exclusive lock (flock on
 * DIR/.lock, released by the kernel however the process ends) so that two
 * runs cannot write one directory, and removes the temporaries
 * ("*.tmp.XXXXXX") that a killed write left behind. */
#ifndef LOOM_CKDIR_H
#define LOOM_CKDIR_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_ckdir loom_ckdir;

/* Open dir (created with its parents if missing) for this process alone.
 * NULL with the reason: another process holds it (its pid named), the
 * folder cannot be created or written, ... */
loom_ckdir *loom_ckdir_open(const char *dir);
/* Release the lock and free d; NULL-safe. */
void loom_ckdir_close(loom_ckdir *d);

const char *loom_ckdir_dir(const loom_ckdir *d);
/* "DIR/NAME.safetensors" into buf. */
const char *loom_ckdir_file(const loom_ckdir *d, const char *name, char *buf, size_t cap);
/* What opening found and put right: commits rolled forward or dropped and
 * temporaries removed (0 when the directory was clean). */
int loom_ckdir_repaired(const loom_ckdir *d);

/* Writes one complete checkpoint to path (loom_train_save, say). */
typedef int (*loom_ckdir_writer)(const char *path, void *ctx);

/* Commit a checkpoint as last, and as best too when best != 0. LOOM_OK, or
 * LOOM_ERR with the previous last and best left in place. */
int loom_ckdir_commit(loom_ckdir *d, loom_ckdir_writer write, void *ctx, int best);

#ifdef __cplusplus
}
#endif
#endif

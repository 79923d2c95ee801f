/* The checkpoint directory (ckdir.h): a lock, a two-file commit with a
 * commit point, and recovery at open. */
#include "loom/ckdir.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/atomic.h"
#include "loom/error.h"
#include "io/fs.h"

struct loom_ckdir {
    char *dir;
    int lock_fd;
    int repaired;
};

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* "name.tmp.XXXXXX": what loom_atomic_write leaves when killed mid-write. */
static int is_temporary(const char *name) {
    size_t n = strlen(name);
    return n > 11 && !memcmp(name + n - 11, ".tmp.", 5);
}

static int rename_in(loom_ckdir *d, const char *from, const char *to) {
    char *a = join(d->dir, from), *b = join(d->dir, to);
    int rc = LOOM_OK;
    if (!a || !b) rc = loom_fail(LOOM_ENOMEM, "%s: out of memory", d->dir);
    else if (rename(a, b) != 0) rc = loom_fail(LOOM_EIO, "%s: cannot rename %s to %s: %s", d->dir, from, to, strerror(errno));
    free(a);
    free(b);
    return rc;
}

/* Roll an interrupted commit forward (last.next exists: it reached its
 * commit point) or back (only best.next exists); remove temporaries. */
static int recover(loom_ckdir *d) {
    char *ln = join(d->dir, "last.next.safetensors"), *bn = join(d->dir, "best.next.safetensors");
    int rc = LOOM_OK;
    if (!ln || !bn) {
        rc = loom_fail(LOOM_ENOMEM, "%s: out of memory", d->dir);
        goto out;
    }
    if (exists(ln)) {
        if (exists(bn)) rc = rename_in(d, "best.next.safetensors", "best.safetensors");
        if (rc == LOOM_OK) rc = rename_in(d, "last.next.safetensors", "last.safetensors");
        d->repaired++;
    } else if (exists(bn)) {
        if (unlink(bn) != 0) rc = loom_fail(LOOM_EIO, "%s: cannot remove %s: %s", d->dir, bn, strerror(errno));
        d->repaired++;
    }
    DIR *dd = rc == LOOM_OK ? opendir(d->dir) : NULL;
    if (rc == LOOM_OK && !dd) rc = loom_fail(LOOM_EIO, "%s: cannot read the folder: %s", d->dir, strerror(errno));
    for (struct dirent *e; dd && rc == LOOM_OK && (e = readdir(dd)) != NULL;) {
        if (!is_temporary(e->d_name)) continue;
        char *p = join(d->dir, e->d_name);
        if (!p || unlink(p) != 0) rc = loom_fail(LOOM_EIO, "%s: cannot remove the stale temporary %s", d->dir, e->d_name);
        free(p);
        d->repaired++;
    }
    if (dd) closedir(dd);
    if (rc == LOOM_OK && d->repaired) rc = loom_fsync_dir_of(ln);
out:
    free(ln);
    free(bn);
    return rc;
}

static int take_lock(loom_ckdir *d) {
    char *lp = join(d->dir, ".lock");
    if (!lp) return loom_fail(LOOM_ENOMEM, "%s: out of memory", d->dir);
    d->lock_fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    int rc = LOOM_OK;
    if (d->lock_fd < 0) {
        rc = loom_fail(LOOM_EIO, "%s: cannot create %s: %s", d->dir, lp, strerror(errno));
    } else if (flock(d->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        char pid[32] = "";
        ssize_t n = pread(d->lock_fd, pid, sizeof pid - 1, 0);
        pid[n > 0 ? n : 0] = 0;
        pid[strcspn(pid, "\n")] = 0;
        rc = errno == EWOULDBLOCK
                 ? loom_fail(LOOM_EFORMAT, "%s is in use by another loom process%s%s%s: two runs in one checkpoint folder "
                                  "would overwrite each other's checkpoints and log (wait for it, or choose "
                                  "another folder)",
                                  d->dir, pid[0] ? " (pid " : "", pid, pid[0] ? ")" : "")
                 : loom_fail(LOOM_EIO, "%s: cannot lock %s: %s", d->dir, lp, strerror(errno));
    } else {
        char pid[32];
        int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
        if (ftruncate(d->lock_fd, 0) != 0 || pwrite(d->lock_fd, pid, (size_t)n, 0) != n)
            rc = loom_fail(LOOM_EIO, "%s: cannot write %s: %s", d->dir, lp, strerror(errno));
    }
    free(lp);
    return rc;
}

loom_ckdir *loom_ckdir_open(const char *dir) {
    if (!dir || !dir[0]) {
        loom_fail(LOOM_EINVAL, "loom_ckdir_open: no folder");
        return NULL;
    }
    loom_ckdir *d = calloc(1, sizeof *d);
    if (!d || !(d->dir = strdup(dir))) {
        free(d);
        loom_fail(LOOM_ENOMEM, "%s: out of memory", dir);
        return NULL;
    }
    d->lock_fd = -1;
    for (size_t n = strlen(d->dir); n > 1 && d->dir[n - 1] == '/'; n--) d->dir[n - 1] = 0;
    struct stat st;
    if (loom_mkdirs(d->dir) != 0) {
        loom_fail(LOOM_EIO, "%s: cannot create the checkpoint folder: %s", dir, strerror(errno));
    } else if (stat(d->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        loom_fail(LOOM_EFORMAT, "%s: not a folder", dir);
    } else if (access(d->dir, W_OK) != 0) {
        loom_fail(LOOM_EIO, "%s: the checkpoint folder is not writable: %s", dir, strerror(errno));
    } else if (take_lock(d) == LOOM_OK && recover(d) == LOOM_OK) {
        return d;
    }
    loom_ckdir_close(d);
    return NULL;
}

void loom_ckdir_close(loom_ckdir *d) {
    if (!d) return;
    if (d->lock_fd >= 0) close(d->lock_fd); /* closing the descriptor releases the flock */
    free(d->dir);
    free(d);
}

const char *loom_ckdir_dir(const loom_ckdir *d) { return d->dir; }
int loom_ckdir_repaired(const loom_ckdir *d) { return d->repaired; }

const char *loom_ckdir_file(const loom_ckdir *d, const char *name, char *buf, size_t cap) {
    snprintf(buf, cap, "%s/%s.safetensors", d->dir, name);
    return buf;
}

int loom_ckdir_commit(loom_ckdir *d, loom_ckdir_writer write, void *ctx, int best) {
    char *bn = join(d->dir, "best.next.safetensors"), *ln = join(d->dir, "last.next.safetensors");
    int rc = LOOM_ERR;
    if (!bn || !ln) {
        loom_fail(LOOM_ENOMEM, "%s: out of memory", d->dir);
        goto out;
    }
    if (best && write(bn, ctx) != LOOM_OK) goto drop;
    if (write(ln, ctx) != LOOM_OK) goto drop; /* its rename into place is the commit point */
    if (best && rename_in(d, "best.next.safetensors", "best.safetensors")) goto out;
    if (rename_in(d, "last.next.safetensors", "last.safetensors")) goto out;
    rc = loom_fsync_dir_of(ln);
    goto out;
drop:
    unlink(bn);
out:
    free(bn);
    free(ln);
    return rc;
}

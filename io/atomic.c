/* Atomic file writes (atomic.h): the one place that knows how loom replaces a
 * file, so images, checkpoints and the tools' outputs all get the same care. */
#include "io/atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loom/error.h"

/* A device, a FIFO or a socket is written through, not replaced: renaming a
 * file over /dev/null or over a pipe's reader would destroy it. */
static int write_through(const char *path, loom_write_fn fn, void *ctx) {
    FILE *f = fopen(path, "wb");
    if (!f) return loom_fail(LOOM_EIO, "%s: cannot open: %s", path, strerror(errno));
    int rc = fn(f, ctx) == LOOM_OK ? LOOM_OK : LOOM_ERR;
    if (rc == LOOM_OK && (fflush(f) != 0 || ferror(f))) rc = loom_fail(LOOM_EIO, "%s: write error: %s", path, strerror(errno));
    if (fclose(f) != 0 && rc == LOOM_OK) rc = loom_fail(LOOM_EIO, "%s: write error on close: %s", path, strerror(errno));
    return rc;
}

static int replace(const char *path, loom_write_fn fn, void *ctx);

int loom_atomic_write(const char *path, loom_write_fn fn, void *ctx) {
    if (!path || !path[0]) return loom_fail(LOOM_EINVAL, "an empty path was given for a file to write");
    struct stat st, lst;
    if (stat(path, &st) == 0) { /* follows links */
        if (S_ISDIR(st.st_mode)) return loom_fail(LOOM_EINVAL, "%s is a folder, not a file", path);
        if (!S_ISREG(st.st_mode)) return write_through(path, fn, ctx);
        if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
            /* a link to a file: the file is replaced, the link stays */
            char *target = realpath(path, NULL);
            if (!target) return loom_fail(LOOM_EIO, "%s: cannot follow the link: %s", path, strerror(errno));
            int rc = replace(target, fn, ctx);
            free(target);
            return rc;
        }
    } else if (lstat(path, &lst) == 0 && S_ISLNK(lst.st_mode)) {
        return loom_fail(LOOM_EIO, "%s is a link to a file that does not exist", path);
    }
    return replace(path, fn, ctx);
}

static int replace(const char *path, loom_write_fn fn, void *ctx) {
    /* Beside path, not in /tmp: rename() is only atomic within one file system. */
    size_t n = strlen(path) + sizeof ".tmp.XXXXXX";
    char *tmp = malloc(n);
    if (!tmp) return loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
    snprintf(tmp, n, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(tmp);
        return loom_fail(LOOM_EIO, "%s: cannot create a temporary file beside it: %s", path, strerror(e));
    }
    /* mkstemp makes the file 0600; what loom writes is shared like any data file. */
    (void)fchmod(fd, 0644);
    FILE *f = fdopen(fd, "wb");
    if (!f) {
        int e = errno;
        close(fd);
        unlink(tmp);
        free(tmp);
        return loom_fail(LOOM_EIO, "%s: cannot open a temporary file: %s", path, strerror(e));
    }
    int rc = fn(f, ctx) == LOOM_OK ? LOOM_OK : LOOM_ERR;
    if (rc == LOOM_OK && (fflush(f) != 0 || ferror(f)))
        rc = loom_fail(LOOM_EIO, "%s: write error: %s", path, strerror(errno));
    /* Without fsync the rename can reach the disk before the data does. */
    if (rc == LOOM_OK && fsync(fileno(f)) != 0)
        rc = loom_fail(LOOM_EIO, "%s: fsync failed: %s", path, strerror(errno));
    if (fclose(f) != 0 && rc == LOOM_OK)
        rc = loom_fail(LOOM_EIO, "%s: write error on close: %s", path, strerror(errno));
    if (rc == LOOM_OK && rename(tmp, path) != 0)
        rc = loom_fail(LOOM_EIO, "%s: cannot rename %s over it: %s", path, tmp, strerror(errno));
    if (rc != LOOM_OK) unlink(tmp);
    free(tmp);
    /* The rename is durable only once the directory entry is on disk. */
    if (rc == LOOM_OK) rc = loom_fsync_dir_of(path);
    return rc;
}

int loom_fsync_dir_of(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 1;
    char *dir = malloc(n + 2);
    if (!dir) return loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
    if (!slash) snprintf(dir, n + 2, ".");
    else if (slash == path) snprintf(dir, n + 2, "/");
    else snprintf(dir, n + 1, "%s", path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC), rc = LOOM_OK;
    /* Some file systems cannot fsync a directory (EINVAL): nothing more to do there. */
    if (fd < 0 || (fsync(fd) != 0 && errno != EINVAL && errno != EROFS))
        rc = loom_fail(LOOM_EIO, "%s: cannot sync its folder %s: %s", path, dir, strerror(errno));
    if (fd >= 0) close(fd);
    free(dir);
    return rc;
}

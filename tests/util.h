/* loom tests — the file-system chores of tests that read fixtures or write
 * their own: a fresh temporary folder, paths inside it, whole files written
 * and read, entries counted, the folder removed at the end. Header-only on
 * purpose, like check.h. A fixture that cannot be written is not a test
 * result: those helpers exit with status 2 rather than count a failure. */
#ifndef LOOM_TEST_UTIL_H
#define LOOM_TEST_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A fresh folder $TMPDIR/loom-test-<name>-XXXXXX (/tmp when TMPDIR is unset)
 * written into dir; returns dir, or NULL after perror. */
static inline char *t_mkdtemp(char *dir, size_t cap, const char *name) {
    const char *base = getenv("TMPDIR");
    snprintf(dir, cap, "%s/loom-test-%s-XXXXXX", base && *base ? base : "/tmp", name);
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return NULL;
    }
    return dir;
}

/* dir/rel, in one of four static buffers used in turn, so that one call
 * (a load and its expected message, say) can hold a few paths at once. */
static inline const char *t_path(const char *dir, const char *rel) {
    static char p[4][1024];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, rel);
    return p[k];
}

/* dir/rel, kept to the end of the run (t_path's buffers are reused): for
 * fixtures named once and used far apart. */
static inline const char *t_keep_path(const char *dir, const char *rel) {
    static char kept[256][512];
    static int n;
    if (n == (int)(sizeof kept / sizeof kept[0])) {
        fprintf(stderr, "more than %d fixture paths\n", n);
        exit(2);
    }
    snprintf(kept[n], sizeof kept[n], "%s/%s", dir, rel);
    return kept[n++];
}

/* The checked-in test data: tests/data/<name>. ctest names the folder in
 * LOOM_TEST_DATA; run by hand from tests/, it is "data". */
static inline const char *t_data_path(const char *name) {
    const char *dir = getenv("LOOM_TEST_DATA");
    return t_path(dir ? dir : "data", name);
}

static inline void t_mkdir(const char *path) {
    if (mkdir(path, 0755) != 0) {
        fprintf(stderr, "cannot create the folder %s: %s\n", path, strerror(errno));
        exit(2);
    }
}

/* path holds exactly the n bytes of p (n may be 0). */
static inline void t_write_file(const char *path, const void *p, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(p, 1, n, f) != n) || fclose(f) != 0) {
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
        exit(2);
    }
}

/* The whole file, malloc'd with one spare byte, its size in *n; NULL if it
 * cannot be opened. */
static inline unsigned char *t_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    *n = fread(b, 1, (size_t)len, f);
    fclose(f);
    return b;
}

/* Entries of dir whose name contains part (NULL: any), hidden ones aside;
 * -1 if dir cannot be read. */
static inline int t_count_entries(const char *dir, const char *part) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.' && (!part || strstr(e->d_name, part));
    closedir(d);
    return n;
}

/* Remove dir and everything under it; 0 when dir is gone. */
static inline int t_rm_tree(const char *dir) {
    DIR *d = opendir(dir);
    if (d) {
        for (struct dirent *e; (e = readdir(d)) != NULL;) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char p[1024];
            if (snprintf(p, sizeof p, "%s/%s", dir, e->d_name) >= (int)sizeof p) continue; /* too long to name: left */
            struct stat st;
            if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
                t_rm_tree(p);
            else
                remove(p);
        }
        closedir(d);
    }
    return rmdir(dir);
}

#endif

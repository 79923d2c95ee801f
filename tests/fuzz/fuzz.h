/* Shared by the libFuzzer targets (tests/fuzz/fuzz_*.c, scripts/fuzz.sh):
 * loom's readers take paths, so each input is written to a file in a
 * per-process folder in /dev/shm (memory) first. Warnings are silenced; a
 * reader's error is an answer, not a finding. A finding is a crash, a
 * sanitizer report, a leak or a timeout. */
#ifndef LOOM_FUZZ_H
#define LOOM_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loom/loom.h"

static inline void fz_quiet(const char *msg, void *user) { (void)msg, (void)user; }

/* The folder of this process's inputs (made once). */
static inline const char *fz_dir(void) {
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/dev/shm/loom-fuzz-%d", (int)getpid());
        if (mkdir(dir, 0700) && access(dir, W_OK)) snprintf(dir, sizeof dir, "/tmp/loom-fuzz-%d", (int)getpid()),
                                                   mkdir(dir, 0700);
        loom_set_warning_handler(fz_quiet, NULL);
    }
    return dir;
}

/* data written to dir/name; the path (a static buffer), or NULL. */
static inline const char *fz_file(const char *name, const uint8_t *data, size_t size) {
    static char path[256];
    snprintf(path, sizeof path, "%s/%s", fz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    if (size && fwrite(data, 1, size, f) != size) {
        fclose(f);
        return NULL;
    }
    fclose(f);
    return path;
}

/* Every sample of ds read (at most cap), as training would. */
static inline void fz_read_all(loom_dataset *ds, size_t cap) {
    if (!ds) return;
    size_t n = ds->count < cap ? ds->count : cap;
    if (ds->get_f32) {
        float *x = malloc((size_t)ds->c * ds->h * ds->w * sizeof(float) + 1);
        for (size_t i = 0; x && i < n; i++) {
            int32_t y;
            loom_dataset_get_f32(ds, i, x, &y);
        }
        free(x);
        return;
    }
    uint8_t *px = malloc((size_t)ds->c * ds->h * ds->w + 1); /* a sample as get writes it */
    for (size_t i = 0; px && i < n; i++) {
        int32_t y;
        loom_dataset_get(ds, i, px, &y);
    }
    free(px);
}

/* Whether a graph is small enough to run here: a tiny file may describe a model that needs gigabytes
 * (legitimately: loom checks that against the machine's memory), beyond the fuzzer's memory limit. */
static inline int fz_small(const loom_graph *g) {
    double floats = (double)loom_graph_param_count(g);
    for (int i = 0; i < loom_graph_count(g); i++) floats += 4.0 * (double)loom_graph_layer(g, i)->size;
    return floats < 32e6;
}

/* A graph that loaded run once on zeros, one sample (shape errors that only a forward meets). */
static inline void fz_run_once(loom_graph *g) {
    loom_exec *e = loom_exec_new(g, 1);
    if (e) {
        memset(loom_exec_input(e), 0, loom_graph_layer(g, 0)->size * sizeof(float));
        loom_exec_forward(e, 1, 0, 0, 0);
    }
    loom_exec_free(e);
}

#endif

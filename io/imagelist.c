/* Unlabelled images for prediction: one image file, or every PNG/JPEG in a
 * flat folder (sorted by name), converted to the requested channels and size. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "kernels/kernels.h"
#include "loom/dataset.h"
#include "loom/error.h"
#include "io/image.h"

typedef struct {
    char **files;
    size_t n;
    int strict; /* every image must have the first image's size */
} list_impl;

static int is_image_name(const char *n) {
    const char *dot = strrchr(n, '.');
    return dot && (!strcasecmp(dot, ".png") || !strcasecmp(dot, ".jpg") || !strcasecmp(dot, ".jpeg"));
}

static int list_get(loom_dataset *ds, size_t i, uint8_t *hwc, int32_t *label) {
    list_impl *m = ds->impl;
    loom_image img;
    *label = -1;
    if (loom_image_load(m->files[i], ds->c, &img)) return LOOM_ERR;
    if (m->strict && (img.w != ds->native_w || img.h != ds->native_h)) {
        int w = img.w, h = img.h;
        loom_image_free(&img);
        return loom_fail(LOOM_EFORMAT, "%s is %dx%d, unlike the first image (%dx%d): resizing them alike must be "
                                       "asked for (--resize)",
                         m->files[i], h, w, ds->native_h, ds->native_w);
    }
    int rc = LOOM_OK;
    if (img.w == ds->w && img.h == ds->h) {
        memcpy(hwc, img.data, (size_t)ds->w * ds->h * ds->c);
    } else {
        uint8_t *scratch = malloc(loom_k_resize_scratch(img.w, img.h, ds->c, ds->w, ds->h) + 1);
        if (scratch) loom_k_resize(img.data, img.w, img.h, ds->c, hwc, ds->w, ds->h, scratch);
        else rc = loom_fail(LOOM_ENOMEM, "%s: out of memory", m->files[i]);
        free(scratch);
    }
    loom_image_free(&img);
    return rc;
}

static void list_describe(const loom_dataset *ds, size_t i, char *buf, size_t cap) {
    const list_impl *m = ds->impl;
    snprintf(buf, cap, "%s", m->files[i]);
}

static void list_destroy(loom_dataset *ds) {
    list_impl *m = ds->impl;
    for (size_t i = 0; i < m->n; i++) free(m->files[i]);
    free(m->files);
    free(m);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

loom_dataset *loom_dataset_open_images(const char *path, const loom_dataset_opts *o) {
    loom_dataset *ds = loom_dataset_alloc("images", path, sizeof(list_impl), list_destroy);
    if (!ds) return NULL;
    list_impl *m = ds->impl;
    struct stat st;
    size_t cap = 0;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' || !is_image_name(e->d_name)) continue;
            if (m->n == cap) {
                cap = cap ? cap * 2 : 64;
                char **f = realloc(m->files, cap * sizeof *f);
                if (!f) break;
                m->files = f;
            }
            size_t len = strlen(path) + strlen(e->d_name) + 2;
            if ((m->files[m->n] = malloc(len)) != NULL) snprintf(m->files[m->n++], len, "%s/%s", path, e->d_name);
        }
        if (d) closedir(d);
        if (m->n) qsort(m->files, m->n, sizeof *m->files, cmp_str);
    } else if ((m->files = malloc(sizeof *m->files)) != NULL && (m->files[0] = strdup(path)) != NULL) {
        m->n = 1;
    }
    if (!m->n) {
        loom_fail(LOOM_EFORMAT, "%s: no PNG or JPEG images found", path);
        loom_dataset_free(ds);
        return NULL;
    }
    ds->count = m->n;
    ds->c = o && o->channels ? o->channels : 3;
    ds->h = o ? o->height : 0;
    ds->w = o ? o->width : 0;
    loom_image first;
    if (loom_image_load(m->files[0], 0, &first)) {
        loom_dataset_free(ds);
        return NULL;
    }
    ds->native_c = first.c;
    ds->native_h = first.h;
    ds->native_w = first.w;
    loom_image_free(&first);
    if (!ds->h || !ds->w) {
        ds->h = ds->native_h;
        ds->w = ds->native_w;
    }
    m->strict = o && o->same_size;
    ds->labeled = 0;
    ds->get = list_get;
    ds->describe = list_describe;
    return ds;
}

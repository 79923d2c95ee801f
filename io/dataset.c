/* The dataset interface's common parts: allocation, class names, bounds
 * checks, subsets and splits, format recognition, and the IDX reader as a
 * dataset. */
#include "loom/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <sys/stat.h>

#include "loom/error.h"
#include "io/idx.h"
#include "kernels/rng.h"
#include "io/fs.h"

loom_dataset *loom_dataset_alloc(const char *format, const char *path, size_t impl_size,
                                 void (*destroy)(loom_dataset *ds)) {
    loom_dataset *ds = calloc(1, sizeof *ds);
    void *impl = impl_size ? calloc(1, impl_size) : NULL;
    if (!ds || (impl_size && !impl)) {
        free(ds);
        free(impl);
        loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
        return NULL;
    }
    snprintf(ds->format, sizeof ds->format, "%s", format);
    snprintf(ds->path, sizeof ds->path, "%s", path);
    ds->impl = impl;
    ds->destroy = destroy;
    return ds;
}

int loom_dataset_set_classes(loom_dataset *ds, int n, const char *const *names) {
    ds->class_names = calloc((size_t)n + 1, sizeof(char *));
    if (!ds->class_names) return loom_fail(LOOM_ENOMEM, "%s: out of memory", ds->path);
    ds->num_classes = n; /* set first: a failed strdup leaves NULLs that free() skips */
    for (int i = 0; i < n; i++) {
        ds->class_names[i] = strdup(names[i]);
        if (!ds->class_names[i]) return loom_fail(LOOM_ENOMEM, "%s: out of memory", ds->path);
    }
    return LOOM_OK;
}

void loom_dataset_free(loom_dataset *ds) {
    if (!ds) return;
    if (ds->destroy) ds->destroy(ds);
    if (ds->class_names)
        for (int i = 0; i < ds->num_classes; i++) free(ds->class_names[i]);
    free(ds->class_names);
    free(ds);
}

int loom_dataset_get(loom_dataset *ds, size_t i, uint8_t *hwc, int32_t *label) {
    if (i >= ds->count)
        return loom_fail(LOOM_EINVAL, "%s: sample %zu requested, the set has %zu", ds->path, i, ds->count);
    if (!ds->get)
        return loom_fail(LOOM_EINVAL, "%s: a set of float features, not images (nothing to decode, resize or augment)",
                         ds->path);
    return ds->get(ds, i, hwc, label);
}

int loom_dataset_get_f32(loom_dataset *ds, size_t i, float *x, int32_t *label) {
    if (i >= ds->count)
        return loom_fail(LOOM_EINVAL, "%s: sample %zu requested, the set has %zu", ds->path, i, ds->count);
    if (!ds->get_f32) return loom_fail(LOOM_EINVAL, "%s: a set of images, not of float features", ds->path);
    return ds->get_f32(ds, i, x, label);
}

int loom_dataset_label(loom_dataset *ds, size_t i, int32_t *label) {
    if (i >= ds->count)
        return loom_fail(LOOM_EINVAL, "%s: sample %zu requested, the set has %zu", ds->path, i, ds->count);
    if (ds->label_of) {
        *label = ds->label_of(ds, i);
        return LOOM_OK;
    }
    uint8_t *tmp = malloc((size_t)ds->c * ds->h * ds->w);
    if (!tmp) return loom_fail(LOOM_ENOMEM, "%s: out of memory", ds->path);
    int rc = ds->get(ds, i, tmp, label);
    free(tmp);
    return rc;
}

void loom_dataset_describe(const loom_dataset *ds, size_t i, char *buf, size_t cap) {
    if (ds->describe) ds->describe(ds, i, buf, cap);
    else snprintf(buf, cap, "%s sample %zu", ds->path, i);
}

const char *loom_dataset_class_name(const loom_dataset *ds, int k, char *buf, size_t cap) {
    if (ds->class_names && k >= 0 && k < ds->num_classes) return ds->class_names[k];
    snprintf(buf, cap, "%d", k);
    return buf;
}

/* ---- subsets ---- */
typedef struct {
    loom_dataset *base;
    uint32_t *index;
} subset_impl;

static int subset_get(loom_dataset *ds, size_t i, uint8_t *hwc, int32_t *label) {
    subset_impl *s = ds->impl;
    return loom_dataset_get(s->base, s->index[i], hwc, label);
}

static int subset_get_f32(loom_dataset *ds, size_t i, float *x, int32_t *label) {
    subset_impl *s = ds->impl;
    return loom_dataset_get_f32(s->base, s->index[i], x, label);
}

static int32_t subset_label(const loom_dataset *ds, size_t i) {
    const subset_impl *s = ds->impl;
    return s->base->label_of(s->base, s->index[i]);
}

static void subset_describe(const loom_dataset *ds, size_t i, char *buf, size_t cap) {
    const subset_impl *s = ds->impl;
    loom_dataset_describe(s->base, s->index[i], buf, cap);
}

static void subset_destroy(loom_dataset *ds) {
    subset_impl *s = ds->impl;
    free(s->index);
    free(s);
}

loom_dataset *loom_dataset_subset(loom_dataset *base, const uint32_t *index, size_t count) {
    loom_dataset *ds = loom_dataset_alloc("subset", base->path, sizeof(subset_impl), subset_destroy);
    if (!ds) return NULL;
    subset_impl *s = ds->impl;
    if (!(s->index = malloc((count + 1) * sizeof(uint32_t)))) {
        loom_dataset_free(ds);
        loom_fail(LOOM_ENOMEM, "%s: out of memory", base->path);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        if (index[i] >= base->count) {
            loom_dataset_free(ds);
            loom_fail(LOOM_EINVAL, "%s: subset index %u out of range (%zu samples)", base->path, index[i], base->count);
            return NULL;
        }
        s->index[i] = index[i];
    }
    s->base = base;
    ds->count = count;
    ds->c = base->c;
    ds->h = base->h;
    ds->w = base->w;
    ds->native_c = base->native_c;
    ds->native_h = base->native_h;
    ds->native_w = base->native_w;
    memcpy(ds->split, base->split, sizeof ds->split);
    ds->labeled = base->labeled;
    ds->get = base->get ? subset_get : NULL;
    ds->get_f32 = base->get_f32 ? subset_get_f32 : NULL;
    if (base->label_of) ds->label_of = subset_label;
    ds->describe = subset_describe;
    if (base->num_classes) {
        if (base->class_names) {
            if (loom_dataset_set_classes(ds, base->num_classes, (const char *const *)base->class_names)) {
                loom_dataset_free(ds);
                return NULL;
            }
        } else {
            ds->num_classes = base->num_classes;
        }
    }
    return ds;
}

/* Labels of every sample: cheap for readers with label_of (all of loom's). */
static int all_labels(loom_dataset *ds, int32_t *labels) {
    for (size_t i = 0; i < ds->count; i++)
        if (loom_dataset_label(ds, i, &labels[i])) return LOOM_ERR;
    return LOOM_OK;
}

int loom_dataset_split(loom_dataset *base, double val_frac, uint64_t seed, int stratified,
                       loom_dataset **train, loom_dataset **val) {
    *train = *val = NULL;
    if (!(val_frac > 0 && val_frac < 1))
        return loom_fail(LOOM_EINVAL, "%s: validation fraction %g must be between 0 and 1", base->path, val_frac);
    size_t n = base->count;
    uint32_t *perm = malloc((n + 1) * sizeof(uint32_t));
    uint32_t *tr = malloc((n + 1) * sizeof(uint32_t)), *va = malloc((n + 1) * sizeof(uint32_t));
    int32_t *lab = NULL;
    size_t ntr = 0, nva = 0;
    int rc = LOOM_ERR;
    if (!perm || !tr || !va) {
        loom_fail(LOOM_ENOMEM, "%s: out of memory", base->path);
        goto done;
    }
    loom_rng_permutation(loom_rng_key(seed, LOOM_RNG_SPLIT, 0, 0), perm, (uint32_t)n);
    if (stratified && base->labeled && base->num_classes > 0) {
        lab = malloc((n + 1) * sizeof(int32_t));
        if (!lab) {
            loom_fail(LOOM_ENOMEM, "%s: out of memory", base->path);
            goto done;
        }
        if (all_labels(base, lab)) goto done;
        /* within each class, the first round(frac * class count) in shuffled order go to validation */
        int K = base->num_classes;
        size_t *cnt = calloc((size_t)K + 1, sizeof(size_t)), *taken = calloc((size_t)K + 1, sizeof(size_t));
        if (!cnt || !taken) {
            free(cnt);
            free(taken);
            loom_fail(LOOM_ENOMEM, "%s: out of memory", base->path);
            goto done;
        }
        for (size_t i = 0; i < n; i++)
            if (lab[i] >= 0 && lab[i] < K) cnt[lab[i]]++;
        for (size_t k = 0; k < n; k++) {
            uint32_t i = perm[k];
            int c = lab[i];
            size_t want = (c >= 0 && c < K) ? (size_t)(val_frac * (double)cnt[c] + 0.5) : 0;
            if (c >= 0 && c < K && taken[c] < want) {
                taken[c]++;
                va[nva++] = i;
            } else {
                tr[ntr++] = i;
            }
        }
        free(cnt);
        free(taken);
    } else {
        size_t nv = (size_t)(val_frac * (double)n + 0.5);
        for (size_t k = 0; k < n; k++) {
            if (k < nv) va[nva++] = perm[k];
            else tr[ntr++] = perm[k];
        }
    }
    if (!ntr || !nva) {
        loom_fail(LOOM_EINVAL, "%s: a %.0f%% validation split of %zu samples leaves a part empty", base->path, val_frac * 100, n);
        goto done;
    }
    *train = loom_dataset_subset(base, tr, ntr);
    *val = loom_dataset_subset(base, va, nva);
    if (!*train || !*val) {
        loom_dataset_free(*train);
        loom_dataset_free(*val);
        *train = *val = NULL;
        goto done;
    }
    rc = LOOM_OK;
done:
    free(perm);
    free(tr);
    free(va);
    free(lab);
    return rc;
}

/* ---- IDX as a dataset ---- */
typedef struct {
    loom_idx img, lab;
} idx_impl;

static int idx_get(loom_dataset *ds, size_t i, uint8_t *hwc, int32_t *label) {
    idx_impl *m = ds->impl;
    memcpy(hwc, m->img.data + i * m->img.item_size, m->img.item_size);
    *label = m->lab.data[i];
    return LOOM_OK;
}

static int32_t idx_label(const loom_dataset *ds, size_t i) {
    const idx_impl *m = ds->impl;
    return m->lab.data[i];
}

static void idx_describe(const loom_dataset *ds, size_t i, char *buf, size_t cap) {
    snprintf(buf, cap, "%s image %zu", ds->path, i);
}

static void idx_destroy(loom_dataset *ds) {
    idx_impl *m = ds->impl;
    loom_idx_free(&m->img);
    loom_idx_free(&m->lab);
    free(m);
}

/* A labels file next to an images file: replace "images-idx3" by "labels-idx1"
 * (or the dotted variant) when the name follows the MNIST convention and that
 * file exists; otherwise the one IDX labels file in the same folder whose
 * header promises `count` records. */
static int labels_for(const char *img, size_t count, char *out, size_t cap) {
    const char *pats[][2] = {{"images-idx3", "labels-idx1"}, {"images.idx3", "labels.idx1"}};
    for (int k = 0; k < 2; k++) {
        const char *at = strstr(img, pats[k][0]);
        if (!at) continue;
        snprintf(out, cap, "%.*s%s%s", (int)(at - img), img, pats[k][1], at + strlen(pats[k][0]));
        struct stat st;
        if (stat(out, &st) == 0) return LOOM_OK;
    }
    char dir[4096];
    const char *slash = strrchr(img, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - img) : 1, slash ? img : ".");
    if (slash == img) snprintf(dir, sizeof dir, "/");
    DIR *d = opendir(dir);
    if (!d) return loom_fail(LOOM_EIO, "%s: cannot look for its labels file in %s", img, dir);
    int found = 0;
    char first[4096] = "", second[4096] = "";
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        char p[4096];
        int n = snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (n < 0 || (size_t)n >= sizeof p || !strcmp(p, img)) continue;
        loom_idx h;
        if (loom_idx_read_header(p, &h) || h.ndim != 1 || h.count != count) continue;
        snprintf(found++ ? second : first, sizeof first, "%s", p);
    }
    closedir(d);
    if (found == 1) {
        snprintf(out, cap, "%s", first);
        return LOOM_OK;
    }
    if (found > 1)
        return loom_fail(LOOM_EFORMAT, "%s: %d IDX labels files with %zu records beside it (%s, %s%s): name the pair "
                              "train-images-idx3-ubyte / train-labels-idx1-ubyte, or give their folder",
                              img, found, count, first, second, found > 2 ? ", ..." : "");
    return loom_fail(LOOM_EFORMAT, "%s: no labels file for these %zu images (looked for the ...labels-idx1... name "
                          "and for any IDX file of %zu labels in %s)",
                          img, count, count, dir);
}

static const char *const fashion_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                              "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"};

static int has_fashion_name(const char *path) {
    for (const char *p = path; *p; p++)
        if (!strncasecmp(p, "fashion", 7)) return 1;
    return 0;
}

loom_dataset *loom_dataset_open_idx(const char *path, const loom_dataset_opts *o) {
    char ip[4096], lp[4096];
    const char *split = o && o->split ? o->split : "train";
    int folder = loom_is_dir(path);
    if (folder) {
        if (loom_idx_find(path, split, ip, lp, sizeof ip)) return NULL;
    } else {
        snprintf(ip, sizeof ip, "%s", path);
    }
    loom_dataset *ds = loom_dataset_alloc("idx", ip, sizeof(idx_impl), idx_destroy);
    if (!ds) return NULL;
    idx_impl *m = ds->impl;
    /* the images first: a fault in them is the one to report */
    if (loom_idx_read(ip, &m->img)) goto fail;
    if (m->img.ndim == 1) {
        loom_fail(LOOM_EFORMAT, "%s: a labels file (1 dimension, %zu labels): give the images file, or the folder "
                       "holding both",
                       ip, m->img.count);
        goto fail;
    }
    if (m->img.ndim != 3 && !(m->img.ndim == 4 && (m->img.dims[3] == 1 || m->img.dims[3] == 3))) {
        loom_fail(LOOM_EFORMAT, "%s: expected images (count, rows, cols[, channels]), found %d dimensions", ip, m->img.ndim);
        goto fail;
    }
    if (!folder && labels_for(ip, m->img.count, lp, sizeof lp)) goto fail;
    if (loom_idx_read_labels(lp, ip, &m->img, &m->lab)) goto fail;
    int maxl = 0;
    for (size_t i = 0; i < m->lab.count; i++)
        if (m->lab.data[i] > maxl) maxl = m->lab.data[i];
    ds->count = m->img.count;
    ds->h = (int)m->img.dims[1];
    ds->w = (int)m->img.dims[2];
    ds->c = m->img.ndim == 4 ? (int)m->img.dims[3] : 1;
    ds->native_c = ds->c, ds->native_h = ds->h, ds->native_w = ds->w;
    ds->num_classes = maxl + 1 < 10 ? 10 : maxl + 1;
    ds->labeled = 1;
    ds->get = idx_get;
    ds->label_of = idx_label;
    ds->describe = idx_describe;
    if (folder) snprintf(ds->split, sizeof ds->split, "%s", !strcmp(split, "t10k") ? "test" : split);
    if (ds->num_classes == 10 && has_fashion_name(path) && loom_dataset_set_classes(ds, 10, fashion_names)) goto fail;
    /* A label beyond the usual ten makes classes that nothing else fills:
     * say which, and which record made them. */
    size_t *cnt = calloc((size_t)ds->num_classes, sizeof *cnt);
    if (!cnt) {
        loom_fail(LOOM_ENOMEM, "%s: out of memory", lp);
        goto fail;
    }
    for (size_t i = 0; i < m->lab.count; i++) cnt[m->lab.data[i]]++;
    if (maxl >= 10) {
        char empty[256] = "";
        int nempty = 0;
        for (int k = 0; k < ds->num_classes; k++)
            if (!cnt[k] && nempty++ < 8)
                snprintf(empty + strlen(empty), sizeof empty - strlen(empty), "%s%d", nempty > 1 ? ", " : "", k);
        size_t at = 0;
        while (m->lab.data[at] != maxl) at++;
        if (nempty)
            loom_warn("%s: label %d in record %zu (byte %zu) makes %d classes, and %d of them have no samples "
                      "(%s%s): a stray label?",
                      lp, maxl, at, 8 + at, ds->num_classes, nempty, empty, nempty > 8 ? ", ..." : "");
    }
    free(cnt);
    return ds;
fail:
    loom_dataset_free(ds);
    return NULL;
}

/* ---- format recognition ---- */
static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcasecmp(s + a - b, suf);
}

static int dir_has(const char *dir, int (*pred)(const char *name)) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *e;
    int found = 0;
    while (!found && (e = readdir(d)) != NULL) found = pred(e->d_name);
    closedir(d);
    return found;
}

static int is_idx_name(const char *n) { return strstr(n, "-ubyte") != NULL && strstr(n, "idx") != NULL; }
static int is_image_file(const char *n) {
    return has_suffix(n, ".png") || has_suffix(n, ".jpg") || has_suffix(n, ".jpeg");
}
static int is_cifar_name(const char *n) { return has_suffix(n, ".bin") && (strstr(n, "batch") != NULL); }

/* Whether dir holds a (non-hidden) folder. */
static int has_subdir(const char *dir) {
    DIR *d = opendir(dir);
    int found = 0;
    for (struct dirent *e; d && !found && (e = readdir(d)) != NULL;) {
        if (e->d_name[0] == '.') continue;
        char p[4500];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        found = loom_is_dir(p);
    }
    if (d) closedir(d);
    return found;
}

/* What the first bytes of a file say it is: "idx" (plain or gzip), "image", or NULL. */
static const char *sniff(const char *path) {
    unsigned char m[4] = {0};
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t n = fread(m, 1, 4, f);
    fclose(f);
    if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) return "idx";
    /* an IDX magic of any element type: the reader names an unsupported one */
    if (n == 4 && m[0] == 0 && m[1] == 0 && strchr("\x08\x09\x0b\x0c\x0d\x0e", m[2]) && m[2] && m[3] >= 1 && m[3] <= 4)
        return "idx";
    if (n == 4 && ((m[0] == 0x89 && m[1] == 'P' && m[2] == 'N' && m[3] == 'G') || (m[0] == 0xff && m[1] == 0xd8)))
        return "image";
    return NULL;
}

/* Kaggle's seg_pred/seg_pred/<images>: a folder whose one entry is a folder
 * of the same name holding images and no folders (a folder of one class
 * folder is a data set of one class, not this). Its inner folder into inner,
 * or 0. */
static int image_wrapper(const char *dir, char *inner, size_t cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    char name[256] = "";
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        if (e->d_name[0] != '.' && n++ == 0) {
            snprintf(inner, cap, "%s/%s", dir, e->d_name);
            snprintf(name, sizeof name, "%s", e->d_name);
        }
    closedir(d);
    size_t len = strlen(dir);
    while (len > 1 && dir[len - 1] == '/') len--;
    const char *base = dir + len;
    while (base > dir && base[-1] != '/') base--;
    if (n != 1 || strlen(name) != (size_t)(dir + len - base) || strncmp(name, base, strlen(name)) || !loom_is_dir(inner) ||
        !dir_has(inner, is_image_file))
        return 0;
    DIR *in = opendir(inner);
    int sub = 0;
    for (struct dirent *e; in && (e = readdir(in)) != NULL;) {
        char p[4500];
        snprintf(p, sizeof p, "%s/%s", inner, e->d_name);
        sub |= e->d_name[0] != '.' && loom_is_dir(p);
    }
    if (in) closedir(in);
    return !sub;
}

static loom_dataset *open_any(const char *path, const loom_dataset_opts *o) {
    struct stat st;
    if (stat(path, &st) != 0) {
        loom_fail(LOOM_EIO, "%s: no such file or folder", path);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        if (dir_has(path, is_idx_name)) return loom_dataset_open_idx(path, o);
        if (dir_has(path, is_cifar_name)) return loom_dataset_open_cifar(path, o);
        /* class folders win over loose images beside them (the folder reader warns of those) */
        if (dir_has(path, is_image_file) && !has_subdir(path)) return loom_dataset_open_images(path, o);
        char inner[4200];
        if (image_wrapper(path, inner, sizeof inner)) return loom_dataset_open_images(inner, o);
        return loom_dataset_open_folder(path, o);
    }
    if (has_suffix(path, ".csv")) return loom_dataset_open_csv(path, o);
    if (has_suffix(path, ".safetensors")) return loom_dataset_open_features(path, o);
    if (has_suffix(path, ".bin")) return loom_dataset_open_cifar(path, o);
    if (is_image_file(path)) return loom_dataset_open_images(path, o);
    const char *kind = sniff(path);
    if (kind && !strcmp(kind, "idx")) return loom_dataset_open_idx(path, o);
    if (kind) return loom_dataset_open_images(path, o);
    if (access(path, R_OK) != 0) {
        loom_fail(LOOM_EIO, "%s: cannot read: %s", path, strerror(errno));
        return NULL;
    }
    loom_fail(LOOM_EFORMAT, "%s: unknown data format: not a folder, not named .csv/.bin/.png/.jpg, and its first bytes are "
                   "not those of an IDX file (00 00 08 ...), a gzip stream, a PNG or a JPEG",
                   path);
    return NULL;
}

loom_dataset *loom_dataset_open(const char *path, const loom_dataset_opts *o) {
    const char *split = o ? o->split : NULL;
    if (split && strcmp(split, "train") && strcmp(split, "test") && strcmp(split, "t10k")) {
        loom_fail(LOOM_EINVAL, "%s: unknown split \"%s\" (train or test)", path, split);
        return NULL;
    }
    loom_dataset *ds = open_any(path, o);
    if (ds && !ds->native_c) {
        ds->native_c = ds->c;
        ds->native_h = ds->h;
        ds->native_w = ds->w;
    }
    return ds;
}

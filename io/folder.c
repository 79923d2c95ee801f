/* A folder of class folders of PNG/JPEG images, the layout of Kaggle's image
 * sets (Intel Image Classification: seg_train/seg_train/<class>/<n>.jpg). The
 * listing is taken once at open; get() decodes its file on every call, and
 * reads nothing but the listing, so any number of threads may call it. */
#include "loom/dataset.h"

#include "kernels/kernels.h"

#include "loom/error.h"
#include "io/image.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* get() builds paths on its stack; open refuses trees with longer ones. */
#define PATH_CAP 4096

typedef struct {
    char *root;       /* the folder holding the class folders */
    char *pool;       /* "class/file\0" of every sample, back to back */
    size_t *off;      /* sample i's name is pool + off[i] */
    int32_t *label;
    size_t count;
    int c, h, w;
    int strict;       /* every image must have the first image's size (nw x nh) */
    int nw, nh;
} folder_impl;

/* ---- listing --------------------------------------------------------------------- */

typedef struct {
    char **v;
    size_t n, cap;
} strlist;

static void list_free(strlist *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

static int list_push(strlist *l, const char *s) {
    if (l->n == l->cap) {
        size_t ncap = l->cap ? l->cap * 2 : 16;
        char **nv = realloc(l->v, ncap * sizeof *nv);
        if (!nv) return LOOM_ERR;
        l->v = nv;
        l->cap = ncap;
    }
    if (!(l->v[l->n] = strdup(s))) return LOOM_ERR;
    l->n++;
    return LOOM_OK;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int is_image_name(const char *n) {
    const char *dot = strrchr(n, '.');
    return dot && dot != n &&
           (strcasecmp(dot, ".png") == 0 || strcasecmp(dot, ".jpg") == 0 ||
            strcasecmp(dot, ".jpeg") == 0);
}

/* The sub-folders and image files of dir, each sorted with strcmp (a fixed
 * order, whatever the locale, keeps labels stable across machines). Hidden
 * entries (".DS_Store", "._x.jpg" from macOS archives) are skipped; *others
 * counts the remaining non-image files. */
static int scan(const char *dir, strlist *dirs, strlist *images, size_t *others) {
    DIR *d = opendir(dir);
    if (!d) return loom_fail(LOOM_EIO, "%s: cannot open folder: %s", dir, strerror(errno));
    char path[PATH_CAP];
    int rc = LOOM_OK;
    struct dirent *e;
    for (errno = 0; (e = readdir(d)) != NULL; errno = 0) {
        if (e->d_name[0] == '.') continue;
        int is_dir = e->d_type == DT_DIR, is_reg = e->d_type == DT_REG;
        if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
            int n = snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            struct stat st;
            if (n < 0 || (size_t)n >= sizeof path) {
                rc = loom_fail(LOOM_EFORMAT, "%s/%s: path longer than %d bytes", dir, e->d_name, PATH_CAP - 1);
                break;
            }
            if (stat(path, &st) == 0) {
                is_dir = S_ISDIR(st.st_mode);
                is_reg = S_ISREG(st.st_mode);
            }
        }
        strlist *to = is_dir ? dirs : is_reg && is_image_name(e->d_name) ? images : NULL;
        if (!to) {
            if (is_reg && others) (*others)++;
            continue;
        }
        if (list_push(to, e->d_name)) {
            rc = loom_fail(LOOM_ENOMEM, "%s: out of memory listing the folder", dir);
            break;
        }
    }
    if (rc == LOOM_OK && errno != 0) rc = loom_fail(LOOM_EIO, "%s: cannot read folder: %s", dir, strerror(errno));
    closedir(d);
    if (rc != LOOM_OK) return rc;
    if (dirs && dirs->n > 1) qsort(dirs->v, dirs->n, sizeof *dirs->v, cmp_str);
    if (images && images->n > 1) qsort(images->v, images->n, sizeof *images->v, cmp_str);
    return LOOM_OK;
}

static char *join(const char *a, const char *b) {
    size_t n = strlen(a) + 1 + strlen(b) + 1;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

/* ---- the data set ------------------------------------------------------------------ */

static int32_t folder_label(const loom_dataset *ds, size_t i) {
    const folder_impl *f = ds->impl;
    return f->label[i];
}

static int folder_get(loom_dataset *ds, size_t i, uint8_t *hwc, int32_t *label) {
    const folder_impl *f = ds->impl;
    if (i >= f->count)
        return loom_fail(LOOM_EINVAL, "%s: sample %zu requested, the set has %zu", f->root, i, f->count);
    char path[PATH_CAP];
    snprintf(path, sizeof path, "%s/%s", f->root, f->pool + f->off[i]);  /* fits: checked at open */
    loom_image img;
    if (loom_image_load(path, f->c, &img)) return LOOM_ERR;
    if (f->strict && (img.w != f->nw || img.h != f->nh)) {
        int w = img.w, h = img.h;
        loom_image_free(&img);
        return loom_fail(LOOM_EFORMAT, "%s is %dx%d, unlike the first image of the set (%dx%d): resizing them alike "
                                       "must be asked for (loom train --image-size HxW, eval/predict --resize)",
                         path, h, w, f->nh, f->nw);
    }
    int rc = LOOM_OK;
    uint8_t *scratch = NULL;
    if (img.w == f->w && img.h == f->h)
        memcpy(hwc, img.data, (size_t)f->w * (size_t)f->h * (size_t)f->c);
    else if (!(scratch = malloc(loom_k_resize_scratch(img.w, img.h, f->c, f->w, f->h) + 1)))
        rc = loom_fail(LOOM_ENOMEM, "%s: out of memory resizing %dx%d to %dx%d", path, img.w, img.h, f->w, f->h);
    else
        loom_k_resize(img.data, img.w, img.h, f->c, hwc, f->w, f->h, scratch);
    free(scratch);
    loom_image_free(&img);
    if (rc == LOOM_OK && label) *label = f->label[i];
    return rc;
}

static void folder_describe(const loom_dataset *ds, size_t i, char *buf, size_t cap) {
    const folder_impl *f = ds->impl;
    if (i < f->count)
        snprintf(buf, cap, "%s/%s", f->root, f->pool + f->off[i]);
    else
        snprintf(buf, cap, "%s sample %zu (out of range)", f->root, i);
}

static void folder_destroy(loom_dataset *ds) {
    folder_impl *f = ds->impl;
    free(f->root);
    free(f->pool);
    free(f->off);
    free(f->label);
    free(f);
}

/* Append "cls/file" for every image of class k; a class without any is an
 * error rather than a silently missing label. */
typedef struct {
    size_t pool_n, pool_cap, n_cap;
} growth;

static int add_class(folder_impl *f, growth *g, const char *cls, int k) {
    char *dir = join(f->root, cls);
    if (!dir) return loom_fail(LOOM_ENOMEM, "%s: out of memory", f->root);
    strlist imgs = {0};
    size_t others = 0;
    int rc = scan(dir, NULL, &imgs, &others);
    if (rc == LOOM_OK && imgs.n == 0)
        rc = loom_fail(LOOM_EFORMAT, "%s: class \"%s\" has no .png/.jpg/.jpeg images%s", dir, cls,
                            others ? " (only other files)" : "");
    for (size_t i = 0; rc == LOOM_OK && i < imgs.n; i++) {
        size_t len = strlen(cls) + 1 + strlen(imgs.v[i]) + 1;
        if (strlen(f->root) + 1 + len > PATH_CAP) {
            rc = loom_fail(LOOM_EFORMAT, "%s/%s: path longer than %d bytes", dir, imgs.v[i], PATH_CAP - 1);
            break;
        }
        if (f->count == g->n_cap) {
            size_t nc = g->n_cap ? g->n_cap * 2 : 256;
            size_t *no = realloc(f->off, nc * sizeof *no);
            if (no) f->off = no;
            int32_t *nl = realloc(f->label, nc * sizeof *nl);
            if (nl) f->label = nl;
            if (!no || !nl) {
                rc = loom_fail(LOOM_ENOMEM, "%s: out of memory listing images", dir);
                break;
            }
            g->n_cap = nc;
        }
        if (g->pool_n + len > g->pool_cap) {
            size_t nc = g->pool_cap ? g->pool_cap * 2 : 8192;
            while (nc < g->pool_n + len) nc *= 2;
            char *np = realloc(f->pool, nc);
            if (!np) {
                rc = loom_fail(LOOM_ENOMEM, "%s: out of memory listing images", dir);
                break;
            }
            f->pool = np;
            g->pool_cap = nc;
        }
        snprintf(f->pool + g->pool_n, len, "%s/%s", cls, imgs.v[i]);
        f->off[f->count] = g->pool_n;
        f->label[f->count] = k;
        f->count++;
        g->pool_n += len;
    }
    list_free(&imgs);
    free(dir);
    return rc;
}

/* Kaggle's archive unpacks to seg_train/seg_train/<class>: a folder whose only
 * entry is one folder that holds folders and no images is the wrapper. */
static int maybe_descend(folder_impl *f, strlist *classes) {
    if (classes->n != 1) return LOOM_OK;
    char *inner = join(f->root, classes->v[0]);
    if (!inner) return loom_fail(LOOM_ENOMEM, "%s: out of memory", f->root);
    strlist dirs = {0}, imgs = {0};
    int rc = scan(inner, &dirs, &imgs, NULL);
    if (rc == LOOM_OK && dirs.n > 0 && imgs.n == 0) {
        free(f->root);
        f->root = inner;
        inner = NULL;
        list_free(classes);
        *classes = dirs;
        memset(&dirs, 0, sizeof dirs);
    }
    free(inner);
    list_free(&dirs);
    list_free(&imgs);
    return rc;
}

/* A folder of splits: seg_train/seg_test (Kaggle's Intel layout, beside an
 * unlabelled seg_pred), or train/test. The split's folder into out, its name
 * into split; 0 if path is not such a folder, -1 on error. */
static int split_folder(const char *path, const char *want, char *out, size_t cap, char *split, size_t scap) {
    static const char *const layouts[][2] = {{"seg_train", "seg_test"}, {"train", "test"}};
    const char *sp = want && !strcmp(want, "t10k") ? "test" : want ? want : "train";
    if (strcmp(sp, "train") && strcmp(sp, "test"))
        return loom_fail(LOOM_EINVAL, "%s: unknown split \"%s\" (train or test)", path, sp);
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/') n--;
    for (int k = 0; k < 2; k++) {
        char tr[PATH_CAP], te[PATH_CAP];
        snprintf(tr, sizeof tr, "%.*s/%s", (int)n, path, layouts[k][0]);
        snprintf(te, sizeof te, "%.*s/%s", (int)n, path, layouts[k][1]);
        struct stat a, b;
        /* only as a pair: a lone seg_train is Kaggle's wrapper folder, a lone train may be a class */
        if (stat(tr, &a) != 0 || !S_ISDIR(a.st_mode) || stat(te, &b) != 0 || !S_ISDIR(b.st_mode)) continue;
        snprintf(out, cap, "%s", !strcmp(sp, "test") ? te : tr);
        snprintf(split, scap, "%s", sp);
        return 1;
    }
    return 0;
}

/* The channels and size asked for, and path a folder. LOOM_OK or LOOM_ERR. */
static int check_request(const char *path, int c, int h, int w) {
    if (c != 1 && c != 3)
        return loom_fail(LOOM_EINVAL, "%s: %d channels requested (an image folder gives 1 or 3)", path, c);
    if (h < 0 || w < 0 || (h == 0) != (w == 0))
        return loom_fail(LOOM_EINVAL, "%s: image size %dx%d requested: give both width and height, or neither to "
                                      "take the first image's",
                         path, w, h);
    struct stat st;
    if (stat(path, &st) != 0) return loom_fail(LOOM_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return loom_fail(LOOM_EFORMAT, "%s: not a folder (expected one sub-folder per class)", path);
    return LOOM_OK;
}

/* The class folders under f->root (descending into Kaggle's wrapper), each
 * class's images added to f. The class names into classes. */
static int find_classes(folder_impl *f, const char *path, strlist *classes) {
    strlist top_imgs = {0};
    size_t others = 0;
    growth g = {0};
    int rc = LOOM_ERR;
    if (scan(f->root, classes, &top_imgs, &others)) goto out;
    if (classes->n == 0) {
        if (top_imgs.n == 0 && others == 0)
            loom_fail(LOOM_EFORMAT, "%s: empty folder (expected PNG/JPEG images, or one sub-folder per class holding "
                           ".png/.jpg/.jpeg images)",
                           path);
        else
            loom_fail(LOOM_EFORMAT, "%s: no class folders: found %zu file%s here but an image set needs "
                           "one sub-folder per class",
                           path, top_imgs.n + others, top_imgs.n + others == 1 ? "" : "s");
        goto out;
    }
    if (top_imgs.n == 0 && maybe_descend(f, classes)) goto out;
    if (top_imgs.n)
        loom_warn("%s: %zu image%s beside the class folders (%s%s) belong to no class and are left out", path,
                  top_imgs.n, top_imgs.n == 1 ? "" : "s", top_imgs.v[0], top_imgs.n > 1 ? ", ..." : "");
    if (classes->n > INT32_MAX) {
        loom_fail(LOOM_EFORMAT, "%s: %zu class folders is too many", path, classes->n);
        goto out;
    }
    for (size_t k = 0; k < classes->n; k++)
        if (add_class(f, &g, classes->v[k], (int)k)) goto out;
    rc = LOOM_OK;
out:
    list_free(&top_imgs);
    return rc;
}

loom_dataset *loom_dataset_open_folder(const char *path, const loom_dataset_opts *o) {
    char inner[PATH_CAP], split[8] = "";
    int sf = split_folder(path, o ? o->split : NULL, inner, sizeof inner, split, sizeof split);
    if (sf < 0) return NULL;
    if (sf > 0) {
        loom_dataset_opts in = o ? *o : (loom_dataset_opts){0};
        in.split = NULL;
        loom_dataset *ds = loom_dataset_open_folder(inner, &in);
        if (ds) snprintf(ds->split, sizeof ds->split, "%s", split);
        return ds;
    }
    int c = o && o->channels ? o->channels : 3;
    int h = o ? o->height : 0, w = o ? o->width : 0;
    if (check_request(path, c, h, w)) return NULL;

    loom_dataset *ds = loom_dataset_alloc("folder", path, sizeof(folder_impl), folder_destroy);
    if (!ds) return NULL;
    folder_impl *f = ds->impl;
    strlist classes = {0};
    if (!(f->root = strdup(path))) {
        loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    /* "data/" and "data" name one folder; keep describe()'s paths clean. */
    for (size_t n = strlen(f->root); n > 1 && f->root[n - 1] == '/'; n--) f->root[n - 1] = 0;
    if (find_classes(f, path, &classes)) goto fail;

    {
        /* the first image tells what the data is: its own channels and size */
        char first[PATH_CAP];
        snprintf(first, sizeof first, "%s/%s", f->root, f->pool);
        loom_image img;
        if (loom_image_load(first, 0, &img)) goto fail;
        ds->native_c = img.c;
        ds->native_h = img.h;
        ds->native_w = img.w;
        loom_image_free(&img);
        if (h == 0) h = ds->native_h, w = ds->native_w;
    }
    if (w > LOOM_IMAGE_MAX_SIDE || h > LOOM_IMAGE_MAX_SIDE ||
        (size_t)w * (size_t)h * (size_t)c > LOOM_IMAGE_MAX_BYTES) {
        loom_fail(LOOM_EFORMAT, "%s: image size %dx%d with %d channels is over the limit", path, w, h, c);
        goto fail;
    }
    f->c = c;
    f->h = h;
    f->w = w;
    f->strict = (o && o->same_size) || !(o && o->height);
    f->nw = ds->native_w, f->nh = ds->native_h;

    if (loom_dataset_set_classes(ds, (int)classes.n, (const char *const *)classes.v)) goto fail;
    ds->count = f->count;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->labeled = 1;
    ds->get = folder_get;
    ds->label_of = folder_label;
    ds->describe = folder_describe;
    list_free(&classes);
    return ds;

fail:
    loom_dataset_free(ds);
    list_free(&classes);
    return NULL;
}

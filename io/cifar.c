/* CIFAR-10, binary version: each batch file is a run of 3073-byte records,
 * one label byte then a 32x32 image as three planes (R, G, B).
 *
 * Everything is read into memory at open (50000 images = 150 MB) rather than
 * mmapped: every label is validated at open, which touches every page anyway;
 * the planes are transposed to HWC once, so get() is a plain memcpy instead of
 * a strided gather every epoch; and a batch file rewritten or truncated while
 * training cannot turn into SIGBUS inside a loader thread. Allocation is sized
 * from the files' real sizes, each checked to be whole records first. */
#include "loom/dataset.h"

#include "loom/error.h"
#include "io/fs.h"

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum {
    CIFAR_SIDE = 32,
    CIFAR_PLANE = CIFAR_SIDE * CIFAR_SIDE,
    CIFAR_PIXELS = 3 * CIFAR_PLANE,
    CIFAR_RECORD = 1 + CIFAR_PIXELS,
    CIFAR_CLASSES = 10,
    CIFAR_MAX_BATCHES = 64, /* the set has 5; more is a different data set */
    CIFAR_READ_RECORDS = 256, /* records per fread while loading */
};

#define CIFAR_META "batches.meta.txt"
#define CIFAR_SUBDIR "cifar-10-batches-bin" /* what the official tarball unpacks to */

static const char *const default_names[CIFAR_CLASSES] = {
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"};

typedef struct {
    char *path;
    size_t first, count; /* its records are samples first .. first+count-1 */
} cifar_file;

typedef struct {
    uint8_t *pixels; /* count x 32 x 32 x 3, HWC */
    uint8_t *labels;
    cifar_file *files;
    int nfiles;
} cifar_impl;

static int32_t cifar_label(const loom_dataset *ds, size_t i) {
    const cifar_impl *im = ds->impl;
    return im->labels[i];
}

static int cifar_get(loom_dataset *ds, size_t i, uint8_t *hwc, int32_t *label) {
    const cifar_impl *im = ds->impl;
    if (i >= ds->count)
        return loom_fail(LOOM_EINVAL, "%s: sample %zu out of range (%zu samples)", ds->path, i, ds->count);
    memcpy(hwc, im->pixels + i * CIFAR_PIXELS, CIFAR_PIXELS);
    if (label) *label = im->labels[i];
    return LOOM_OK;
}

static void cifar_describe(const loom_dataset *ds, size_t i, char *buf, size_t cap) {
    const cifar_impl *im = ds->impl;
    for (int f = 0; f < im->nfiles; f++)
        if (i - im->files[f].first < im->files[f].count) {
            snprintf(buf, cap, "%s record %zu", im->files[f].path, i - im->files[f].first);
            return;
        }
    snprintf(buf, cap, "%s sample %zu", ds->path, i);
}

static void cifar_destroy(loom_dataset *ds) {
    cifar_impl *im = ds->impl;
    for (int i = 0; i < im->nfiles; i++) free(im->files[i].path);
    free(im->files);
    free(im->pixels);
    free(im->labels);
    free(im);
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir);
    const char *sep = n && dir[n - 1] == '/' ? "" : "/";
    size_t len = n + strlen(sep) + strlen(name) + 1;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s%s%s", dir, sep, name);
    return p;
}

static int add_file(cifar_impl *im, char *path) {
    if (!path) return loom_fail(LOOM_ENOMEM, "out of memory");
    cifar_file *nf = realloc(im->files, (size_t)(im->nfiles + 1) * sizeof *nf);
    if (!nf) {
        loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
        free(path);
        return LOOM_ERR;
    }
    im->files = nf;
    im->files[im->nfiles++] = (cifar_file){.path = path};
    return LOOM_OK;
}

/* n for a name "data_batch_<n>.bin" (n >= 1, no leading zeros), else 0;
 * *python says the name is the pickle version's "data_batch_<n>". */
static int batch_number(const char *name, int *python) {
    static const char pre[] = "data_batch_";
    if (strncmp(name, pre, sizeof pre - 1) != 0) return 0;
    const char *p = name + sizeof pre - 1;
    if (*p < '1' || *p > '9') return 0;
    int n = 0;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (n > CIFAR_MAX_BATCHES) return 0;
        n = n * 10 + (*p - '0');
    }
    if (*p == 0) *python = 1;
    return strcmp(p, ".bin") == 0 ? n : 0;
}

/* The training batches of dir, data_batch_1.bin upwards, with no gaps: a
 * missing middle batch usually means an interrupted download or unpack. */
static int find_train(cifar_impl *im, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return loom_fail(LOOM_EIO, "%s: cannot open: %s", dir, strerror(errno));
    unsigned char have[CIFAR_MAX_BATCHES + 1] = {0};
    int hi = 0, python = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        int n = batch_number(e->d_name, &python);
        if (n < 1 || n > CIFAR_MAX_BATCHES) continue;
        have[n] = 1;
        if (n > hi) hi = n;
    }
    closedir(d);
    if (!hi) {
        if (python)
            return loom_fail(LOOM_EUNSUPPORTED, "%s: found data_batch_N without .bin: that is the Python "
                                  "(pickle) version of CIFAR-10; loom reads the binary version "
                                  "(cifar-10-binary.tar.gz)",
                                  dir);
        return loom_fail(LOOM_EFORMAT, "%s: no data_batch_N.bin files (CIFAR-10 binary version)", dir);
    }
    for (int n = 1; n <= hi; n++) {
        if (!have[n])
            return loom_fail(LOOM_EFORMAT, "%s: data_batch_%d.bin is missing but data_batch_%d.bin is "
                                  "present (incomplete download?)",
                                  dir, n, hi);
        char name[32];
        snprintf(name, sizeof name, "data_batch_%d.bin", n);
        if (add_file(im, join(dir, name))) return LOOM_ERR;
    }
    return LOOM_OK;
}

static int find_files(cifar_impl *im, const char *path, const char *split, char **dir_out) {
    struct stat st;
    if (stat(path, &st) != 0) return loom_fail(LOOM_EIO, "%s: cannot open: %s", path, strerror(errno));
    if (!S_ISDIR(st.st_mode)) {
        if (!S_ISREG(st.st_mode)) return loom_fail(LOOM_EIO, "%s: not a file or a directory", path);
        const char *slash = strrchr(path, '/');
        *dir_out = slash ? strndup(path, (size_t)(slash - path + 1)) : strdup(".");
        if (!*dir_out) return loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
        return add_file(im, strdup(path));
    }
    int train = strcmp(split, "train") == 0;
    if (!train && strcmp(split, "test") != 0)
        return loom_fail(LOOM_EINVAL, "%s: unknown CIFAR split \"%s\" (expected train or test)", path,
                              split);
    /* Accept the folder that holds the unpacked tarball's folder, too. */
    char *dir = join(path, CIFAR_SUBDIR);
    if (!dir) return loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
    char *probe = join(path, train ? "data_batch_1.bin" : "test_batch.bin");
    if (!probe || loom_is_file(probe) || !loom_is_dir(dir)) {
        free(dir);
        dir = strdup(path);
    }
    free(probe);
    if (!dir) return loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
    *dir_out = dir;
    if (train) return find_train(im, dir);
    char *test = join(dir, "test_batch.bin");
    if (test && !loom_is_file(test)) {
        free(test);
        return loom_fail(LOOM_EFORMAT, "%s: no test_batch.bin (CIFAR-10 binary version)", dir);
    }
    return add_file(im, test);
}

/* Record counts from the files' sizes, before anything is allocated. */
static int size_files(cifar_impl *im, size_t *total) {
    *total = 0;
    for (int f = 0; f < im->nfiles; f++) {
        cifar_file *cf = &im->files[f];
        struct stat st;
        if (stat(cf->path, &st) != 0)
            return loom_fail(LOOM_EIO, "%s: cannot open: %s", cf->path, strerror(errno));
        if (!S_ISREG(st.st_mode)) return loom_fail(LOOM_EIO, "%s: not a regular file", cf->path);
        if (st.st_size == 0)
            return loom_fail(LOOM_EFORMAT, "%s: empty file (0 bytes; expected %d-byte records)", cf->path,
                                  CIFAR_RECORD);
        if (st.st_size % CIFAR_RECORD != 0)
            return loom_fail(LOOM_EFORMAT, "%s: size %lld bytes is not a multiple of %d (a CIFAR-10 "
                                  "record is 1 label byte + 3x32x32 pixel bytes): %lld whole "
                                  "records + %lld bytes",
                                  cf->path, (long long)st.st_size, CIFAR_RECORD,
                                  (long long)(st.st_size / CIFAR_RECORD),
                                  (long long)(st.st_size % CIFAR_RECORD));
        uint64_t n = (uint64_t)st.st_size / CIFAR_RECORD;
        if (n > (uint64_t)PTRDIFF_MAX / CIFAR_PIXELS - *total)
            return loom_fail(LOOM_EFORMAT, "%s: too many records to hold in memory", cf->path);
        cf->first = *total;
        cf->count = (size_t)n;
        *total += (size_t)n;
    }
    return LOOM_OK;
}

/* CHW planes to HWC pixels. */
static void to_hwc(const uint8_t *chw, uint8_t *hwc) {
    for (int p = 0; p < CIFAR_PLANE; p++) {
        hwc[3 * p + 0] = chw[p];
        hwc[3 * p + 1] = chw[CIFAR_PLANE + p];
        hwc[3 * p + 2] = chw[2 * CIFAR_PLANE + p];
    }
}

static int load_file(cifar_impl *im, const cifar_file *cf, uint8_t *chunk) {
    FILE *f = fopen(cf->path, "rb");
    if (!f) return loom_fail(LOOM_EIO, "%s: cannot open: %s", cf->path, strerror(errno));
    int rc = LOOM_OK;
    for (size_t r = 0; r < cf->count && rc == LOOM_OK;) {
        size_t want = cf->count - r < CIFAR_READ_RECORDS ? cf->count - r : CIFAR_READ_RECORDS;
        size_t got = fread(chunk, CIFAR_RECORD, want, f);
        if (got < want) {
            rc = ferror(f) ? loom_fail(LOOM_EIO, "%s: record %zu: read error: %s", cf->path, r + got,
                                            strerror(errno))
                           : loom_fail(LOOM_EFORMAT, "%s: record %zu: file shrank while being read",
                                            cf->path, r + got);
            break;
        }
        for (size_t k = 0; k < want; k++, r++) {
            const uint8_t *rec = chunk + k * CIFAR_RECORD;
            if (rec[0] >= CIFAR_CLASSES) {
                rc = loom_fail(LOOM_EFORMAT, "%s: record %zu (byte %zu): label %u is out of range 0..%d",
                                    cf->path, r, r * CIFAR_RECORD, rec[0], CIFAR_CLASSES - 1);
                break;
            }
            size_t i = cf->first + r;
            im->labels[i] = rec[0];
            to_hwc(rec + 1, im->pixels + i * CIFAR_PIXELS);
        }
    }
    fclose(f);
    return rc;
}

/* Class names from batches.meta.txt, one per line; blank lines ignored. */
static int read_meta(const char *path, char names[CIFAR_CLASSES][64]) {
    FILE *f = fopen(path, "rb");
    if (!f) return loom_fail(LOOM_EIO, "%s: cannot open: %s", path, strerror(errno));
    char line[256];
    int n = 0, lineno = 0, rc = LOOM_OK;
    while (rc == LOOM_OK && fgets(line, sizeof line, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = loom_fail(LOOM_EFORMAT, "%s line %d: longer than %zu bytes; expected one class name "
                                "per line",
                                path, lineno, sizeof line - 2);
            break;
        }
        char *b = line, *e = line + len;
        while (b < e && (*b == ' ' || *b == '\t')) b++;
        while (e > b && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t')) e--;
        if (b == e) continue;
        if (n == CIFAR_CLASSES) {
            rc = loom_fail(LOOM_EFORMAT, "%s line %d: more than %d class names", path, lineno,
                                CIFAR_CLASSES);
            break;
        }
        if (e - b >= 64) {
            rc = loom_fail(LOOM_EFORMAT, "%s line %d: class name longer than 63 bytes", path, lineno);
            break;
        }
        memcpy(names[n], b, (size_t)(e - b));
        names[n][e - b] = 0;
        n++;
    }
    if (rc == LOOM_OK && ferror(f)) rc = loom_fail(LOOM_EIO, "%s: read error", path);
    if (rc == LOOM_OK && n != CIFAR_CLASSES)
        rc = loom_fail(LOOM_EFORMAT, "%s: %d class names, expected %d (one per line)", path, n,
                            CIFAR_CLASSES);
    fclose(f);
    return rc;
}

loom_dataset *loom_dataset_open_cifar(const char *path, const loom_dataset_opts *o) {
    const char *split = o && o->split ? o->split : "train";
    loom_dataset *ds = loom_dataset_alloc("cifar10", path, sizeof(cifar_impl), cifar_destroy);
    if (!ds) return NULL;
    cifar_impl *im = ds->impl;
    char *dir = NULL, *meta = NULL;
    uint8_t *chunk = NULL;
    size_t total = 0;
    char names[CIFAR_CLASSES][64];
    const char *name_ptr[CIFAR_CLASSES];
    for (int k = 0; k < CIFAR_CLASSES; k++) name_ptr[k] = default_names[k];

    if (find_files(im, path, split, &dir) || size_files(im, &total)) goto fail;
    meta = join(dir, CIFAR_META);
    if (!meta) {
        loom_fail(LOOM_ENOMEM, "%s: out of memory", path);
        goto fail;
    }
    if (loom_is_file(meta)) {
        if (read_meta(meta, names)) goto fail;
        for (int k = 0; k < CIFAR_CLASSES; k++) name_ptr[k] = names[k];
    }
    im->pixels = malloc(total * CIFAR_PIXELS);
    im->labels = malloc(total);
    chunk = malloc((size_t)CIFAR_READ_RECORDS * CIFAR_RECORD);
    if (!im->pixels || !im->labels || !chunk) {
        loom_fail(LOOM_ENOMEM, "%s: out of memory for %zu images", path, total);
        goto fail;
    }
    for (int f = 0; f < im->nfiles; f++)
        if (load_file(im, &im->files[f], chunk)) goto fail;
    free(chunk);
    chunk = NULL;

    ds->count = total;
    ds->c = 3;
    ds->h = CIFAR_SIDE;
    ds->w = CIFAR_SIDE;
    ds->native_c = 3, ds->native_h = ds->native_w = CIFAR_SIDE;
    ds->labeled = 1;
    /* a folder with both splits says which this is */
    char *tr = join(dir, "data_batch_1.bin"), *te = join(dir, "test_batch.bin");
    if (loom_is_dir(path) && tr && te && loom_is_file(tr) && loom_is_file(te))
        snprintf(ds->split, sizeof ds->split, "%s", split);
    free(tr);
    free(te);
    ds->get = cifar_get;
    ds->label_of = cifar_label;
    ds->describe = cifar_describe;
    if (loom_dataset_set_classes(ds, CIFAR_CLASSES, name_ptr)) goto fail;
    free(dir);
    free(meta);
    return ds;

fail:
    loom_dataset_free(ds);
    free(chunk);
    free(dir);
    free(meta);
    return NULL;
}

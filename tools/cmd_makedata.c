/* loom make-folder: write an Intel-Image-Classification-style folder of
 * 150x150 RGB JPEGs (seg_train/seg_train/<class>/N.jpg and the same under
 * seg_test) from Fashion-MNIST or from synthetic scenes, for benchmarks and
 * tests. loom make-csv: write Kaggle Digit Recognizer train.csv / test.csv
 * files from IDX data. */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"

static const char *intel_classes[] = {"buildings", "forest", "glacier", "mountain", "sea", "street"};
static const char *fashion_classes[] = {"tshirt", "trouser", "pullover", "dress", "coat",
                                        "sandal", "shirt", "sneaker", "bag", "boot"};

/* A synthetic "scene" of class k: a class-specific colour palette, stripe
 * direction and frequency, plus per-image random phase, blobs and noise, so
 * that the classes are learnable but not trivially. */
static void synth(uint8_t *px, int S, int k, uint64_t key) {
    static const float base[6][3] = {{0.55f, 0.5f, 0.45f}, {0.2f, 0.5f, 0.2f}, {0.8f, 0.85f, 0.95f},
                                     {0.5f, 0.45f, 0.4f}, {0.15f, 0.35f, 0.7f}, {0.4f, 0.4f, 0.45f}};
    float ang = (float)(k * 0.52 + 0.6 * (loom_rng_uniform(key, 0) - 0.5));
    float freq = 0.04f + 0.025f * (float)k + 0.02f * loom_rng_uniform(key, 1);
    float phase = 6.28f * loom_rng_uniform(key, 2);
    float bx = S * loom_rng_uniform(key, 3), by = S * loom_rng_uniform(key, 4), br = S * (0.1f + 0.2f * loom_rng_uniform(key, 5));
    float ca = cosf(ang), sa = sinf(ang);
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            float t = 0.5f + 0.5f * sinf(freq * (ca * x + sa * y) + phase);
            float d = hypotf(x - bx, y - by) < br ? 0.25f : 0.0f;
            for (int ch = 0; ch < 3; ch++) {
                float v = base[k][ch] * (0.6f + 0.5f * t) + d - 0.1f * (float)ch * d;
                v += 0.12f * (loom_rng_uniform(key, 16 + ((uint64_t)y * S + x) * 3 + ch) - 0.5f);
                v = v < 0 ? 0 : v > 1 ? 1 : v;
                px[((size_t)y * S + x) * 3 + ch] = (uint8_t)(v * 255.0f + 0.5f);
            }
        }
}

/* A grey sw x sh image (Fashion-MNIST's 28x28, say) scaled to SxS and tinted per class. */
static void from_grey(uint8_t *px, int S, const uint8_t *src, int sw, int sh, int k) {
    for (int y = 0; y < S; y++)
        for (int x = 0; x < S; x++) {
            float sx = (x + 0.5f) * (float)sw / S - 0.5f, sy = (y + 0.5f) * (float)sh / S - 0.5f;
            int x0 = (int)floorf(sx), y0 = (int)floorf(sy);
            float fx = sx - x0, fy = sy - y0, v = 0;
            for (int dy = 0; dy < 2; dy++)
                for (int dx = 0; dx < 2; dx++) {
                    int xx = x0 + dx < 0 ? 0 : x0 + dx > sw - 1 ? sw - 1 : x0 + dx;
                    int yy = y0 + dy < 0 ? 0 : y0 + dy > sh - 1 ? sh - 1 : y0 + dy;
                    v += src[yy * sw + xx] * (dx ? fx : 1 - fx) * (dy ? fy : 1 - fy);
                }
            for (int ch = 0; ch < 3; ch++) {
                float tint = 0.75f + 0.25f * (float)(((k + ch) % 3) == 0);
                px[((size_t)y * S + x) * 3 + ch] = (uint8_t)(v * tint + 0.5f);
            }
        }
}

typedef struct {
    const char *out, *from;
    long per[2], S, quality, seed;
    int K;
    const char **names;
    loom_dataset *src[2];   /* IDX train and test splits; NULL for synthetic scenes */
    loom_image img;
    uint8_t *grey;          /* one source image */
    long written, short_min;
    int short_classes;
} folder_job;

static const cli_opt make_folder_options[] = {
    CLI_OPT("out", "DIR", "where to write (seg_train/seg_train/<class>/, seg_test/seg_test/<class>/)", NULL),
    CLI_OPT("from", "SRC", "synthetic (6 scene classes) or an IDX folder such as Fashion-MNIST", "synthetic"),
    CLI_OPT("train", "N", "training images per class", "100"),
    CLI_OPT("test", "N", "test images per class", "20"),
    CLI_OPT("size", "S", "image side in pixels", "150"),
    CLI_OPT("quality", "Q", "JPEG quality", "90"),
    CLI_OPT("seed", "N", "seed for synthetic images", "1"),
    CLI_END};

/* Options, and an --out that is new or empty: images of another run (another
 * size, another class set) must not end up mixed with these. */
static int folder_options(folder_job *j, cli_opt *o, int argc, char **argv) {
    int pr = cli_parse("make-folder", "--out DIR [options]", o, argc, argv, NULL, 0, NULL);
    if (pr) return pr > 0 ? -1 : EXIT_USAGE;
    j->per[0] = 100, j->per[1] = 20, j->S = 150, j->quality = 90, j->seed = 1;
    if (cli_int("make-folder", o, "train", 1, 1000000, &j->per[0]) ||
        cli_int("make-folder", o, "test", 1, 1000000, &j->per[1]) || cli_int("make-folder", o, "size", 8, 4096, &j->S) ||
        cli_int("make-folder", o, "quality", 1, 100, &j->quality) ||
        cli_int("make-folder", o, "seed", 0, 0x7fffffffL, &j->seed))
        return EXIT_USAGE;
    j->out = cli_get(o, "out"), j->from = cli_get(o, "from");
    if (!j->out) {
        fprintf(stderr, "loom make-folder: --out DIR is required\n");
        return EXIT_USAGE;
    }
    DIR *existing = opendir(j->out);
    int entries = 0;
    for (struct dirent *e; existing && (e = readdir(existing)) != NULL;)
        entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (existing) closedir(existing);
    if (entries) {
        fprintf(stderr, "loom make-folder: --out %s exists and is not empty: writing into it would mix these images "
                        "with what it holds (choose a new folder, or remove it first)\n",
                j->out);
        return EXIT_USAGE;
    }
    return 0;
}

/* The sources: synthetic scenes, or both splits of a grey IDX set. */
static int folder_sources(folder_job *j) {
    int synthetic = !strcmp(j->from, "synthetic");
    j->K = synthetic ? 6 : 10;
    j->names = synthetic ? intel_classes : fashion_classes;
    j->img = (loom_image){.w = (int)j->S, .h = (int)j->S, .c = 3, .data = malloc((size_t)j->S * j->S * 3)};
    if (!j->img.data) return fprintf(stderr, "loom make-folder: out of memory\n"), EXIT_FAILED;
    for (int s = 0; !synthetic && s < 2; s++)
        if (!(j->src[s] = loom_dataset_open_idx(j->from, &(loom_dataset_opts){.split = s ? "test" : "train"}))) {
            fprintf(stderr, "loom make-folder: %s\n", loom_error());
            return EXIT_FAILED;
        }
    if (synthetic) return 0;
    if (j->src[0]->c != 1 || j->src[1]->c != 1 || j->src[0]->h != j->src[1]->h || j->src[0]->w != j->src[1]->w) {
        fprintf(stderr, "loom make-folder: --from %s: grey IDX images of one size are expected\n", j->from);
        return EXIT_FAILED;
    }
    if (!(j->grey = malloc((size_t)j->src[0]->h * j->src[0]->w)))
        return fprintf(stderr, "loom make-folder: out of memory\n"), EXIT_FAILED;
    return 0;
}

/* The images of class k in one split. */
static int write_class(folder_job *j, int split, int k) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s/%s", j->out, split ? "seg_test/seg_test" : "seg_train/seg_train", j->names[k]);
    if (loom_mkdirs(dir)) {
        fprintf(stderr, "loom make-folder: cannot create %s: %s\n", dir, strerror(errno));
        return EXIT_FAILED;
    }
    loom_dataset *src = j->src[split];
    size_t cursor = 0; /* the next IDX sample to look at */
    for (long i = 0; i < j->per[split]; i++) {
        if (!src) {
            synth(j->img.data, (int)j->S, k, loom_rng_key((uint64_t)j->seed, (uint64_t)split, (uint64_t)k, (uint64_t)i));
        } else {
            int32_t lab = -1;
            while (cursor < src->count) {
                if (loom_dataset_get(src, cursor++, j->grey, &lab) == LOOM_OK && lab == k) break;
                lab = -1;
            }
            if (lab != k) { /* this class has no more images */
                j->short_classes++;
                if (i < j->short_min) j->short_min = i;
                return 0;
            }
            from_grey(j->img.data, (int)j->S, j->grey, src->w, src->h, k);
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/%ld.jpg", dir, i);
        if (loom_image_save_jpeg(path, &j->img, (int)j->quality)) {
            fprintf(stderr, "loom make-folder: %s\n", loom_error());
            return EXIT_FAILED;
        }
        j->written++;
    }
    return 0;
}

int cmd_make_folder(int argc, char **argv) {
    cli_opt o[sizeof make_folder_options / sizeof *make_folder_options];
    memcpy(o, make_folder_options, sizeof o);
    folder_job j = {.short_min = LONG_MAX};
    int rc = folder_options(&j, o, argc, argv);
    if (!rc) rc = folder_sources(&j);
    for (int split = 0; !rc && split < 2; split++)
        for (int k = 0; !rc && k < j.K; k++) rc = write_class(&j, split, k);
    if (!rc) {
        printf("wrote %ld %ldx%ld JPEGs in %d classes to %s (seg_train, seg_test)\n", j.written, j.S, j.S, j.K, j.out);
        if (j.short_classes)
            printf("note: %s has fewer images than asked for: %d class folder%s got only what there was (as few as "
                   "%ld)\n",
                   j.from, j.short_classes, plural(j.short_classes), j.short_min);
    }
    free(j.img.data);
    free(j.grey);
    loom_dataset_free(j.src[0]);
    loom_dataset_free(j.src[1]);
    return rc < 0 ? EXIT_DONE : rc;
}

typedef struct {
    loom_dataset *ds;
    size_t n, px;
    int labeled;     /* train.csv: the label is the first column */
    int32_t *labels; /* the n labels, filled as the rows are written */
} csv_job;

/* train.csv or test.csv: the header, then one row per image. */
static int csv_rows(FILE *f, void *ctx) {
    csv_job *j = ctx;
    uint8_t *buf = malloc(j->px);
    if (!buf) return loom_set_error("%s: out of memory", j->ds->path);
    if (j->labeled) fputs("label,", f);
    for (size_t k = 0; k < j->px; k++) fprintf(f, "pixel%zu%c", k, k + 1 < j->px ? ',' : '\n');
    for (size_t i = 0; i < j->n; i++) {
        if (loom_dataset_get(j->ds, i, buf, &j->labels[i])) {
            free(buf);
            return LOOM_ERR;
        }
        if (j->labeled) fprintf(f, "%d,", j->labels[i]);
        for (size_t k = 0; k < j->px; k++) fprintf(f, "%u%c", buf[k], k + 1 < j->px ? ',' : '\n');
    }
    free(buf);
    return LOOM_OK;
}

/* test_labels.csv: the true labels of test.csv, in the submission's form. */
static int csv_labels(FILE *f, void *ctx) {
    const csv_job *j = ctx;
    fputs("ImageId,Label\n", f);
    for (size_t i = 0; i < j->n; i++) fprintf(f, "%zu,%d\n", i + 1, j->labels[i]);
    return LOOM_OK;
}

/* Kaggle Digit Recognizer files from IDX data: train.csv (label,pixel0..) and
 * test.csv (pixel0.., no label) plus the true test labels for scoring. */
int cmd_make_csv(int argc, char **argv) {
    cli_opt o[] = {CLI_OPT("from", "DIR", "IDX folder (MNIST or Fashion-MNIST)", "/usr/share/datasets/fashion-mnist"),
                   CLI_OPT("out", "DIR", "where to write train.csv, test.csv, test_labels.csv", NULL),
                   CLI_OPT("train", "N", "rows of train.csv (0 = all)", "0"),
                   CLI_OPT("test", "N", "rows of test.csv (0 = all)", "0"),
                   CLI_END};
    int pr = cli_parse("make-csv", "--out DIR [options]", o, argc, argv, NULL, 0, NULL);
    if (pr) return pr > 0 ? 0 : 2;
    long lim[2] = {0, 0};
    if (cli_int("make-csv", o, "train", 0, 10000000, &lim[0]) || cli_int("make-csv", o, "test", 0, 10000000, &lim[1]))
        return 2;
    const char *out = cli_get(o, "out");
    if (!out) {
        fprintf(stderr, "loom make-csv: --out DIR is required\n");
        return 2;
    }
    static const char *const made[] = {"train.csv", "test.csv", "test_labels.csv"};
    for (int i = 0; i < 3; i++) {
        char p[4200];
        snprintf(p, sizeof p, "%s/%s", out, made[i]);
        if (access(p, F_OK) == 0) {
            fprintf(stderr, "loom make-csv: %s exists: choose a new --out, or remove it first\n", p);
            return 2;
        }
    }
    if (loom_mkdirs(out)) {
        fprintf(stderr, "loom make-csv: cannot create %s: %s\n", out, strerror(errno));
        return 1;
    }
    int rc = 0;
    for (int s = 0; s < 2 && !rc; s++) {
        loom_dataset *ds = loom_dataset_open_idx(cli_get(o, "from"), &(loom_dataset_opts){.split = s ? "test" : "train"});
        if (!ds) {
            fprintf(stderr, "loom make-csv: %s\n", loom_error());
            return 1;
        }
        size_t n = lim[s] && (size_t)lim[s] < ds->count ? (size_t)lim[s] : ds->count;
        if (lim[s] && (size_t)lim[s] > ds->count)
            printf("note: --%s %ld: %s has %zu rows, all written\n", s ? "test" : "train", lim[s], cli_get(o, "from"),
                   ds->count);
        csv_job j = {.ds = ds, .n = n, .px = (size_t)ds->c * ds->h * ds->w, .labeled = !s,
                     .labels = malloc((n + 1) * sizeof(int32_t))};
        char path[4096], lpath[4096];
        snprintf(path, sizeof path, "%s/%s.csv", out, s ? "test" : "train");
        snprintf(lpath, sizeof lpath, "%s/test_labels.csv", out);
        int bad = j.labels ? loom_atomic_write(path, csv_rows, &j) : loom_set_error("%s: out of memory", ds->path);
        if (!bad && s) bad = loom_atomic_write(lpath, csv_labels, &j);
        if (bad) {
            fprintf(stderr, "loom make-csv: %s\n", loom_error());
            rc = 1;
        } else {
            printf("wrote %s (%zu rows)%s%s\n", path, n, s ? " and " : "", s ? lpath : "");
        }
        free(j.labels);
        loom_dataset_free(ds);
    }
    return rc;
}

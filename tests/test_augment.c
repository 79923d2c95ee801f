/* Augmentation: resize and rotate against Pillow (tests/data/augment_fixtures.txt,
 * from tools/gen_augment_fixtures.py); flips, translation, brightness,
 * contrast and normalization against their definitions; chains against the
 * building blocks with the documented counters; determinism, probabilities,
 * and the error messages of the spec parser.
 *
 * Tolerances against Pillow. Resize uses Pillow's own fixed-point scheme
 * (22-bit weights, uint8 between the passes), so it must match exactly.
 * Rotate blends in float (coordinates in 32.32 fixed point, 24-bit weights)
 * where Pillow uses doubles, and both truncate the blend to an integer. Where
 * the exact value is an integer, Pillow's double rounding noise can land just
 * below it (a sample at y = 7.999999999999992 for a 45-degree turn gives
 * 229.99999 for a flat 230) and truncate one level lower; near such points the
 * two may differ by 1. Observed: at most 1 level, in under 0.7% of the values
 * (mean |diff| < 0.01); the bounds are max 1 level and at most 1% of values. */
#include <stdint.h>
#include <stdlib.h>

#include "check.h"
#include "util.h"
#include "loom/augment.h"
#include "loom/error.h"
#include "kernels/rng.h"

/* ---- fixtures ----------------------------------------------------------- */

typedef struct {
    char name[16];
    int w, h, c;
    uint8_t *px;
} image;

static image images[4];
static int nimages;

static uint8_t *read_hex(FILE *f, size_t n) {
    uint8_t *p = malloc(n);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (fscanf(f, "%2x", &v) != 1) {
            free(p);
            return NULL;
        }
        p[i] = (uint8_t)v;
    }
    return p;
}

static const image *find(const char *name) {
    for (int i = 0; i < nimages; i++)
        if (!strcmp(images[i].name, name)) return &images[i];
    return NULL;
}

typedef struct {
    int max, ndiff;
    double mean;
} diff;

static diff compare(const uint8_t *a, const uint8_t *b, size_t n) {
    diff d = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        int e = abs((int)a[i] - (int)b[i]);
        if (e > d.max) d.max = e;
        d.ndiff += e != 0;
        d.mean += e;
    }
    d.mean /= (double)n;
    return d;
}

static void test_pillow(void) {
    const char *path = t_data_path("augment_fixtures.txt");
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f) return;
    char line[256], kind[16], name[16];
    int resizes = 0, rotations = 0, resize_worst = 0, rotate_worst = 0;
    double rotate_frac = 0;
    while (fscanf(f, " %15s", kind) == 1) {
        if (kind[0] == '#') {
            if (!fgets(line, sizeof line, f)) break;
            continue;
        }
        if (!strcmp(kind, "image")) {
            image *im = &images[nimages];
            CHECK(nimages < 4 && fscanf(f, "%15s %d %d %d", im->name, &im->w, &im->h, &im->c) == 4, "image header");
            im->px = read_hex(f, (size_t)im->w * im->h * im->c);
            CHECK(im->px != NULL, "image %s pixels", im->name);
            nimages++;
        } else if (!strcmp(kind, "resize")) {
            int w, h;
            CHECK(fscanf(f, "%15s %d %d", name, &w, &h) == 3, "resize header");
            const image *im = find(name);
            CHECK(im != NULL, "resize of unknown image %s", name);
            if (!im) break;
            size_t n = (size_t)w * h * im->c;
            uint8_t *want = read_hex(f, n), *got = malloc(n);
            uint8_t *scratch = malloc(loom_augment_resize_scratch(im->w, im->h, im->c, w, h));
            int rc = loom_augment_resize(im->px, im->w, im->h, im->c, got, w, h, scratch);
            CHECK(rc == LOOM_OK && want, "resize %s to %dx%d: %s", name, w, h, loom_error());
            diff d = compare(got, want, n);
            CHECK(d.max == 0, "resize %s %dx%d -> %dx%d differs from Pillow: max %d, %d of %zu values",
                  name, im->w, im->h, w, h, d.max, d.ndiff, n);
            printf("resize %-4s %2dx%-2d -> %2dx%-2d vs Pillow: max diff %d, %d of %4zu values differ\n", name,
                   im->w, im->h, w, h, d.max, d.ndiff, n);
            if (d.max > resize_worst) resize_worst = d.max;
            resizes++;
            free(want), free(got), free(scratch);
        } else if (!strcmp(kind, "rotate")) {
            double deg;
            int fill;
            CHECK(fscanf(f, "%15s %lf %d", name, &deg, &fill) == 3, "rotate header");
            const image *im = find(name);
            CHECK(im != NULL, "rotation of unknown image %s", name);
            if (!im) break;
            size_t n = (size_t)im->w * im->h * im->c;
            uint8_t *want = read_hex(f, n), *got = malloc(n);
            int rc = loom_augment_rotate(im->px, im->w, im->h, im->c, got, deg, (uint8_t)fill);
            CHECK(rc == LOOM_OK && want, "rotate %s: %s", name, loom_error());
            diff d = compare(got, want, n);
            double frac = (double)d.ndiff / (double)n;
            CHECK(d.max <= 1 && frac <= 0.01,
                  "rotate %s by %g differs from Pillow: max %d, %d of %zu values (mean %.3f)", name, deg,
                  d.max, d.ndiff, n, d.mean);
            printf("rotate %-4s by %6.1f vs Pillow: max diff %d, %d of %4zu values differ (mean %.4f)\n", name,
                   deg, d.max, d.ndiff, n, d.mean);
            if (d.max > rotate_worst) rotate_worst = d.max;
            if (frac > rotate_frac) rotate_frac = frac;
            rotations++;
            free(want), free(got);
        } else {
            CHECK(0, "unknown fixture record '%s'", kind);
            break;
        }
    }
    fclose(f);
    CHECK(nimages == 2 && resizes >= 10 && rotations >= 10, "fixture counts %d %d %d", nimages, resizes,
          rotations);
    printf("Pillow fixtures: %d resizes (worst diff %d), %d rotations (worst diff %d, worst %.2f%% of values)\n",
           resizes, resize_worst, rotations, rotate_worst, 100 * rotate_frac);
}

/* ---- deterministic test images ------------------------------------------- */

static uint8_t *pattern(int w, int h, int c, unsigned seed) {
    uint8_t *p = malloc((size_t)w * h * c);
    unsigned long long s = 0x9E3779B97F4A7C15ull * (seed + 1);
    for (size_t i = 0; i < (size_t)w * h * c; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (uint8_t)(s >> 56);
    }
    return p;
}

#define PX(img, w, c, x, y, ch) (img)[((size_t)(y) * (w) + (x)) * (c) + (ch)]

/* ---- geometric building blocks ---------------------------------------------- */

static void test_flips(void) {
    int bad = 0;
    for (int c = 1; c <= 4; c++)
        for (int w = 1; w <= 6; w++)
            for (int h = 1; h <= 5; h++) {
                uint8_t *src = pattern(w, h, c, (unsigned)(c * 100 + w * 10 + h));
                size_t n = (size_t)w * h * c;
                uint8_t *a = malloc(n), *b = malloc(n);
                loom_augment_flip_h(src, w, h, c, a);
                memcpy(b, src, n);
                loom_augment_flip_h(b, w, h, c, b); /* in place */
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        for (int ch = 0; ch < c; ch++) {
                            uint8_t want = PX(src, w, c, w - 1 - x, y, ch);
                            bad += PX(a, w, c, x, y, ch) != want || PX(b, w, c, x, y, ch) != want;
                        }
                loom_augment_flip_v(src, w, h, c, a);
                memcpy(b, src, n);
                loom_augment_flip_v(b, w, h, c, b);
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        for (int ch = 0; ch < c; ch++) {
                            uint8_t want = PX(src, w, c, x, h - 1 - y, ch);
                            bad += PX(a, w, c, x, y, ch) != want || PX(b, w, c, x, y, ch) != want;
                        }
                free(src), free(a), free(b);
            }
    CHECK(bad == 0, "%d flipped values differ from index arithmetic", bad);
}

static void test_rotate_exact(void) {
    /* multiples of 90 degrees on a square image are pure permutations */
    int w = 7, c = 3, bad = 0;
    uint8_t *src = pattern(w, w, c, 7), *o = malloc((size_t)w * w * c);
    int angles[] = {0, 90, 180, 270, -90, 360, 450};
    for (int k = 0; k < 7; k++) {
        CHECK(loom_augment_rotate(src, w, w, c, o, angles[k], 9) == LOOM_OK, "rotate");
        int q = ((angles[k] / 90) % 4 + 4) % 4;
        for (int y = 0; y < w; y++)
            for (int x = 0; x < w; x++) {
                /* counter-clockwise: out(x, y) = in(w-1-y, x) for 90 degrees */
                int sx = q == 0 ? x : q == 1 ? w - 1 - y : q == 2 ? w - 1 - x : y;
                int sy = q == 0 ? y : q == 1 ? x : q == 2 ? w - 1 - y : w - 1 - x;
                for (int ch = 0; ch < c; ch++) bad += PX(o, w, c, x, y, ch) != PX(src, w, c, sx, sy, ch);
            }
    }
    CHECK(bad == 0, "%d values of right-angle rotations are not exact permutations", bad);
    /* a constant image stays constant inside, fill outside; corners of a
     * 45-degree turn are uncovered */
    memset(src, 123, (size_t)w * w * c);
    loom_augment_rotate(src, w, w, c, o, 45, 9);
    int other = 0;
    for (size_t i = 0; i < (size_t)w * w * c; i++) other += o[i] != 123 && o[i] != 9;
    CHECK(other == 0 && PX(o, w, c, 0, 0, 0) == 9 && PX(o, w, c, 3, 3, 1) == 123,
          "constant image rotated: %d values neither image nor fill", other);
    free(src), free(o);
}

static void test_rotate_channels(void) {
    /* each channel is rotated on its own: the vector paths for 2, 3 and 4
     * channels (and their guards at the image's last byte) must give exactly
     * what the scalar 1-channel path gives for every plane */
    int sizes[][2] = {{1, 1}, {2, 2}, {1, 9}, {9, 1}, {13, 8}, {31, 32}};
    double angles[] = {7, -33, 45, 90, 181, -290};
    int bad = 0;
    for (int c = 2; c <= 4; c++)
        for (int k = 0; k < 6; k++)
            for (int j = 0; j < 6; j++) {
                int w = sizes[k][0], h = sizes[k][1];
                size_t n = (size_t)w * h;
                uint8_t *src = pattern(w, h, c, (unsigned)(k + 10 * c)), *o = malloc(n * c);
                uint8_t *plane = malloc(n), *po = malloc(n);
                loom_augment_rotate(src, w, h, c, o, angles[j], 66);
                for (int ch = 0; ch < c; ch++) {
                    for (size_t i = 0; i < n; i++) plane[i] = src[i * c + ch];
                    loom_augment_rotate(plane, w, h, 1, po, angles[j], 66);
                    for (size_t i = 0; i < n; i++) bad += po[i] != o[i * c + ch];
                }
                free(src), free(o), free(plane), free(po);
            }
    CHECK(bad == 0, "%d values of multi-channel rotations differ from per-plane rotations", bad);
}

static void test_translate(void) {
    int w = 9, h = 6, bad = 0;
    for (int c = 1; c <= 4; c += 3) {
        uint8_t *src = pattern(w, h, c, 3), *o = malloc((size_t)w * h * c);
        for (int dy = -7; dy <= 7; dy++)
            for (int dx = -10; dx <= 10; dx++) {
                loom_augment_translate(src, w, h, c, o, dx, dy, 42);
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                        for (int ch = 0; ch < c; ch++) {
                            int sx = x - dx, sy = y - dy;
                            int want = sx < 0 || sy < 0 || sx >= w || sy >= h ? 42 : PX(src, w, c, sx, sy, ch);
                            bad += PX(o, w, c, x, y, ch) != want;
                        }
            }
        free(src), free(o);
    }
    CHECK(bad == 0, "%d translated values are not a shifted copy with fill", bad);
}

static void test_resize_properties(void) {
    /* constant images stay constant and same-size is a copy, for odd ratios too */
    int sizes[][4] = {{1, 1, 5, 3}, {7, 5, 1, 1}, {150, 150, 64, 64}, {13, 11, 40, 3}, {3, 40, 3, 41}, {6, 6, 6, 6}};
    int bad = 0;
    for (int k = 0; k < 6; k++) {
        int sw = sizes[k][0], sh = sizes[k][1], dw = sizes[k][2], dh = sizes[k][3], c = 2;
        uint8_t *src = malloc((size_t)sw * sh * c), *o = malloc((size_t)dw * dh * c);
        uint8_t *scratch = malloc(loom_augment_resize_scratch(sw, sh, c, dw, dh) + 1);
        memset(src, 201, (size_t)sw * sh * c);
        /* an odd scratch address: the tables inside must still be aligned */
        CHECK(loom_augment_resize(src, sw, sh, c, o, dw, dh, scratch + 1) == LOOM_OK, "resize");
        for (size_t i = 0; i < (size_t)dw * dh * c; i++) bad += o[i] != 201;
        free(src), free(o), free(scratch);
    }
    CHECK(bad == 0, "%d values of resized constant images changed", bad);
    uint8_t *src = pattern(5, 4, 3, 1), o[60];
    loom_augment_resize(src, 5, 4, 3, o, 5, 4, NULL);
    CHECK(!memcmp(src, o, 60), "same-size resize is not a copy");
    free(src);
    CHECK(loom_augment_resize(o, 0, 4, 3, o, 5, 4, NULL) == LOOM_ERR && strstr(loom_error(), "0x4x3"),
          "bad size named: %s", loom_error());
}

/* ---- the fused conversion --------------------------------------------------- */

/* The definitions, in double: brightness, then contrast with the mean of
 * torchvision's gray image, then normalization. */
static double reference(const uint8_t *img, int w, int h, int c, int x, int y, int ch, double bf, double cf,
                        const float *mean, const float *std) {
    int ncol = c >= 3 ? 3 : 1;
    static const double gw[3] = {0.2989, 0.587, 0.114};
    double m = 0;
    for (int i = 0; i < w * h; i++)
        for (int k = 0; k < ncol; k++) m += (ncol == 3 ? gw[k] : 1.0) * fmin(255.0, img[i * c + k] * bf);
    m /= w * h;
    double v = PX(img, w, c, x, y, ch);
    if (ch < ncol) {
        v = fmin(255.0, v * bf);
        v = fmin(255.0, fmax(0.0, m + cf * (v - m)));
    }
    v /= 255.0;
    return mean ? (v - mean[ch]) / std[ch] : v;
}

static void test_to_float(void) {
    int w = 11, h = 7;
    const float mean[4] = {0.485f, 0.456f, 0.406f, 0.5f}, std[4] = {0.229f, 0.224f, 0.225f, 0.25f};
    double worst = 0;
    for (int c = 1; c <= 4; c++) {
        uint8_t *img = pattern(w, h, c, (unsigned)c);
        float *o = malloc(sizeof(float) * w * h * c);
        double factors[][2] = {{1, 1}, {1.3, 1}, {0.6, 1}, {1, 1.5}, {1, 0.4}, {1.4, 0.7}, {0.8, 1.6}, {3, 2}, {0, 1}};
        for (int k = 0; k < 9; k++)
            for (int norm = 0; norm < 2; norm++) {
                double bf = factors[k][0], cf = factors[k][1];
                CHECK(loom_augment_to_float(img, w, h, c, o, (float)bf, (float)cf, norm ? mean : NULL,
                                            norm ? std : NULL) == LOOM_OK, "to_float: %s", loom_error());
                for (int ch = 0; ch < c; ch++)
                    for (int y = 0; y < h; y++)
                        for (int x = 0; x < w; x++) {
                            double want = reference(img, w, h, c, x, y, ch, (float)bf, (float)cf,
                                                    norm ? mean : NULL, norm ? std : NULL);
                            double e = fabs(o[((size_t)ch * h + y) * w + x] - want);
                            if (e > worst) worst = e;
                        }
            }
        free(img), free(o);
    }
    /* float against double through at most a few roundings of values <= 4.5 */
    CHECK(worst < 2e-5, "conversion differs from its formula by %g", worst);
    printf("brightness/contrast/normalize vs their formulas: worst abs diff %.2e\n", worst);
    /* the plain conversion is exactly x / 255 */
    uint8_t v[256];
    float o[256];
    for (int i = 0; i < 256; i++) v[i] = (uint8_t)i;
    loom_augment_to_float(v, 16, 16, 1, o, 1, 1, NULL, NULL);
    int bad = 0;
    for (int i = 0; i < 256; i++) bad += o[i] != (float)i / 255.0f;
    CHECK(bad == 0, "%d values of x/255 not exact", bad);
    float s0 = 0;
    CHECK(loom_augment_to_float(v, 16, 16, 1, o, 1, 1, mean, &s0) == LOOM_ERR && strstr(loom_error(), "std"),
          "std 0 refused: %s", loom_error());
}

/* ---- chains ---------------------------------------------------------------- */

/* Apply with exactly the scratch the chain asks for (ASan sees any overrun). */
static int apply(const loom_augment *a, const uint8_t *src, int sw, int sh, int c, float *dst, int dw, int dh,
                 uint64_t key) {
    size_t n = loom_augment_scratch(a, sw, sh, c, dw, dh);
    uint8_t *s = malloc(n ? n : 1);
    int rc = loom_augment_apply(a, src, sw, sh, c, dst, dw, dh, key, s);
    free(s);
    return rc;
}

static loom_augment *parse(const char *spec) {
    loom_augment *a = loom_augment_parse(spec);
    CHECK(a != NULL, "parse \"%s\": %s", spec, loom_error());
    return a;
}

static int same(const float *a, const float *b, size_t n) { return !memcmp(a, b, n * sizeof(float)); }

static void test_chain_matches_blocks(void) {
    int w = 20, h = 14, c = 3;
    size_t n = (size_t)w * h * c;
    uint8_t *src = pattern(w, h, c, 11), *t1 = malloc(n), *t2 = malloc(n);
    float *got = malloc(n * sizeof(float)), *want = malloc(n * sizeof(float));
    int bad = 0;

    /* NULL chain: x / 255; and a resize first when sizes differ */
    CHECK(apply(NULL, src, w, h, c, got, w, h, 1) == LOOM_OK, "NULL chain");
    loom_augment_to_float(src, w, h, c, want, 1, 1, NULL, NULL);
    CHECK(same(got, want, n), "NULL chain is not x/255");
    {
        int dw = 9, dh = 23;
        size_t m = (size_t)dw * dh * c;
        uint8_t *r = malloc(m), *rs = malloc(loom_augment_resize_scratch(w, h, c, dw, dh));
        float *g = malloc(m * sizeof(float)), *e = malloc(m * sizeof(float));
        loom_augment_resize(src, w, h, c, r, dw, dh, rs);
        loom_augment_to_float(r, dw, dh, c, e, 1, 1, NULL, NULL);
        CHECK(apply(NULL, src, w, h, c, g, dw, dh, 1) == LOOM_OK && same(g, e, m), "NULL chain with resize");
        loom_augment *a = parse("flip-h@1,rotate=20@1");
        loom_augment_flip_h(r, dw, dh, c, r);
        uint8_t *r2 = malloc(m);
        loom_augment_rotate(r, dw, dh, c, r2, 20.0 * (2.0 * loom_rng_uniform(5, 8 + 1) - 1.0), 0);
        loom_augment_to_float(r2, dw, dh, c, e, 1, 1, NULL, NULL);
        CHECK(apply(a, src, w, h, c, g, dw, dh, 5) == LOOM_OK && same(g, e, m),
              "resize, flip, rotate chain differs from the building blocks");
        loom_augment_free(a);
        free(r), free(r2), free(rs), free(g), free(e);
    }

    /* each item against its building block, with the documented counters:
     * item i decides at counter 8i and draws its parameters at 8i+1, 8i+2 */
    loom_augment *a = parse("flip-v@1, flip-h@1, rotate=30/17, crop=5/3, brightness=0.4, contrast=0.5, "
                            "normalize=0.4:0.5:0.6/0.2:0.3:0.25");
    const float mean[3] = {0.4f, 0.5f, 0.6f}, std[3] = {0.2f, 0.3f, 0.25f};
    for (uint64_t key = 100; key < 140; key++) {
        loom_augment_flip_v(src, w, h, c, t1);
        loom_augment_flip_h(t1, w, h, c, t1);
        double deg = 30.0 * (2.0 * loom_rng_uniform(key, 17) - 1.0);
        loom_augment_rotate(t1, w, h, c, t2, deg, 17);
        int dx = 5 - (int)loom_rng_below(key, 25, 11), dy = 5 - (int)loom_rng_below(key, 26, 11);
        loom_augment_translate(t2, w, h, c, t1, dx, dy, 3);
        /* factors uniform in [1 - s, 1 + s], computed as lo + u * (hi - lo) in float */
        float bs = 0.4f, cs = 0.5f;
        float bf = (1.0f - bs) + loom_rng_uniform(key, 33) * ((1.0f + bs) - (1.0f - bs));
        float cf = (1.0f - cs) + loom_rng_uniform(key, 41) * ((1.0f + cs) - (1.0f - cs));
        loom_augment_to_float(t1, w, h, c, want, bf, cf, mean, std);
        CHECK(apply(a, src, w, h, c, got, w, h, key) == LOOM_OK, "apply: %s", loom_error());
        bad += !same(got, want, n);
    }
    CHECK(bad == 0, "%d of 40 chain outputs differ from the building blocks", bad);
    loom_augment_free(a);

    /* a crop reading a mirrored view (no rotation in between) */
    a = parse("flip-h@1,flip-v@1,crop=3/7");
    bad = 0;
    for (uint64_t key = 0; key < 30; key++) {
        loom_augment_flip_h(src, w, h, c, t2);
        loom_augment_flip_v(t2, w, h, c, t2);
        int dx = 3 - (int)loom_rng_below(key, 17, 7), dy = 3 - (int)loom_rng_below(key, 18, 7);
        loom_augment_translate(t2, w, h, c, t1, dx, dy, 7);
        loom_augment_to_float(t1, w, h, c, want, 1, 1, NULL, NULL);
        apply(a, src, w, h, c, got, w, h, key);
        bad += !same(got, want, n);
    }
    CHECK(bad == 0, "%d of 30 flip+crop outputs differ from the building blocks", bad);
    loom_augment_free(a);

    /* colour items run in spec order: contrast first, then brightness */
    a = parse("contrast=0.5,brightness=0.4");
    double worst = 0;
    for (uint64_t key = 0; key < 10; key++) {
        float cf = 0.5f + loom_rng_uniform(key, 1) * (1.5f - 0.5f);
        float bf = 0.6f + loom_rng_uniform(key, 9) * ((1.0f + 0.4f) - 0.6f);
        apply(a, src, w, h, c, got, w, h, key);
        double m = 0;
        for (int i = 0; i < w * h; i++) m += 0.2989 * src[3 * i] + 0.587 * src[3 * i + 1] + 0.114 * src[3 * i + 2];
        m /= w * h;
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < w * h; i++) {
                double v = fmin(255, fmax(0, m + cf * (src[3 * i + ch] - m)));
                v = fmin(255, v * bf) / 255;
                worst = fmax(worst, fabs(got[(size_t)ch * w * h + i] - v));
            }
    }
    CHECK(worst < 2e-5, "contrast then brightness differs from the formula by %g", worst);
    loom_augment_free(a);

    /* the same chain built from C */
    loom_augment *p = parse("flip-h,rotate=15@0.7,crop=4,brightness=0.2@0.9,contrast=0.3,normalize=0.5/0.25");
    loom_augment *q = loom_augment_new();
    float half = 0.5f, quarter = 0.25f;
    CHECK(!loom_augment_add_flip_h(q, 0.5f) && !loom_augment_add_rotate(q, 15, 0, 0.7f) &&
              !loom_augment_add_crop(q, 4, 0, 1) && !loom_augment_add_brightness(q, 0.2f, 0.9f) &&
              !loom_augment_add_contrast(q, 0.3f, 1) && !loom_augment_set_normalize(q, 1, &half, &quarter),
          "building a chain from C: %s", loom_error());
    CHECK(loom_augment_count(p) == 5 && loom_augment_count(q) == 5, "counts %d %d", loom_augment_count(p),
          loom_augment_count(q));
    bad = 0;
    for (uint64_t key = 0; key < 20; key++) {
        apply(p, src, w, h, c, got, w, h, key);
        apply(q, src, w, h, c, want, w, h, key);
        bad += !same(got, want, n);
    }
    CHECK(bad == 0, "parsed and C-built chains differ on %d keys", bad);
    loom_augment_free(p);
    loom_augment_free(q);
    free(src), free(t1), free(t2), free(got), free(want);
}

static void test_crop_is_shift(void) {
    /* random crop with padding P: every output is the source shifted by some
     * (dx, dy) in [-P, P]^2 with fill, and over many keys every shift occurs */
    int w = 8, h = 6, c = 1, P = 2;
    size_t n = (size_t)w * h;
    uint8_t *src = pattern(w, h, c, 5), *t = malloc(n);
    float *got = malloc(n * sizeof(float)), *want = malloc(n * sizeof(float));
    loom_augment *a = parse("crop=2/250");
    int seen[5][5] = {{0}}, unmatched = 0;
    for (uint64_t key = 0; key < 500; key++) {
        apply(a, src, w, h, c, got, w, h, key);
        int found = 0;
        for (int dy = -P; dy <= P && !found; dy++)
            for (int dx = -P; dx <= P && !found; dx++) {
                loom_augment_translate(src, w, h, c, t, dx, dy, 250);
                loom_augment_to_float(t, w, h, c, want, 1, 1, NULL, NULL);
                if (same(got, want, n)) found = 1, seen[dy + P][dx + P]++;
            }
        unmatched += !found;
    }
    int missing = 0;
    for (int i = 0; i < 25; i++) missing += seen[i / 5][i % 5] == 0;
    CHECK(unmatched == 0 && missing == 0, "crop: %d outputs are not shifted copies, %d shifts never drawn",
          unmatched, missing);
    loom_augment_free(a);
    free(src), free(t), free(got), free(want);
}

static void test_determinism(void) {
    int w = 32, h = 24, c = 3;
    size_t n = (size_t)w * h * c;
    uint8_t *src = pattern(w, h, c, 9);
    float *a0 = malloc(n * sizeof(float)), *a1 = malloc(n * sizeof(float));
    loom_augment *a = parse("flip-h,rotate=15,brightness=0.2,contrast=0.2,crop=3,flip-v");
    int differ = 0, unstable = 0;
    for (uint64_t k = 0; k < 50; k++) {
        uint64_t key = loom_rng_key(42, LOOM_RNG_AUGMENT, 0, k);
        apply(a, src, w, h, c, a0, w, h, key);
        apply(a, src, w, h, c, a1, w, h, key);
        unstable += !same(a0, a1, n);
        apply(a, src, w, h, c, a1, w, h, key ^ 1);
        differ += !same(a0, a1, n);
    }
    CHECK(unstable == 0, "%d keys gave different outputs on a second call", unstable);
    CHECK(differ == 50, "only %d of 50 neighbouring key pairs gave different images", differ);
    loom_augment_free(a);
    free(src), free(a0), free(a1);
}

static void test_probability(void) {
    /* a flip is visible on an asymmetric image; over 2000 keys the number
     * applied is Binomial(2000, p): sd = sqrt(2000 p (1-p)) ~ 22 for p = 0.5,
     * and the bounds are 4.5 sd */
    int w = 5, h = 3;
    uint8_t *src = pattern(w, h, 1, 2);
    float plain[15], o[15];
    loom_augment_to_float(src, w, h, 1, plain, 1, 1, NULL, NULL);
    const char *specs[] = {"flip-h@0.5", "flip-v", "flip-h@0.2", "flip-h@0", "flip-h@1"};
    double ps[] = {0.5, 0.5, 0.2, 0, 1};
    for (int s = 0; s < 5; s++) {
        loom_augment *a = parse(specs[s]);
        int applied = 0;
        for (uint64_t k = 0; k < 2000; k++) {
            apply(a, src, w, h, 1, o, w, h, loom_rng_key(7, LOOM_RNG_AUGMENT, 1, k));
            applied += !same(o, plain, 15);
        }
        double mu = 2000 * ps[s], sd = sqrt(2000 * ps[s] * (1 - ps[s]));
        CHECK(fabs(applied - mu) <= 4.5 * sd, "%s applied %d of 2000 times (expected %.0f +- %.0f)", specs[s],
              applied, mu, 4.5 * sd);
        printf("%-10s applied %4d of 2000 times (expected %4.0f +- %.0f)\n", specs[s], applied, mu, 4.5 * sd);
        loom_augment_free(a);
    }
    free(src);
}

static void test_parse_errors(void) {
    struct {
        const char *spec, *must1, *must2;
    } bad[] = {
        {"rotat=15", "item 1", "unknown transform 'rotat'"},
        {"flip-h,rotate=abc", "item 2", "'abc' is not a number"},
        {"flip-h, brightness=-1", "item 2", "outside"},
        {"crop=2.5", "crop=2.5", "not an integer"},
        {"flip-h=3", "flip-h=3", "no value"},
        {"rotate=15@1.5", "rotate=15@1.5", "probability"},
        {"rotate", "item 1", "needs a value"},
        {"normalize=0.5", "normalize=0.5", "MEAN/STD"},
        {"normalize=0.5/0", "normalize=0.5/0", "std"},
        {"normalize=0.5:0.4/0.2", "item 1", "2 means but 1 stds"},
        {"normalize=0.5/0.2,normalize=0.5/0.2", "item 2", "twice"},
        {"normalize=0.5/0.2@0.5", "item 1", "always"},
        {"flip-h,,rotate=3", "item 2", "empty"},
        {"flip-h,", "item 2", "empty"},
        {"rotate=400", "item 1", "outside 0..360"},
        {"rotate=10/256", "item 1", "fill 256"},
        {"brightness=nan", "item 1", "not a number"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        loom_clear_error();
        loom_augment *a = loom_augment_parse(bad[i].spec);
        const char *e = loom_error();
        CHECK(a == NULL && strstr(e, bad[i].must1) && strstr(e, bad[i].must2),
              "spec \"%s\": want an error naming '%s' and '%s', got \"%s\"", bad[i].spec, bad[i].must1,
              bad[i].must2, e);
        loom_augment_free(a);
    }
    printf("parse error example: %s\n", (loom_augment_parse("flip-h,rotat=15"), loom_error()));
    loom_augment *a = parse(" ");
    CHECK(a && loom_augment_count(a) == 0, "blank spec is an empty chain");
    loom_augment_free(a);
    a = parse(" flip-h , rotate = 15 / 9 @ 0.5, normalize = 0.5 : 0.4 : 0.3 / 0.2 : 0.2 : 0.2 ");
    CHECK(a && loom_augment_count(a) == 2, "spaces around separators are allowed");
    loom_augment_free(a);
    /* a per-channel normalize must fit the image */
    a = parse("normalize=0.1:0.2:0.3/1:1:1");
    uint8_t px[4] = {1, 2, 3, 4};
    float o[4];
    CHECK(apply(a, px, 2, 2, 1, o, 2, 2, 0) == LOOM_ERR && strstr(loom_error(), "3 values"),
          "channel mismatch: %s", loom_error());
    loom_augment_free(a);
}

int main(void) {
    test_pillow();
    test_flips();
    test_rotate_exact();
    test_rotate_channels();
    test_translate();
    test_resize_properties();
    test_to_float();
    test_chain_matches_blocks();
    test_crop_is_shift();
    test_determinism();
    test_probability();
    test_parse_errors();
    for (int i = 0; i < nimages; i++) free(images[i].px);
    TEST_END();
}

/* The text form of a chain, e.g. "flip-h,rotate=15@0.5,crop=4/0,normalize=0.5/0.25".
 * Errors quote the whole item and say what is wrong with it, since a spec
 * usually arrives from a command line. */
#include "chain.h"
#include "kernels/parse.h"
#include "loom/error.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *known = "flip-h, flip-v, rotate, crop, brightness, contrast, normalize";

typedef struct {
    int index;     /* 1-based, for messages */
    const char *item;
} ctx;

static int fail(const ctx *x, const char *why) {
    return loom_fail(LOOM_EINVAL, "augment spec item %d '%s': %s", x->index, x->item, why);
}

/* A finite number that is the whole of s (kernels/parse.h: plain decimal only). */
static int number(const ctx *x, const char *what, const char *s, double lo, double hi, double *out) {
    char why[512];
    double d;
    if (loom_parse_double(s, -HUGE_VAL, HUGE_VAL, &d)) {
        snprintf(why, sizeof why, "%s '%.200s' is not a number", what, s);
        return fail(x, why);
    }
    if (d < lo || d > hi) {
        snprintf(why, sizeof why, "%s %.200s is outside %g..%g", what, s, lo, hi);
        return fail(x, why);
    }
    *out = d;
    return LOOM_OK;
}

static int integer(const ctx *x, const char *what, const char *s, long lo, long hi, long *out) {
    char why[512];
    long v;
    if (loom_parse_long(s, -0x7fffffffL, 0x7fffffffL, &v)) {
        snprintf(why, sizeof why, "%s '%.200s' is not an integer", what, s);
        return fail(x, why);
    }
    if (v < lo || v > hi) {
        snprintf(why, sizeof why, "%s %.200s is outside %ld..%ld", what, s, lo, hi);
        return fail(x, why);
    }
    *out = v;
    return LOOM_OK;
}

/* Split "a/b" in place: returns b (or NULL if there is no '/'). */
static char *split(char *s, char sep) {
    char *p = strchr(s, sep);
    if (!p) return NULL;
    *p = 0;
    return p + 1;
}

/* Spaces around '=', '@' and '/' are allowed: "rotate = 15 @ 0.5". */
static char *trim(char *s) {
    if (!s) return NULL;
    while (isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1])) s[--n] = 0;
    return s;
}

/* Up to 4 ':'-separated numbers. */
static int values(const ctx *x, const char *what, char *s, double lo, double hi, float *out, int *n) {
    *n = 0;
    for (char *next; s; s = next) {
        next = split(s, ':');
        s = trim(s);
        if (*n == 4) return fail(x, "at most 4 values (one per channel)");
        double d = 0;
        if (number(x, what, s, lo, hi, &d)) return LOOM_ERR;
        out[(*n)++] = (float)d;
    }
    return LOOM_OK;
}

static int parse_item(loom_augment *a, const ctx *x, char *s) {
    char *prob = trim(split(s, '@'));
    char *arg = trim(split(s, '='));
    s = trim(s);
    double p = -1, v;
    if (prob && number(x, "probability", prob, 0, 1, &p)) return LOOM_ERR;

    int flip_h = !strcmp(s, "flip-h"), flip_v = !strcmp(s, "flip-v");
    if (flip_h || flip_v) {
        if (arg) return fail(x, "a flip takes no value (use @P for its probability)");
        float pf = p < 0 ? 0.5f : (float)p;
        return flip_h ? loom_augment_add_flip_h(a, pf) : loom_augment_add_flip_v(a, pf);
    }
    int known_name = !strcmp(s, "rotate") || !strcmp(s, "crop") || !strcmp(s, "brightness") ||
                     !strcmp(s, "contrast") || !strcmp(s, "normalize");
    if (!known_name) {
        char why[512];
        snprintf(why, sizeof why, "unknown transform '%.200s' (known: %s)", s, known);
        return fail(x, why);
    }
    if (!arg || !*arg) {
        char why[512];
        snprintf(why, sizeof why, "%s needs a value, e.g. %s", s,
                 !strcmp(s, "rotate") ? "rotate=15" : !strcmp(s, "crop") ? "crop=4"
                 : !strcmp(s, "normalize") ? "normalize=0.5/0.25" : "brightness=0.2");
        return fail(x, why);
    }
    float pf = p < 0 ? 1.0f : (float)p;
    if (!strcmp(s, "rotate") || !strcmp(s, "crop")) {
        char *fill_s = trim(split(arg, '/'));
        arg = trim(arg);
        long fill = 0, pad;
        if (fill_s && integer(x, "fill", fill_s, 0, 255, &fill)) return LOOM_ERR;
        if (!strcmp(s, "rotate"))
            return number(x, "angle", arg, 0, 360, &v) ? LOOM_ERR
                   : loom_augment_add_rotate(a, (float)v, (uint8_t)fill, pf);
        return integer(x, "padding", arg, 0, 65535, &pad) ? LOOM_ERR
               : loom_augment_add_crop(a, (int)pad, (uint8_t)fill, pf);
    }
    if (!strcmp(s, "brightness") || !strcmp(s, "contrast")) {
        if (number(x, s, arg, 0, 1e6, &v)) return LOOM_ERR;
        return !strcmp(s, "brightness") ? loom_augment_add_brightness(a, (float)v, pf)
                                        : loom_augment_add_contrast(a, (float)v, pf);
    }
    /* normalize */
    if (prob) return fail(x, "normalize always applies (no @P)");
    if (a->norm_n) return fail(x, "normalize given twice");
    char *std_s = trim(split(arg, '/'));
    arg = trim(arg);
    if (!std_s) return fail(x, "normalize needs MEAN/STD, e.g. normalize=0.5/0.25");
    float mean[4], std[4];
    int nm, ns;
    if (values(x, "mean", arg, -1e6, 1e6, mean, &nm) || values(x, "std", std_s, 1e-12, 1e6, std, &ns))
        return LOOM_ERR;
    if (nm != ns) {
        char why[512];
        snprintf(why, sizeof why, "%d means but %d stds", nm, ns);
        return fail(x, why);
    }
    return loom_augment_set_normalize(a, nm, mean, std);
}

loom_augment *loom_augment_parse(const char *spec) {
    if (!spec) {
        loom_fail(LOOM_EINVAL, "loom_augment_parse: spec is NULL");
        return NULL;
    }
    loom_augment *a = loom_augment_new();
    if (!a) {
        loom_fail(LOOM_ENOMEM, "loom_augment_parse: out of memory");
        return NULL;
    }
    const char *s = spec;
    while (isspace((unsigned char)*s)) s++;
    for (int index = 1; *s; index++) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        char item[256];
        /* trim, so "flip-h, rotate=15" reads as meant */
        while (len && isspace((unsigned char)s[len - 1])) len--;
        if (len >= sizeof item) {
            loom_fail(LOOM_EINVAL, "augment spec item %d '%.40s...': too long", index, s);
            goto fail;
        }
        memcpy(item, s, len);
        item[len] = 0;
        if (!len) {
            loom_fail(LOOM_EINVAL, "augment spec \"%s\": item %d is empty", spec, index);
            goto fail;
        }
        char work[256];
        memcpy(work, item, len + 1);
        ctx x = {index, item};
        int before = a->n, had_norm = a->norm_n;
        if (parse_item(a, &x, work)) {
            /* errors from loom_augment_add_* do not name the item yet */
            if (!strstr(loom_error(), "augment spec item")) fail(&x, loom_error());
            goto fail;
        }
        /* the same transform twice is a slip (flip-h twice would undo itself half the time) */
        for (int i = 0; a->n > before && i < before; i++)
            if (a->items[i].kind == a->items[a->n - 1].kind) {
                fail(&x, "repeats an earlier item of the same kind");
                goto fail;
            }
        if (had_norm && a->norm_n && !strncmp(item, "normalize", 9)) {
            fail(&x, "normalize is given twice");
            goto fail;
        }
        if (!end) break;
        s = end + 1;
        while (isspace((unsigned char)*s)) s++;
        if (!*s) {
            loom_fail(LOOM_EINVAL, "augment spec \"%s\": item %d is empty (trailing comma)", spec, index + 1);
            goto fail;
        }
    }
    return a;
fail:
    loom_augment_free(a);
    return NULL;
}

int loom_augment_check(const loom_augment *a, int w, int h, int c) {
    if (!a) return LOOM_OK;
    for (int i = 0; i < a->n; i++)
        if (a->items[i].kind == AUG_CROP && (2 * a->items[i].pad >= w || 2 * a->items[i].pad >= h))
            return loom_fail(LOOM_EINVAL, "augment crop=%d: shifts of up to %d pixels leave little of %dx%d images (keep it "
                                  "under half the side)",
                                  a->items[i].pad, a->items[i].pad, h, w);
    if (a->norm_n > 1 && a->norm_n != c)
        return loom_fail(LOOM_EINVAL, "augment normalize gives %d means, the images have %d channel%s", a->norm_n, c,
                              c == 1 ? "" : "s");
    return LOOM_OK;
}

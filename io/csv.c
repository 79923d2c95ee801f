/* Kaggle "Digit Recognizer" CSV reader: a header (label,pixel0,... for the
 * training file, pixel0,... for the unlabeled test file) and one image per
 * row. The whole file is parsed once at open into one uint8 array, so get()
 * is a memcpy and safe from any thread.
 *
 * The text is read in chunks and parsed by hand: 42000 rows of 785 cells is
 * 33 million numbers, and per-cell strtok/sscanf would take seconds. Nothing
 * is sized from a claim: the chunk buffer grows only to the longest line
 * actually present, and the pixel array doubles as rows actually arrive. */
#include "loom/dataset.h"

#include "loom/error.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CSV_CHUNK ((size_t)1 << 20)
#define CSV_FIRST_ROWS 1024
#define CSV_CLASSES 10

/* Far above any limit we check against, and far below overflow, so a
 * saturated value is still "out of range" but never wraps. */
#define CELL_SATURATED 1000000u

typedef struct {
    uint8_t *pixels;   /* count rows of npix bytes */
    uint8_t *labels;   /* count labels, NULL when the file has no label column */
    size_t npix;
    size_t first_line; /* line number of row 0 (rows are contiguous lines) */
} csv_impl;

/* Lines from a FILE through one growing buffer; a line may span refills. */
typedef struct {
    const char *path;
    FILE *f;
    char *buf;
    size_t cap, beg, end;
    size_t scanned; /* bytes after beg already known to hold no '\n' */
    int eof;
} line_reader;

/* 1 and the next line in *s, length *n (no '\n'; *nl says whether one ended it),
 * 0 at end of file, LOOM_ERR on a read error. */
static int next_line(line_reader *r, char **s, size_t *n, int *nl) {
    /* The buffer exists before any pointer arithmetic on it (NULL + 0 is
     * undefined behaviour, and clang's UBSan stops on it). */
    if (!r->buf) {
        if (!(r->buf = malloc(CSV_CHUNK))) return loom_fail(LOOM_ENOMEM, "%s: out of memory", r->path);
        r->cap = CSV_CHUNK;
    }
    for (;;) {
        char *p = r->buf + r->beg;
        size_t avail = r->end - r->beg;
        char *q = avail > r->scanned ? memchr(p + r->scanned, '\n', avail - r->scanned) : NULL;
        if (q) {
            *s = p;
            *n = (size_t)(q - p);
            *nl = 1;
            r->beg += *n + 1;
            r->scanned = 0;
            return 1;
        }
        r->scanned = avail;
        if (r->eof) {
            if (!avail) return 0;
            *s = p;
            *n = avail;
            *nl = 0;
            r->beg = r->end;
            r->scanned = 0;
            return 1;
        }
        if (r->beg > 0) {
            memmove(r->buf, p, avail);
            r->beg = 0;
            r->end = avail;
        }
        if (r->end == r->cap) {
            size_t ncap = r->cap ? r->cap * 2 : CSV_CHUNK;
            char *nb = ncap > r->cap ? realloc(r->buf, ncap) : NULL;
            if (!nb)
                return loom_fail(LOOM_ENOMEM, "%s: out of memory for a %zu-byte line", r->path, r->cap);
            r->buf = nb;
            r->cap = ncap;
        }
        size_t got = fread(r->buf + r->end, 1, r->cap - r->end, r->f);
        r->end += got;
        if (got == 0) {
            if (ferror(r->f)) return loom_fail(LOOM_EIO, "%s: read error: %s", r->path, strerror(errno));
            r->eof = 1;
        }
    }
}

/* A cell's text for a message: at most 24 bytes, unprintables as '?'. */
static const char *show(char *buf, size_t cap, const char *b, const char *e) {
    size_t n = (size_t)(e - b), k = 0, lim = 24;
    for (size_t i = 0; i < n && i < lim && k + 1 < cap; i++)
        buf[k++] = (b[i] >= 0x20 && b[i] < 0x7f) ? b[i] : '?';
    if (n > lim)
        for (int i = 0; i < 3 && k + 1 < cap; i++) buf[k++] = '.';
    buf[k] = 0;
    return buf;
}

static int is_space(char c) { return c == ' ' || c == '\t'; }

static int is_blank(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!is_space(s[i]) && s[i] != '\r') return 0;
    return 1;
}

enum { CELL_OK, CELL_EMPTY, CELL_NOT_NUMBER };

/* The lenient path for a cell that is not plain digits: surrounding blanks,
 * a sign, and a fraction of zeros ("12.0", as pandas writes float columns)
 * are accepted; a negative number is a number, left for the range check. */
static int cell_slow(const char *b, const char *e, unsigned *v) {
    while (b < e && is_space(*b)) b++;
    while (e > b && is_space(e[-1])) e--;
    if (b == e) return CELL_EMPTY;
    int neg = 0;
    if (*b == '+' || *b == '-') neg = *b++ == '-';
    unsigned x = 0;
    int digits = 0;
    for (; b < e && (unsigned)(*b - '0') < 10; b++, digits++)
        if (x < CELL_SATURATED) x = x * 10 + (unsigned)(*b - '0');
    if (b < e && *b == '.')
        for (b++; b < e && *b == '0'; b++) {
        }
    if (!digits || b != e) return CELL_NOT_NUMBER;
    *v = neg && x ? CELL_SATURATED : x;
    return CELL_OK;
}

typedef struct {
    const char *path;
    size_t npix;
    int labeled;
} csv_shape;

static void column_name(const csv_shape *c, size_t k, char *buf, size_t cap) {
    if (c->labeled && k == 0)
        snprintf(buf, cap, "label");
    else
        snprintf(buf, cap, "pixel%zu", k - (size_t)c->labeled);
}

/* The wrong-cell-count message, or LOOM_OK when the count is right: a
 * missing or extra column shifts every later cell, so it is the better
 * explanation of any error found in the row. */
static int check_count(const csv_shape *c, const char *s, size_t n, int nl, size_t line) {
    size_t cells = 1, want = c->npix + (size_t)c->labeled;
    for (const char *p = s, *e = s + n; (p = memchr(p, ',', (size_t)(e - p))) != NULL; p++)
        cells++;
    if (cells == want) return LOOM_OK;
    const char *why = cells > want ? "extra column?"
                      : nl         ? "missing column?"
                                   : "missing column? the file ends mid-row: truncated?";
    return loom_fail(LOOM_EFORMAT, "%s line %zu: %zu cells, expected %zu (%s)", c->path, line, cells, want,
                          why);
}

/* One data row into px (npix bytes) and *lab. */
static int parse_row(const csv_shape *c, const char *s, size_t n, int nl, size_t line, uint8_t *px,
                     uint8_t *lab) {
    const char *p = s, *e = s + n;
    size_t ncols = c->npix + (size_t)c->labeled;
    for (size_t k = 0; k < ncols; k++) {
        if (k) {
            if (p == e) return check_count(c, s, n, nl, line);
            p++; /* the ',' that ended the previous cell */
        }
        const char *b = p;
        unsigned v = 0;
        /* Fast path: plain digits ended by ',' or the end of the line. */
        while (p < e && (unsigned)(*p - '0') < 10) {
            if (v < CELL_SATURATED) v = v * 10 + (unsigned)(*p - '0');
            p++;
        }
        if (p == b || (p < e && *p != ',')) {
            while (p < e && *p != ',') p++;
            int rc = cell_slow(b, p, &v);
            if (rc != CELL_OK) {
                if (check_count(c, s, n, nl, line)) return LOOM_ERR;
                char name[32], txt[32];
                column_name(c, k, name, sizeof name);
                if (rc == CELL_EMPTY)
                    return loom_fail(LOOM_EFORMAT, "%s line %zu: column %zu (%s) is empty", c->path, line,
                                          k + 1, name);
                return loom_fail(LOOM_EFORMAT, "%s line %zu: column %zu (%s): '%s' is not a whole number",
                                      c->path, line, k + 1, name, show(txt, sizeof txt, b, p));
            }
        }
        unsigned max = c->labeled && k == 0 ? CSV_CLASSES - 1 : 255;
        if (v > max) {
            if (check_count(c, s, n, nl, line)) return LOOM_ERR;
            char name[32], txt[32];
            column_name(c, k, name, sizeof name);
            return loom_fail(LOOM_EFORMAT, "%s line %zu: %s%s%s is out of range 0..%u", c->path, line,
                                  name, c->labeled && k == 0 ? " " : " = ",
                                  show(txt, sizeof txt, b, p), max);
        }
        if (c->labeled && k == 0)
            *lab = (uint8_t)v;
        else
            px[k - (size_t)c->labeled] = (uint8_t)v;
    }
    if (p != e) return check_count(c, s, n, nl, line);
    return LOOM_OK;
}

/* Strip blanks and the double quotes some exporters put around names. */
static void trim_name(const char **b, const char **e) {
    while (*b < *e && is_space(**b)) (*b)++;
    while (*e > *b && is_space((*e)[-1])) (*e)--;
    if (*e - *b >= 2 && **b == '"' && (*e)[-1] == '"') {
        (*b)++;
        (*e)--;
    }
}

static int parse_header(csv_shape *c, const char *s, size_t n) {
    const char *e = s + n;
    if (n >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) s += 3; /* a UTF-8 byte-order mark */
    if (s < e && (unsigned)(*s - '0') < 10) {
        char txt[32];
        return loom_fail(LOOM_EFORMAT, "%s line 1: no header: expected 'label,pixel0,pixel1,...' or "
                              "'pixel0,pixel1,...', found '%s'",
                              c->path, show(txt, sizeof txt, s, e));
    }
    c->labeled = 0;
    size_t k = 0;
    for (const char *p = s;; k++) {
        const char *q = memchr(p, ',', (size_t)(e - p));
        const char *b = p, *ce = q ? q : e;
        trim_name(&b, &ce);
        size_t len = (size_t)(ce - b);
        char want[32], txt[32];
        int is_label = len == 5 && memcmp(b, "label", 5) == 0;
        if (k == 0 && is_label) {
            c->labeled = 1;
        } else {
            if (is_label)
                return loom_fail(LOOM_EFORMAT, "%s line 1: column %zu is 'label'; the label must be the "
                                      "first column",
                                      c->path, k + 1);
            int wl = snprintf(want, sizeof want, "pixel%zu", k - (size_t)c->labeled);
            if (len != (size_t)wl || memcmp(b, want, len) != 0) {
                if (len == 0)
                    return loom_fail(LOOM_EFORMAT, "%s line 1: column %zu has an empty name, expected '%s'",
                                          c->path, k + 1, want);
                if (memchr(b, '\r', len))
                    return loom_fail(LOOM_EFORMAT, "%s line 1: column %zu: a carriage return inside the "
                                          "line (old Mac line endings? use \\n or \\r\\n)",
                                          c->path, k + 1);
                return loom_fail(LOOM_EFORMAT, "%s line 1: column %zu is named '%s', expected '%s'",
                                      c->path, k + 1, show(txt, sizeof txt, b, ce), want);
            }
        }
        if (!q) break;
        p = q + 1;
    }
    c->npix = k + 1 - (size_t)c->labeled;
    if (c->npix == 0)
        return loom_fail(LOOM_EFORMAT, "%s line 1: no pixel columns (expected label,pixel0,pixel1,...)",
                              c->path);
    return LOOM_OK;
}

/* Side of a square image of npix pixels, or 0. */
static size_t square_side(size_t npix) {
    size_t s = 1;
    while (s * s < npix) s++; /* at most a few thousand steps, once per open */
    return s * s == npix ? s : 0;
}

static int32_t csv_label(const loom_dataset *ds, size_t i) {
    const csv_impl *im = ds->impl;
    return im->labels ? im->labels[i] : -1;
}

static int csv_get(loom_dataset *ds, size_t i, uint8_t *hwc, int32_t *label) {
    const csv_impl *im = ds->impl;
    if (i >= ds->count)
        return loom_fail(LOOM_EINVAL, "%s: sample %zu out of range (%zu samples)", ds->path, i, ds->count);
    /* One channel: the row-major row already is HWC. */
    memcpy(hwc, im->pixels + i * im->npix, im->npix);
    if (label) *label = im->labels ? im->labels[i] : -1;
    return LOOM_OK;
}

static void csv_describe(const loom_dataset *ds, size_t i, char *buf, size_t cap) {
    const csv_impl *im = ds->impl;
    snprintf(buf, cap, "%s line %zu", ds->path, im->first_line + i);
}

static void csv_destroy(loom_dataset *ds) {
    csv_impl *im = ds->impl;
    free(im->pixels);
    free(im->labels);
    free(im);
}

/* Make room for row `rows` (0-based), doubling. */
static int grow_rows(const csv_shape *c, csv_impl *im, size_t rows, size_t *cap) {
    if (rows < *cap) return LOOM_OK;
    size_t ncap = *cap ? *cap * 2 : CSV_FIRST_ROWS;
    if (ncap > (size_t)PTRDIFF_MAX / c->npix)
        return loom_fail(LOOM_EFORMAT, "%s: too many rows to hold in memory", c->path);
    uint8_t *px = realloc(im->pixels, ncap * c->npix);
    if (!px) return loom_fail(LOOM_ENOMEM, "%s: out of memory for %zu rows", c->path, ncap);
    im->pixels = px;
    if (c->labeled) {
        uint8_t *lb = realloc(im->labels, ncap);
        if (!lb) return loom_fail(LOOM_ENOMEM, "%s: out of memory for %zu rows", c->path, ncap);
        im->labels = lb;
    }
    *cap = ncap;
    return LOOM_OK;
}

static int read_all(line_reader *r, csv_shape *c, csv_impl *im, size_t *count) {
    char *s;
    size_t n, line = 0;
    int nl, got;
    /* The header: the first line, unless the whole file is blank. */
    while ((got = next_line(r, &s, &n, &nl)) == 1) {
        line++;
        if (!is_blank(s, n)) break;
    }
    if (got < 0) return LOOM_ERR;
    if (got == 0)
        return loom_fail(LOOM_EFORMAT, "%s: empty file (expected a header: label,pixel0,pixel1,...)",
                              c->path);
    if (line != 1)
        return loom_fail(LOOM_EFORMAT, "%s line 1: blank line; the header must be the first line",
                              c->path);
    if (n && s[n - 1] == '\r') n--;
    if (parse_header(c, s, n)) return LOOM_ERR;
    if (!square_side(c->npix))
        return loom_fail(LOOM_EFORMAT, "%s line 1: %zu pixel columns do not make a square image "
                              "(784 = 28 x 28 is the usual)",
                              c->path, c->npix);
    im->npix = c->npix;
    im->first_line = 2;

    size_t rows = 0, cap = 0, blank_at = 0;
    while ((got = next_line(r, &s, &n, &nl)) == 1) {
        line++;
        if (n && s[n - 1] == '\r') n--;
        if (is_blank(s, n)) {
            if (!blank_at) blank_at = line;
            continue;
        }
        if (blank_at)
            return loom_fail(LOOM_EFORMAT, "%s line %zu: blank line inside the data (line %zu has "
                                  "another row); blank lines are allowed only at the end",
                                  c->path, blank_at, line);
        if (grow_rows(c, im, rows, &cap)) return LOOM_ERR;
        uint8_t lab = 0;
        if (parse_row(c, s, n, nl, line, im->pixels + rows * c->npix, &lab)) return LOOM_ERR;
        if (im->labels) im->labels[rows] = lab;
        rows++;
    }
    if (got < 0) return LOOM_ERR;
    if (rows == 0) return loom_fail(LOOM_EFORMAT, "%s: no data rows (only a header)", c->path);
    *count = rows;
    return LOOM_OK;
}

loom_dataset *loom_dataset_open_csv(const char *path, const loom_dataset_opts *o) {
    (void)o; /* the shape comes from the header; nothing to choose */
    FILE *f = fopen(path, "rb");
    if (!f) {
        loom_fail(LOOM_EIO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || S_ISDIR(st.st_mode)) {
        fclose(f);
        loom_fail(LOOM_EIO, "%s: not a file", path);
        return NULL;
    }
    loom_dataset *ds = loom_dataset_alloc("csv", path, sizeof(csv_impl), csv_destroy);
    if (!ds) {
        fclose(f);
        return NULL;
    }
    csv_impl *im = ds->impl;
    line_reader r = {.path = path, .f = f};
    csv_shape c = {.path = path};
    size_t count = 0;
    int rc = read_all(&r, &c, im, &count);
    free(r.buf);
    fclose(f);
    if (rc != LOOM_OK) {
        loom_dataset_free(ds);
        return NULL;
    }
    /* Give back the doubling slack: the array lives as long as the set. */
    uint8_t *px = realloc(im->pixels, count * im->npix);
    if (px) im->pixels = px;
    size_t side = square_side(im->npix);
    ds->count = count;
    ds->c = 1;
    ds->h = (int)side;
    ds->w = (int)side;
    ds->native_c = 1, ds->native_h = ds->h, ds->native_w = ds->w;
    ds->labeled = c.labeled;
    ds->get = csv_get;
    ds->label_of = csv_label;
    ds->describe = csv_describe;
    /* The format defines the classes even when a file (test.csv) has no
     * labels: ten, known by their numbers (no names to check other data by). */
    ds->num_classes = CSV_CLASSES;
    return ds;
}

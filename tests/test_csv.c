/* Digit Recognizer CSV reader tests. Fixtures are written at run time into a
 * fresh temporary directory, so every bad-input case is spelled out here,
 * next to the message it must produce. */
#include "check.h"
#include "util.h"

#include <loom/dataset.h>
#include <loom/error.h>

#include <stdarg.h>
#include <stdint.h>

enum { NPIX = 784, NCOL = 785 };

static char tmpdir[256];

/* A growing string for building file contents. */
typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(sbuf *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int w = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (w < 0) exit(2);
        if (b->s && b->n + (size_t)w < b->cap) {
            b->n += (size_t)w;
            return;
        }
        size_t ncap = (b->cap ? b->cap * 2 : 4096) + (size_t)w;
        b->s = realloc(b->s, ncap);
        if (!b->s) exit(2);
        b->cap = ncap;
    }
}

/* The known content of row r: pixel j and the label. */
static uint8_t pix(int r, size_t j) { return (uint8_t)((size_t)r * 31 + j * 7 + j / 28); }
static int lab(int r) { return (r * 3 + 1) % 10; }

static void header(sbuf *b, int labeled, size_t npix, const char *eol) {
    if (labeled) sb_add(b, "label,");
    for (size_t j = 0; j < npix; j++) sb_add(b, "pixel%zu%s", j, j + 1 < npix ? "," : "");
    sb_add(b, "%s", eol);
}

/* Row r; cell `edit` (0-based column) replaced by `text`, column `drop`
 * left out, `extra` cells added at the end. -1 for none. */
static void row_edit(sbuf *b, int labeled, size_t npix, int r, int edit, const char *text, int drop,
                     int extra, const char *eol) {
    size_t ncol = npix + (size_t)labeled;
    int first = 1;
    for (size_t k = 0; k < ncol; k++) {
        if ((int)k == drop) continue;
        if (!first) sb_add(b, ",");
        first = 0;
        if ((int)k == edit)
            sb_add(b, "%s", text);
        else if (labeled && k == 0)
            sb_add(b, "%d", lab(r));
        else
            sb_add(b, "%u", pix(r, k - (size_t)labeled));
    }
    for (int i = 0; i < extra; i++) sb_add(b, ",0");
    sb_add(b, "%s", eol);
}

static void row(sbuf *b, int labeled, size_t npix, int r, const char *eol) {
    row_edit(b, labeled, npix, r, -1, NULL, -1, 0, eol);
}

static const char *write_file(const char *name, const sbuf *b) {
    const char *path = t_path(tmpdir, name);
    t_write_file(path, b->s, b->n);
    return path;
}

/* Every byte and label of rows 0..n-1 as written by row(). */
static void check_rows(loom_dataset *ds, const char *what, int n, int labeled, size_t npix) {
    CHECK(ds->count == (size_t)n, "%s: count %zu, expected %d", what, ds->count, n);
    uint8_t *img = malloc(npix);
    int bad = 0, badlab = 0;
    for (int r = 0; r < n && (size_t)r < ds->count; r++) {
        int32_t l = 99;
        CHECK(loom_dataset_get(ds, (size_t)r, img, &l) == LOOM_OK, "%s: get %d: %s", what, r,
              loom_error());
        for (size_t j = 0; j < npix; j++) bad += img[j] != pix(r, j);
        badlab += l != (labeled ? lab(r) : -1);
    }
    CHECK(bad == 0, "%s: %d pixels differ", what, bad);
    CHECK(badlab == 0, "%s: %d labels differ", what, badlab);
    free(img);
}

static void test_train(void) {
    sbuf b = {0};
    header(&b, 1, NPIX, "\n");
    for (int r = 0; r < 5; r++) row(&b, 1, NPIX, r, "\n");
    const char *p = write_file("train.csv", &b);
    loom_dataset *ds = loom_dataset_open_csv(p, NULL);
    CHECK(ds != NULL, "train.csv: %s", loom_error());
    if (ds) {
        CHECK(ds->c == 1 && ds->h == 28 && ds->w == 28, "shape %d %d %d", ds->c, ds->h, ds->w);
        CHECK(ds->labeled == 1, "labeled");
        CHECK(strcmp(ds->format, "csv") == 0, "format %s", ds->format);
        CHECK(ds->num_classes == 10, "num_classes %d", ds->num_classes);
        char nb[16];
        CHECK(strcmp(loom_dataset_class_name(ds, 7, nb, sizeof nb), "7") == 0, "class name 7");
        check_rows(ds, "train.csv", 5, 1, NPIX);
        char where[600];
        loom_dataset_describe(ds, 3, where, sizeof where);
        CHECK(strstr(where, "train.csv line 5") != NULL, "describe: %s", where);
        uint8_t img[NPIX];
        int32_t l;
        CHECK(loom_dataset_get(ds, 5, img, &l) == LOOM_ERR, "get past the end must fail");
    }
    loom_dataset_free(ds);

    /* Through the format-recognising entry point too. */
    ds = loom_dataset_open(p, NULL);
    CHECK(ds && strcmp(ds->format, "csv") == 0, "loom_dataset_open(.csv): %s", loom_error());
    loom_dataset_free(ds);
    free(b.s);
}

static void test_unlabeled(void) {
    sbuf b = {0};
    header(&b, 0, NPIX, "\n");
    for (int r = 0; r < 4; r++) row(&b, 0, NPIX, r, "\n");
    loom_dataset *ds = loom_dataset_open_csv(write_file("test.csv", &b), NULL);
    CHECK(ds != NULL, "test.csv: %s", loom_error());
    if (ds) {
        CHECK(ds->labeled == 0, "test.csv must be unlabeled");
        CHECK(ds->h == 28 && ds->w == 28 && ds->c == 1, "shape");
        check_rows(ds, "test.csv", 4, 0, NPIX); /* labels -1, rows in file order */
    }
    loom_dataset_free(ds);
    free(b.s);
}

/* Line endings and the end of the file in their usual variations. */
static void test_endings(void) {
    static const struct {
        const char *name, *eol, *tail;
        int last_eol;
    } v[] = {
        {"crlf.csv", "\r\n", "", 1},
        {"crlf-no-final.csv", "\r\n", "", 0},
        {"lf-no-final.csv", "\n", "", 0},
        {"lf-blank-tail.csv", "\n", "\n\n  \n\t\n", 1},
        {"crlf-blank-tail.csv", "\r\n", "\r\n\r\n", 1},
    };
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        sbuf b = {0};
        header(&b, 1, NPIX, v[k].eol);
        for (int r = 0; r < 3; r++) row(&b, 1, NPIX, r, r < 2 || v[k].last_eol ? v[k].eol : "");
        sb_add(&b, "%s", v[k].tail);
        loom_dataset *ds = loom_dataset_open_csv(write_file(v[k].name, &b), NULL);
        CHECK(ds != NULL, "%s: %s", v[k].name, loom_error());
        if (ds) check_rows(ds, v[k].name, 3, 1, NPIX);
        loom_dataset_free(ds);
        free(b.s);
    }
}

static void test_variants(void) {
    /* 16 pixels: a 4 x 4 image. */
    sbuf b = {0};
    header(&b, 1, 16, "\n");
    for (int r = 0; r < 3; r++) row(&b, 1, 16, r, "\n");
    loom_dataset *ds = loom_dataset_open_csv(write_file("small.csv", &b), NULL);
    CHECK(ds && ds->h == 4 && ds->w == 4 && ds->c == 1, "4x4: %s", loom_error());
    if (ds) check_rows(ds, "small.csv", 3, 1, 16);
    loom_dataset_free(ds);
    free(b.s);

    /* What spreadsheet and pandas exports add: a byte-order mark, quoted
     * names, blanks around numbers, float-formatted whole numbers. */
    b = (sbuf){0};
    sb_add(&b, "\xEF\xBB\xBF\"label\", \"pixel0\",pixel1 ,pixel2,pixel3\n");
    sb_add(&b, "3, 7 ,8.0,+9,255.\n");
    ds = loom_dataset_open_csv(write_file("lenient.csv", &b), NULL);
    CHECK(ds != NULL, "lenient.csv: %s", loom_error());
    if (ds) {
        uint8_t img[4];
        int32_t l = -5;
        CHECK(loom_dataset_get(ds, 0, img, &l) == LOOM_OK, "get");
        CHECK(l == 3 && img[0] == 7 && img[1] == 8 && img[2] == 9 && img[3] == 255,
              "lenient values %d: %u %u %u %u", l, img[0], img[1], img[2], img[3]);
    }
    loom_dataset_free(ds);
    free(b.s);

    /* Lines longer than the reader's first buffer, and many rows, so both
     * buffers have to grow. */
    b = (sbuf){0};
    header(&b, 1, NPIX, "\n");
    row(&b, 1, NPIX, 0, "\n");
    size_t pad = (size_t)3 << 20;
    sb_add(&b, "%d,%*u", lab(1), (int)pad, pix(1, 0));
    for (size_t j = 1; j < NPIX; j++) sb_add(&b, ",%u", pix(1, j));
    sb_add(&b, "\n");
    for (int r = 2; r < 3000; r++) row(&b, 1, NPIX, r, "\n");
    ds = loom_dataset_open_csv(write_file("big.csv", &b), NULL);
    CHECK(ds != NULL, "big.csv: %s", loom_error());
    if (ds) check_rows(ds, "big.csv", 3000, 1, NPIX);
    loom_dataset_free(ds);
    free(b.s);
}

/* Opening must fail, naming the file and containing each of the words. */
static void expect_fail(const char *path, const char *name, const char *w1, const char *w2) {
    loom_clear_error();
    loom_dataset *ds = loom_dataset_open_csv(path, NULL);
    const char *m = loom_error();
    CHECK(ds == NULL, "%s: expected failure", name);
    loom_dataset_free(ds);
    CHECK(strstr(m, name) != NULL, "%s: message does not name the file: %s", name, m);
    CHECK(strstr(m, w1) != NULL, "%s: message lacks \"%s\": %s", name, w1, m);
    if (w2) CHECK(strstr(m, w2) != NULL, "%s: message lacks \"%s\": %s", name, w2, m);
    printf("  %-22s -> %s\n", name, m);
}

/* A train file whose row 2 (line 4) is edited; the rows around it are good. */
static void bad_row(const char *name, int edit, const char *text, int drop, int extra,
                    const char *w1, const char *w2) {
    sbuf b = {0};
    header(&b, 1, NPIX, "\n");
    for (int r = 0; r < 4; r++)
        if (r == 2)
            row_edit(&b, 1, NPIX, r, edit, text, drop, extra, "\n");
        else
            row(&b, 1, NPIX, r, "\n");
    expect_fail(write_file(name, &b), name, w1, w2);
    free(b.s);
}

static void test_bad(void) {
    bad_row("missing.csv", -1, NULL, 300, 0, "line 4: 784 cells, expected 785",
            "missing column");
    bad_row("extra.csv", -1, NULL, -1, 1, "line 4: 786 cells, expected 785", "extra column");
    bad_row("nonnumeric.csv", 2, "abc", -1, 0,
            "line 4: column 3 (pixel1): 'abc' is not a whole number", NULL);
    bad_row("fraction.csv", 2, "12.5", -1, 0, "line 4: column 3 (pixel1): '12.5' is not", NULL);
    bad_row("negative.csv", 8, "-4", -1, 0, "line 4: pixel7 = -4 is out of range 0..255", NULL);
    bad_row("pixel300.csv", 413, "300", -1, 0, "line 4: pixel412 = 300 is out of range 0..255",
            NULL);
    bad_row("label10.csv", 0, "10", -1, 0, "line 4: label 10 is out of range 0..9", NULL);
    bad_row("label-neg.csv", 0, "-1", -1, 0, "line 4: label -1 is out of range 0..9", NULL);
    bad_row("emptycell.csv", 5, "", -1, 0, "line 4: column 6 (pixel4) is empty", NULL);
    bad_row("emptylabel.csv", 0, " ", -1, 0, "line 4: column 1 (label) is empty", NULL);
    bad_row("huge.csv", 4, "100000000000000000000", -1, 0,
            "line 4: pixel3 = 100000000000000000000 is out of range", NULL);
    /* 2^64 + 5 and 2^32 + 5: wrapping arithmetic would read 5. */
    bad_row("wrap64.csv", 4, "18446744073709551621", -1, 0, "pixel3 = 18446744073709551621 is out",
            NULL);
    bad_row("wrap32.csv", 0, "4294967301", -1, 0, "label 4294967301 is out of range", NULL);
    /* The shifted cells of a short row must not hide the real cause. */
    bad_row("missing-and-bad.csv", 9, "x", 3, 0, "784 cells, expected 785", NULL);

    sbuf b = {0};
    expect_fail(write_file("empty.csv", &b), "empty.csv", "empty file", NULL);
    sb_add(&b, "\n\r\n  \n");
    expect_fail(write_file("blank.csv", &b), "blank.csv", "empty file", NULL);
    free(b.s);

    b = (sbuf){0};
    header(&b, 1, NPIX, "\n");
    expect_fail(write_file("header-only.csv", &b), "header-only.csv", "no data rows", NULL);
    sb_add(&b, "\n\n");
    expect_fail(write_file("header-blank.csv", &b), "header-blank.csv", "no data rows", NULL);
    free(b.s);

    b = (sbuf){0};
    sb_add(&b, "label,pixel0,pixel1,pixel2,pixel3,pixel5,pixel6\n1,2,3,4,5,6,7\n");
    expect_fail(write_file("wrongname.csv", &b), "wrongname.csv",
                "line 1: column 6 is named 'pixel5', expected 'pixel4'", NULL);
    free(b.s);

    b = (sbuf){0};
    sb_add(&b, "pixel0,label,pixel1\n1,2,3\n");
    expect_fail(write_file("label-second.csv", &b), "label-second.csv",
                "line 1: column 2 is 'label'", NULL);
    free(b.s);

    b = (sbuf){0};
    sb_add(&b, "label,pixel0,pixel1,pixel2,pixel3,pixel4\n1,2,3,4,5,6\n");
    expect_fail(write_file("notsquare.csv", &b), "notsquare.csv",
                "line 1: 5 pixel columns do not make a square", NULL);
    free(b.s);

    b = (sbuf){0};
    sb_add(&b, "label\n1\n");
    expect_fail(write_file("labelonly.csv", &b), "labelonly.csv", "no pixel columns", NULL);
    free(b.s);

    b = (sbuf){0};
    row(&b, 1, NPIX, 0, "\n");
    row(&b, 1, NPIX, 1, "\n");
    expect_fail(write_file("noheader.csv", &b), "noheader.csv", "line 1: no header", NULL);
    free(b.s);

    /* A download cut off mid-row. */
    b = (sbuf){0};
    header(&b, 1, NPIX, "\n");
    for (int r = 0; r < 3; r++) row(&b, 1, NPIX, r, "\n");
    size_t keep = b.n;
    row(&b, 1, NPIX, 3, "\n");
    b.n = keep + (b.n - keep) / 2;
    expect_fail(write_file("truncated.csv", &b), "truncated.csv", "line 5: ", "truncated?");
    free(b.s);

    b = (sbuf){0};
    header(&b, 1, NPIX, "\n");
    row(&b, 1, NPIX, 0, "\n");
    sb_add(&b, "\n");
    row(&b, 1, NPIX, 1, "\n");
    expect_fail(write_file("blank-middle.csv", &b), "blank-middle.csv", "line 3: blank line",
                NULL);
    free(b.s);

    /* The unlabeled form checks its cells too, counting columns from pixel0. */
    b = (sbuf){0};
    header(&b, 0, NPIX, "\n");
    row(&b, 0, NPIX, 0, "\n");
    row_edit(&b, 0, NPIX, 1, 0, "7x", -1, 0, "\n");
    expect_fail(write_file("test-bad.csv", &b), "test-bad.csv",
                "line 3: column 1 (pixel0): '7x' is not a whole number", NULL);
    free(b.s);

    expect_fail(t_path(tmpdir, "nonexistent.csv"), "nonexistent.csv", "cannot open", NULL);
}

int main(void) {
    if (!t_mkdtemp(tmpdir, sizeof tmpdir, "csv")) return 2;
    test_train();
    test_unlabeled();
    test_endings();
    test_variants();
    test_bad();
    t_rm_tree(tmpdir);
    TEST_END();
}

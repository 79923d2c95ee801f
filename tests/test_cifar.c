/* CIFAR-10 binary reader tests. Batches are written at run time into a fresh
 * temporary directory with a known value for every (record, channel, y, x),
 * so the CHW -> HWC transpose is checked byte for byte. */
#include "check.h"
#include "util.h"

#include <loom/dataset.h>
#include <loom/error.h>

#include <stdint.h>

enum { SIDE = 32, PLANE = SIDE * SIDE, PIXELS = 3 * PLANE, RECORD = 1 + PIXELS };

static char tmpdir[256];

/* The known content: channel c at (y, x) of record r of a file tagged `tag`. */
static uint8_t val(int tag, int r, int c, int y, int x) {
    return (uint8_t)(tag * 59 + r * 13 + c * 101 + y * 7 + x * 3 + (x * y) / 5);
}

static const char *path_of(const char *rel) { return t_path(tmpdir, rel); }
static void make_dir(const char *rel) { t_mkdir(path_of(rel)); }
static void write_bytes(const char *rel, const uint8_t *p, size_t n) { t_write_file(path_of(rel), p, n); }

/* n records as CHW planes with labels labels[r]; extra bytes appended. */
static void write_batch(const char *rel, int tag, int n, const uint8_t *labels, size_t extra) {
    size_t size = (size_t)n * RECORD + extra;
    uint8_t *buf = calloc(size + 1, 1);
    for (int r = 0; r < n; r++) {
        uint8_t *rec = buf + (size_t)r * RECORD;
        rec[0] = labels[r];
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < SIDE; y++)
                for (int x = 0; x < SIDE; x++)
                    rec[1 + c * PLANE + y * SIDE + x] = val(tag, r, c, y, x);
    }
    write_bytes(rel, buf, size);
    free(buf);
}

/* Sample `i` of ds must be record r of the file tagged `tag`, in HWC. */
static void check_sample(loom_dataset *ds, size_t i, int tag, int r, int label, const char *what) {
    uint8_t img[PIXELS];
    int32_t l = -7;
    CHECK(loom_dataset_get(ds, i, img, &l) == LOOM_OK, "%s: get %zu: %s", what, i, loom_error());
    int bad = 0;
    for (int y = 0; y < SIDE; y++)
        for (int x = 0; x < SIDE; x++)
            for (int c = 0; c < 3; c++) bad += img[(y * SIDE + x) * 3 + c] != val(tag, r, c, y, x);
    CHECK(bad == 0, "%s: sample %zu: %d bytes differ from record %d in HWC", what, i, bad, r);
    CHECK(l == label, "%s: sample %zu: label %d, expected %d", what, i, l, label);
}

static void test_single_file(void) {
    make_dir("one");
    const uint8_t labels[3] = {6, 0, 9};
    write_batch("one/three.bin", 1, 3, labels, 0);
    loom_dataset *ds = loom_dataset_open_cifar(path_of("one/three.bin"), NULL);
    CHECK(ds != NULL, "three.bin: %s", loom_error());
    if (!ds) return;
    CHECK(ds->count == 3, "count %zu", ds->count);
    CHECK(ds->c == 3 && ds->h == 32 && ds->w == 32, "shape %d %d %d", ds->c, ds->h, ds->w);
    CHECK(ds->labeled == 1 && ds->num_classes == 10, "labeled %d classes %d", ds->labeled,
          ds->num_classes);
    CHECK(strcmp(ds->format, "cifar10") == 0, "format %s", ds->format);
    char nb[16];
    CHECK(strcmp(loom_dataset_class_name(ds, 0, nb, sizeof nb), "airplane") == 0 &&
              strcmp(loom_dataset_class_name(ds, 9, nb, sizeof nb), "truck") == 0,
          "default class names");
    for (int r = 0; r < 3; r++) check_sample(ds, (size_t)r, 1, r, labels[r], "three.bin");
    /* Spot values straight from the CHW layout: plane c, row y, column x. */
    uint8_t img[PIXELS];
    int32_t l;
    loom_dataset_get(ds, 2, img, &l);
    CHECK(img[(5 * 32 + 7) * 3 + 1] == val(1, 2, 1, 5, 7), "G at (5,7)");
    CHECK(img[(31 * 32 + 31) * 3 + 2] == val(1, 2, 2, 31, 31), "B at (31,31)");
    CHECK(loom_dataset_get(ds, 3, img, &l) == LOOM_ERR, "get past the end must fail");
    char where[700];
    loom_dataset_describe(ds, 1, where, sizeof where);
    CHECK(strstr(where, "three.bin record 1") != NULL, "describe: %s", where);
    loom_dataset_free(ds);

    /* Through the format-recognising entry point too. */
    ds = loom_dataset_open(path_of("one/three.bin"), NULL);
    CHECK(ds && ds->count == 3 && strcmp(ds->format, "cifar10") == 0,
          "loom_dataset_open(.bin): %s", loom_error());
    loom_dataset_free(ds);
}

static void test_directory(void) {
    make_dir("set");
    const uint8_t l1[2] = {3, 4}, l2[3] = {5, 0, 1}, lt[1] = {8};
    write_batch("set/data_batch_1.bin", 1, 2, l1, 0);
    write_batch("set/data_batch_2.bin", 2, 3, l2, 0);
    write_batch("set/test_batch.bin", 7, 1, lt, 0);
    const char meta[] = "plane\ncar\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\r\ntruck\n\n";
    write_bytes("set/batches.meta.txt", (const uint8_t *)meta, strlen(meta));

    loom_dataset *ds = loom_dataset_open_cifar(path_of("set"), NULL);
    CHECK(ds != NULL, "set (train): %s", loom_error());
    if (ds) {
        CHECK(ds->count == 5, "train count %zu, expected 2 + 3", ds->count);
        if (ds->count == 5) {
            for (int r = 0; r < 2; r++) check_sample(ds, (size_t)r, 1, r, l1[r], "batch 1");
            for (int r = 0; r < 3; r++) check_sample(ds, (size_t)(2 + r), 2, r, l2[r], "batch 2");
        }
        char nb[16];
        CHECK(strcmp(loom_dataset_class_name(ds, 0, nb, sizeof nb), "plane") == 0 &&
                  strcmp(loom_dataset_class_name(ds, 8, nb, sizeof nb), "ship") == 0 &&
                  strcmp(loom_dataset_class_name(ds, 9, nb, sizeof nb), "truck") == 0,
              "names from batches.meta.txt");
        char where[700];
        loom_dataset_describe(ds, 3, where, sizeof where);
        CHECK(strstr(where, "data_batch_2.bin record 1") != NULL, "describe: %s", where);
    }
    loom_dataset_free(ds);

    loom_dataset_opts o = {.split = "test"};
    ds = loom_dataset_open_cifar(path_of("set"), &o);
    CHECK(ds && ds->count == 1, "set (test): %s", loom_error());
    if (ds) check_sample(ds, 0, 7, 0, 8, "test_batch");
    loom_dataset_free(ds);

    ds = loom_dataset_open(path_of("set"), NULL);
    CHECK(ds && ds->count == 5 && strcmp(ds->format, "cifar10") == 0,
          "loom_dataset_open(dir): %s", loom_error());
    loom_dataset_free(ds);

    /* The folder the official tarball unpacks into, one level down. */
    make_dir("parent");
    make_dir("parent/cifar-10-batches-bin");
    write_batch("parent/cifar-10-batches-bin/data_batch_1.bin", 1, 2, l1, 0);
    ds = loom_dataset_open_cifar(path_of("parent"), NULL);
    CHECK(ds && ds->count == 2, "parent of cifar-10-batches-bin: %s", loom_error());
    loom_dataset_free(ds);
}

static void expect_fail(const char *path, const char *split, const char *name, const char *w1,
                        const char *w2) {
    loom_dataset_opts o = {.split = split};
    loom_clear_error();
    loom_dataset *ds = loom_dataset_open_cifar(path, &o);
    const char *m = loom_error();
    CHECK(ds == NULL, "%s: expected failure", name);
    loom_dataset_free(ds);
    CHECK(strstr(m, name) != NULL, "%s: message does not name the file: %s", name, m);
    CHECK(strstr(m, w1) != NULL, "%s: message lacks \"%s\": %s", name, w1, m);
    if (w2) CHECK(strstr(m, w2) != NULL, "%s: message lacks \"%s\": %s", name, w2, m);
    printf("  %-26s -> %s\n", name, m);
}

static void test_bad(void) {
    const uint8_t good[3] = {1, 2, 3}, bad[3] = {1, 2, 10};
    make_dir("bad");
    write_batch("bad/odd-size.bin", 1, 2, good, 1);
    expect_fail(path_of("bad/odd-size.bin"), NULL, "odd-size.bin",
                "size 6147 bytes is not a multiple of 3073", NULL);
    write_batch("bad/short.bin", 1, 0, good, 3000);
    expect_fail(path_of("bad/short.bin"), NULL, "short.bin", "not a multiple of 3073", NULL);
    write_batch("bad/label10.bin", 1, 3, bad, 0);
    expect_fail(path_of("bad/label10.bin"), NULL, "label10.bin", "record 2",
                "label 10 is out of range 0..9");
    write_bytes("bad/zero.bin", NULL, 0);
    expect_fail(path_of("bad/zero.bin"), NULL, "zero.bin", "empty file", NULL);
    expect_fail(path_of("no-such-dir"), NULL, "no-such-dir", "cannot open", NULL);

    /* A directory holding one bad batch among good ones names the bad one. */
    make_dir("badset");
    write_batch("badset/data_batch_1.bin", 1, 3, good, 0);
    write_batch("badset/data_batch_2.bin", 2, 3, bad, 0);
    expect_fail(path_of("badset"), NULL, "data_batch_2.bin", "record 2", "label 10");
    write_batch("badset/data_batch_2.bin", 2, 3, good, 5);
    expect_fail(path_of("badset"), NULL, "data_batch_2.bin", "not a multiple of 3073", NULL);
    expect_fail(path_of("badset"), "test", "badset", "no test_batch.bin", NULL);
    expect_fail(path_of("badset"), "validation", "badset", "unknown CIFAR split", NULL);

    make_dir("gap");
    write_batch("gap/data_batch_1.bin", 1, 1, good, 0);
    write_batch("gap/data_batch_3.bin", 3, 1, good, 0);
    expect_fail(path_of("gap"), NULL, "gap", "data_batch_2.bin is missing", NULL);

    make_dir("emptydir");
    expect_fail(path_of("emptydir"), NULL, "emptydir", "no data_batch_N.bin", NULL);
    make_dir("zerodir");
    write_bytes("zerodir/data_batch_1.bin", NULL, 0);
    expect_fail(path_of("zerodir"), NULL, "data_batch_1.bin", "empty file", NULL);

    make_dir("python");
    write_bytes("python/data_batch_1", good, 3);
    expect_fail(path_of("python"), NULL, "python", "Python (pickle) version", NULL);

    make_dir("badmeta");
    write_batch("badmeta/test_batch.bin", 1, 1, good, 0);
    const char meta[] = "a\nb\nc\nd\ne\nf\ng\nh\ni\n";
    write_bytes("badmeta/batches.meta.txt", (const uint8_t *)meta, strlen(meta));
    expect_fail(path_of("badmeta"), "test", "batches.meta.txt", "9 class names, expected 10",
                NULL);
}

int main(void) {
    if (!t_mkdtemp(tmpdir, sizeof tmpdir, "cifar")) return 2;
    test_single_file();
    test_directory();
    test_bad();
    t_rm_tree(tmpdir);
    TEST_END();
}

/* IDX reader tests. Fixtures are written at run time into a fresh temporary
 * directory so every bad-input case is spelled out here, next to its check. */
#include "check.h"
#include "io/idx.h"
#include "util.h"

#include <loom/error.h>
#include "io/idx.h"

#include <stdint.h>
#include <zlib.h>

static char tmpdir[256];
static const char *last; /* the latest fixture's path */

static const char *fixture(const char *name) { return last = t_keep_path(tmpdir, name); }

static void write_gz(const char *path, const void *p, size_t n) {
    gzFile g = gzopen(path, "wb");
    if (!g || (n && gzwrite(g, p, (unsigned)n) != (int)n) || gzclose(g) != Z_OK) {
        fprintf(stderr, "test_idx: cannot write %s\n", path);
        exit(2);
    }
}

/* An IDX image in memory: header for (type, ndim, dims) then ndata bytes i*7+1. */
static size_t idx_bytes(uint8_t *buf, uint8_t type, int ndim, const uint32_t *dims, size_t ndata) {
    size_t n = 0;
    buf[n++] = 0;
    buf[n++] = 0;
    buf[n++] = type;
    buf[n++] = (uint8_t)ndim;
    for (int i = 0; i < ndim; i++) {
        buf[n++] = (uint8_t)(dims[i] >> 24);
        buf[n++] = (uint8_t)(dims[i] >> 16);
        buf[n++] = (uint8_t)(dims[i] >> 8);
        buf[n++] = (uint8_t)dims[i];
    }
    for (size_t i = 0; i < ndata; i++) buf[n++] = (uint8_t)(i * 7 + 1);
    return n;
}

static int data_ok(const loom_idx *x, size_t n) {
    if (!x->data) return 0;
    for (size_t i = 0; i < n; i++)
        if (x->data[i] != (uint8_t)(i * 7 + 1)) return 0;
    return 1;
}

/* Reading `name` must fail with a message naming the file and containing `word`. */
static void expect_fail(const char *path, const char *name, const char *word) {
    loom_idx x;
    memset(&x, 0xab, sizeof x);
    loom_clear_error();
    int rc = loom_idx_read(path, &x);
    const char *m = loom_error();
    CHECK(rc == LOOM_ERR, "%s: expected failure", name);
    CHECK(x.data == NULL && x.count == 0, "%s: output not cleared on failure", name);
    CHECK(strstr(m, name) != NULL, "%s: message does not name the file: %s", name, m);
    CHECK(strstr(m, word) != NULL, "%s: message lacks \"%s\": %s", name, word, m);
    printf("  %-28s -> %s\n", name, m);
    loom_idx_free(&x);
}

static void test_valid(void) {
    static uint8_t buf[4096];
    const uint32_t d3[3] = {3, 2, 4};
    size_t n = idx_bytes(buf, 0x08, 3, d3, 24);
    const char *names[] = {"v3-plain-ubyte", "v3-ubyte.gz", "v3-gz-without-suffix",
                           "v3-plain-misnamed.gz"};
    t_write_file(fixture(names[0]), buf, n);
    write_gz(fixture(names[1]), buf, n);
    write_gz(fixture(names[2]), buf, n);
    t_write_file(fixture(names[3]), buf, n);
    for (int k = 0; k < 4; k++) {
        loom_idx x;
        char path[320];
        snprintf(path, sizeof path, "%s/%s", tmpdir, names[k]);
        int rc = loom_idx_read(path, &x);
        CHECK(rc == LOOM_OK, "%s: %s", names[k], loom_error());
        CHECK(x.ndim == 3 && x.dims[0] == 3 && x.dims[1] == 2 && x.dims[2] == 4 && x.dims[3] == 0,
              "%s: dims %d: %u %u %u %u", names[k], x.ndim, x.dims[0], x.dims[1], x.dims[2],
              x.dims[3]);
        CHECK(x.count == 3 && x.item_size == 8, "%s: count %zu item %zu", names[k], x.count,
              x.item_size);
        CHECK(data_ok(&x, 24), "%s: data differs", names[k]);
        loom_idx_free(&x);
        CHECK(x.data == NULL, "free clears");
    }

    /* 1-d (labels) and 4-d, the two ends of the supported ranks. */
    const uint32_t d1[1] = {5};
    n = idx_bytes(buf, 0x08, 1, d1, 5);
    const char *p1 = fixture("v1-ubyte.gz");
    write_gz(p1, buf, n);
    loom_idx x;
    CHECK(loom_idx_read(p1, &x) == LOOM_OK, "1-d: %s", loom_error());
    CHECK(x.ndim == 1 && x.count == 5 && x.item_size == 1 && data_ok(&x, 5), "1-d shape/data");
    loom_idx_free(&x);

    const uint32_t d4[4] = {2, 3, 1, 5};
    n = idx_bytes(buf, 0x08, 4, d4, 30);
    const char *p4 = fixture("v4-ubyte");
    t_write_file(p4, buf, n);
    CHECK(loom_idx_read(p4, &x) == LOOM_OK, "4-d: %s", loom_error());
    CHECK(x.ndim == 4 && x.count == 2 && x.item_size == 15 && data_ok(&x, 30), "4-d shape/data");
    loom_idx_free(&x);
    loom_idx_free(NULL);

    /* Larger than the first gzip chunk, so the buffer has to grow. */
    const uint32_t dbig[3] = {3001, 28, 28};
    size_t nbig = (size_t)3001 * 28 * 28;
    uint8_t *big = malloc(16 + nbig);
    n = idx_bytes(big, 0x08, 3, dbig, nbig);
    const char *pb = fixture("big-ubyte.gz");
    write_gz(pb, big, n);
    free(big);
    CHECK(loom_idx_read(pb, &x) == LOOM_OK, "big: %s", loom_error());
    CHECK(x.count == 3001 && x.item_size == 784 && data_ok(&x, nbig), "big shape/data");
    loom_idx_free(&x);
}

static void test_bad(void) {
    static uint8_t buf[4096];
    char name[64];
    const uint32_t d3[3] = {3, 2, 4};
    size_t n;

    t_write_file(fixture("empty-ubyte"), buf, 0);
    expect_fail(last, "empty-ubyte", "empty");
    write_gz(fixture("empty-ubyte.gz"), buf, 0);
    expect_fail(last, "empty-ubyte.gz", "empty");

    n = idx_bytes(buf, 0x08, 3, d3, 0);
    t_write_file(fixture("hdr2-ubyte"), buf, 2);
    expect_fail(last, "hdr2-ubyte", "truncated header");
    t_write_file(fixture("hdr10-ubyte"), buf, 10); /* rank 3 needs 16 header bytes */
    expect_fail(last, "hdr10-ubyte", "truncated header");
    write_gz(fixture("hdr10-ubyte.gz"), buf, 10);
    expect_fail(last, "hdr10-ubyte.gz", "truncated header");

    n = idx_bytes(buf, 0x08, 3, d3, 24);
    buf[1] = 0x4d;
    t_write_file(fixture("magic-ubyte"), buf, n);
    expect_fail(last, "magic-ubyte", "not an IDX file");

    n = idx_bytes(buf, 0x0d, 3, d3, 24);
    write_gz(fixture("float-ubyte.gz"), buf, n);
    expect_fail(last, "float-ubyte.gz", "unsupported IDX element type 0x0d");

    n = idx_bytes(buf, 0x08, 0, d3, 0);
    t_write_file(fixture("ndim0-ubyte"), buf, n);
    expect_fail(last, "ndim0-ubyte", "0 dimensions");
    const uint32_t d5[5] = {1, 1, 1, 1, 1};
    n = idx_bytes(buf, 0x08, 5, d5, 1);
    t_write_file(fixture("ndim5-ubyte"), buf, n);
    expect_fail(last, "ndim5-ubyte", "5 dimensions");

    const uint32_t dz[3] = {3, 0, 4};
    n = idx_bytes(buf, 0x08, 3, dz, 0);
    t_write_file(fixture("dim0-ubyte"), buf, n);
    expect_fail(last, "dim0-ubyte", "dimension 1 is 0");

    /* Header says 3 items, the file holds 2. */
    n = idx_bytes(buf, 0x08, 3, d3, 16);
    t_write_file(fixture("short-ubyte"), buf, n);
    const char *claim = "truncated: header claims 24 bytes of data (3 x 2 x 4), file has 16";
    expect_fail(last, "short-ubyte", claim);
    write_gz(fixture("short-ubyte.gz"), buf, n);
    expect_fail(last, "short-ubyte.gz", claim);

    /* 4 GiB claimed, a few bytes present: must fail without allocating 4 GiB. */
    const uint32_t dhuge[2] = {0xffffu, 0x10000u};
    n = idx_bytes(buf, 0x08, 2, dhuge, 100);
    write_gz(fixture("huge-claim-ubyte.gz"), buf, n);
    expect_fail(last, "huge-claim-ubyte.gz", "file has 100");
    t_write_file(fixture("huge-claim-ubyte"), buf, n);
    expect_fail(last, "huge-claim-ubyte", "file has 100");

    const uint32_t dabs[3] = {4000000000u, 4000000000u, 4000000000u};
    n = idx_bytes(buf, 0x08, 2, dabs, 10);
    t_write_file(fixture("absurd-ubyte"), buf, n);
    expect_fail(last, "absurd-ubyte", "overflow");
    n = idx_bytes(buf, 0x08, 3, dabs, 10);
    write_gz(fixture("absurd3-ubyte.gz"), buf, n);
    expect_fail(last, "absurd3-ubyte.gz", "overflow");

    n = idx_bytes(buf, 0x08, 3, d3, 30);
    t_write_file(fixture("trailing-ubyte"), buf, n);
    expect_fail(last, "trailing-ubyte", "trailing garbage: 6 more bytes");
    write_gz(fixture("trailing-ubyte.gz"), buf, n);
    expect_fail(last, "trailing-ubyte.gz", "trailing garbage");

    /* A gzip stream cut short: once inside the deflate data, once just before
     * the CRC trailer (all IDX bytes present, stream still incomplete). */
    size_t nbig = 200000;
    uint8_t *big = malloc(16 + nbig);
    const uint32_t dbig[3] = {250, 20, 40};
    n = idx_bytes(big, 0x08, 3, dbig, nbig);
    for (size_t i = 16; i < n; i++) /* poorly compressible, so the stream is long */
        big[i] = (uint8_t)((i * 2654435761u) >> 13);
    const char *full = fixture("full-ubyte.gz");
    write_gz(full, big, n);
    free(big);
    FILE *f = fopen(full, "rb");
    static uint8_t gz[400000];
    size_t ngz = fread(gz, 1, sizeof gz, f);
    fclose(f);
    CHECK(ngz > 1000 && ngz < sizeof gz, "compressed size %zu", ngz);
    t_write_file(fixture("cut-ubyte.gz"), gz, ngz / 2);
    expect_fail(last, "cut-ubyte.gz", "truncated gzip stream");
    t_write_file(fixture("cut-trailer-ubyte.gz"), gz, ngz - 4);
    expect_fail(last, "cut-trailer-ubyte.gz", "truncated gzip stream");
    gz[ngz - 6] ^= 0x55; /* inside the CRC-32 */
    t_write_file(fixture("bad-crc-ubyte.gz"), gz, ngz);
    expect_fail(last, "bad-crc-ubyte.gz", "corrupt gzip stream");

    snprintf(name, sizeof name, "no-such-file-ubyte");
    char path[320];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    expect_fail(path, name, "cannot open");
    expect_fail(tmpdir, tmpdir, "not a regular file");
}

static void test_pair(void) {
    static uint8_t buf[4096];
    const uint32_t di[3] = {3, 2, 4}, dl3[1] = {3}, dl2[1] = {2}, dl2d[2] = {3, 1};
    size_t n = idx_bytes(buf, 0x08, 3, di, 24);
    const char *img = fixture("pair-images-idx3-ubyte.gz");
    write_gz(img, buf, n);
    n = idx_bytes(buf, 0x08, 1, dl3, 3);
    const char *lab = fixture("pair-labels-idx1-ubyte");
    t_write_file(lab, buf, n);
    n = idx_bytes(buf, 0x08, 1, dl2, 2);
    const char *lab2 = fixture("pair-labels2-idx1-ubyte");
    t_write_file(lab2, buf, n);
    n = idx_bytes(buf, 0x08, 2, dl2d, 3);
    const char *labm = fixture("pair-labels-2d-ubyte");
    t_write_file(labm, buf, n);

    loom_idx a, b;
    CHECK(loom_idx_read_pair(img, lab, &a, &b) == LOOM_OK, "pair: %s", loom_error());
    CHECK(a.count == 3 && b.count == 3 && data_ok(&a, 24) && data_ok(&b, 3), "pair contents");
    loom_idx_free(&a);
    loom_idx_free(&b);

    CHECK(loom_idx_read_pair(img, lab2, &a, &b) == LOOM_ERR, "count mismatch accepted");
    const char *m = loom_error();
    printf("  %-28s -> %s\n", "count mismatch", m);
    CHECK(strstr(m, "pair-labels2-idx1-ubyte") && strstr(m, "pair-images-idx3-ubyte.gz") &&
              strstr(m, "counts must match"),
          "mismatch message: %s", m);
    CHECK(a.data == NULL && b.data == NULL, "pair outputs not cleared");

    CHECK(loom_idx_read_pair(img, labm, &a, &b) == LOOM_ERR, "2-d labels accepted");
    m = loom_error();
    printf("  %-28s -> %s\n", "2-d labels", m);
    CHECK(strstr(m, "pair-labels-2d-ubyte") && strstr(m, "1-d"), "2-d labels message: %s", m);

    char nope[320];
    snprintf(nope, sizeof nope, "%s/pair-missing", tmpdir);
    CHECK(loom_idx_read_pair(img, nope, &a, &b) == LOOM_ERR, "missing labels accepted");
    CHECK(strstr(loom_error(), "pair-missing") != NULL, "missing: %s", loom_error());
    CHECK(a.data == NULL && b.data == NULL, "images freed when labels fail");
}

static void test_find(void) {
    char dir[300], img[400], lab[400];
    snprintf(dir, sizeof dir, "%s/ds", tmpdir);
    if (mkdir(dir, 0700) != 0) {
        CHECK(0, "mkdir %s", dir);
        return;
    }
    const char *a = fixture("ds/train-images-idx3-ubyte.gz");
    const char *b = fixture("ds/train-labels.idx1-ubyte"); /* the dotted spelling */
    t_write_file(a, "x", 1);
    t_write_file(b, "x", 1);
    CHECK(loom_idx_find(dir, "train", img, lab, sizeof img) == LOOM_OK, "find: %s", loom_error());
    CHECK(strcmp(img, a) == 0 && strcmp(lab, b) == 0, "found %s, %s", img, lab);

    char slash[310];
    snprintf(slash, sizeof slash, "%s/", dir);
    CHECK(loom_idx_find(slash, "train", img, lab, sizeof img) == LOOM_OK, "trailing slash");
    CHECK(strcmp(img, a) == 0, "trailing slash path %s", img);

    CHECK(loom_idx_find(dir, "test", img, lab, sizeof img) == LOOM_ERR, "missing test found");
    const char *m = loom_error();
    printf("  %-28s -> %s\n", "find test split", m);
    CHECK(strstr(m, dir) && strstr(m, "t10k-images-idx3-ubyte") &&
              strstr(m, "t10k-images.idx3-ubyte") && strstr(m, ".gz"),
          "find message: %s", m);

    CHECK(loom_idx_find(dir, "valid", img, lab, sizeof img) == LOOM_ERR, "bad split accepted");
    CHECK(strstr(loom_error(), "valid") != NULL, "bad split: %s", loom_error());
    CHECK(loom_idx_find(dir, "train", img, lab, 8) == LOOM_ERR, "tiny buffer accepted");
    CHECK(strstr(loom_error(), "longer") != NULL, "tiny buffer: %s", loom_error());
    CHECK(loom_idx_find("/nonexistent-loom-dir", "train", img, lab, sizeof img) == LOOM_ERR,
          "missing dir accepted");
    CHECK(strstr(loom_error(), "/nonexistent-loom-dir") != NULL, "missing dir: %s", loom_error());
}

static void test_real(void) {
    const char *dir = "/usr/share/datasets/fashion-mnist";
    struct stat st;
    if (stat(dir, &st) != 0) {
        printf("note: %s absent, real-data checks skipped "
               "(apt-get install dataset-fashion-mnist)\n",
               dir);
        return;
    }
    const char *splits[2] = {"train", "test"};
    const size_t want[2] = {60000, 10000};
    for (int s = 0; s < 2; s++) {
        char ip[512], lp[512];
        loom_idx img, lab;
        if (loom_idx_find(dir, splits[s], ip, lp, sizeof ip) != LOOM_OK ||
            loom_idx_read_pair(ip, lp, &img, &lab) != LOOM_OK) {
            CHECK(0, "real %s: %s", splits[s], loom_error());
            continue;
        }
        CHECK(img.ndim == 3 && img.count == want[s] && img.dims[1] == 28 && img.dims[2] == 28 &&
                  img.item_size == 784,
              "real %s images: %d-d %u x %u x %u", splits[s], img.ndim, img.dims[0], img.dims[1],
              img.dims[2]);
        size_t per_class[10] = {0}, bad = 0;
        for (size_t i = 0; i < lab.count; i++) {
            if (lab.data[i] < 10)
                per_class[lab.data[i]]++;
            else
                bad++;
        }
        CHECK(bad == 0, "real %s: %zu labels >= 10", splits[s], bad);
        for (int c = 0; c < 10; c++)
            CHECK(per_class[c] == want[s] / 10, "real %s: class %d has %zu samples", splits[s], c,
                  per_class[c]);
        printf("  real %-5s %s: %zu x %u x %u, 10 classes of %zu\n", splits[s], ip, img.count,
               img.dims[1], img.dims[2], want[s] / 10);
        loom_idx_free(&img);
        loom_idx_free(&lab);
    }
}

int main(void) {
    if (!t_mkdtemp(tmpdir, sizeof tmpdir, "idx")) return 2;
    test_valid();
    test_bad();
    test_pair();
    test_find();
    test_real();
    if (t_rm_tree(tmpdir) != 0) fprintf(stderr, "note: could not remove %s\n", tmpdir);
    TEST_END();
}

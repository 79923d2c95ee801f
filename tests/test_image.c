/* Image decoding and the image-folder data set. Fixtures are written at run
 * time with libpng and libjpeg directly, with known pixels, so each case's
 * expected values sit next to its check.
 *
 * Expected PNG values (the contract in image.h):
 *   16-bit v          -> round(v * 255 / 65535)
 *   alpha a, value v  -> round(v * a / 255)          (composited on black)
 *   RGB -> gray       -> (19595 R + 38470 G + 7471 B + 32768) >> 16 */
#include "check.h"
#include "io/image.h"
#include "util.h"

#include <loom/dataset.h>
#include <loom/error.h>
#include "io/image.h"

#include <png.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdint.h>
#include <zlib.h>

#include <jpeglib.h>

static char tmpdir[256];
static const char *last; /* the latest fixture's path */

static const char *fixture(const char *name) { return last = t_keep_path(tmpdir, name); }

static void make_dir(const char *rel) { t_mkdir(fixture(rel)); }

typedef struct {
    uint8_t *p;
    size_t n, cap;
} mem;

static void mem_put(mem *m, const void *d, size_t n) {
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
        if (!m->p) exit(2);
    }
    memcpy(m->p + m->n, d, n);
    m->n += n;
}

/* ---- PNG fixtures ------------------------------------------------------------------- */

static void png_put(png_structp png, png_bytep d, size_t n) { mem_put(png_get_io_ptr(png), d, n); }
static void png_noflush(png_structp png) { (void)png; }

/* A PNG in memory. pix holds packed rows as PNG stores them ((w*ch*depth+7)/8
 * bytes each, 16-bit samples big-endian). */
static mem make_png(int w, int h, int ctype, int depth, int interlace, const uint8_t *pix,
                    const png_color *pal, int npal, const uint8_t *trns, int ntrns,
                    const png_color_16 *trns_value) {
    mem m = {0};
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    if (setjmp(png_jmpbuf(png))) {
        fprintf(stderr, "test_image: libpng failed writing a fixture\n");
        exit(2);
    }
    png_set_write_fn(png, &m, png_put, png_noflush);
    png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, ctype,
                 interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (pal) png_set_PLTE(png, info, pal, npal);
    if (trns || trns_value) png_set_tRNS(png, info, trns, ntrns, trns_value);
    png_write_info(png, info);
    int ch = ctype == PNG_COLOR_TYPE_GRAY || ctype == PNG_COLOR_TYPE_PALETTE ? 1
             : ctype == PNG_COLOR_TYPE_GRAY_ALPHA                          ? 2
             : ctype == PNG_COLOR_TYPE_RGB                                 ? 3
                                                                           : 4;
    size_t row = ((size_t)w * (size_t)ch * (size_t)depth + 7) / 8;
    png_bytep *rows = malloc((size_t)h * sizeof *rows);
    for (int y = 0; y < h; y++) rows[y] = (png_bytep)(pix + (size_t)y * row);
    png_write_image(png, rows);
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(rows);
    return m;
}

static uint8_t pat(int x, int y, int k) { return (uint8_t)(x * 37 + y * 11 + k * 71 + (x * y) % 13); }
static int r255(double v) { return (int)floor(v + 0.5); }
static int luma(int r, int g, int b) { return (19595 * r + 38470 * g + 7471 * b + 32768) >> 16; }

/* Decode m (as `name`) with want_c and compare with expect (w*h*c). */
static void check_decode(const char *name, const mem *m, int want_c, int w, int h, int c,
                         const uint8_t *expect) {
    loom_image img;
    loom_clear_error();
    int rc = loom_image_decode(m->p, m->n, name, want_c, &img);
    CHECK(rc == LOOM_OK, "%s want %d: %s", name, want_c, loom_error());
    if (rc) return;
    CHECK(img.w == w && img.h == h && img.c == c, "%s want %d: got %dx%dx%d, expected %dx%dx%d", name,
          want_c, img.w, img.h, img.c, w, h, c);
    if (img.w == w && img.h == h && img.c == c) {
        size_t n = (size_t)w * h * c, bad = 0, first = 0;
        for (size_t i = 0; i < n; i++)
            if (img.data[i] != expect[i] && !bad++) first = i;
        CHECK(bad == 0, "%s want %d: %zu of %zu bytes differ, first [%zu] %d vs %d", name, want_c, bad,
              n, first, img.data[first], expect[first]);
    }
    loom_image_free(&img);
}

/* gray expect (1 channel) -> RGB by replication. */
static uint8_t *rep3(const uint8_t *g, size_t n) {
    uint8_t *o = malloc(n * 3);
    for (size_t i = 0; i < n; i++) o[3 * i] = o[3 * i + 1] = o[3 * i + 2] = g[i];
    return o;
}

static uint8_t *to_gray(const uint8_t *rgb, size_t n) {
    uint8_t *o = malloc(n);
    for (size_t i = 0; i < n; i++) o[i] = (uint8_t)luma(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
    return o;
}

static void test_png_variants(void) {
    enum { W = 13, H = 11 }; /* not multiples of 8: Adam7 passes get ragged */
    size_t n = W * H;
    uint8_t src[W * H * 8], e1[W * H], e3[W * H * 3];

    /* gray 8 */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) src[y * W + x] = pat(x, y, 0);
    mem m = make_png(W, H, PNG_COLOR_TYPE_GRAY, 8, 0, src, NULL, 0, NULL, 0, NULL);
    memcpy(e1, src, n);
    check_decode("gray8.png", &m, 0, W, H, 1, e1);
    uint8_t *t = rep3(e1, n);
    check_decode("gray8.png", &m, 3, W, H, 3, t);
    free(t);
    free(m.p);

    /* gray 1-bit: 0 -> 0, 1 -> 255 */
    memset(src, 0, sizeof src);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int bit = (x + 2 * y) % 3 == 0;
            if (bit) src[y * 2 + x / 8] |= (uint8_t)(0x80 >> (x % 8));
            e1[y * W + x] = bit ? 255 : 0;
        }
    m = make_png(W, H, PNG_COLOR_TYPE_GRAY, 1, 0, src, NULL, 0, NULL, 0, NULL);
    check_decode("gray1.png", &m, 1, W, H, 1, e1);
    free(m.p);

    /* gray 8 with a tRNS value: that value becomes transparent, i.e. black */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            src[y * W + x] = (uint8_t)((x + y) % 4 == 0 ? 77 : 100 + x + y);
            e1[y * W + x] = src[y * W + x] == 77 ? 0 : src[y * W + x];
        }
    png_color_16 tv = {.gray = 77};
    m = make_png(W, H, PNG_COLOR_TYPE_GRAY, 8, 0, src, NULL, 0, NULL, 0, &tv);
    check_decode("gray_trns.png", &m, 0, W, H, 1, e1);
    free(m.p);

    /* gray + alpha */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int v = pat(x, y, 0), a = pat(x, y, 5);
            src[2 * (y * W + x)] = (uint8_t)v;
            src[2 * (y * W + x) + 1] = (uint8_t)a;
            e1[y * W + x] = (uint8_t)r255(v * a / 255.0);
        }
    m = make_png(W, H, PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0, src, NULL, 0, NULL, 0, NULL);
    check_decode("gray_alpha.png", &m, 0, W, H, 1, e1);
    t = rep3(e1, n);
    check_decode("gray_alpha.png", &m, 3, W, H, 3, t);
    free(t);
    free(m.p);

    /* RGB */
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < 3; k++) src[3 * i + k] = pat((int)(i % W), (int)(i / W), k);
    m = make_png(W, H, PNG_COLOR_TYPE_RGB, 8, 0, src, NULL, 0, NULL, 0, NULL);
    check_decode("rgb.png", &m, 0, W, H, 3, src);
    t = to_gray(src, n);
    check_decode("rgb.png", &m, 1, W, H, 1, t);
    free(t);
    free(m.p);

    /* interlaced RGB: the same pixels */
    m = make_png(W, H, PNG_COLOR_TYPE_RGB, 8, 1, src, NULL, 0, NULL, 0, NULL);
    check_decode("interlaced.png", &m, 0, W, H, 3, src);
    free(m.p);

    /* RGBA */
    for (size_t i = 0; i < n; i++) {
        int x = (int)(i % W), y = (int)(i / W), a = pat(x, y, 9);
        if (i % 7 == 0) a = 255;
        if (i % 11 == 0) a = 0;
        src[4 * i + 3] = (uint8_t)a;
        for (int k = 0; k < 3; k++) {
            src[4 * i + k] = pat(x, y, k);
            e3[3 * i + k] = (uint8_t)r255(src[4 * i + k] * a / 255.0);
        }
    }
    m = make_png(W, H, PNG_COLOR_TYPE_RGB_ALPHA, 8, 0, src, NULL, 0, NULL, 0, NULL);
    check_decode("rgba.png", &m, 0, W, H, 3, e3);
    t = to_gray(e3, n);
    check_decode("rgba.png", &m, 1, W, H, 1, t);
    free(t);
    free(m.p);

    /* palette with tRNS for the first 5 of 12 entries; the rest opaque */
    png_color pal[12];
    uint8_t trns[5] = {0, 40, 128, 200, 254};
    for (int i = 0; i < 12; i++) pal[i] = (png_color){(png_byte)(i * 20 + 3), (png_byte)(250 - i * 17), (png_byte)(i * i)};
    for (size_t i = 0; i < n; i++) {
        int idx = (int)((i * 5 + i / W) % 12), a = idx < 5 ? trns[idx] : 255;
        src[i] = (uint8_t)idx;
        e3[3 * i] = (uint8_t)r255(pal[idx].red * a / 255.0);
        e3[3 * i + 1] = (uint8_t)r255(pal[idx].green * a / 255.0);
        e3[3 * i + 2] = (uint8_t)r255(pal[idx].blue * a / 255.0);
    }
    m = make_png(W, H, PNG_COLOR_TYPE_PALETTE, 8, 0, src, pal, 12, trns, 5, NULL);
    check_decode("palette.png", &m, 0, W, H, 3, e3);
    free(m.p);

    /* 16-bit RGB: samples across the whole range, big-endian */
    for (size_t i = 0; i < n * 3; i++) {
        unsigned v = (unsigned)((i * 40503u + 17) % 65536u);
        if (i == 0) v = 65535;
        if (i == 1) v = 0;
        if (i == 2) v = 128; /* 0.498: rounds down */
        if (i == 3) v = 129; /* 0.502: rounds up */
        src[2 * i] = (uint8_t)(v >> 8);
        src[2 * i + 1] = (uint8_t)v;
        e3[i] = (uint8_t)r255(v * 255.0 / 65535.0);
    }
    m = make_png(W, H, PNG_COLOR_TYPE_RGB, 16, 0, src, NULL, 0, NULL, 0, NULL);
    check_decode("rgb16.png", &m, 0, W, H, 3, e3);
    free(m.p);
}

/* ---- JPEG fixtures ----------------------------------------------------------------- */

/* A w x h JPEG in memory from pix (comp channels in space cs). */
static mem make_jpeg(int w, int h, const uint8_t *pix, int comp, J_COLOR_SPACE cs, int quality,
                     int progressive) {
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err); /* a fixture failing may exit(): that is a broken test */
    jpeg_create_compress(&c);
    unsigned char *out = NULL;
    unsigned long outn = 0;
    jpeg_mem_dest(&c, &out, &outn);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = comp;
    c.in_color_space = cs;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, quality, TRUE);
    if (progressive) jpeg_simple_progression(&c);
    jpeg_start_compress(&c, TRUE);
    while (c.next_scanline < c.image_height) {
        JSAMPROW r = (JSAMPROW)(pix + (size_t)c.next_scanline * (size_t)w * (size_t)comp);
        jpeg_write_scanlines(&c, &r, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    mem m = {0};
    mem_put(&m, out, outn);
    free(out);
    return m;
}

static void gradient(uint8_t *p, int w, int h, int c) {
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                p[((size_t)y * w + x) * c + k] = (uint8_t)(k == 0 ? x * 255 / (w - 1)
                                                           : k == 1 ? y * 255 / (h - 1)
                                                                    : (x + y) * 255 / (w + h - 2));
}

/* Decode and compare with src within a mean absolute error. */
static void check_lossy(const char *name, const mem *m, int want_c, int w, int h, int c,
                        const uint8_t *src, double max_mae) {
    loom_image img;
    int rc = loom_image_decode(m->p, m->n, name, want_c, &img);
    CHECK(rc == LOOM_OK, "%s: %s", name, loom_error());
    if (rc) return;
    CHECK(img.w == w && img.h == h && img.c == c, "%s: got %dx%dx%d, expected %dx%dx%d", name, img.w,
          img.h, img.c, w, h, c);
    if (img.w == w && img.h == h && img.c == c) {
        double sum = 0;
        size_t n = (size_t)w * h * c;
        for (size_t i = 0; i < n; i++) sum += fabs((double)img.data[i] - src[i]);
        printf("  %-24s want %d: mean abs error %.3f\n", name, want_c, sum / n);
        CHECK(sum / n < max_mae, "%s want %d: mean abs error %.3f", name, want_c, sum / n);
    }
    loom_image_free(&img);
}

static void test_jpeg_variants(void) {
    enum { W = 64, H = 48 };
    static uint8_t rgb[W * H * 3], gray[W * H], cmyk[W * H * 4];
    gradient(rgb, W, H, 3);
    gradient(gray, W, H, 1);
    gradient(cmyk, W, H, 4);

    mem m = make_jpeg(W, H, rgb, 3, JCS_RGB, 95, 0);
    check_lossy("baseline.jpg", &m, 0, W, H, 3, rgb, 3);
    uint8_t *g = to_gray(rgb, W * H);
    check_lossy("baseline.jpg", &m, 1, W, H, 1, g, 3);
    free(g);
    free(m.p);

    m = make_jpeg(W, H, rgb, 3, JCS_RGB, 95, 1);
    check_lossy("progressive.jpg", &m, 3, W, H, 3, rgb, 3);
    free(m.p);

    m = make_jpeg(W, H, gray, 1, JCS_GRAYSCALE, 95, 0);
    check_lossy("gray.jpg", &m, 0, W, H, 1, gray, 3);
    uint8_t *g3 = rep3(gray, W * H);
    check_lossy("gray.jpg", &m, 3, W, H, 3, g3, 3);
    free(g3);
    free(m.p);

    m = make_jpeg(W, H, cmyk, 4, JCS_CMYK, 95, 0);
    loom_image img;
    int rc = loom_image_decode(m.p, m.n, "cmyk.jpg", 0, &img);
    CHECK(rc == LOOM_ERR && strstr(loom_error(), "cmyk.jpg") &&
              strstr(loom_error(), "CMYK JPEG not supported"),
          "CMYK: rc %d, %s", rc, loom_error());
    CHECK(img.data == NULL && img.w == 0, "CMYK: output not cleared");
    printf("  %-24s -> %s\n", "cmyk.jpg", loom_error());
    free(m.p);
}

/* ---- bad input ------------------------------------------------------------------------ */

/* Loading path must fail, naming the file, with `word` in the message. */
static void expect_fail(const char *path, const char *word) {
    loom_image img;
    memset(&img, 0xab, sizeof img);
    loom_clear_error();
    int rc = loom_image_load(path, 0, &img);
    const char *msg = loom_error();
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    CHECK(rc == LOOM_ERR, "%s: expected failure", base);
    CHECK(img.data == NULL && img.w == 0 && img.h == 0, "%s: output not cleared", base);
    CHECK(strstr(msg, path) != NULL, "%s: message does not name the file: %s", base, msg);
    CHECK(strstr(msg, word) != NULL, "%s: message lacks \"%s\": %s", base, word, msg);
    printf("  %-24s -> %s\n", base, strstr(msg, base) ? strstr(msg, base) : msg);
    if (rc == LOOM_OK) loom_image_free(&img);
}

static void write_mem(const char *name, const uint8_t *p, size_t n) { t_write_file(fixture(name), p, n); }

static uint32_t be32(const uint8_t *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static void put_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Offset of the first PNG chunk of that type (its length field). */
static size_t png_chunk(const mem *m, const char *type) {
    for (size_t at = 8; at + 12 <= m->n; at += 12 + be32(m->p + at))
        if (memcmp(m->p + at + 4, type, 4) == 0) return at;
    fprintf(stderr, "test_image: no %s chunk\n", type);
    exit(2);
}

static void fix_crc(mem *m, size_t chunk) {
    uint32_t len = be32(m->p + chunk);
    uLong crc = crc32(0L, m->p + chunk + 4, len + 4);
    put_be32(m->p + chunk + 8 + len, (uint32_t)crc);
}

/* Offset of a JPEG marker (the 0xFF). */
static size_t jpeg_marker(const mem *m, uint8_t code) {
    for (size_t i = 2; i + 1 < m->n; i++)
        if (m->p[i] == 0xFF && m->p[i + 1] == code) return i;
    fprintf(stderr, "test_image: no marker %02x\n", code);
    exit(2);
}

static void test_bad(void) {
    enum { W = 40, H = 30 };
    static uint8_t rgb[W * H * 3];
    gradient(rgb, W, H, 3);
    for (size_t i = 0; i < sizeof rgb; i += 7) rgb[i] ^= 0x55; /* some texture: a real IDAT */
    mem png = make_png(W, H, PNG_COLOR_TYPE_RGB, 8, 0, rgb, NULL, 0, NULL, 0, NULL);
    mem jpg = make_jpeg(W, H, rgb, 3, JCS_RGB, 90, 0);
    size_t idat = png_chunk(&png, "IDAT");

    /* truncated PNG, cut at several points */
    size_t cuts[] = {3, 8, 20, 33, idat + 20, png.n / 2, png.n - 12, png.n - 1};
    for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
        char name[64];
        snprintf(name, sizeof name, "cut%zu.png", cuts[k]);
        write_mem(name, png.p, cuts[k]);
        expect_fail(last, cuts[k] < 4 ? "not a PNG or JPEG" : "truncated");
    }

    /* bad CRC: the IDAT's stored CRC no longer matches */
    mem b = {0};
    mem_put(&b, png.p, png.n);
    b.p[idat + 8 + be32(png.p + idat)] ^= 0x01;
    write_mem("badcrc.png", b.p, b.n);
    expect_fail(last, "CRC error");
    memcpy(b.p, png.p, png.n);

    /* one byte of IDAT data flipped: zlib or the CRC check notices first */
    b.p[idat + 8 + 10] ^= 0x01;
    write_mem("baddata.png", b.p, b.n);
    expect_fail(last, "corrupt PNG");

    /* the same flip with the CRC made valid: now zlib has to notice */
    fix_crc(&b, idat);
    write_mem("baddeflate.png", b.p, b.n);
    loom_image img;
    int rc = loom_image_load(last, 0, &img);
    if (rc == LOOM_OK) {
        /* a flip inside a literal may still inflate; then it must at least be whole */
        CHECK(img.w == W && img.h == H, "baddeflate.png decoded to %dx%d", img.w, img.h);
        loom_image_free(&img);
    } else {
        CHECK(strstr(loom_error(), "baddeflate.png") != NULL, "message: %s", loom_error());
        printf("  %-24s -> %s\n", "baddeflate.png", strstr(loom_error(), "baddeflate.png"));
    }
    free(b.p);

    write_mem("empty.png", png.p, 0);
    expect_fail(last, "empty");

    const char text[] = "hello, this is not an image\n";
    write_mem("text.jpg", (const uint8_t *)text, sizeof text - 1);
    expect_fail(last, "not a PNG or JPEG");

    /* absurd IHDR sizes, CRC recomputed so only the size is wrong */
    struct {
        uint32_t w, h;
        const char *name, *word;
    } huge[] = {{100000, 100000, "huge.png", "limit"},
                {16000, 16000, "bytes.png", "limit"},       /* 768 MB of RGB */
                {8000, 8000, "implausible.png", "can hold"}, /* 192 MB in a small file */
                {0, 10, "zero.png", "corrupt PNG"}};
    for (size_t k = 0; k < sizeof huge / sizeof huge[0]; k++) {
        mem h = {0};
        mem_put(&h, png.p, png.n);
        put_be32(h.p + 16, huge[k].w);
        put_be32(h.p + 20, huge[k].h);
        fix_crc(&h, 8);
        write_mem(huge[k].name, h.p, h.n);
        expect_fail(last, huge[k].word);
        free(h.p);
    }

    /* truncated JPEG, cut in half and just before EOI */
    write_mem("half.jpg", jpg.p, jpg.n / 2);
    expect_fail(last, "truncated");
    write_mem("noeoi.jpg", jpg.p, jpg.n - 2);
    expect_fail(last, "premature end");

    /* a corrupted marker in the header: DQT's code overwritten */
    mem j = {0};
    mem_put(&j, jpg.p, jpg.n);
    j.p[jpeg_marker(&j, 0xDB) + 1] = 0x4A;
    write_mem("badmarker.jpg", j.p, j.n);
    expect_fail(last, "corrupt JPEG");
    free(j.p);

    /* absurd SOF sizes */
    struct {
        unsigned w, h;
        const char *name, *word;
    } sof[] = {{60000, 60000, "hugesof.jpg", "limit"},
               {9000, 9000, "implausible.jpg", "can hold"}};
    for (size_t k = 0; k < sizeof sof / sizeof sof[0]; k++) {
        mem s = {0};
        mem_put(&s, jpg.p, jpg.n);
        size_t at = jpeg_marker(&s, 0xC0);
        s.p[at + 5] = (uint8_t)(sof[k].h >> 8);
        s.p[at + 6] = (uint8_t)sof[k].h;
        s.p[at + 7] = (uint8_t)(sof[k].w >> 8);
        s.p[at + 8] = (uint8_t)sof[k].w;
        write_mem(sof[k].name, s.p, s.n);
        expect_fail(last, sof[k].word);
        free(s.p);
    }

    expect_fail(fixture("missing.png"), "cannot open");

    rc = loom_image_decode(png.p, png.n, "x.png", 2, &img);
    CHECK(rc == LOOM_ERR && strstr(loom_error(), "x.png"), "want_c 2 accepted: %s", loom_error());

    /* Every proper prefix of either file fails (and cleanly, under ASan). */
    int ok_prefix = 0;
    for (size_t n = 1; n < png.n; n++)
        if (loom_image_decode(png.p, n, "p.png", 0, &img) == LOOM_OK) {
            ok_prefix++;
            loom_image_free(&img);
        }
    for (size_t n = 1; n < jpg.n; n++)
        if (loom_image_decode(jpg.p, n, "p.jpg", 0, &img) == LOOM_OK) {
            ok_prefix++;
            loom_image_free(&img);
        }
    CHECK(ok_prefix == 0, "%d truncated prefixes decoded", ok_prefix);

    /* Random byte damage: anything may happen except a crash, a leak, a
     * message not naming the file, or a "success" without pixels. */
    unsigned long long s = 12345;
    int fails = 0, bad_ok = 0;
    for (int it = 0; it < 600; it++) {
        const mem *src = it % 2 ? &jpg : &png;
        mem d = {0};
        mem_put(&d, src->p, src->n);
        for (int f = 0; f < 1 + it % 4; f++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            size_t at = 2 + (size_t)(s >> 33) % (d.n - 2);
            d.p[at] ^= (uint8_t)(1u << ((s >> 20) % 8));
        }
        loom_clear_error();
        if (loom_image_decode(d.p, d.n, "fuzz", 0, &img) == LOOM_OK) {
            if (!img.data || img.w <= 0 || img.h <= 0 || (img.c != 1 && img.c != 3)) bad_ok++;
            loom_image_free(&img);
        } else {
            fails++;
            if (!strstr(loom_error(), "fuzz")) bad_ok++;
        }
        free(d.p);
    }
    CHECK(bad_ok == 0, "%d damaged files misbehaved", bad_ok);
    printf("  random damage: %d of 600 refused\n", fails);
    free(png.p);
    free(jpg.p);
}

/* ---- saving ---------------------------------------------------------------------------- */

static void test_save(void) {
    enum { W = 21, H = 17 };
    make_dir("save");
    char dir[320];
    snprintf(dir, sizeof dir, "%s/save", tmpdir);
    static uint8_t rgb[W * H * 3], gray[W * H];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 31 + i / 5);
    for (size_t i = 0; i < sizeof gray; i++) gray[i] = (uint8_t)(i * 7);
    loom_image im3 = {W, H, 3, rgb}, im1 = {W, H, 1, gray}, back;

    const char *p = fixture("save/rgb.png");
    CHECK(loom_image_save_png(p, &im3) == LOOM_OK, "save rgb: %s", loom_error());
    CHECK(loom_image_load(p, 0, &back) == LOOM_OK, "load rgb: %s", loom_error());
    CHECK(back.w == W && back.h == H && back.c == 3 && memcmp(back.data, rgb, sizeof rgb) == 0,
          "rgb.png round trip differs");
    loom_image_free(&back);
    /* overwriting goes through the same rename */
    CHECK(loom_image_save_png(p, &im3) == LOOM_OK, "overwrite: %s", loom_error());
    struct stat st;
    CHECK(stat(p, &st) == 0 && (st.st_mode & 0777) == 0644, "mode %o", (unsigned)st.st_mode & 0777);

    p = fixture("save/gray.png");
    CHECK(loom_image_save_png(p, &im1) == LOOM_OK, "save gray: %s", loom_error());
    CHECK(loom_image_load(p, 0, &back) == LOOM_OK, "load gray: %s", loom_error());
    CHECK(back.c == 1 && memcmp(back.data, gray, sizeof gray) == 0, "gray.png round trip differs");
    loom_image_free(&back);

    static uint8_t smooth[64 * 48 * 3];
    gradient(smooth, 64, 48, 3);
    loom_image sm = {64, 48, 3, smooth};
    p = fixture("save/smooth.jpg");
    CHECK(loom_image_save_jpeg(p, &sm, 95) == LOOM_OK, "save jpeg: %s", loom_error());
    CHECK(loom_image_load(p, 0, &back) == LOOM_OK, "load jpeg: %s", loom_error());
    if (back.data) {
        double sum = 0;
        for (size_t i = 0; i < sizeof smooth; i++) sum += fabs((double)back.data[i] - smooth[i]);
        CHECK(back.w == 64 && back.h == 48 && back.c == 3 && sum / sizeof smooth < 3,
              "jpeg round trip: %dx%dx%d, mae %.3f", back.w, back.h, back.c, sum / sizeof smooth);
    }
    loom_image_free(&back);
    CHECK(t_count_entries(dir, NULL) == 3, "save/ holds %d entries (a temporary file left?)",
          t_count_entries(dir, NULL));

    /* failures leave nothing behind and name the path */
    loom_image bad = {W, H, 2, rgb};
    CHECK(loom_image_save_png(fixture("save/bad.png"), &bad) == LOOM_ERR &&
              strstr(loom_error(), "bad.png"),
          "2 channels saved: %s", loom_error());
    CHECK(loom_image_save_jpeg(fixture("save/q.jpg"), &im3, 0) == LOOM_ERR &&
              strstr(loom_error(), "quality"),
          "quality 0 accepted: %s", loom_error());
    char nodir[400];
    snprintf(nodir, sizeof nodir, "%s/no/such/dir/x.png", tmpdir);
    CHECK(loom_image_save_png(nodir, &im3) == LOOM_ERR && strstr(loom_error(), nodir),
          "save into a missing folder: %s", loom_error());
    CHECK(t_count_entries(dir, NULL) == 3, "save/ holds %d entries after failures", t_count_entries(dir, NULL));
}

/* ---- folder data set -------------------------------------------------------------------- */

enum { FW = 8, FH = 6 }; /* the folder set's image size */

/* Several threads read every sample at once and must see the serial bytes. */
typedef struct {
    loom_dataset *ds;
    int id, bad;
    uint8_t (*ref)[FW * FH * 3];
} worker;

static void *work(void *arg) {
    worker *w = arg;
    uint8_t px[FW * FH * 3];
    for (int rep = 0; rep < 20; rep++)
        for (size_t i = 0; i < w->ds->count; i++) {
            size_t k = (i + (size_t)w->id + (size_t)rep) % w->ds->count;
            int32_t lab;
            if (loom_dataset_get(w->ds, k, px, &lab) != LOOM_OK || memcmp(px, w->ref[k], sizeof px))
                w->bad++;
        }
    return NULL;
}

static void folder_threads(loom_dataset *ds, uint8_t (*ref)[FW * FH * 3]) {
    pthread_t t[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){ds, i, 0, ref};
        pthread_create(&t[i], NULL, work, &w[i]);
    }
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        bad += w[i].bad;
    }
    CHECK(bad == 0, "%d concurrent gets failed or differed", bad);
}

static void put(const char *rel, const mem *m) { t_write_file(fixture(rel), m->p, m->n); }

static void test_folder(void) {
    enum { W = FW, H = FH };
    static uint8_t rgb[W * H * 3], other[W * H * 3], g[W * H], checker[3 * W * 3 * H * 3];
    for (size_t i = 0; i < sizeof rgb; i++) rgb[i] = (uint8_t)(i * 13 + 5);
    for (size_t i = 0; i < sizeof other; i++) other[i] = (uint8_t)(250 - i);
    for (size_t i = 0; i < sizeof g; i++) g[i] = (uint8_t)(i * 5);
    /* 1-pixel checkerboard at 3x the size: sampling it would give 0 or 255,
     * area averaging gives gray */
    for (int y = 0; y < 3 * H; y++)
        for (int x = 0; x < 3 * W; x++)
            for (int k = 0; k < 3; k++) checker[((size_t)y * 3 * W + x) * 3 + k] = (x + y) % 2 ? 255 : 0;
    uint8_t flat[W / 2 * H / 2 * 3];
    memset(flat, 200, sizeof flat);
    static uint8_t smooth[W * H * 3];
    gradient(smooth, W, H, 3);

    mem m_rgb = make_png(W, H, PNG_COLOR_TYPE_RGB, 8, 0, rgb, NULL, 0, NULL, 0, NULL);
    mem m_other = make_png(W, H, PNG_COLOR_TYPE_RGB, 8, 0, other, NULL, 0, NULL, 0, NULL);
    mem m_gray = make_png(W, H, PNG_COLOR_TYPE_GRAY, 8, 0, g, NULL, 0, NULL, 0, NULL);
    mem m_check = make_png(3 * W, 3 * H, PNG_COLOR_TYPE_RGB, 8, 0, checker, NULL, 0, NULL, 0, NULL);
    mem m_flat = make_png(W / 2, H / 2, PNG_COLOR_TYPE_RGB, 8, 0, flat, NULL, 0, NULL, 0, NULL);
    mem m_jpg = make_jpeg(W, H, smooth, 3, JCS_RGB, 95, 0);

    /* classes made out of order; strcmp puts "Bird" before "ant" */
    make_dir("ds");
    make_dir("ds/cat");
    make_dir("ds/ant");
    make_dir("ds/Bird");
    put("ds/cat/c2.png", &m_gray);
    put("ds/cat/c1.png", &m_check);
    put("ds/cat/c3.png", &m_flat);
    put("ds/ant/a2.JPG", &m_jpg);
    put("ds/ant/a1.png", &m_other);
    put("ds/Bird/b1.PNG", &m_rgb);
    put("ds/Bird/b2.jpeg", &m_jpg);
    put("ds/Bird/notes.txt", &m_jpg);
    put("ds/Bird/.hidden.png", &m_jpg);
    char root[320];
    snprintf(root, sizeof root, "%s/ds", tmpdir);

    /* c1.png is larger than the first image: without a size asked for, an error, not a silent resize */
    loom_dataset *strict = loom_dataset_open_folder(root, NULL);
    CHECK(strict != NULL, "open %s: %s", root, loom_error());
    if (strict) {
        static uint8_t one[W * H * 3];
        int32_t lab;
        CHECK(loom_dataset_get(strict, 4, one, &lab) == LOOM_ERR && strstr(loom_error(), "c1.png is") &&
                  strstr(loom_error(), "unlike the first image of the set (6x8)"),
              "an image of another size, no size asked for: %s", loom_error());
        loom_dataset_free(strict);
    }
    loom_dataset *ds = loom_dataset_open_folder(root, &(loom_dataset_opts){.height = H, .width = W});
    CHECK(ds != NULL, "open %s: %s", root, loom_error());
    if (ds) {
        CHECK(strcmp(ds->format, "folder") == 0, "format %s", ds->format);
        CHECK(ds->count == 7, "count %zu", ds->count);
        CHECK(ds->num_classes == 3 && ds->labeled == 1, "%d classes, labeled %d", ds->num_classes,
              ds->labeled);
        const char *want[] = {"Bird", "ant", "cat"};
        for (int k = 0; k < 3 && k < ds->num_classes; k++)
            CHECK(strcmp(ds->class_names[k], want[k]) == 0, "class %d is %s", k, ds->class_names[k]);
        CHECK(ds->c == 3 && ds->h == H && ds->w == W, "shape %dx%dx%d", ds->h, ds->w, ds->c);
        int32_t want_lab[] = {0, 0, 1, 1, 2, 2, 2};
        const char *want_file[] = {"Bird/b1.PNG", "Bird/b2.jpeg", "ant/a1.png", "ant/a2.JPG",
                                   "cat/c1.png", "cat/c2.png", "cat/c3.png"};
        static uint8_t px[7][W * H * 3];
        for (size_t i = 0; i < ds->count && i < 7; i++) {
            int32_t lab = -9;
            int rc = loom_dataset_get(ds, i, px[i], &lab);
            CHECK(rc == LOOM_OK, "get %zu: %s", i, loom_error());
            CHECK(lab == want_lab[i], "label %zu = %d", i, lab);
            char d[600], e[600];
            loom_dataset_describe(ds, i, d, sizeof d);
            snprintf(e, sizeof e, "%s/%s", root, want_file[i]);
            CHECK(strcmp(d, e) == 0, "describe %zu: %s", i, d);
        }
        CHECK(memcmp(px[0], rgb, sizeof rgb) == 0, "b1.PNG pixels differ");
        CHECK(memcmp(px[2], other, sizeof other) == 0, "a1.png pixels differ");
        loom_image dj;
        CHECK(loom_image_decode(m_jpg.p, m_jpg.n, "a2.JPG", 3, &dj) == LOOM_OK, "%s", loom_error());
        CHECK(dj.data && memcmp(px[3], dj.data, sizeof px[3]) == 0, "a2.JPG: not what the decoder gives");
        loom_image_free(&dj);
        int lo = 255, hi = 0;
        for (int y = 1; y < H - 1; y++)
            for (int x = 1; x < W - 1; x++)
                for (int k = 0; k < 3; k++) {
                    int v = px[4][(y * W + x) * 3 + k];
                    lo = v < lo ? v : lo;
                    hi = v > hi ? v : hi;
                }
        CHECK(lo >= 115 && hi <= 140, "checkerboard shrunk 3x: interior %d..%d, expected ~128", lo, hi);
        int gray_ok = 1, flat_ok = 1;
        for (int i = 0; i < W * H; i++) {
            for (int k = 0; k < 3; k++) gray_ok &= px[5][i * 3 + k] == g[i];
            for (int k = 0; k < 3; k++) flat_ok &= px[6][i * 3 + k] == 200;
        }
        CHECK(gray_ok, "c2.png: gray not replicated to RGB");
        CHECK(flat_ok, "c3.png: a flat image enlarged 2x is not flat 200");

        folder_threads(ds, px);
        loom_dataset_free(ds);
    }

    loom_dataset_opts o = {.channels = 1, .height = 3, .width = 4};
    ds = loom_dataset_open_folder(root, &o);
    CHECK(ds && ds->c == 1 && ds->h == 3 && ds->w == 4, "opts: %s", ds ? "wrong shape" : loom_error());
    if (ds) {
        uint8_t px[12];
        int32_t lab;
        CHECK(loom_dataset_get(ds, 5, px, &lab) == LOOM_OK && lab == 2, "get gray: %s", loom_error());
        loom_dataset_free(ds);
    }
    o = (loom_dataset_opts){.channels = 2};
    ds = loom_dataset_open_folder(root, &o);
    CHECK(!ds && strstr(loom_error(), root), "2 channels accepted: %s", loom_error());
    loom_dataset_free(ds);
    o = (loom_dataset_opts){.height = 5};
    ds = loom_dataset_open_folder(root, &o);
    CHECK(!ds && strstr(loom_error(), "width"), "height without width accepted: %s", loom_error());
    loom_dataset_free(ds);

    /* Kaggle Intel: intel/seg_train/seg_train/<class>; the wrapper is skipped */
    make_dir("intel");
    make_dir("intel/seg_train");
    make_dir("intel/seg_train/seg_train");
    make_dir("intel/seg_train/seg_train/forest");
    make_dir("intel/seg_train/seg_train/buildings");
    put("intel/seg_train/seg_train/forest/10.jpg", &m_jpg);
    put("intel/seg_train/seg_train/forest/2.jpg", &m_jpg);
    put("intel/seg_train/seg_train/buildings/7.jpg", &m_jpg);
    snprintf(root, sizeof root, "%s/intel/seg_train/", tmpdir);
    ds = loom_dataset_open(root, NULL);
    CHECK(ds != NULL, "open intel: %s", loom_error());
    if (ds) {
        CHECK(ds->count == 3 && ds->num_classes == 2 && strcmp(ds->class_names[0], "buildings") == 0 &&
                  strcmp(ds->class_names[1], "forest") == 0,
              "intel: %zu samples, %d classes", ds->count, ds->num_classes);
        char d[600], e[600];
        loom_dataset_describe(ds, 1, d, sizeof d);
        snprintf(e, sizeof e, "%s/intel/seg_train/seg_train/forest/10.jpg", tmpdir);
        CHECK(strcmp(d, e) == 0, "intel describe: %s", d);
        loom_dataset_free(ds);
    }

    /* errors */
    make_dir("empty");
    snprintf(root, sizeof root, "%s/empty", tmpdir);
    ds = loom_dataset_open_folder(root, NULL);
    CHECK(!ds && strstr(loom_error(), root) && strstr(loom_error(), "empty folder"), "empty: %s",
          loom_error());
    printf("  %-24s -> %s\n", "empty folder", loom_error());

    make_dir("flat");
    put("flat/a.png", &m_rgb);
    snprintf(root, sizeof root, "%s/flat", tmpdir);
    ds = loom_dataset_open_folder(root, NULL);
    CHECK(!ds && strstr(loom_error(), root) && strstr(loom_error(), "no class folders"),
          "no classes: %s", loom_error());
    printf("  %-24s -> %s\n", "no class folders", loom_error());

    make_dir("noimg");
    make_dir("noimg/good");
    make_dir("noimg/lonely");
    put("noimg/good/x.png", &m_rgb);
    put("noimg/lonely/readme.txt", &m_rgb);
    snprintf(root, sizeof root, "%s/noimg", tmpdir);
    ds = loom_dataset_open_folder(root, NULL);
    CHECK(!ds && strstr(loom_error(), "lonely") && strstr(loom_error(), "no .png"),
          "class without images: %s", loom_error());
    printf("  %-24s -> %s\n", "class without images", loom_error());

    snprintf(root, sizeof root, "%s/nowhere", tmpdir);
    ds = loom_dataset_open_folder(root, NULL);
    CHECK(!ds && strstr(loom_error(), root), "missing folder: %s", loom_error());

    /* a damaged file opens (only the first image is read) but get() names it */
    make_dir("broken");
    make_dir("broken/a");
    put("broken/a/1.png", &m_rgb);
    t_write_file(fixture("broken/a/2.png"), m_rgb.p, m_rgb.n / 2);
    snprintf(root, sizeof root, "%s/broken", tmpdir);
    ds = loom_dataset_open_folder(root, NULL);
    CHECK(ds != NULL, "open broken: %s", loom_error());
    if (ds) {
        uint8_t px[W * H * 3];
        int32_t lab;
        CHECK(loom_dataset_get(ds, 0, px, &lab) == LOOM_OK, "get good: %s", loom_error());
        CHECK(loom_dataset_get(ds, 1, px, &lab) == LOOM_ERR && strstr(loom_error(), "broken/a/2.png") &&
                  strstr(loom_error(), "truncated"),
              "get broken: %s", loom_error());
        printf("  %-24s -> %s\n", "get() of a cut file", strstr(loom_error(), "broken/"));
        loom_dataset_free(ds);
    }

    free(m_rgb.p);
    free(m_other.p);
    free(m_gray.p);
    free(m_check.p);
    free(m_flat.p);
    free(m_jpg.p);
}

int main(void) {
    if (!t_mkdtemp(tmpdir, sizeof tmpdir, "image")) return 2;
    printf("png variants\n");
    test_png_variants();
    printf("jpeg variants\n");
    test_jpeg_variants();
    printf("bad input\n");
    test_bad();
    printf("saving\n");
    test_save();
    printf("folders\n");
    test_folder();
    if (t_rm_tree(tmpdir) != 0) fprintf(stderr, "note: could not remove %s\n", tmpdir);
    TEST_END();
}

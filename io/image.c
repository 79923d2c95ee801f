/* PNG and JPEG files <-> uint8 HWC. libpng and libjpeg report errors through
 * callbacks whose defaults print to stderr and (libjpeg) exit(), so each gets
 * hooks that record the reason and longjmp back. Every setjmp sits in a small
 * *_run function whose state lives in a job struct owned by its caller: no
 * local of the function holding the setjmp is used after a longjmp, so none
 * can be clobbered, and the caller frees whatever the job holds either way. */
#include "io/image.h"

#include "io/atomic.h"
#include "loom/error.h"

#include <errno.h>
#include <fcntl.h>
#include <png.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* jpeglib.h needs size_t and FILE declared before it. */
#include <jpeglib.h>
#include <jerror.h>

/* An image file larger than this is not something we would train on, and the
 * whole file is read into memory. */
#define FILE_MAX ((size_t)1 << 30)

/* deflate cannot inflate data by more than about 1032:1, so a PNG whose
 * header claims more pixels than that could hold is lying. */
#define DEFLATE_MAX_RATIO 1032

/* ---- shared ----------------------------------------------------------------- */

/* The output limits, checked before anything the size of the image is allocated. */
static int check_dims(const char *name, unsigned long w, unsigned long h, int c) {
    if (w == 0 || h == 0) return loom_fail(LOOM_EFORMAT, "%s: image is %lux%lu (empty)", name, w, h);
    if (w > LOOM_IMAGE_MAX_SIDE || h > LOOM_IMAGE_MAX_SIDE)
        return loom_fail(LOOM_EUNSUPPORTED, "%s: image is %lux%lu, larger than the %dx%d limit", name, w, h,
                              LOOM_IMAGE_MAX_SIDE, LOOM_IMAGE_MAX_SIDE);
    size_t bytes = (size_t)w * h * (size_t)c;
    if (bytes > LOOM_IMAGE_MAX_BYTES)
        return loom_fail(LOOM_EUNSUPPORTED, "%s: image is %lux%lu with %d channels = %zu bytes, over the "
                              "%zu MiB limit",
                              name, w, h, c, bytes, LOOM_IMAGE_MAX_BYTES >> 20);
    return LOOM_OK;
}

static uint8_t luma(unsigned r, unsigned g, unsigned b) {
    return (uint8_t)((19595u * r + 38470u * g + 7471u * b + 32768u) >> 16);
}

/* n pixels of sc channels (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA) to dc (1 or 3). */
static void convert(const uint8_t *s, int sc, uint8_t *d, int dc, size_t n) {
    for (size_t i = 0; i < n; i++, s += sc, d += dc) {
        unsigned r, g, b;
        if (sc <= 2) {
            r = g = b = s[0];
        } else {
            r = s[0];
            g = s[1];
            b = s[2];
        }
        if (sc == 2 || sc == 4) {
            unsigned a = s[sc - 1];
            /* v*a/255 is never exactly k + 1/2, so +127 rounds it exactly. */
            r = (r * a + 127) / 255;
            g = (g * a + 127) / 255;
            b = (b * a + 127) / 255;
        }
        if (dc == 1) {
            d[0] = sc <= 2 ? (uint8_t)r : luma(r, g, b);
        } else {
            d[0] = (uint8_t)r;
            d[1] = (uint8_t)g;
            d[2] = (uint8_t)b;
        }
    }
}

/* ---- PNG ---------------------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *what;  /* "corrupt PNG" or "cannot write PNG" */
    int reported;      /* loom_error() already holds the reason */
} png_err;

static void png_on_error(png_structp png, png_const_charp msg) {
    png_err *e = png_get_error_ptr(png);
    if (!e->reported) loom_fail(LOOM_EFORMAT, "%s: %s: %s", e->name, e->what, msg);
    png_longjmp(png, 1);
}

/* libpng warns about harmless quirks (odd sRGB profiles are common in web
 * images); printing them from loader threads would only be noise. */
static void png_on_warning(png_structp png, png_const_charp msg) {
    (void)png;
    (void)msg;
}

typedef struct {
    png_err err;  /* first: the error pointer is the job */
    const uint8_t *buf;
    size_t len, pos;
    png_structp png;
    png_infop info;
    uint8_t *pix;  /* nc channels per pixel */
    png_bytep *rows;
    unsigned w, h;
    int nc, oc;
} png_job;

static void png_on_read(png_structp png, png_bytep dst, size_t n) {
    png_job *j = png_get_io_ptr(png);
    if (n > j->len - j->pos) {
        loom_fail(LOOM_EFORMAT, "%s: truncated PNG: the file ends after %zu bytes with data still "
                       "expected",
                       j->err.name, j->len);
        j->err.reported = 1;
        png_error(png, "truncated");
    }
    memcpy(dst, j->buf + j->pos, n);
    j->pos += n;
}

static int png_run(png_job *j, int want_c) {
    if (setjmp(png_jmpbuf(j->png))) return LOOM_ERR;
    png_set_read_fn(j->png, j, png_on_read);
    png_read_info(j->png, j->info);
    png_uint_32 w, h;
    int depth, ctype, interlace;
    png_get_IHDR(j->png, j->info, &w, &h, &depth, &ctype, &interlace, NULL, NULL);
    j->oc = want_c ? want_c : (ctype & PNG_COLOR_MASK_COLOR) ? 3 : 1;
    if (check_dims(j->err.name, w, h, j->oc)) return LOOM_ERR;
    unsigned long long raw =
        (unsigned long long)h *
        (((unsigned long long)w * png_get_channels(j->png, j->info) * (unsigned)depth + 7) / 8 + 1);
    if (raw / DEFLATE_MAX_RATIO > j->len)
        return loom_fail(LOOM_EFORMAT, "%s: PNG header claims %lux%lu pixels (%llu bytes inflated), more "
                              "than a %zu-byte file can hold",
                              j->err.name, (unsigned long)w, (unsigned long)h, raw, j->len);

    png_set_expand(j->png);  /* palette -> RGB, 1/2/4-bit gray -> 8, tRNS -> alpha */
    if (depth == 16) png_set_scale_16(j->png);  /* rounds, where strip_16 truncates */
    png_set_interlace_handling(j->png);
    png_read_update_info(j->png, j->info);
    j->nc = png_get_channels(j->png, j->info);
    if (png_get_rowbytes(j->png, j->info) != (size_t)w * (size_t)j->nc)
        return loom_fail(LOOM_EFORMAT, "%s: PNG rows are %zu bytes after conversion, expected %zu",
                              j->err.name, png_get_rowbytes(j->png, j->info),
                              (size_t)w * (size_t)j->nc);
    j->w = w;
    j->h = h;
    size_t row = (size_t)w * (size_t)j->nc;
    j->pix = malloc(row * h);
    j->rows = malloc(h * sizeof *j->rows);
    if (!j->pix || !j->rows)
        return loom_fail(LOOM_ENOMEM, "%s: out of memory for a %lux%lu image", j->err.name,
                              (unsigned long)w, (unsigned long)h);
    for (size_t y = 0; y < h; y++) j->rows[y] = j->pix + y * row;
    png_read_image(j->png, j->rows);
    /* Reading on to IEND makes a file cut after its pixel data an error too. */
    png_read_end(j->png, NULL);
    return LOOM_OK;
}

static int decode_png(const uint8_t *buf, size_t len, const char *name, int want_c,
                      loom_image *out) {
    png_job j;
    memset(&j, 0, sizeof j);
    j.err.name = name;
    j.err.what = "corrupt PNG";
    j.buf = buf;
    j.len = len;
    j.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &j.err, png_on_error, png_on_warning);
    if (j.png) j.info = png_create_info_struct(j.png);
    if (!j.png || !j.info) {
        png_destroy_read_struct(&j.png, NULL, NULL);
        return loom_fail(LOOM_ENOMEM, "%s: out of memory for the PNG decoder", name);
    }
    int rc = png_run(&j, want_c);
    png_destroy_read_struct(&j.png, &j.info, NULL);
    free(j.rows);
    if (rc != LOOM_OK) {
        free(j.pix);
        return LOOM_ERR;
    }
    size_t n = (size_t)j.w * j.h;
    if (j.nc != j.oc) {
        uint8_t *o = malloc(n * (size_t)j.oc);
        if (!o) {
            free(j.pix);
            return loom_fail(LOOM_ENOMEM, "%s: out of memory for a %ux%u image", name, j.w, j.h);
        }
        convert(j.pix, j.nc, o, j.oc, n);
        free(j.pix);
        j.pix = o;
    }
    out->w = (int)j.w;
    out->h = (int)j.h;
    out->c = j.oc;
    out->data = j.pix;
    return LOOM_OK;
}

/* ---- JPEG --------------------------------------------------------------------- */

typedef struct {
    struct jpeg_error_mgr pub;  /* first: libjpeg hands back a pointer to it */
    jmp_buf jb;
    const char *name;
    const char *what;           /* "corrupt JPEG" or "cannot write JPEG" */
} jpg_err;

static void jpg_on_error(j_common_ptr c) {
    jpg_err *e = (jpg_err *)c->err;
    char msg[JMSG_LENGTH_MAX];
    c->err->format_message(c, msg);
    loom_fail(LOOM_EFORMAT, "%s: %s: %s", e->name, e->what, msg);
    longjmp(e->jb, 1);
}

/* libjpeg's answer to missing data is a warning and a gray-filled image, which
 * would silently poison a training set; those warnings fail the decode. The
 * rest (extraneous bytes between markers, unknown JFIF versions, ...) are
 * common in files that decode fine, so they are dropped, not printed. */
static void jpg_on_message(j_common_ptr c, int level) {
    if (level >= 0) return;  /* trace output */
    jpg_err *e = (jpg_err *)c->err;
    int code = c->err->msg_code;
    c->err->num_warnings++;
    if (code == JWRN_JPEG_EOF) {
        loom_fail(LOOM_EFORMAT, "%s: truncated JPEG: the file ends before the image is complete "
                       "(premature end of data)",
                       e->name);
        longjmp(e->jb, 1);
    }
    if (code == JWRN_HIT_MARKER || code == JWRN_HUFF_BAD_CODE || code == JWRN_ARITH_BAD_CODE ||
        code == JWRN_MUST_RESYNC) {
        char msg[JMSG_LENGTH_MAX];
        c->err->format_message(c, msg);
        loom_fail(LOOM_EFORMAT, "%s: corrupt JPEG: %s", e->name, msg);
        longjmp(e->jb, 1);
    }
}

static void jpg_silent(j_common_ptr c) { (void)c; }

static void jpg_err_init(jpg_err *e, const char *name, const char *what) {
    jpeg_std_error(&e->pub);
    e->pub.error_exit = jpg_on_error;
    e->pub.emit_message = jpg_on_message;
    e->pub.output_message = jpg_silent;
    e->name = name;
    e->what = what;
}

typedef struct {
    jpg_err err;
    struct jpeg_decompress_struct d;
    const uint8_t *buf;
    size_t len;
    uint8_t *pix;
    size_t cap;
} jpg_job;

static int jpg_run(jpg_job *j, int want_c) {
    struct jpeg_decompress_struct *d = &j->d;
    const char *name = j->err.name;
    if (setjmp(j->err.jb)) return LOOM_ERR;
    /* Inside the setjmp: creating can fail (out of memory) through error_exit. */
    jpeg_create_decompress(d);
    jpeg_mem_src(d, j->buf, (unsigned long)j->len);
    jpeg_read_header(d, TRUE);
    if (d->jpeg_color_space == JCS_CMYK || d->jpeg_color_space == JCS_YCCK)
        return loom_fail(LOOM_EUNSUPPORTED, "%s: CMYK JPEG not supported (convert it to RGB)", name);
    int c = want_c ? want_c : d->jpeg_color_space == JCS_GRAYSCALE ? 1 : 3;
    d->out_color_space = c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    if (check_dims(name, d->image_width, d->image_height, c)) return LOOM_ERR;
    /* A Huffman-coded scan spends at least one bit on every block, so a header
     * claiming more MCUs than the file has bits is lying. Arithmetic coding
     * has no such floor; there the output buffer grows only as rows arrive. */
    if (!d->arith_code) {
        int mh = 1, mv = 1;
        for (int i = 0; i < d->num_components; i++) {
            if (d->comp_info[i].h_samp_factor > mh) mh = d->comp_info[i].h_samp_factor;
            if (d->comp_info[i].v_samp_factor > mv) mv = d->comp_info[i].v_samp_factor;
        }
        unsigned long long mcus =
            (unsigned long long)((d->image_width + 8u * (unsigned)mh - 1) / (8u * (unsigned)mh)) *
            ((d->image_height + 8u * (unsigned)mv - 1) / (8u * (unsigned)mv));
        if (mcus / 8 > j->len)
            return loom_fail(LOOM_EFORMAT, "%s: JPEG header claims %ux%u pixels, more than a %zu-byte file "
                                  "can hold",
                                  name, d->image_width, d->image_height, j->len);
    }
    jpeg_start_decompress(d);
    size_t row = (size_t)d->output_width * (size_t)d->output_components;
    size_t need = row * d->output_height;
    size_t first = (size_t)4 << 20;
    if (first < j->len * 32) first = j->len * 32;
    j->cap = need < first ? need : first;
    j->pix = malloc(j->cap);
    if (!j->pix) return loom_fail(LOOM_ENOMEM, "%s: out of memory for %zu bytes", name, j->cap);
    while (d->output_scanline < d->output_height) {
        size_t at = (size_t)d->output_scanline * row;
        if (at + row > j->cap) {
            size_t ncap = j->cap > need / 2 ? need : j->cap * 2;
            uint8_t *p = realloc(j->pix, ncap);
            if (!p) return loom_fail(LOOM_ENOMEM, "%s: out of memory for %zu bytes", name, ncap);
            j->pix = p;
            j->cap = ncap;
        }
        JSAMPROW rows[8];
        JDIMENSION n = 0;
        while (n < 8 && d->output_scanline + n < d->output_height && at + (n + 1) * row <= j->cap) {
            rows[n] = j->pix + at + n * row;
            n++;
        }
        jpeg_read_scanlines(d, rows, n);
    }
    /* On to EOI: a file cut after the last scan line is still truncated. */
    jpeg_finish_decompress(d);
    return LOOM_OK;
}

static int decode_jpeg(const uint8_t *buf, size_t len, const char *name, int want_c,
                       loom_image *out) {
    jpg_job j;
    memset(&j, 0, sizeof j);
    jpg_err_init(&j.err, name, "corrupt JPEG");
    j.d.err = &j.err.pub;
    j.buf = buf;
    j.len = len;
    int rc = jpg_run(&j, want_c);
    int w = (int)j.d.output_width, h = (int)j.d.output_height, c = j.d.output_components;
    jpeg_destroy_decompress(&j.d);  /* a no-op if creating failed */
    if (rc != LOOM_OK) {
        free(j.pix);
        return LOOM_ERR;
    }
    out->w = w;
    out->h = h;
    out->c = c;
    out->data = j.pix;
    return LOOM_OK;
}

/* ---- entry points ---------------------------------------------------------------- */

int loom_image_decode(const uint8_t *buf, size_t len, const char *name, int want_c,
                      loom_image *out) {
    memset(out, 0, sizeof *out);
    if (!name) name = "(image)";
    if (want_c != 0 && want_c != 1 && want_c != 3)
        return loom_fail(LOOM_EINVAL, "%s: cannot decode to %d channels (want 0, 1 or 3)", name, want_c);
    if (len == 0) return loom_fail(LOOM_EFORMAT, "%s: empty file (0 bytes; expected a PNG or JPEG image)", name);
    if (len >= 4 && memcmp(buf, "\x89PNG", 4) == 0)
        return decode_png(buf, len, name, want_c, out);
    if (len >= 3 && buf[0] == 0xFF && buf[1] == 0xD8 && buf[2] == 0xFF)
        return decode_jpeg(buf, len, name, want_c, out);
    char hex[40], txt[16];
    size_t n = len < 8 ? len : 8, k = 0, t = 0;
    int printable = 1;
    for (size_t i = 0; i < n; i++) {
        k += (size_t)snprintf(hex + k, sizeof hex - k, "%s%02x", i ? " " : "", buf[i]);
        if (buf[i] < 0x20 || buf[i] > 0x7e) printable = 0;
        txt[t++] = (char)buf[i];
    }
    txt[t] = 0;
    return loom_fail(LOOM_EFORMAT, "%s: not a PNG or JPEG file (starts with %s%s%s%s)", name, hex,
                          printable ? ", \"" : "", printable ? txt : "", printable ? "\"" : "");
}

int loom_image_load(const char *path, int want_c, loom_image *out) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return loom_fail(LOOM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return loom_fail(LOOM_EIO, "%s: not a regular file", path);
    }
    size_t size = (size_t)st.st_size;
    if ((unsigned long long)st.st_size > FILE_MAX) {
        close(fd);
        return loom_fail(LOOM_EUNSUPPORTED, "%s: %lld bytes is too large for an image file (limit %zu MiB)", path,
                              (long long)st.st_size, FILE_MAX >> 20);
    }
    if (size == 0) {
        close(fd);
        return loom_fail(LOOM_EFORMAT, "%s: empty file (0 bytes; expected a PNG or JPEG image)", path);
    }
    uint8_t *buf = malloc(size);
    if (!buf) {
        close(fd);
        return loom_fail(LOOM_ENOMEM, "%s: out of memory for %zu bytes", path, size);
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            int e = errno;
            free(buf);
            close(fd);
            return loom_fail(LOOM_EIO, "%s: byte %zu: read error: %s", path, got, strerror(e));
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    close(fd);
    int rc = got < size ? loom_fail(LOOM_EFORMAT, "%s: file shrank while being read", path)
                        : loom_image_decode(buf, size, path, want_c, out);
    free(buf);
    return rc;
}

void loom_image_free(loom_image *img) {
    if (!img) return;
    free(img->data);
    memset(img, 0, sizeof *img);
}

/* ---- saving ---------------------------------------------------------------------- */

typedef struct {
    png_err err;
    png_structp png;
    png_infop info;
} png_wjob;

static int png_write_run(png_wjob *j, FILE *f, const loom_image *img) {
    if (setjmp(png_jmpbuf(j->png))) return LOOM_ERR;
    png_init_io(j->png, f);
    png_set_IHDR(j->png, j->info, (png_uint_32)img->w, (png_uint_32)img->h, 8,
                 img->c == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE,
                 PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(j->png, j->info);
    size_t row = (size_t)img->w * (size_t)img->c;
    for (int y = 0; y < img->h; y++) png_write_row(j->png, img->data + (size_t)y * row);
    png_write_end(j->png, NULL);
    return LOOM_OK;
}

static int write_png(FILE *f, const char *path, const loom_image *img, int quality) {
    (void)quality;
    png_wjob j;
    memset(&j, 0, sizeof j);
    j.err.name = path;
    j.err.what = "cannot write PNG";
    j.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &j.err, png_on_error, png_on_warning);
    if (j.png) j.info = png_create_info_struct(j.png);
    if (!j.png || !j.info) {
        png_destroy_write_struct(&j.png, NULL);
        return loom_fail(LOOM_ENOMEM, "%s: out of memory for the PNG encoder", path);
    }
    int rc = png_write_run(&j, f, img);
    png_destroy_write_struct(&j.png, &j.info);
    return rc;
}

typedef struct {
    jpg_err err;
    struct jpeg_compress_struct c;
} jpg_wjob;

static int jpg_write_run(jpg_wjob *j, FILE *f, const loom_image *img, int quality) {
    struct jpeg_compress_struct *c = &j->c;
    if (setjmp(j->err.jb)) return LOOM_ERR;
    jpeg_create_compress(c);
    jpeg_stdio_dest(c, f);
    c->image_width = (JDIMENSION)img->w;
    c->image_height = (JDIMENSION)img->h;
    c->input_components = img->c;
    c->in_color_space = img->c == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(c);
    jpeg_set_quality(c, quality, TRUE);
    jpeg_start_compress(c, TRUE);
    size_t row = (size_t)img->w * (size_t)img->c;
    while (c->next_scanline < c->image_height) {
        /* libjpeg's row type is not const, but it only reads input rows. */
        JSAMPROW r = (JSAMPROW)(img->data + (size_t)c->next_scanline * row);
        jpeg_write_scanlines(c, &r, 1);
    }
    jpeg_finish_compress(c);
    return LOOM_OK;
}

static int write_jpeg(FILE *f, const char *path, const loom_image *img, int quality) {
    jpg_wjob j;
    memset(&j, 0, sizeof j);
    jpg_err_init(&j.err, path, "cannot write JPEG");
    j.c.err = &j.err.pub;
    int rc = jpg_write_run(&j, f, img, quality);
    jpeg_destroy_compress(&j.c);
    return rc;
}

typedef int (*encode_fn)(FILE *f, const char *path, const loom_image *img, int quality);

typedef struct {
    const char *path;
    const loom_image *img;
    int quality;
    encode_fn encode;
} save_job;

static int save_write(FILE *f, void *ctx) {
    const save_job *j = ctx;
    return j->encode(f, j->path, j->img, j->quality);
}

/* The image is checked first, so a bad one never gets a temporary file. */
static int save_atomic(const char *path, const loom_image *img, int quality, encode_fn encode) {
    if (!img || !img->data || img->w <= 0 || img->h <= 0 || (img->c != 1 && img->c != 3))
        return loom_fail(LOOM_EINVAL, "%s: cannot save an image of %dx%d with %d channels (want 1 or 3)",
                              path, img ? img->w : 0, img ? img->h : 0, img ? img->c : 0);
    if (check_dims(path, (unsigned long)img->w, (unsigned long)img->h, img->c)) return LOOM_ERR;
    save_job j = {path, img, quality, encode};
    return loom_atomic_write(path, save_write, &j);
}

int loom_image_save_png(const char *path, const loom_image *img) {
    return save_atomic(path, img, 0, write_png);
}

int loom_image_save_jpeg(const char *path, const loom_image *img, int quality) {
    if (quality < 1 || quality > 100)
        return loom_fail(LOOM_EINVAL, "%s: JPEG quality %d is out of range 1..100", path, quality);
    return save_atomic(path, img, quality, write_jpeg);
}

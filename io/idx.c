/* IDX reader. Mirrors ship MNIST-like files both raw and gzip-compressed, and
 * names are unreliable (browsers un-gzip without renaming), so the format is
 * decided by the first two bytes. No allocation is sized from the header alone:
 * a plain file's claim is checked against its size first, and a gzip stream's
 * buffer grows only as decompressed data actually arrives. */
#include "io/idx.h"

#include "loom/error.h"
#include "io/fs.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

enum { IDX_UBYTE = 0x08, IDX_MAX_DIMS = 4 };

/* The first allocation for a gzip stream's data; doubled as data arrives. */
#define GZ_FIRST_CHUNK ((size_t)1 << 20)

/* A byte source hiding whether the file is plain or gzip; pos counts bytes of
 * IDX content (decompressed, for gzip) so messages point into the format. */
typedef struct {
    const char *path;
    FILE *f;
    gzFile gz;
    uint64_t size; /* plain files only */
    size_t pos;
} src;

static const char *type_name(unsigned t) {
    switch (t) {
    case 0x09: return "signed byte";
    case 0x0b: return "16-bit int";
    case 0x0c: return "32-bit int";
    case 0x0d: return "float";
    case 0x0e: return "double";
    default: return "unknown";
    }
}

static void fmt_dims(char *buf, size_t cap, const uint32_t *dims, int ndim) {
    size_t n = 0;
    buf[0] = 0;
    for (int i = 0; i < ndim && n < cap; i++) {
        int w = snprintf(buf + n, cap - n, "%s%u", i ? " x " : "", (unsigned)dims[i]);
        if (w < 0) break;
        n += (size_t)w;
    }
}

static int src_open(src *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->path = path;
    FILE *f = fopen(path, "rb");
    if (!f) return loom_fail(LOOM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return loom_fail(LOOM_EFORMAT, "%s: not a regular file", path);
    }
    unsigned char m[2];
    size_t got = fread(m, 1, 2, f);
    if (got == 2 && m[0] == 0x1f && m[1] == 0x8b) {
        fclose(f);
        errno = 0;
        s->gz = gzopen(path, "rb");
        if (!s->gz)
            return loom_fail(LOOM_ENOMEM, "%s: cannot open gzip stream: %s", path,
                                  errno ? strerror(errno) : "out of memory");
        gzbuffer(s->gz, 1u << 17); /* the default 8 KiB makes the 26 MB MNIST file slow */
        return LOOM_OK;
    }
    if (fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        return loom_fail(LOOM_EIO, "%s: cannot seek: %s", path, strerror(errno));
    }
    s->f = f;
    s->size = (uint64_t)st.st_size;
    return LOOM_OK;
}

static void src_close(src *s) {
    if (s->f) fclose(s->f);
    if (s->gz) gzclose(s->gz);
    s->f = NULL;
    s->gz = NULL;
}

/* Read up to n bytes; *got < n means end of file. A gzip stream that stops
 * before its end marker or fails its checksum is an error, not an end. */
static int src_read(src *s, void *buf, size_t n, size_t *got) {
    *got = 0;
    if (s->f) {
        *got = fread(buf, 1, n, s->f);
        s->pos += *got;
        if (*got < n && ferror(s->f))
            return loom_fail(LOOM_EIO, "%s: byte %zu: read error: %s", s->path, s->pos, strerror(errno));
        return LOOM_OK;
    }
    int r = 0;
    while (*got < n) {
        size_t want = n - *got;
        if (want > (size_t)1 << 30) want = (size_t)1 << 30; /* gzread takes an unsigned */
        r = gzread(s->gz, (unsigned char *)buf + *got, (unsigned)want);
        if (r <= 0) break;
        *got += (size_t)r;
        s->pos += (size_t)r;
        if ((size_t)r < want) break;
    }
    if (*got == n) return LOOM_OK;
    int zerr = Z_OK;
    const char *zmsg = gzerror(s->gz, &zerr);
    if (zerr == Z_BUF_ERROR)
        return loom_fail(LOOM_EFORMAT, "%s: byte %zu: truncated gzip stream (compressed data ends early)",
                              s->path, s->pos);
    if (zerr == Z_ERRNO)
        return loom_fail(LOOM_EIO, "%s: byte %zu: read error: %s", s->path, s->pos, strerror(errno));
    if (zerr != Z_OK || r < 0) {
        /* zlib prefixes its message with the path; ours already names it. */
        size_t np = strlen(s->path);
        if (strncmp(zmsg, s->path, np) == 0 && zmsg[np] == ':')
            zmsg += np + (zmsg[np + 1] == ' ' ? 2 : 1);
        /* No byte position: zlib decompresses ahead of what it hands over, so
         * where the damage lies in the data is not known here. */
        return loom_fail(LOOM_EFORMAT, "%s: corrupt gzip stream (%s)", s->path, zmsg);
    }
    return LOOM_OK;
}

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Magic, type, rank and dims; leaves out->dims, ndim, count, item_size set. */
static int read_header(src *s, loom_idx *out) {
    const char *path = s->path;
    unsigned char h[4 + 4 * IDX_MAX_DIMS];
    size_t got;
    if (src_read(s, h, 4, &got)) return LOOM_ERR;
    if (got == 0) return loom_fail(LOOM_EFORMAT, "%s: empty file (expected an IDX header)", path);
    if (got < 4)
        return loom_fail(LOOM_EFORMAT, "%s: byte %zu: truncated header (file ends inside the 4-byte magic)",
                              path, got);
    if (h[0] != 0 || h[1] != 0)
        return loom_fail(LOOM_EFORMAT, "%s: byte 0: not an IDX file (magic starts %02x %02x, "
                              "expected 00 00)",
                              path, h[0], h[1]);
    if (h[2] != IDX_UBYTE)
        return loom_fail(LOOM_EUNSUPPORTED, "%s: byte 2: unsupported IDX element type 0x%02x, %s "
                              "(only unsigned byte 0x08)",
                              path, h[2], type_name(h[2]));
    int ndim = h[3];
    if (ndim < 1 || ndim > IDX_MAX_DIMS)
        return loom_fail(LOOM_EFORMAT, "%s: byte 3: %d dimensions (supported: 1 to %d)", path, ndim,
                              IDX_MAX_DIMS);
    size_t need = 4 * (size_t)ndim;
    if (src_read(s, h + 4, need, &got)) return LOOM_ERR;
    if (got < need)
        return loom_fail(LOOM_EFORMAT, "%s: byte %zu: truncated header (%d dimensions need %zu header "
                              "bytes, file has %zu)",
                              path, 4 + got, ndim, 4 + need, 4 + got);

    size_t total = 1;
    out->ndim = ndim;
    for (int i = 0; i < ndim; i++) {
        uint32_t d = be32(h + 4 + 4 * i);
        out->dims[i] = d;
        if (d == 0) return loom_fail(LOOM_EFORMAT, "%s: byte %d: dimension %d is 0", path, 4 + 4 * i, i);
        /* PTRDIFF_MAX, not SIZE_MAX: no object can be larger than that. */
        if (total > (size_t)PTRDIFF_MAX / d) {
            char dims[96];
            fmt_dims(dims, sizeof dims, out->dims, i + 1);
            return loom_fail(LOOM_EFORMAT, "%s: byte %d: dimensions %s%s overflow: the data would not "
                                  "fit in memory",
                                  path, 4 + 4 * i, dims, i + 1 < ndim ? " x ..." : "");
        }
        total *= d;
    }
    out->count = out->dims[0];
    out->item_size = total / out->count;
    return LOOM_OK;
}

static int err_truncated(const loom_idx *idx, const char *path, size_t claimed,
                         unsigned long long has) {
    char dims[96];
    fmt_dims(dims, sizeof dims, idx->dims, idx->ndim);
    return loom_fail(LOOM_EFORMAT, "%s: truncated: header claims %zu bytes of data (%s), file has %llu",
                          path, claimed, dims, has);
}

static int err_trailing(const loom_idx *idx, const char *path, size_t at,
                        const char *how_much) {
    char dims[96];
    fmt_dims(dims, sizeof dims, idx->dims, idx->ndim);
    return loom_fail(LOOM_EFORMAT, "%s: byte %zu: trailing garbage: %s after the data the header "
                          "describes (%s)",
                          path, at, how_much, dims);
}

/* A plain file's size is known, so the claim is checked before allocating. */
static int read_plain(src *s, loom_idx *out, size_t total) {
    uint64_t avail = s->size > s->pos ? s->size - s->pos : 0;
    if (avail < total) return err_truncated(out, s->path, total, (unsigned long long)avail);
    if (avail > total) {
        char n[64];
        snprintf(n, sizeof n, "%llu more bytes", (unsigned long long)(avail - total));
        return err_trailing(out, s->path, s->pos + total, n);
    }
    uint8_t *buf = malloc(total);
    if (!buf) return loom_fail(LOOM_ENOMEM, "%s: out of memory for %zu bytes of data", s->path, total);
    size_t got;
    if (src_read(s, buf, total, &got)) {
        free(buf);
        return LOOM_ERR;
    }
    if (got < total) {
        free(buf);
        return loom_fail(LOOM_EFORMAT, "%s: byte %zu: file shrank while being read", s->path, s->pos);
    }
    out->data = buf;
    return LOOM_OK;
}

/* The decompressed size is unknown until the end, so the buffer doubles as
 * data arrives: a lying header costs at most twice what the file really holds. */
static int read_gzip(src *s, loom_idx *out, size_t total) {
    size_t cap = total < GZ_FIRST_CHUNK ? total : GZ_FIRST_CHUNK;
    size_t have = 0, got;
    uint8_t *buf = malloc(cap);
    if (!buf) return loom_fail(LOOM_ENOMEM, "%s: out of memory for %zu bytes of data", s->path, cap);
    while (have < total) {
        if (have == cap) {
            size_t ncap = cap > total / 2 ? total : cap * 2;
            uint8_t *nbuf = realloc(buf, ncap);
            if (!nbuf) {
                free(buf);
                return loom_fail(LOOM_ENOMEM, "%s: out of memory for %zu bytes of data", s->path, ncap);
            }
            buf = nbuf;
            cap = ncap;
        }
        if (src_read(s, buf + have, cap - have, &got)) {
            free(buf);
            return LOOM_ERR;
        }
        have += got;
        if (have < cap) break;
    }
    if (have < total) {
        free(buf);
        return err_truncated(out, s->path, total, (unsigned long long)have);
    }
    /* Reading on to the end also makes zlib verify the stream's CRC and length. */
    unsigned char probe[4096];
    if (src_read(s, probe, sizeof probe, &got)) {
        free(buf);
        return LOOM_ERR;
    }
    if (got > 0) {
        char n[64];
        snprintf(n, sizeof n, "%s%zu more bytes", got == sizeof probe ? "at least " : "", got);
        free(buf);
        return err_trailing(out, s->path, s->pos - got, n);
    }
    out->data = buf;
    return LOOM_OK;
}

int loom_idx_read(const char *path, loom_idx *out) {
    memset(out, 0, sizeof *out);
    src s;
    if (src_open(&s, path)) return LOOM_ERR;
    int rc = read_header(&s, out);
    if (rc == LOOM_OK) {
        size_t total = out->count * out->item_size;
        rc = s.f ? read_plain(&s, out, total) : read_gzip(&s, out, total);
    }
    src_close(&s);
    if (rc != LOOM_OK) memset(out, 0, sizeof *out);
    return rc;
}

void loom_idx_free(loom_idx *idx) {
    if (!idx) return;
    free(idx->data);
    memset(idx, 0, sizeof *idx);
}

int loom_idx_read_labels(const char *labels, const char *images, const loom_idx *img, loom_idx *lab) {
    if (loom_idx_read(labels, lab)) return LOOM_ERR;
    int rc = LOOM_OK;
    if (lab->ndim != 1) {
        char dims[96];
        fmt_dims(dims, sizeof dims, lab->dims, lab->ndim);
        rc = loom_fail(LOOM_EFORMAT, "%s: byte 3: a labels file must be 1-d, this one has %d "
                            "dimensions (%s)",
                            labels, lab->ndim, dims);
    } else if (lab->count != img->count) {
        rc = loom_fail(LOOM_EFORMAT, "%s: byte 4: %zu labels, but %s holds %zu images (counts must match)",
                            labels, lab->count, images, img->count);
    }
    if (rc != LOOM_OK) loom_idx_free(lab);
    return rc;
}

int loom_idx_read_pair(const char *images, const char *labels, loom_idx *img, loom_idx *lab) {
    memset(lab, 0, sizeof *lab);
    if (loom_idx_read(images, img)) return LOOM_ERR;
    if (loom_idx_read_labels(labels, images, img, lab)) {
        loom_idx_free(img);
        return LOOM_ERR;
    }
    return LOOM_OK;
}

int loom_idx_read_header(const char *path, loom_idx *out) {
    memset(out, 0, sizeof *out);
    src s;
    if (src_open(&s, path)) return LOOM_ERR;
    int rc = read_header(&s, out);
    src_close(&s);
    return rc;
}

/* Try the known spellings of one file; the first that exists wins. */
static int find_one(const char *dir, const char *sep, const char *prefix, const char *kind,
                    const char *rank, char *out, size_t cap) {
    static const char dash[] = {'-', '.'};
    static const char *const suffix[] = {"", ".gz"};
    for (int p = 0; p < 2; p++) {
        for (int z = 0; z < 2; z++) {
            int n = snprintf(out, cap, "%s%s%s-%s%c%s-ubyte%s", dir, sep, prefix, kind, dash[p],
                             rank, suffix[z]);
            if (n < 0 || (size_t)n >= cap)
                return loom_fail(LOOM_EFORMAT, "%s: path of the %s file is longer than %zu bytes", dir, kind,
                                      cap);
            if (loom_is_file(out)) return LOOM_OK;
        }
    }
    if (cap) out[0] = 0;
    return loom_fail(LOOM_EFORMAT, "%s: no %s file for this split (looked for %s-%s-%s-ubyte, "
                          "%s-%s.%s-ubyte, each with or without .gz)",
                          dir, kind, prefix, kind, rank, prefix, kind, rank);
}

int loom_idx_find(const char *dir, const char *split, char *img_path, char *lab_path,
                  size_t cap) {
    const char *prefix;
    if (strcmp(split, "train") == 0)
        prefix = "train";
    else if (strcmp(split, "test") == 0 || strcmp(split, "t10k") == 0)
        prefix = "t10k"; /* the MNIST files call the test split t10k */
    else
        return loom_fail(LOOM_EFORMAT, "%s: unknown IDX split \"%s\" (expected train or test)", dir, split);
    if (!dir[0]) dir = ".";
    struct stat st;
    if (stat(dir, &st) != 0) return loom_fail(LOOM_EIO, "%s: cannot open: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return loom_fail(LOOM_EFORMAT, "%s: not a directory", dir);
    const char *sep = dir[strlen(dir) - 1] == '/' ? "" : "/";
    if (find_one(dir, sep, prefix, "images", "idx3", img_path, cap)) {
        /* the other split may be there: say so */
        char other[4096], ol[4096], msg[1024];
        snprintf(msg, sizeof msg, "%s", loom_error());
        if (find_one(dir, sep, strcmp(prefix, "train") ? "train" : "t10k", "images", "idx3", other, sizeof other) ==
            LOOM_OK && find_one(dir, sep, strcmp(prefix, "train") ? "train" : "t10k", "labels", "idx1", ol, sizeof ol) ==
            LOOM_OK)
            return loom_fail(LOOM_EFORMAT, "%s (it has the %s split: --split %s)", msg, strcmp(prefix, "train") ? "train" : "test",
                                  strcmp(prefix, "train") ? "train" : "test");
        return loom_fail(LOOM_EFORMAT, "%s", msg);
    }
    if (find_one(dir, sep, prefix, "labels", "idx1", lab_path, cap)) return LOOM_ERR;
    return LOOM_OK;
}

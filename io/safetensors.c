/* The safetensors container (see safetensors.h): strict reading, atomic writing. */
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "jfield.h"
#include "io/atomic.h"
#include "loom/error.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HOST_BE 1
#else
#define HOST_BE 0
#endif

static void swap32(float *p, size_t n) {
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &p[i], 4);
        u = (u >> 24) | ((u >> 8) & 0xff00u) | ((u << 8) & 0xff0000u) | (u << 24);
        memcpy(&p[i], &u, 4);
    }
}

const char *sft_shape_str(const int64_t *shape, int ndim, char *buf, size_t cap) {
    size_t len = 0;
    buf[0] = 0;
    len += (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < ndim && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, i ? "," : "", shape[i]);
    if (len < cap) snprintf(buf + len, cap - len, "]");
    return buf;
}

void sft_close(sft_file *s) {
    if (s->f) fclose(s->f);
    json_decref(s->header);
    free(s->t);
    memset(s, 0, sizeof *s);
}

/* Set the message (naming the file), release everything, return LOOM_ERR. */
static int bad(sft_file *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bad(sft_file *s, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    int rc = loom_fail(LOOM_EFORMAT, "%s: %s", s->path, msg);
    sft_close(s);
    return rc;
}

/* Reads an entry of the tensor table; the caller checks how entries relate. */
static int parse_entry(sft_file *s, const char *key, const json_t *v, sft_tensor *t) {
    jf_obj r;
    if (jf_open(&r, v, s->path, "tensor %s", key)) return -1;
    const json_t *dt = jf_get(&r, "dtype", JSON_STRING);
    const json_t *shape = jf_get(&r, "shape", JSON_ARRAY);
    const json_t *offs = jf_get(&r, "data_offsets", JSON_ARRAY);
    if (jf_done(&r)) return -1;
    /* other element types are listed (a PyTorch state_dict has I64 counters), read only as F32 */
    static const char *const types[] = {"F32", "F64", "F16", "BF16", "I64", "I32", "I16", "I8", "U8", "BOOL",
                                        "U16", "U32", "U64"};
    static const int sizes[] = {4, 8, 2, 2, 8, 4, 2, 1, 1, 1, 2, 4, 8};
    int es = 0;
    for (size_t k = 0; k < sizeof types / sizeof *types; k++)
        if (!strcmp(json_string_value(dt), types[k])) es = sizes[k], snprintf(t->dtype, sizeof t->dtype, "%s", types[k]);
    if (!es) return jf_fail(&r, "dtype %.32s is not one of safetensors' types", json_string_value(dt));
    t->name = key;
    size_t nd = json_array_size(shape);
    if (nd > SFT_MAX_DIMS) return jf_fail(&r, "%zu dimensions (at most %d)", nd, SFT_MAX_DIMS);
    t->ndim = (int)nd;
    for (size_t i = 0; i < nd; i++) {
        const json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return jf_fail(&r, "shape must be a list of non-negative integers");
        t->shape[i] = json_integer_value(d);
    }
    const json_t *b = json_array_get(offs, 0), *e = json_array_get(offs, 1);
    if (json_array_size(offs) != 2 || !json_is_integer(b) || !json_is_integer(e) ||
        json_integer_value(b) < 0 || json_integer_value(e) < json_integer_value(b))
        return jf_fail(&r, "data_offsets must be [begin, end] with 0 <= begin <= end");
    t->begin = (uint64_t)json_integer_value(b);
    t->end = (uint64_t)json_integer_value(e);
    if (t->end > s->data_len)
        return jf_fail(&r, "data_offsets [%" PRIu64 ",%" PRIu64 "] lie outside the %" PRIu64
                           "-byte data section", t->begin, t->end, s->data_len);
    /* The element count is bounded by the data section before it is
     * multiplied out, so it cannot overflow. */
    uint64_t elems = 1, limit = s->data_len / (uint64_t)es;
    int zero = 0, big = 0;
    for (int i = 0; i < t->ndim; i++) zero |= t->shape[i] == 0;
    for (int i = 0; i < t->ndim && !zero && !big; i++) {
        if ((uint64_t)t->shape[i] > limit / elems) big = 1;
        else elems *= (uint64_t)t->shape[i];
    }
    char sh[128];
    sft_shape_str(t->shape, t->ndim, sh, sizeof sh);
    if (big)
        return jf_fail(&r, "shape %s needs more than the %" PRIu64 "-byte data section", sh, s->data_len);
    if (zero) elems = 0;
    if (t->end - t->begin != elems * (uint64_t)es)
        return jf_fail(&r, "data_offsets [%" PRIu64 ",%" PRIu64 "] hold %" PRIu64
                           " bytes but shape %s of %s needs %" PRIu64,
                       t->begin, t->end, t->end - t->begin, sh, t->dtype, elems * (uint64_t)es);
    return 0;
}

static int by_offset(const void *a, const void *b) {
    const sft_tensor *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : x->end > y->end;
}

static int by_name(const void *a, const void *b) {
    return strcmp(((const sft_tensor *)a)->name, ((const sft_tensor *)b)->name);
}

static int by_str(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

/* CRC-32 of the metadata but loom.crc32: each key and its value, NUL-terminated, keys in byte order. -1 when out
 * of memory. */
static int64_t meta_crc(const json_t *meta) {
    size_t n = meta ? json_object_size(meta) : 0, k = 0;
    const char **keys = malloc((n + 1) * sizeof *keys);
    if (!keys) return -1;
    const char *key;
    json_t *v;
    if (meta) {
        json_object_foreach((json_t *)meta, key, v) {
            if (strcmp(key, "loom.crc32")) keys[k++] = key;
        }
    }
    qsort(keys, k, sizeof *keys, by_str);
    uLong c = crc32_z(0, Z_NULL, 0);
    for (size_t i = 0; i < k; i++) {
        const char *val = json_string_value(json_object_get(meta, keys[i]));
        c = crc32_z(c, (const unsigned char *)keys[i], strlen(keys[i]) + 1);
        if (val) c = crc32_z(c, (const unsigned char *)val, strlen(val) + 1);
    }
    free(keys);
    return (int64_t)(uint32_t)c;
}

static int parse_meta(sft_file *s, const json_t *m) {
    if (!json_is_object(m)) return bad(s, "__metadata__ must be an object of strings");
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)m, key, v) {
        if (!json_is_string(v)) return bad(s, "metadata \"%s\" must be a string (the format allows only strings)", key);
    }
    s->meta = m;
    return 0;
}

int sft_open(sft_file *s, const char *path) {
    memset(s, 0, sizeof *s);
    s->path = path;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return loom_fail(LOOM_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return loom_fail(LOOM_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return loom_fail(LOOM_EIO, "%s: %s", path,
                              S_ISDIR(sb.st_mode) ? "is a directory, not a checkpoint file" : "not a regular file");
    }
    s->f = fdopen(fd, "rb");
    if (!s->f) {
        close(fd);
        return loom_fail(LOOM_EIO, "%s: cannot open: %s", path, strerror(errno));
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size == 0) return bad(s, "the file is empty (0 bytes)");
    unsigned char len8[8];
    if (size < 8 || fread(len8, 1, 8, s->f) != 8)
        return bad(s, "the file is %" PRIu64 " bytes, shorter than the 8-byte header length", size);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | len8[i];
    if (hlen > SFT_MAX_HEADER) {
        const char *what = len8[0] == 0xff && len8[1] == 0xd8                        ? "a JPEG image"
                           : len8[0] == 0x89 && !memcmp(len8 + 1, "PNG", 3)          ? "a PNG image"
                           : len8[0] == 0x1f && len8[1] == 0x8b                      ? "gzip data"
                           : len8[0] == 0 && len8[1] == 0 && len8[2] == 8            ? "an IDX file"
                           : !memcmp(len8, "label,", 6) || !memcmp(len8, "pixel", 5) ? "a CSV file"
                                                                                     : NULL;
        if (what) return bad(s, "this is %s, not a checkpoint", what);
        return bad(s, "header length %" PRIu64 " is absurd (more than 100 MB): not a safetensors file?", hlen);
    }
    if (hlen > size - 8)
        return bad(s, "header length %" PRIu64 " exceeds the %" PRIu64
                      " bytes that follow it (truncated file?)", hlen, size - 8);
    if (hlen == 0) return bad(s, "header length is 0: no header");
    char *buf = malloc(hlen);
    if (!buf) return bad(s, "out of memory for a %" PRIu64 "-byte header", hlen);
    if (fread(buf, 1, hlen, s->f) != hlen) {
        free(buf);
        return bad(s, "read error in the header: %s", strerror(errno));
    }
    json_error_t je;
    s->header = json_loadb(buf, hlen, JSON_REJECT_DUPLICATES, &je);
    free(buf);
    if (!s->header)
        return bad(s, "header JSON error at line %d, column %d (header byte %d): %s", je.line,
                   je.column, je.position, je.text);
    if (!json_is_object(s->header)) return bad(s, "the header is not a JSON object");
    s->data_start = 8 + hlen;
    s->data_len = size - s->data_start;

    s->t = calloc(json_object_size(s->header) + 1, sizeof *s->t);
    if (!s->t) return bad(s, "out of memory for the tensor table");
    const char *key;
    json_t *v;
    json_object_foreach(s->header, key, v) {
        if (!strcmp(key, "__metadata__")) {
            if (parse_meta(s, v)) return LOOM_ERR;
            continue;
        }
        if (parse_entry(s, key, v, &s->t[s->n])) {
            sft_close(s);
            return LOOM_ERR;
        }
        s->n++;
    }

    /* Tensors must tile the data section exactly, as the reference reader demands. */
    qsort(s->t, s->n, sizeof *s->t, by_offset);
    uint64_t total = 0;
    for (size_t i = 0; i < s->n; i++) {
        const sft_tensor *a = &s->t[i - (i > 0)], *b = &s->t[i];
        if (i > 0 && b->begin < a->end)
            return bad(s, "tensors %s [%" PRIu64 ",%" PRIu64 "] and %s [%" PRIu64 ",%" PRIu64 "] overlap",
                       a->name, a->begin, a->end, b->name, b->begin, b->end);
        total += b->end - b->begin;
    }
    if (total != s->data_len)
        return bad(s, "the data section is %" PRIu64 " bytes but its tensors hold %" PRIu64
                      " (gaps or trailing bytes)", s->data_len, total);
    const char *crcs = sft_meta(s, "loom.crc32");
    if (crcs) { /* one CRC per tensor, in the order of the data, then the metadata's */
        const char *p = crcs;
        for (size_t i = 0; i <= s->n; i++) {
            uint32_t c = 0;
            int k = 0;
            for (; k < 8 && p[k]; k++) {
                int d = p[k] >= '0' && p[k] <= '9' ? p[k] - '0' : p[k] >= 'a' && p[k] <= 'f' ? p[k] - 'a' + 10 : -1;
                if (d < 0) break;
                c = c << 4 | (uint32_t)d;
            }
            if (k < 8 || (p[8] != (i < s->n ? ' ' : '\0')))
                return bad(s, "metadata loom.crc32 should give %zu CRCs of 8 hex digits; it is damaged at character %zu",
                           s->n + 1, (size_t)(p - crcs) + (size_t)k);
            if (i < s->n) {
                s->t[i].crc = c;
                s->t[i].has_crc = 1;
            } else {
                int64_t m = meta_crc(s->meta);
                if (m < 0) return bad(s, "out of memory checking the metadata");
                if ((uint32_t)m != c)
                    return bad(s, "the metadata (the model, its classes, the training state) does not match the "
                                  "CRC-32 saved with it (%08x, now %08x): the header is damaged",
                               (unsigned)c, (unsigned)m);
            }
            p += 9;
        }
    }
    qsort(s->t, s->n, sizeof *s->t, by_name);
    return LOOM_OK;
}

const sft_tensor *sft_find(const sft_file *s, const char *name) {
    sft_tensor key = {.name = name};
    return s->n ? bsearch(&key, s->t, s->n, sizeof *s->t, by_name) : NULL;
}

const char *sft_meta(const sft_file *s, const char *key) {
    return s->meta ? json_string_value(json_object_get(s->meta, key)) : NULL;
}

size_t sft_count(const sft_tensor *t) { return (size_t)((t->end - t->begin) / 4); }

int sft_read(sft_file *s, const sft_tensor *t, float *dst) {
    if (strcmp(t->dtype, "F32"))
        return loom_fail(LOOM_EUNSUPPORTED, "%s: tensor %s is %s: loom reads F32 (in PyTorch, .float() before saving)",
                         s->path, t->name, t->dtype);
    size_t n = sft_count(t);
    if (fseeko(s->f, (off_t)(s->data_start + t->begin), SEEK_SET) != 0)
        return loom_fail(LOOM_EIO, "%s: tensor %s: cannot seek: %s", s->path, t->name, strerror(errno));
    if (fread(dst, sizeof(float), n, s->f) != n)
        return loom_fail(LOOM_EFORMAT, "%s: tensor %s: the file ends early (changed while reading?)", s->path, t->name);
    if (t->has_crc) {
        uint32_t c = (uint32_t)crc32_z(crc32_z(0, Z_NULL, 0), (const unsigned char *)dst, n * sizeof(float));
        if (c != t->crc)
            return loom_fail(LOOM_EFORMAT, "%s: tensor %s: its bytes do not match the CRC-32 saved with them "
                                           "(%08x, now %08x): the file is damaged",
                             s->path, t->name, (unsigned)t->crc, (unsigned)c);
    }
    if (HOST_BE) swap32(dst, n);
    return LOOM_OK;
}

/* ---- writing ------------------------------------------------------------------ */

static json_t *header_json(const json_t *meta, const sft_out *t, size_t n, const char *path) {
    json_t *root = json_object();
    if (!root) goto oom;
    if (meta && json_object_set(root, "__metadata__", (json_t *)meta)) goto oom;
    uint64_t off = 0;
    for (size_t i = 0; i < n; i++) {
        size_t elems = 1;
        for (int d = 0; d < t[i].ndim; d++) elems *= (size_t)t[i].shape[d];
        if (elems != t[i].count || json_object_get(root, t[i].name)) {
            loom_fail(LOOM_EINVAL, "%s: tensor %s: %s (loom bug)", path, t[i].name,
                           elems != t[i].count ? "shape does not match its size" : "name used twice");
            json_decref(root);
            return NULL;
        }
        /* The *_set_new and *_append_new calls consume their value even when
         * they fail (or the container is NULL), so one check at the end frees all. */
        json_t *e = json_object(), *shape = json_array();
        int fail = json_object_set_new(e, "dtype", json_string("F32"));
        for (int d = 0; d < t[i].ndim; d++) fail |= json_array_append_new(shape, json_integer(t[i].shape[d]));
        fail |= json_object_set_new(e, "shape", shape);
        uint64_t end = off + (uint64_t)t[i].count * 4;
        fail |= json_object_set_new(e, "data_offsets", json_pack("[II]", (json_int_t)off, (json_int_t)end));
        fail |= json_object_set_new(root, t[i].name, e);
        if (fail) goto oom;
        off = end;
    }
    return root;
oom:
    json_decref(root);
    loom_fail(LOOM_ENOMEM, "%s: out of memory building the header", path);
    return NULL;
}

/* CRC-32 of n floats as the file stores them (little-endian). */
static uint32_t crc_le(const float *p, size_t n) {
    uLong c = crc32_z(0, Z_NULL, 0);
    if (!HOST_BE) return (uint32_t)crc32_z(c, (const unsigned char *)p, n * sizeof(float));
    float buf[1024];
    for (size_t i = 0; i < n; i += 1024) {
        size_t k = n - i < 1024 ? n - i : 1024;
        memcpy(buf, p + i, k * sizeof(float));
        swap32(buf, k);
        c = crc32_z(c, (const unsigned char *)buf, k * sizeof(float));
    }
    return (uint32_t)c;
}

static int write_floats(FILE *f, const float *p, size_t n) {
    if (!HOST_BE) return fwrite(p, sizeof(float), n, f) == n ? 0 : -1;
    float buf[1024];
    for (size_t i = 0; i < n; i += 1024) {
        size_t k = n - i < 1024 ? n - i : 1024;
        memcpy(buf, p + i, k * sizeof(float));
        swap32(buf, k);
        if (fwrite(buf, sizeof(float), k, f) != k) return -1;
    }
    return 0;
}

static int write_body(FILE *f, const char *text, size_t len, const sft_out *t, size_t n) {
    /* Spaces pad the header so the data starts 8-byte aligned, as the format asks. */
    size_t padded = (len + 7) / 8 * 8;
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    if (fwrite(len8, 1, 8, f) != 8 || fwrite(text, 1, len, f) != len) return -1;
    for (size_t i = len; i < padded; i++)
        if (fputc(' ', f) == EOF) return -1;
    for (size_t i = 0; i < n; i++)
        if (write_floats(f, t[i].data, t[i].count)) return -1;
    return 0;
}

typedef struct {
    const char *path, *text;
    size_t len;
    const sft_out *t;
    size_t n;
} sft_job;

static int write_job(FILE *f, void *ctx) {
    const sft_job *j = ctx;
    if (write_body(f, j->text, j->len, j->t, j->n))
        return loom_fail(LOOM_EIO, "%s: write error: %s", j->path, strerror(errno));
    return LOOM_OK;
}

int sft_write(const char *path, const json_t *meta, const sft_out *t, size_t n) {
    if (meta && json_object_get(meta, "loom.crc32"))
        return loom_fail(LOOM_EINVAL, "%s: metadata key loom.crc32 is sft_write's own (loom bug)", path);
    json_t *m = meta ? json_copy((json_t *)meta) : json_object();
    char *crcs = malloc((n + 1) * 9 + 1);
    int64_t mc = meta_crc(meta);
    if (!m || !crcs || mc < 0) {
        json_decref(m);
        free(crcs);
        return loom_fail(LOOM_ENOMEM, "%s: out of memory writing the header", path);
    }
    crcs[0] = 0;
    for (size_t i = 0; i < n; i++) snprintf(crcs + 9 * i, 10, "%08x ", (unsigned)crc_le(t[i].data, t[i].count));
    snprintf(crcs + 9 * n, 9, "%08x", (unsigned)mc);
    int fail = json_object_set_new(m, "loom.crc32", json_string(crcs));
    free(crcs);
    json_t *root = fail ? NULL : header_json(m, t, n, path);
    json_decref(m);
    if (fail) return loom_fail(LOOM_ENOMEM, "%s: out of memory writing the header", path);
    if (!root) return LOOM_ERR;
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (!text) return loom_fail(LOOM_ENOMEM, "%s: out of memory writing the header", path);
    size_t len = strlen(text);
    if ((len + 7) / 8 * 8 > SFT_MAX_HEADER) {
        free(text);
        return loom_fail(LOOM_EINVAL, "%s: the header would be %zu bytes (readers refuse more than 100 MB)", path, len);
    }
    sft_job j = {path, text, len, t, n};
    int rc = loom_atomic_write(path, write_job, &j);
    free(text);
    return rc;
}

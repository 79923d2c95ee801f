/* io — the safetensors container: an 8-byte little-endian header length N, N
 * bytes of JSON (padded with spaces to a multiple of 8), then the raw tensors.
 * The header maps each tensor name to {"dtype", "shape", "data_offsets"
 * [begin, end) relative to the data start}; "__metadata__" maps strings to
 * strings. Only F32 is read or written (all loom stores). Shared by io/ only. */
#ifndef LOOM_IO_SAFETENSORS_H
#define LOOM_IO_SAFETENSORS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define SFT_MAX_DIMS 8
/* The Rust reference implementation refuses larger headers too. */
#define SFT_MAX_HEADER ((uint64_t)100000000)

typedef struct {
    const char *name;       /* points into the parsed header */
    int ndim;
    int64_t shape[SFT_MAX_DIMS];
    uint64_t begin, end;    /* bytes, relative to the data start */
    char dtype[8];          /* "F32" (all loom reads), or another the format has (F16, I64, ...) */
    int has_crc;            /* the file gives its CRC-32 (loom's files do: metadata "loom.crc32") ... */
    uint32_t crc;           /* ... of its bytes as stored */
} sft_tensor;

typedef struct {
    const char *path;
    FILE *f;
    json_t *header;
    const json_t *meta;     /* the "__metadata__" object, or NULL if absent */
    uint64_t data_start, data_len;
    sft_tensor *t;          /* sorted by name */
    size_t n;
} sft_file;

/* Open path and check everything the format promises: the header length
 * against the file size, the JSON, every entry's dtype, shape and offsets, no
 * overlaps, and tensors exactly filling the data section; the metadata
 * "loom.crc32" (which sft_write adds: one CRC-32 per tensor, 8 hex digits
 * each, in the order of the data, then one of the other metadata, keys in
 * byte order, each key and value NUL-terminated; separated by spaces), when
 * present, must give one per tensor and match the metadata. Nothing is sized
 * from a header number before it has been checked against the file. On error
 * the message names the file and the problem and nothing stays open. */
int sft_open(sft_file *s, const char *path);
void sft_close(sft_file *s);
const sft_tensor *sft_find(const sft_file *s, const char *name);
/* A metadata string, or NULL if absent. */
const char *sft_meta(const sft_file *s, const char *key);
/* Number of floats in t. */
size_t sft_count(const sft_tensor *t);
/* Read t (all of it) into dst; a tensor whose bytes differ from the CRC-32
 * the file gives for it is refused (the file is damaged). Files of other
 * writers, without "loom.crc32", are read as they are. */
int sft_read(sft_file *s, const sft_tensor *t, float *dst);

/* One tensor to write: count floats from data with the given shape. */
typedef struct {
    const char *name;
    int ndim;
    int64_t shape[4];
    const float *data;
    size_t count;
} sft_out;

/* Write meta (an object of strings; may be NULL; "loom.crc32" is sft_write's
 * own) and the tensors in order, with each one's CRC-32 in the metadata,
 * atomically: a temporary file beside path, fsync, rename. */
int sft_write(const char *path, const json_t *meta, const sft_out *t, size_t n);

/* "[6,1,5,5]" into buf. */
const char *sft_shape_str(const int64_t *shape, int ndim, char *buf, size_t cap);

#endif

/* loom — image files: decoding PNG (libpng) and JPEG (libjpeg-turbo) into
 * uint8 HWC, and writing them. Headers are checked against the real file
 * size before any allocation is trusted. */
#ifndef LOOM_IMAGE_H
#define LOOM_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Largest image decoded or written: each side, and h*w*c of the result. */
#define LOOM_IMAGE_MAX_SIDE 16384
#define LOOM_IMAGE_MAX_BYTES ((size_t)256 << 20)

typedef struct {
    int w, h, c;       /* c = 1 (gray) or 3 (RGB) */
    uint8_t *data;     /* h*w*c bytes, HWC, owned */
} loom_image;

/* Decode a PNG or JPEG (recognised by its magic bytes, not the name) from
 * memory; want_c 1 or 3 converts (gray<->RGB; alpha composited on black; 16-bit
 * reduced to 8; palette expanded), 0 keeps the file's own (1 or 3). name is used
 * in messages. LOOM_OK or LOOM_ERR (out zeroed).
 * Exact PNG arithmetic: 16-bit v -> round(v*255/65535); alpha a -> round(v*a/255);
 * RGB -> gray (19595 R + 38470 G + 7471 B + 32768) >> 16, as libjpeg does. */
int loom_image_decode(const uint8_t *buf, size_t len, const char *name, int want_c, loom_image *out);
/* Read and decode a file. */
int loom_image_load(const char *path, int want_c, loom_image *out);
void loom_image_free(loom_image *img);
/* Write PNG / JPEG (quality 1..100), atomically (temporary file + rename). */
int loom_image_save_png(const char *path, const loom_image *img);
int loom_image_save_jpeg(const char *path, const loom_image *img, int quality);

#ifdef __cplusplus
}
#endif
#endif

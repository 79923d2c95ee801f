/* loom — image augmentation: geometric transforms on uint8 HWC images, and a
 * conversion to float CHW that fuses brightness, contrast and normalization.
 *
 * Conventions shared by every function here:
 *  - images are uint8, HWC (row-major, channels interleaved), c = 1..4 channels;
 *    channels are treated independently (no premultiplied alpha);
 *  - geometry follows PIL: pixel (x, y) covers [x, x+1) x [y, y+1), its centre
 *    is (x + 0.5, y + 0.5); resize and rotate match Pillow's BILINEAR;
 *  - no allocation inside the building blocks: callers pass scratch memory;
 *  - every random draw of a chain comes from loom_rng_uniform/below(key, counter)
 *    with counters fixed by the transform's position in the chain, so one key
 *    always yields the same image, whatever thread computes it.
 */
#ifndef LOOM_AUGMENT_H
#define LOOM_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- building blocks ----------------------------------------------------- */

/* Scratch bytes loom_augment_resize needs for this pair of sizes. */
size_t loom_augment_resize_scratch(int sw, int sh, int c, int dw, int dh);
/* Resize src (sw x sh) into dst (dw x dh) like Pillow's resize(BILINEAR):
 * separable, horizontal pass then vertical, triangle filter whose support grows
 * with the scale factor when shrinking (area-averaging antialias), 22-bit
 * fixed-point weights. LOOM_OK or LOOM_ERR (bad sizes). */
int loom_augment_resize(const uint8_t *src, int sw, int sh, int c, uint8_t *dst, int dw, int dh,
                        uint8_t *scratch);

/* Rotate by degrees (counter-clockwise positive) about the image centre into a
 * same-size dst, bilinear, uncovered pixels set to fill; matches Pillow's
 * rotate(degrees, BILINEAR, fillcolor=fill) (truncating, as PIL does) up to 1
 * level at rare points where the exact value is an integer. Multiples of 90
 * degrees on square images are exact permutations. dst must not overlap src. */
int loom_augment_rotate(const uint8_t *src, int w, int h, int c, uint8_t *dst, double degrees,
                        uint8_t fill);

/* Mirror left-right / top-bottom. dst may equal src (in place), not overlap otherwise. */
int loom_augment_flip_h(const uint8_t *src, int w, int h, int c, uint8_t *dst);
int loom_augment_flip_v(const uint8_t *src, int w, int h, int c, uint8_t *dst);

/* Shift the content by (dx, dy) pixels, dst(x, y) = src(x - dx, y - dy), fill
 * where that is outside src: a random crop of a padded image is one of these.
 * dst must not overlap src. */
int loom_augment_translate(const uint8_t *src, int w, int h, int c, uint8_t *dst, int dx, int dy,
                           uint8_t fill);

/* uint8 HWC -> float CHW in one pass. With x in 0..255 per channel:
 *   brightness (torchvision): x = min(255, x * bf);
 *   contrast (torchvision):   x = clamp(m + cf * (x - m), 0, 255), m the mean of
 *                             the gray image (0.2989 R + 0.587 G + 0.114 B for
 *                             c >= 3, channel 0 otherwise) after brightness;
 *   output:                   (x / 255 - mean[ch]) / std[ch].
 * bf = cf = 1 leave the image alone; mean = std = NULL give x / 255. Brightness
 * and contrast touch the colour channels only (not the alpha of c = 2 or 4). */
int loom_augment_to_float(const uint8_t *src, int w, int h, int c, float *dst, float bf, float cf,
                          const float *mean, const float *std);

/* ---- chains ---------------------------------------------------------------- */

typedef struct loom_augment loom_augment;

/* An empty chain (just the conversion to float). NULL only if out of memory. */
loom_augment *loom_augment_new(void);
void loom_augment_free(loom_augment *a);

/* Parse a comma-separated spec, e.g.
 *   "flip-h,rotate=15@0.5,brightness=0.2,contrast=0.2,crop=4,normalize=0.5/0.25"
 * Items (an "@p" suffix sets the probability of applying it):
 *   flip-h, flip-v          mirror (default p = 0.5)
 *   rotate=D[/FILL]         angle uniform in [-D, D] degrees, fill 0..255 (default 0)
 *   crop=P[/FILL]           pad by P pixels, crop back at a random offset
 *   brightness=B            factor uniform in [max(0, 1-B), 1+B]
 *   contrast=C              factor uniform in [max(0, 1-C), 1+C]
 *   normalize=M/S           M and S: one value or one per channel, ':'-separated
 *                           (normalize=0.485:0.456:0.406/0.229:0.224:0.225), in 0..1 units
 * All items but flips default to p = 1; normalize takes no "@p"; at most 32
 * items. Spaces around separators are ignored. Geometric items
 * run first, in spec order; colour items run in spec order during the
 * conversion; normalize runs last. NULL with loom_error() naming the item on error. */
loom_augment *loom_augment_parse(const char *spec);

/* Append items from C; p is the probability of applying. LOOM_OK or LOOM_ERR. */
int loom_augment_add_flip_h(loom_augment *a, float p);
int loom_augment_add_flip_v(loom_augment *a, float p);
int loom_augment_add_rotate(loom_augment *a, float max_degrees, uint8_t fill, float p);
int loom_augment_add_crop(loom_augment *a, int pad, uint8_t fill, float p);
int loom_augment_add_brightness(loom_augment *a, float b, float p);
int loom_augment_add_contrast(loom_augment *a, float c, float p);
/* Per-channel normalization; n = 1 (broadcast) or the image's channel count. */
int loom_augment_set_normalize(loom_augment *a, int n, const float *mean, const float *std);

/* Number of items (normalize not counted). */
int loom_augment_count(const loom_augment *a);
/* Whether the chain makes sense for w x h images of c channels (a crop that
 * shifts by half the image or more, normalize values for another channel
 * count are refused). LOOM_OK, or LOOM_ERR with the reason. */
int loom_augment_check(const loom_augment *a, int w, int h, int c);

/* Scratch bytes loom_augment_apply needs for these sizes (a may be NULL). */
size_t loom_augment_scratch(const loom_augment *a, int sw, int sh, int c, int dw, int dh);
/* Augment one image: resize src to (dw, dh) if it differs, run the chain with
 * draws from key (item i: counter 8i decides, 8i+1 and 8i+2 give its
 * parameters), write float CHW (c x dh x dw) to dst. a = NULL means resize
 * + x/255. LOOM_OK or LOOM_ERR (bad sizes, normalize channel count mismatch). */
int loom_augment_apply(const loom_augment *a, const uint8_t *src, int sw, int sh, int c, float *dst,
                       int dw, int dh, uint64_t key, uint8_t *scratch);

#ifdef __cplusplus
}
#endif
#endif

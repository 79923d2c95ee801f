/* augment — shared by the files of this folder only. A view lets flips cost
 * nothing: mirrored images are the same bytes read with negative steps, and
 * every transform reads its input through a view. */
#ifndef LOOM_AUGMENT_INTERNAL_H
#define LOOM_AUGMENT_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const uint8_t *p;   /* bytes of pixel (0, 0) as seen */
    ptrdiff_t xs, ys;   /* byte steps to the next pixel / row as seen */
    const uint8_t *buf; /* the w*h*c bytes underneath, in memory order */
    int w, h, c;
} aug_view;

/* A plain view of a contiguous HWC image. */
aug_view aug_view_of(const uint8_t *img, int w, int h, int c);
void aug_view_flip_h(aug_view *v);
void aug_view_flip_v(aug_view *v);

/* Checks sizes for the public entry points; fn names the caller in the message. */
int aug_check_size(const char *fn, int w, int h, int c);

void aug_rotate_view(const aug_view *v, uint8_t *dst, double degrees, uint8_t fill);
void aug_translate_view(const aug_view *v, uint8_t *dst, int dx, int dy, uint8_t fill);

enum { AUG_OP_BRIGHTNESS, AUG_OP_CONTRAST };
typedef struct {
    int kind;
    float f; /* the drawn factor */
} aug_color_op;

/* The fused conversion: colour ops in order, then (x/255 - mean[ch]) / std[ch]
 * with mean, std of length c (NULL: x/255). */
void aug_convert_view(const aug_view *v, float *dst, const aug_color_op *ops, int nops,
                      const float *mean, const float *std);

/* Scratch for the caller is not assumed aligned; int tables inside need it. */
static inline uint8_t *aug_align(uint8_t *p) {
    return p + ((16 - ((uintptr_t)p & 15)) & 15);
}
static inline size_t aug_round16(size_t n) { return (n + 15) & ~(size_t)15; }

#endif

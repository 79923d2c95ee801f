/* augment — the chain's representation, shared by chain.c and parse.c. */
#ifndef LOOM_AUGMENT_CHAIN_H
#define LOOM_AUGMENT_CHAIN_H

#include "loom/augment.h"

enum { AUG_FLIP_H, AUG_FLIP_V, AUG_ROTATE, AUG_CROP, AUG_BRIGHTNESS, AUG_CONTRAST };

/* Long enough for any sensible chain; a fixed bound keeps apply allocation-free. */
enum { AUG_MAX_ITEMS = 32 };

typedef struct {
    int kind;
    float p;     /* probability of applying */
    float v;     /* max degrees, brightness / contrast spread */
    int pad;     /* crop */
    uint8_t fill;
} aug_item;

struct loom_augment {
    aug_item items[AUG_MAX_ITEMS];
    int n;
    int norm_n; /* 0: plain x/255 */
    float mean[4], std[4];
};

#endif

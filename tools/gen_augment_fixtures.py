#!/usr/bin/python3
"""Generate tests/data/augment_fixtures.txt: two small deterministic images
resized and rotated by Pillow with BILINEAR, the reference for loom's
augment/resize.c and augment/rotate.c. Run once with Debian's Pillow
(apt-get install python3-pil python3-numpy):

    /usr/bin/python3 tools/gen_augment_fixtures.py > tests/data/augment_fixtures.txt

Format, one record per two lines, pixels as hex bytes in HWC order:
    image NAME W H C            then the pixels
    resize NAME W H             then the pixels of NAME resized to W x H
    rotate NAME DEGREES FILL    then the pixels of NAME.rotate(DEGREES, BILINEAR,
                                fillcolor=FILL in every channel)
The test (tests/test_augment.c) reads the images from here, so the pattern
below never has to be reproduced in C."""
import math

import numpy as np
import PIL
from PIL import Image


def rgb_source(w=23, h=17):
    """Smooth waves plus hard edges: a checkerboard channel and a saturated
    rectangle, so both interpolation and the edge handling are exercised."""
    a = np.zeros((h, w, 3), np.uint8)
    for y in range(h):
        for x in range(w):
            r = 128 + 90 * math.sin(0.45 * x + 0.2 * y)
            g = min(255, 8 * x + 5 * y)
            b = 230 if (x // 5 + y // 4) % 2 else 25
            if 6 <= x <= 12 and 4 <= y <= 9:
                r, g = 250, 10
            a[y, x] = (int(r), g, b)
    return Image.fromarray(a, "RGB")


def gray_source(w=19, h=23):
    a = np.zeros((h, w), np.uint8)
    for y in range(h):
        for x in range(w):
            v = 110 + 100 * math.cos(0.3 * x) * math.sin(0.35 * y)
            if x + y > 25:
                v += 40
            a[y, x] = max(0, min(255, int(v)))
    return Image.fromarray(a, "L")


def dump(header, im):
    print(header)
    print(np.asarray(im).tobytes().hex())


IMAGES = {"rgb": rgb_source(), "gray": gray_source()}
# up 2x, ~0.4x, large shrink (support 4.6 px), non-integer mixed ratios,
# one axis only (a single pass), and shrink one axis while growing the other
RESIZES = {
    "rgb": [(46, 34), (9, 7), (5, 4), (31, 13), (23, 40), (10, 17), (50, 9), (17, 23)],
    "gray": [(38, 46), (8, 9), (13, 30), (19, 5), (7, 23), (40, 11)],
}
ROTATIONS = {
    "rgb": [(10, 77), (-30, 77), (90, 200), (45, 0), (180, 77), (137.5, 77), (-7.3, 255), (270, 77)],
    "gray": [(10, 77), (-30, 0), (90, 200), (45, 77), (33.3, 77), (-100, 255)],
}

print("# augment fixtures: Pillow %s BILINEAR resize and rotate (tools/gen_augment_fixtures.py)"
      % PIL.__version__)
for name, im in IMAGES.items():
    c = len(im.getbands())
    dump("image %s %d %d %d" % (name, im.width, im.height, c), im)
    for w, h in RESIZES[name]:
        dump("resize %s %d %d" % (name, w, h), im.resize((w, h), Image.BILINEAR))
    for deg, fill in ROTATIONS[name]:
        color = fill if c == 1 else (fill,) * c
        dump("rotate %s %g %d" % (name, deg, fill), im.rotate(deg, resample=Image.BILINEAR, fillcolor=color))

/* loom — IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
 * Only unsigned-byte data (type 0x08) is supported; that is what the image and
 * label files of those data sets hold. */
#ifndef LOOM_IDX_H
#define LOOM_IDX_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* One IDX tensor: dims[0] items of item_size bytes each, row-major. */
typedef struct {
    int ndim;          /* 1..4 */
    uint32_t dims[4];  /* dims[ndim..3] are 0 */
    size_t count;      /* dims[0] */
    size_t item_size;  /* product of dims[1..ndim-1]; 1 for a 1-d file */
    uint8_t *data;     /* count * item_size bytes, owned; free with loom_idx_free */
} loom_idx;

/* Read an IDX file (gzip detected by its magic bytes, not the name) into *out. */
int loom_idx_read(const char *path, loom_idx *out);

/* Free the data of an idx read by loom_idx_read and zero it; NULL-safe. */
void loom_idx_free(loom_idx *idx);

/* Read an images file and a labels file; labels must be 1-d with the same count. */
int loom_idx_read_pair(const char *images, const char *labels, loom_idx *img, loom_idx *lab);
/* Read the labels file for img (read from images): 1-d, the same count. */
int loom_idx_read_labels(const char *labels, const char *images, const loom_idx *img, loom_idx *lab);
/* Only the header (magic, type, dimensions) of path into out (no data). */
int loom_idx_read_header(const char *path, loom_idx *out);

/* Find the images and labels files of split "train" or "test" ("t10k") in dir,
 * accepting {train,t10k}-{images-idx3,labels-idx1}-ubyte, the dotted variant
 * (train-images.idx3-ubyte), each with or without .gz. Paths go to img_path and
 * lab_path, each of capacity cap. */
int loom_idx_find(const char *dir, const char *split, char *img_path, char *lab_path,
                  size_t cap);

#ifdef __cplusplus
}
#endif
#endif

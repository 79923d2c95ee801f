/* loom — data sets: a count, class names, an image shape, and sample i as
 * uint8 HWC pixels plus a label. Readers exist for IDX (MNIST, Fashion-MNIST),
 * the Kaggle Digit Recognizer CSV, folders of class folders of PNG/JPEG
 * images, and CIFAR-10 binaries; loom_dataset_open recognises the format from
 * the path. Errors name the file, the position and the reason. */
#ifndef LOOM_DATASET_H
#define LOOM_DATASET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct loom_dataset loom_dataset;

struct loom_dataset {
    char format[16];      /* "idx", "csv", "folder", "cifar10", "subset" */
    char path[1024];
    size_t count;
    int c, h, w;          /* every sample is h*w*c bytes, HWC */
    int native_c, native_h, native_w; /* the data as stored (a folder: its first image), before
                                         any conversion to c, h, w the caller asked for */
    char split[8];        /* "train" or "test" for a set that has both splits (a folder of IDX
                             files or CIFAR batches, seg_train/seg_test), else "" */
    int num_classes;      /* classes of the task (a Kaggle test.csv still has 10) */
    char **class_names;   /* num_classes names (may be NULL for unnamed: "0".."9") */
    int labeled;          /* 0: get() returns label -1 (e.g. a Kaggle test.csv) */
    /* Read sample i into hwc (h*w*c bytes) and *label. Must be safe to call
     * from several threads at once with different buffers. LOOM_OK/LOOM_ERR. */
    int (*get)(loom_dataset *ds, size_t i, uint8_t *hwc, int32_t *label);
    /* A set of float features instead of pixels (c features, h = w = 1): sample i
     * into x (c floats), as they are (no augmentation, no scaling); get is NULL. */
    int (*get_f32)(loom_dataset *ds, size_t i, float *x, int32_t *label);
    /* Where sample i comes from, for messages ("seg_train/forest/123.jpg", "train.csv line 17"). */
    void (*describe)(const loom_dataset *ds, size_t i, char *buf, size_t cap);
    /* Optional: the label of sample i without decoding it (splits, class counts). */
    int32_t (*label_of)(const loom_dataset *ds, size_t i);
    void (*destroy)(loom_dataset *ds);   /* frees impl (not the struct or names) */
    void *impl;
};

typedef struct {
    int channels;         /* folder: 1 or 3 (0 = 3); others: native */
    int height, width;    /* folder, images: resize every image to this (0 = size of the first image,
                             and then an image of another size is an error, not resized) */
    int same_size;        /* folder, images: every image must have the first image's size even when
                             height and width are given (they resize them all alike) */
    const char *split;    /* "train" or "test" (default "train") for sets with both splits */
} loom_dataset_opts;

/* Open a data set, recognising the format from the path (and, for a file
 * whose name does not tell, from its first bytes): a folder holding IDX
 * files, an IDX images file (plain or gzip), a .csv file, a folder of
 * CIFAR-10 .bin batches (or one .bin), a folder whose sub-folders are
 * classes, or a folder holding such folders as splits (seg_train/seg_test
 * as in Kaggle's Intel Image Classification, or train/test; seg_pred, which
 * has no labels, is left alone). NULL on error. */
loom_dataset *loom_dataset_open(const char *path, const loom_dataset_opts *o);

loom_dataset *loom_dataset_open_idx(const char *path, const loom_dataset_opts *o);
loom_dataset *loom_dataset_open_csv(const char *path, const loom_dataset_opts *o);
loom_dataset *loom_dataset_open_folder(const char *path, const loom_dataset_opts *o);
loom_dataset *loom_dataset_open_cifar(const char *path, const loom_dataset_opts *o);
/* Unlabelled images (one file, or a flat folder of PNG/JPEG) for prediction. */
loom_dataset *loom_dataset_open_images(const char *path, const loom_dataset_opts *o);
/* Features written by `loom features` (or anyone): a safetensors file with
 * "features" [N, F] and "labels" [N] (F32 holding class indices, -1 for none),
 * class names in the metadata "loom.classes" (a JSON list). */
loom_dataset *loom_dataset_open_features(const char *path, const loom_dataset_opts *o);

/* Free a data set made by any loom_dataset_open*; NULL-safe. */
void loom_dataset_free(loom_dataset *ds);
/* Sample i (bounds-checked) -> LOOM_OK / LOOM_ERR. */
int loom_dataset_get(loom_dataset *ds, size_t i, uint8_t *hwc, int32_t *label);
/* Sample i of a features set (get_f32) -> LOOM_OK / LOOM_ERR. */
int loom_dataset_get_f32(loom_dataset *ds, size_t i, float *x, int32_t *label);
/* The label of sample i: cheap where the reader knows it, else by reading the sample. */
int loom_dataset_label(loom_dataset *ds, size_t i, int32_t *label);
/* Describe sample i into buf. */
void loom_dataset_describe(const loom_dataset *ds, size_t i, char *buf, size_t cap);
/* The name of class k ("3" when the set has no names). */
const char *loom_dataset_class_name(const loom_dataset *ds, int k, char *buf, size_t cap);

/* A view of `count` samples of base, sample i being base[index[i]] (index is
 * copied). The view does not own base: free base after the view. */
loom_dataset *loom_dataset_subset(loom_dataset *base, const uint32_t *index, size_t count);
/* Split base into train and validation views: a fraction val_frac goes to
 * validation, chosen with seed; stratified keeps each class's share. */
int loom_dataset_split(loom_dataset *base, double val_frac, uint64_t seed, int stratified,
                       loom_dataset **train, loom_dataset **val);

/* Helpers for readers. The struct with format and path filled and, when
 * impl_size > 0, a zeroed impl of that size with destroy attached, so that
 * loom_dataset_free undoes a failure at any later point (destroy must cope
 * with a partly filled impl, and frees the impl itself). NULL if out of memory. */
loom_dataset *loom_dataset_alloc(const char *format, const char *path, size_t impl_size,
                                 void (*destroy)(loom_dataset *ds));
/* Set the class names (copied). */
int loom_dataset_set_classes(loom_dataset *ds, int n, const char *const *names);

#ifdef __cplusplus
}
#endif
#endif

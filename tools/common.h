/* Pieces shared by the loom commands. */
#ifndef LOOM_TOOLS_COMMON_H
#define LOOM_TOOLS_COMMON_H

#include "loom/loom.h"
#include "loom/checkpoint.h"

/* The deterministic part of an augmentation spec (its normalize item), as a
 * chain for evaluation and prediction; NULL when there is none (or on error,
 * with loom_error set and *err = 1). */
loom_augment *eval_chain(const char *spec, int *err);
/* Parse "HxW" (or "S"); 0 on success. */
int parse_hw(const char *s, int *h, int *w);
/* Newline-separated class names of ds into buf. */
void class_names_of(const loom_dataset *ds, char *buf, size_t cap);
/* Name k of a newline-separated list (or the number). */
const char *class_name_at(const char *names, int k, char *buf, size_t cap);
double now_seconds(void);
/* mkdir -p: path and every missing parent, mode 0755; 0, or -1 with errno set. */
int mkdirs(const char *path);

#endif

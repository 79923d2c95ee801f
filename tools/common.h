/* Pieces shared by the loom commands. */
#ifndef LOOM_TOOLS_COMMON_H
#define LOOM_TOOLS_COMMON_H

#include <stddef.h>

#include "io/atomic.h"
#include "io/fs.h"
#include "io/image.h"
#include "kernels/clock.h"
#include "kernels/kernels.h"
#include "kernels/rng.h"
#include "loom/loom.h"
#include "cli.h"

/* The deterministic part of an augmentation spec (its normalize item), as a
 * chain for evaluation and prediction; NULL when there is none (or on error,
 * with loom_error set and *err = 1). */
loom_augment *eval_chain(const char *spec, int *err);
/* Parse "HxW" (or "S"); 0 on success. */
int parse_hw(const char *s, int *h, int *w);
/* "s" when n is not 1: printf("%d epoch%s", n, plural(n)). */
const char *plural(long n);

/* The cores this machine has online (at least 1). A thread count may be up to 4 per core. */
long online_cores(void);

/* --threads N (digits only; 0: one per core) into *threads, against this
 * machine: more than 4 per core is refused (it only slows training down),
 * more than one per core warned about. Left alone when not given. 0, or -1
 * after saying why. */
int cli_threads(const char *cmd, const cli_opt *o, long *threads);

/* Whether a file can be written at path before any work is done: its folder
 * exists and is writable, and path is not a folder. LOOM_OK or LOOM_ERR. */
int check_writable(const char *path);

/* A model that ends in a softmax (an ONNX classifier) without it: the
 * cross-entropy loss and loom's probabilities apply their own. 1 dropped, 0
 * none, -1 on error. */
int drop_final_softmax(loom_graph **g);

/* The model in an ONNX file or a checkpoint, told by content; *kind is
 * "ONNX" or "checkpoint". NULL on error (loom_error says why). */
loom_graph *open_model(const char *path, const char **kind);

/* An absolute form of path (which need not exist; its folder should):
 * malloc'd, or NULL. */
char *absolute_path(const char *path);
/* Whether the file to write at out (for option opt) is safe: not empty, not
 * one of the inputs (files, NULL-terminated), not inside an input folder.
 * LOOM_OK, or LOOM_ERR naming both. */
int check_output(const char *opt, const char *out, const char *const *inputs);
/* Both checks for a command's --out FILE, each failure said as "loom CMD: ...": 0, EXIT_USAGE (it
 * would overwrite an input) or EXIT_FAILED (it cannot be written). */
int check_out_file(const char *cmd, const char *out, const char *const *inputs);

/* What a model was trained on, as far as data must match it: its classes
 * (names NULL when the training data had none), the training data as stored
 * (channels and size before any conversion) and the input the model takes. */
typedef struct {
    int classes;
    char **names;       /* the data's own class names (NULL: none), checked against other data */
    char **labels;      /* names given with --class-names (NULL: none), shown instead of names */
    int native_c, native_h, native_w;
    int c, h, w;
    const char *from;   /* the checkpoint's path, named in check_fits' errors (NULL: "the model" alone) */
} model_side;

/* The name to show for class k ("3" when there is none). */
const char *model_class_name(const model_side *m, int k, char *buf, size_t cap);

void model_side_free(model_side *m);
/* The side of a data set that a model is trained on (input c, h, w). */
int model_side_of(model_side *m, const loom_dataset *ds, int c, int h, int w);
/* Whether ds fits m: the same class count, the same class names when both
 * have names (the data's names may match the model's own or its
 * --class-names), the same channels and image size as the training data
 * unless convert is set (resizing and colour conversion asked for; the
 * message names resize_opt, the option that asks). `what` names the data in
 * the message ("--val /x", "/data/test.csv"). LOOM_OK or LOOM_ERR. */
int check_fits(const char *what, const loom_dataset *ds, const model_side *m, int convert, const char *resize_opt);
/* The channel and size part of check_fits alone (for prediction, where the
 * data's own classes, if any, do not matter). */
int check_shape(const char *what, const loom_dataset *ds, const model_side *m, int convert, const char *resize_opt);
/* Whether s is valid UTF-8 (what JSON, and so a checkpoint, can hold). */
int utf8_valid(const char *s);
/* path quoted for a shell when it needs it ('a b' -> 'a b' in single quotes). */
const char *shell_quote(const char *path, char *buf, size_t cap);
/* "10 classes (T-shirt/top, Trouser, ...)" into buf. */
const char *describe_classes(int n, char *const *names, char *buf, size_t cap);

/* A data set's class names (NULL when it has none), copied. */
char **copy_names(int n, char *const *names);
void free_names(int n, char **names);

#endif

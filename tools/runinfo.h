/* What `loom train` keeps in a checkpoint beside the trainer's state, as the
 * "loom.run" metadata: the run's settings as options (so that a resumed run
 * takes them all from the checkpoint, and a contradicting option is caught),
 * what the model was trained on (classes, data shape: eval and predict check
 * their data against it), and the metrics of every epoch so far (so that a
 * resumed run's log and plot hold the whole history). */
#ifndef LOOM_TOOLS_RUNINFO_H
#define LOOM_TOOLS_RUNINFO_H

#include <jansson.h>
#include <stdint.h>

#include "common.h"

typedef struct {
    json_t *options;           /* option name -> value string */
    char data[4096];           /* training data (an absolute path) */
    char format[16];
    size_t count;              /* training samples (before any validation split) */
    uint64_t labels_digest;    /* FNV-1a of their labels in order: a resume on other data shows */
    model_side side;
    loom_epoch_metrics *hist;
    int nhist, cap;
} run_info;

void runinfo_init(run_info *ri);
void runinfo_free(run_info *ri);
/* Parse ck's "loom.run". LOOM_ERR (message set) when it has none or it is bad. */
int runinfo_read(run_info *ri, const loom_checkpoint *ck);
/* The JSON text (malloc'd), or NULL when out of memory. */
char *runinfo_text(const run_info *ri);
/* A digest of the run's options but where it writes its log and plot (every rank's the same). */
uint64_t runinfo_options_digest(const run_info *ri);
const char *runinfo_opt(const run_info *ri, const char *name);
int runinfo_set_opt(run_info *ri, const char *name, const char *value);
int runinfo_add_epoch(run_info *ri, const loom_epoch_metrics *m);
/* Keep only the epochs up to `epoch` (a resume redoes the later ones). */
void runinfo_truncate(run_info *ri, int epoch);

/* What a checkpoint's model was trained on: from its loom.run when it has
 * one, else from the graph alone (input shape, output count, no names). */
int model_side_of_checkpoint(model_side *m, const loom_checkpoint *ck, const loom_graph *g);
/* What a model itself takes: its input shape and output count (no class names). */
void model_side_of_graph(model_side *m, const loom_graph *g);

#endif

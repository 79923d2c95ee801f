/* loom summary: the layer table of a zoo model or of a checkpoint. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "common.h"

int cmd_summary(int argc, char **argv) {
    const char *what = (argc >= 1 && argv[0][0] != '-') ? argv[0] : NULL;
    cli_opt o[] = {{"model", "NAME", "zoo model (or give NAME or a checkpoint FILE as the first argument)", "lenet5"},
                   {"input", "CxHxW", "input shape for a zoo model", "1x28x28"},
                   {"classes", "N", "number of classes for a zoo model", "10"},
                   {"list", NULL, "list the zoo models", NULL},
                   {NULL, NULL, NULL, NULL}};
    int pr = cli_parse("summary", "[NAME|CHECKPOINT] [options]", o, argc - (what != NULL), argv + (what != NULL));
    if (pr) return pr > 0 ? 0 : 2;
    if (cli_get(o, "list")) {
        for (const char *const *n = loom_zoo_names(); *n; n++) printf("%s\n", *n);
        return 0;
    }
    if (!what) what = cli_get(o, "model");
    loom_graph *g = NULL;
    loom_train_state st;
    if (strchr(what, '/') || strstr(what, ".safetensors")) {
        if (!(g = loom_checkpoint_load(what, &st))) {
            fprintf(stderr, "loom summary: %s\n", loom_error());
            return 1;
        }
        if (st.epochs)
            printf("checkpoint %s: %s, trained %d of %d epochs (step %ld), best validation accuracy %.2f%%\n", what,
                   st.model[0] ? st.model : "custom", st.epoch, st.epochs, st.step, 100 * st.best_metric);
    } else {
        int c, h, w;
        char extra;
        if (sscanf(cli_get(o, "input"), "%dx%dx%d%c", &c, &h, &w, &extra) != 3 || c <= 0 || h <= 0 || w <= 0) {
            fprintf(stderr, "loom summary: --input: '%s' is not CxHxW (e.g. 3x64x64)\n", cli_get(o, "input"));
            return 2;
        }
        long k = 10;
        if (cli_int("summary", o, "classes", 1, 1000000, &k)) return 2;
        if (!(g = loom_zoo_build(what, c, h, w, (int)k, 1))) {
            fprintf(stderr, "loom summary: %s\n", loom_error());
            return 1;
        }
    }
    loom_graph_summary(g, stdout);
    loom_graph_free(g);
    return 0;
}

/* loom summary: the layer table of a zoo model. */
#include <stdio.h>

#include "cli.h"
#include "loom/loom.h"

int cmd_summary(int argc, char **argv) {
    cli_opt o[] = {{"model", "NAME", "zoo model", "lenet5"},
                   {"input", "CxHxW", "input shape", "1x28x28"},
                   {"classes", "N", "number of classes", "10"},
                   {NULL, NULL, NULL, NULL}};
    int pr = cli_parse("summary", "[options]", o, argc, argv);
    if (pr) return pr > 0 ? 0 : 2;
    int c, h, w;
    char extra;
    if (sscanf(cli_get(o, "input"), "%dx%dx%d%c", &c, &h, &w, &extra) != 3 || c <= 0 || h <= 0 || w <= 0) {
        fprintf(stderr, "loom summary: --input: '%s' is not CxHxW (e.g. 3x64x64)\n", cli_get(o, "input"));
        return 2;
    }
    long k = 10;
    if (cli_int("summary", o, "classes", 1, 1000000, &k)) return 2;
    loom_graph *g = loom_zoo_build(cli_get(o, "model"), c, h, w, (int)k, 1);
    if (!g) {
        fprintf(stderr, "loom summary: %s\n", loom_error());
        return 1;
    }
    loom_graph_summary(g, stdout);
    loom_graph_free(g);
    return 0;
}

/* loom export: a checkpoint (or an ONNX model, or a zoo model) as an ONNX file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"
#include "loom/onnx.h"

static const cli_opt export_options[] = {
    CLI_OPT("out", "FILE", "the ONNX file to write (opset 13)", NULL),
    CLI_OPT("input", "CxHxW", "for a zoo model: its input shape", NULL),
    CLI_OPT("classes", "N", "for a zoo model: its number of classes", NULL),
    CLI_OPT("seed", "N", "for a zoo model: the seed of its initial weights", "1"),
    CLI_END};

int cmd_export(int argc, char **argv) {
    cli_opt o[sizeof export_options / sizeof *export_options];
    memcpy(o, export_options, sizeof o);
    const char *what = NULL;
    int npos = 0, pr = cli_parse("export", "CHECKPOINT|MODEL.onnx|ZOO-NAME --out model.onnx [options]", o, argc, argv,
                                 &what, 1, &npos);
    if (pr) return pr > 0 ? EXIT_DONE : EXIT_USAGE;
    if (!what) {
        fprintf(stderr, "loom export: give the model (a checkpoint, an .onnx file or a zoo name) as the argument\n");
        return EXIT_USAGE;
    }
    const char *out = cli_get(o, "out");
    if (!out) {
        fprintf(stderr, "loom export: --out FILE is required\n");
        return EXIT_USAGE;
    }
    if (!strcmp(out, "-")) {
        fprintf(stderr, "loom export: --out -: an ONNX model is written to a file (it is binary), not to standard "
                        "output\n");
        return EXIT_USAGE;
    }
    if (!loom_onnx_available()) {
        fprintf(stderr, "loom export: loom was built without ONNX support (cmake -DLOOM_ONNX=ON)\n");
        return EXIT_FAILED;
    }
    int zoo = 0;
    for (const char *const *n = loom_zoo_names(); *n && !zoo; n++) zoo = !strcmp(*n, what);
    if (!zoo && (cli_given(o, "input") || cli_given(o, "classes") || cli_given(o, "seed"))) {
        fprintf(stderr, "loom export: --input, --classes and --seed describe a zoo model; %s has its own\n", what);
        return EXIT_USAGE;
    }
    const char *inputs[] = {what, NULL};
    int bad = check_out_file("export", out, inputs);
    if (bad) return bad;
    loom_graph *g = NULL;
    if (zoo) {
        int c, h, w;
        char extra;
        long k, seed;
        if (!cli_given(o, "input") || !cli_given(o, "classes")) {
            fprintf(stderr, "loom export: a zoo model needs --input CxHxW and --classes N\n");
            return EXIT_USAGE;
        }
        if (sscanf(cli_get(o, "input"), "%dx%dx%d%c", &c, &h, &w, &extra) != 3 || c <= 0 || h <= 0 || w <= 0 ||
            c > 4096 || h > 4096 || w > 4096) {
            fprintf(stderr, "loom export: --input: '%s' is not CxHxW (e.g. 3x64x64)\n", cli_get(o, "input"));
            return EXIT_USAGE;
        }
        if (cli_int("export", o, "classes", 1, 1000000, &k) || cli_int("export", o, "seed", 0, 0x7fffffffL, &seed))
            return EXIT_USAGE;
        if (!(g = loom_zoo_build(what, c, h, w, (int)k, (uint64_t)seed))) {
            fprintf(stderr, "loom export: %s\n", loom_error());
            return EXIT_USAGE;
        }
    } else {
        const char *kind;
        g = open_model(what, &kind);
        if (!g) {
            fprintf(stderr, "loom export: %s\n", loom_error());
            return EXIT_FAILED;
        }
    }
    int rc = EXIT_DONE;
    if (loom_onnx_export(g, out)) {
        fprintf(stderr, "loom export: %s\n", loom_error());
        rc = EXIT_FAILED;
    } else {
        printf("%s: %s, %d layers, %zu parameters, as ONNX opset 13\n", out, loom_graph_name(g), loom_graph_count(g),
               loom_graph_param_count(g));
    }
    loom_graph_free(g);
    return rc;
}

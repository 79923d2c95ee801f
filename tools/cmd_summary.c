/* loom summary: the layer table of a zoo model, an ONNX model or a checkpoint
 * (with where its training stands). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "common.h"
#include "runinfo.h"

static const cli_opt summary_options[] = {
    CLI_OPT("model", "NAME", "zoo model (or give NAME, a checkpoint FILE or an .onnx FILE as the argument)", "lenet5"),
    CLI_OPT("input", "CxHxW", "input shape for a zoo model", "1x28x28"),
    CLI_OPT("classes", "N", "number of classes for a zoo model", "10"),
    CLI_OPT("list", NULL, "list the zoo models", NULL),
    CLI_END};

/* A 64-bit FNV-1a hash of the parameter and buffer bytes. */
static uint64_t digest(loom_graph *g) {
    uint64_t h = 0xcbf29ce484222325ull;
    const float *arr[2] = {loom_graph_params(g), loom_graph_buffers(g)};
    size_t n[2] = {loom_graph_param_count(g), loom_graph_buffer_count(g)};
    for (int a = 0; a < 2; a++) {
        const unsigned char *p = (const unsigned char *)arr[a];
        for (size_t i = 0; i < n[a] * sizeof(float); i++) h = (h ^ p[i]) * 0x100000001b3ull;
    }
    return h;
}

/* Where a checkpoint's training stands, from its loom.fit and loom.run. */
static void training_state(const char *path, loom_checkpoint *ck) {
    loom_trainer_opts to;
    loom_fit_state st;
    run_info ri;
    if (loom_train_read(ck, &to, &st)) {
        printf("checkpoint %s: a model (no training state to resume: %s)\n", path, loom_error());
        return;
    }
    int have_run = runinfo_read(&ri, ck) == LOOM_OK;
    const char *model = have_run ? runinfo_opt(&ri, "model") : NULL, *epochs = have_run ? runinfo_opt(&ri, "epochs") : NULL;
    printf("checkpoint %s: %s, trained %d of %s epochs", path, model && model[0] ? model : "custom model", st.epoch,
           epochs ? epochs : "?");
    if (st.batch) printf(" and %ld batches of the next", st.batch);
    if (st.best_epoch) printf(", best validation accuracy %.2f%% at epoch %d", 100 * st.best_metric, st.best_epoch);
    printf("\n");
    if (have_run) {
        char cls[512];
        printf("  trained on %s (%s, %zu samples, %s)\n", ri.data, ri.format, ri.count,
               describe_classes(ri.side.classes, ri.side.names, cls, sizeof cls));
        runinfo_free(&ri);
    }
}

static int zoo_name(const char *what) {
    for (const char *const *n = loom_zoo_names(); *n; n++)
        if (!strcmp(*n, what)) return 1;
    return 0;
}

int cmd_summary(int argc, char **argv) {
    cli_opt o[sizeof summary_options / sizeof *summary_options];
    memcpy(o, summary_options, sizeof o);
    const char *what = NULL;
    int npos = 0, pr = cli_parse("summary", "[NAME|CHECKPOINT] [options]", o, argc, argv, &what, 1, &npos);
    if (pr) return pr > 0 ? EXIT_DONE : EXIT_USAGE;
    if (cli_get(o, "list")) {
        for (const char *const *n = loom_zoo_names(); *n; n++) printf("%-12s %s\n", *n, loom_zoo_about(*n));
        return EXIT_DONE;
    }
    if (what && cli_given(o, "model")) {
        fprintf(stderr, "loom summary: give the model as the argument or as --model, not both\n");
        return EXIT_USAGE;
    }
    if (!what) what = cli_get(o, "model");
    loom_graph *g = NULL;
    if (loom_onnx_sniff(what)) {
        if (cli_given(o, "input") || cli_given(o, "classes")) {
            fprintf(stderr, "loom summary: --input and --classes describe a zoo model; %s has its own\n", what);
            return EXIT_USAGE;
        }
        if (!(g = loom_onnx_import(what))) {
            fprintf(stderr, "loom summary: %s\n", loom_error());
            return EXIT_FAILED;
        }
        printf("ONNX model %s: the layer names are what --freeze-until and loom features take\n", what);
    } else if (strchr(what, '/') || strstr(what, ".safetensors") || (access(what, F_OK) == 0 && !zoo_name(what))) {
        if (cli_given(o, "input") || cli_given(o, "classes")) {
            fprintf(stderr, "loom summary: --input and --classes describe a zoo model; %s has its own\n", what);
            return EXIT_USAGE;
        }
        loom_checkpoint *ck = loom_checkpoint_open(what);
        if (!ck || !(g = loom_checkpoint_graph(ck))) {
            fprintf(stderr, "loom summary: %s\n", loom_error());
            loom_checkpoint_close(ck);
            return EXIT_FAILED;
        }
        training_state(what, ck);
        loom_checkpoint_close(ck);
        printf("weights digest: %016llx (FNV-1a of the parameters and buffers: equal digests, equal weights)\n",
               (unsigned long long)digest(g));
    } else {
        int c, h, w;
        char extra;
        if (sscanf(cli_get(o, "input"), "%dx%dx%d%c", &c, &h, &w, &extra) != 3 || c <= 0 || h <= 0 || w <= 0 ||
            c > 3 || h > 4096 || w > 4096) {
            fprintf(stderr, "loom summary: --input: '%s' is not CxHxW with 1..3 channels and sides up to 4096 (e.g. "
                            "3x64x64)\n",
                    cli_get(o, "input"));
            return EXIT_USAGE;
        }
        int known = 0;
        for (const char *const *n = loom_zoo_names(); *n && !known; n++) known = !strcmp(*n, what);
        if (!known) {
            fprintf(stderr, "loom summary: no model '%s' in the zoo (loom summary --list names them), and no "
                            "checkpoint of that name\n",
                    what);
            return EXIT_USAGE;
        }
        long k = 10;
        if (cli_int("summary", o, "classes", 1, 1000000, &k)) return EXIT_USAGE;
        if (!(g = loom_zoo_build(what, c, h, w, (int)k, 1))) {
            fprintf(stderr, "loom summary: %s\n", loom_error());
            return EXIT_USAGE; /* the model cannot take this --input */
        }
    }
    loom_graph_summary(g, stdout);
    loom_graph_free(g);
    return EXIT_DONE;
}

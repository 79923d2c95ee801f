/* loom run: a model (ONNX file or loom checkpoint) on raw float32 input,
 * raw float32 output: for comparing loom's numbers with another framework's. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "common.h"
#include "io/atomic.h"
#include "loom/onnx.h"

static const cli_opt run_options[] = {
    CLI_OPT("input", "FILE", "raw little-endian float32 input: N samples of the model's input shape, batch first", NULL),
    CLI_OPT("output", "FILE", "where to write the raw float32 output (N x the output size); - for standard output", NULL),
    CLI_OPT("batch", "N", "samples per forward pass", "64"),
    CLI_END};

typedef struct {
    const float *y;
    size_t n;
} out_buf;

static int write_out(FILE *f, void *ctx) {
    const out_buf *o = ctx;
    fwrite(o->y, sizeof(float), o->n, f);
    return LOOM_OK;
}

int cmd_run(int argc, char **argv) {
    cli_opt o[sizeof run_options / sizeof *run_options];
    memcpy(o, run_options, sizeof o);
    const char *model = NULL;
    int npos = 0, pr = cli_parse("run", "MODEL --input in.f32 --output out.f32 [options]", o, argc, argv, &model, 1, &npos);
    if (pr) return pr > 0 ? EXIT_DONE : EXIT_USAGE;
    long batch;
    if (!model) {
        fprintf(stderr, "loom run: give the model (an .onnx file or a checkpoint) as the argument\n");
        return EXIT_USAGE;
    }
    if (!cli_given(o, "input") || !cli_given(o, "output")) {
        fprintf(stderr, "loom run: --input FILE and --output FILE are required\n");
        return EXIT_USAGE;
    }
    if (cli_int("run", o, "batch", 1, 4096, &batch)) return EXIT_USAGE;
    const char *in_path = cli_get(o, "input"), *out_path = cli_get(o, "output");
    int to_stdout = !strcmp(out_path, "-");
    const char *inputs[] = {model, in_path, NULL};
    if (!to_stdout && check_output("--output", out_path, inputs)) {
        fprintf(stderr, "loom run: %s\n", loom_error());
        return EXIT_USAGE;
    }
    if (!to_stdout && check_writable(out_path)) {
        fprintf(stderr, "loom run: --output: %s\n", loom_error());
        return EXIT_FAILED;
    }
    const char *kind = "";
    loom_graph *g = open_model(model, &kind);
    if (!g) {
        fprintf(stderr, "loom run: %s\n", loom_error());
        return EXIT_FAILED;
    }
    int rc = EXIT_FAILED;
    float *x = NULL, *y = NULL;
    loom_exec *e = NULL;
    const loom_layer *in = loom_graph_layer(g, 0);
    size_t isz = in->size, osz = loom_graph_layer(g, loom_graph_output(g))->size;
    FILE *f = fopen(in_path, "rb");
    struct stat st;
    if (!f || fstat(fileno(f), &st)) {
        fprintf(stderr, "loom run: %s: %s\n", in_path, strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "loom run: --input %s: %s, not a file of float32 values\n", in_path,
                S_ISDIR(st.st_mode) ? "a folder" : "a device or pipe");
        goto out;
    }
    size_t bytes = (size_t)st.st_size, per = isz * sizeof(float);
    if (bytes == 0) {
        fprintf(stderr, "loom run: %s: the file is empty: no samples to run (each is %dx%dx%d float32, %zu bytes)\n",
                in_path, in->c, in->h, in->w, per);
        goto out;
    }
    if (bytes % per) {
        fprintf(stderr, "loom run: %s: %zu bytes is not a whole number of samples of %dx%dx%d float32 (%zu bytes each)\n",
                in_path, bytes, in->c, in->h, in->w, per);
        goto out;
    }
    size_t n = bytes / per;
    x = malloc(bytes);
    y = malloc(n * osz * sizeof(float));
    if (!x || !y) {
        fprintf(stderr, "loom run: out of memory for %zu samples\n", n);
        goto out;
    }
    if (fread(x, 1, bytes, f) != bytes) {
        fprintf(stderr, "loom run: %s: read failed\n", in_path);
        goto out;
    }
    int B = (int)(n < (size_t)batch ? n : (size_t)batch);
    if (!(e = loom_exec_new(g, B))) {
        fprintf(stderr, "loom run: %s\n", loom_error());
        goto out;
    }
    for (size_t i = 0; i < n; i += (size_t)B) {
        int m = (int)(n - i < (size_t)B ? n - i : (size_t)B);
        memcpy(loom_exec_input(e), x + i * isz, (size_t)m * per);
        if (loom_exec_forward(e, m, 0, 0, 0)) {
            fprintf(stderr, "loom run: %s\n", loom_error());
            goto out;
        }
        memcpy(y + i * osz, loom_exec_output(e), (size_t)m * osz * sizeof(float));
    }
    out_buf ob = {y, n * osz};
    if (to_stdout) {
        if (fwrite(y, sizeof(float), n * osz, stdout) != n * osz || fflush(stdout)) {
            fprintf(stderr, "loom run: writing standard output failed\n");
            goto out;
        }
    } else if (loom_atomic_write(out_path, write_out, &ob)) {
        fprintf(stderr, "loom run: %s\n", loom_error());
        goto out;
    }
    fprintf(stderr, "loom run: %s (%s): %zu sample%s of %dx%dx%d -> %zu float32 each%s%s\n", model, kind, n,
            n == 1 ? "" : "s", in->c, in->h, in->w, osz, to_stdout ? "" : ", written to ", to_stdout ? "" : out_path);
    rc = EXIT_DONE;
out:
    if (f) fclose(f);
    free(x);
    free(y);
    loom_exec_free(e);
    loom_graph_free(g);
    return rc;
}

/* The loom command: one binary, one sub-command per task. */
#include <stdio.h>
#include <string.h>

#include <jansson.h>
#include <png.h>
#include <zlib.h>

#include <cairo.h>

#include "cli.h"

#ifndef LOOM_VERSION
#define LOOM_VERSION "unknown"
#endif

static void usage(FILE *f) {
    fprintf(f,
            "loom - train convolutional networks on every core of the CPU\n\n"
            "usage: loom COMMAND [options]   (loom COMMAND --help for its options)\n\n"
            "commands:\n"
            "  train        train a model on a data set, printing progress and accuracy\n"
            "  eval         accuracy, per-class precision/recall and confusion matrix of a checkpoint\n"
            "  predict      classes of images, or a Kaggle submission file, from a checkpoint\n"
            "  summary      print a model's layers, output shapes, parameters and FLOPs\n"
            "  run          run an ONNX model or a checkpoint on raw float32 input, writing raw float32 output\n"
            "  export       write a checkpoint (or a zoo model) as an ONNX model\n"
            "  features     write a layer's outputs for a data set (for loom train --model logreg)\n"
            "  bench        measure training and inference speed per thread count, or the data pipeline\n"
            "  data         describe a data set and check every record\n"
            "  make-folder  write an Intel-style folder of JPEGs (synthetic or from Fashion-MNIST)\n"
            "  make-csv     write Kaggle Digit Recognizer train.csv/test.csv from IDX data\n"
            "  help         this text;  --version  the version and the libraries it uses\n\n"
            "exit status: 0 done; 1 the work failed (unreadable data, a file that cannot be written,\n"
            "training diverged); 2 the command line cannot be carried out as given (an unknown or\n"
            "malformed option, a value out of range, options that contradict each other or the\n"
            "checkpoint, an output that would overwrite other work); 128+N stopped by signal N\n"
            "(130: Ctrl-C) after saving what could be saved.\n");
}

static void version(void) {
    printf("loom %s\n", LOOM_VERSION);
    printf("  OpenBLAS (cblas), libpng %s, libjpeg-turbo, zlib %s, jansson %s, cairo %s\n", PNG_LIBPNG_VER_STRING,
           zlibVersion(), JANSSON_VERSION, cairo_version_string());
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *c = argv[1];
    if (!strcmp(c, "train")) return cmd_train(argc - 2, argv + 2);
    if (!strcmp(c, "summary")) return cmd_summary(argc - 2, argv + 2);
    if (!strcmp(c, "bench")) return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(c, "data")) return cmd_data(argc - 2, argv + 2);
    if (!strcmp(c, "eval")) return cmd_eval(argc - 2, argv + 2);
    if (!strcmp(c, "predict")) return cmd_predict(argc - 2, argv + 2);
    if (!strcmp(c, "make-folder")) return cmd_make_folder(argc - 2, argv + 2);
    if (!strcmp(c, "make-csv")) return cmd_make_csv(argc - 2, argv + 2);
    if (!strcmp(c, "run")) return cmd_run(argc - 2, argv + 2);
    if (!strcmp(c, "export")) return cmd_export(argc - 2, argv + 2);
    if (!strcmp(c, "features")) return cmd_features(argc - 2, argv + 2);
    if (!strcmp(c, "help") || !strcmp(c, "--help") || !strcmp(c, "-h")) {
        if (argc > 2) { /* loom help train: the command's own help */
            static const char *const cmds[] = {"train", "eval", "predict", "summary", "bench", "data", "make-folder",
                                               "make-csv", "run", "export", "features"};
            for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++)
                if (!strcmp(argv[2], cmds[i])) {
                    char *args[] = {argv[0], argv[2], "--help", NULL};
                    return main(3, args);
                }
            fprintf(stderr, "loom help: no command '%s'\n\n", argv[2]);
            usage(stderr);
            return EXIT_USAGE;
        }
        usage(stdout);
        return EXIT_DONE;
    }
    if (!strcmp(c, "--version") || !strcmp(c, "version")) {
        version();
        return EXIT_DONE;
    }
    fprintf(stderr, "loom: unknown command '%s'\n\n", c);
    usage(stderr);
    return EXIT_USAGE;
}

/* The loom command: one binary, one sub-command per task. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "loom - train convolutional networks on every core of the CPU\n\n"
            "usage: loom COMMAND [options]   (loom COMMAND --help for its options)\n\n"
            "commands:\n"
            "  train     train a model on a data set, printing progress and accuracy\n"
            "  eval      accuracy, per-class precision/recall and confusion matrix of a checkpoint\n"
            "  predict   classes of images, or a Kaggle submission file, from a checkpoint\n"
            "  summary   print a model's layers, output shapes, parameters and FLOPs\n"
            "  bench     measure training and inference speed per thread count, or the data pipeline\n"
            "  data      describe a data set and check every record\n"
            "  make-folder  write an Intel-style folder of JPEGs (synthetic or from Fashion-MNIST)\n"
            "  make-csv  write Kaggle Digit Recognizer train.csv/test.csv from IDX data\n"
            "  help      this text\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
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
    if (!strcmp(c, "help") || !strcmp(c, "--help") || !strcmp(c, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "loom: unknown command '%s'\n\n", c);
    usage(stderr);
    return 2;
}

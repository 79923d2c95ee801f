/* loom data PATH: what a data set is (format, count, classes with counts,
 * image shape), with every record read and each bad one reported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "loom/loom.h"

int cmd_data(int argc, char **argv) {
    if (argc < 1 || argv[0][0] == '-') {
        if (argc >= 1 && (!strcmp(argv[0], "--help") || !strcmp(argv[0], "-h"))) {
            printf("usage: loom data PATH [--split train|test] [--image-size HxW] [--channels N]\n\n"
                   "Describe a data set (IDX folder or file, Kaggle CSV, folder of class folders, CIFAR-10\n"
                   "batches) and read every record, reporting each unreadable one. Exit status 1 if any is bad.\n");
            return 0;
        }
        fprintf(stderr, "loom data: a PATH is required (loom data --help)\n");
        return 2;
    }
    const char *path = argv[0];
    cli_opt o[] = {{"split", "NAME", "train or test (IDX, CIFAR)", "train"},
                   {"image-size", "HxW", "folder images are resized to this (default: first image's size)", NULL},
                   {"channels", "N", "folder images: 1 or 3", "3"},
                   {NULL, NULL, NULL, NULL}};
    int pr = cli_parse("data", "PATH [options]", o, argc - 1, argv + 1);
    if (pr) return pr > 0 ? 0 : 2;
    loom_dataset_opts dop = {.split = cli_get(o, "split")};
    long ch = 3;
    if (cli_int("data", o, "channels", 1, 3, &ch)) return 2;
    dop.channels = (int)ch;
    if (cli_get(o, "image-size") && sscanf(cli_get(o, "image-size"), "%dx%d", &dop.height, &dop.width) != 2) {
        fprintf(stderr, "loom data: --image-size: '%s' is not HxW\n", cli_get(o, "image-size"));
        return 2;
    }
    loom_dataset *ds = loom_dataset_open(path, &dop);
    if (!ds) {
        fprintf(stderr, "loom data: %s\n", loom_error());
        return 1;
    }
    printf("%s\n  format: %s\n  samples: %zu\n  image: %d x %d x %d (channels x height x width)\n  labels: %s\n",
           ds->path, ds->format, ds->count, ds->c, ds->h, ds->w, ds->labeled ? "yes" : "no (a test set)");
    size_t sz = (size_t)ds->c * ds->h * ds->w;
    uint8_t *buf = malloc(sz);
    long *counts = calloc((size_t)ds->num_classes + 1, sizeof(long));
    long bad = 0, out_of_range = 0;
    double sum = 0;
    for (size_t i = 0; i < ds->count; i++) {
        int32_t lab;
        if (loom_dataset_get(ds, i, buf, &lab)) {
            if (bad < 50) printf("  bad record: %s\n", loom_error());
            bad++;
            continue;
        }
        for (size_t k = 0; k < sz; k++) sum += buf[k];
        if (!ds->labeled) continue;
        if (lab >= 0 && lab < ds->num_classes) counts[lab]++;
        else out_of_range++;
    }
    if (bad > 50) printf("  ... and %ld more bad records\n", bad - 50);
    if (ds->num_classes) {
        printf("  classes: %d\n", ds->num_classes);
        char nb[32];
        for (int k = 0; k < ds->num_classes; k++)
            if (ds->labeled) printf("    %3d %-24s %8ld\n", k, loom_dataset_class_name(ds, k, nb, sizeof nb), counts[k]);
            else printf("    %3d %s\n", k, loom_dataset_class_name(ds, k, nb, sizeof nb));
    }
    size_t good = ds->count - (size_t)bad;
    printf("  mean pixel value: %.2f\n", good ? sum / ((double)good * (double)sz) : 0.0);
    printf("  checked %zu records: %zu good, %ld bad%s\n", ds->count, good, bad,
           out_of_range ? " (and labels out of range)" : "");
    free(buf);
    free(counts);
    loom_dataset_free(ds);
    return bad || out_of_range ? 1 : 0;
}

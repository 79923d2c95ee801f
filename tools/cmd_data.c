/* loom data PATH: what a data set is (format, count, classes with counts,
 * image shape, splits), with every record read and each bad one reported. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "common.h"

static const cli_opt data_options[] = {
    CLI_OPT("split", "NAME", "train or test, for data that has both (default train)", NULL),
    CLI_OPT("image-size", "HxW", "image folders: resize to this (as loom train --image-size would)", NULL),
    CLI_OPT("channels", "N", "image folders: 1 (grey) or 3 (colour; grey images are converted)", "3"),
    CLI_END};

/* Format, splits, count, shape, labels. */
static void describe(const loom_dataset *ds, const char *path) {
    printf("%s\n  format: %s\n", ds->path, ds->format);
    if (ds->split[0])
        printf("  split: %s (the data has a train and a test split; --split %s for the other)\n", ds->split,
               strcmp(ds->split, "train") ? "train" : "test");
    char pred[4200];
    snprintf(pred, sizeof pred, "%s/seg_pred", path);
    if (ds->split[0] && !strcmp(ds->format, "folder") && loom_is_dir(pred))
        printf("  (%s holds unlabelled images: not used for training; loom predict classifies them)\n", pred);
    if (ds->get_f32) printf("  samples: %zu\n  features: %d floats per sample", ds->count, ds->c);
    else printf("  samples: %zu\n  image: %d x %d x %d (channels x height x width)", ds->count, ds->c, ds->h, ds->w);
    if (ds->native_c != ds->c || ds->native_h != ds->h || ds->native_w != ds->w)
        printf(", converted from %d x %d x %d (the first image)", ds->native_c, ds->native_h, ds->native_w);
    printf("\n  labels: %s\n", ds->labeled ? "yes" : "no (a test set)");
}

/* Read every record: each bad one named, the classes counted. The exit status. */
static int check_records(loom_dataset *ds) {
    size_t sz = (size_t)ds->c * ds->h * ds->w;
    uint8_t *buf = malloc(sz * sizeof(float));
    float *fbuf = (float *)(void *)buf;
    long *counts = calloc((size_t)ds->num_classes + 1, sizeof(long));
    long bad = 0, out_of_range = 0;
    double sum = 0;
    for (size_t i = 0; buf && counts && i < ds->count; i++) {
        int32_t lab;
        if (ds->get_f32 ? loom_dataset_get_f32(ds, i, fbuf, &lab) : loom_dataset_get(ds, i, buf, &lab)) {
            if (bad < 50) printf("  bad record: %s\n", loom_error());
            bad++;
            continue;
        }
        for (size_t k = 0; k < sz; k++) sum += ds->get_f32 ? fbuf[k] : buf[k];
        if (!ds->labeled) continue;
        if (lab >= 0 && lab < ds->num_classes) counts[lab]++;
        else out_of_range++;
    }
    if (bad > 50) printf("  ... and %ld more bad records\n", bad - 50);
    if (ds->num_classes && counts) {
        printf("  classes: %d\n", ds->num_classes);
        char nb[32];
        for (int k = 0; k < ds->num_classes; k++)
            if (ds->labeled) printf("    %3d %-24s %8ld%s\n", k, loom_dataset_class_name(ds, k, nb, sizeof nb), counts[k],
                                    counts[k] ? "" : "   (no samples)");
            else printf("    %3d %s\n", k, loom_dataset_class_name(ds, k, nb, sizeof nb));
    }
    size_t good = ds->count - (size_t)bad;
    printf("  mean %s value: %.2f\n", ds->get_f32 ? "feature" : "pixel", good ? sum / ((double)good * (double)sz) : 0.0);
    printf("  checked %zu records: %zu good, %ld bad%s\n", ds->count, good, bad,
           out_of_range ? " (and labels out of range)" : "");
    int ok = buf && counts;
    free(buf);
    free(counts);
    if (!ok) return fprintf(stderr, "loom data: out of memory\n"), EXIT_FAILED;
    return bad || out_of_range ? EXIT_FAILED : EXIT_DONE;
}

int cmd_data(int argc, char **argv) {
    cli_opt o[sizeof data_options / sizeof *data_options];
    memcpy(o, data_options, sizeof o);
    const char *path = NULL;
    int npos = 0, pr = cli_parse("data",
                                 "PATH [options]\n\nDescribe a data set (IDX folder or file, Kaggle CSV, folder of "
                                 "class folders, CIFAR-10 batches)\nand read every record, reporting each unreadable "
                                 "one. Exit status 1 if any is bad.",
                                 o, argc, argv, &path, 1, &npos);
    if (pr) return pr > 0 ? EXIT_DONE : EXIT_USAGE;
    if (npos != 1) {
        fprintf(stderr, "loom data: a PATH is required (loom data --help)\n");
        return EXIT_USAGE;
    }
    loom_dataset_opts dop = {.split = cli_get(o, "split")};
    if (dop.split && strcmp(dop.split, "train") && strcmp(dop.split, "test")) {
        fprintf(stderr, "loom data: --split: '%s' is not a split (train or test)\n", dop.split);
        return EXIT_USAGE;
    }
    long ch = 0;
    if (cli_int("data", o, "channels", 1, 3, &ch) || ch == 2) {
        if (ch == 2) fprintf(stderr, "loom data: --channels: 1 (grey) or 3 (colour)\n");
        return EXIT_USAGE;
    }
    if (!cli_given(o, "channels")) ch = 0; /* the reader's default (3 for folders) */
    dop.channels = (int)ch;
    if (cli_get(o, "image-size") && parse_hw(cli_get(o, "image-size"), &dop.height, &dop.width)) {
        fprintf(stderr, "loom data: --image-size: '%s' is not HxW (e.g. 64x64)\n", cli_get(o, "image-size"));
        return EXIT_USAGE;
    }
    loom_dataset *ds = loom_dataset_open(path, &dop);
    if (!ds) {
        fprintf(stderr, "loom data: %s\n", loom_error());
        return EXIT_FAILED;
    }
    int folder = !strcmp(ds->format, "folder") || !strcmp(ds->format, "images");
    const char *refuse = !folder && cli_get(o, "image-size") ? "--image-size"
                         : !folder && ch && ch != ds->c  ? "--channels"
                         : cli_get(o, "split") && !ds->split[0] ? "--split"
                                                                : NULL;
    if (refuse) {
        fprintf(stderr, "loom data: %s: %s is %s data, %s\n", refuse, path, ds->format,
                !strcmp(refuse, "--split") ? "without train/test splits"
                                           : "whose images all have one size and channel count (the option applies "
                                             "to image folders; loom train resizes while loading)");
        loom_dataset_free(ds);
        return EXIT_USAGE;
    }
    describe(ds, path);
    int rc = check_records(ds);
    loom_dataset_free(ds);
    return rc;
}

/* Training from C: build a model, make a trainer, fit it on Fashion-MNIST
 * with validation, read the metrics. Build: part of the CMake build
 * (build/example_train_fashion [IDX folder]). */
#include <stdio.h>

#include <loom/loom.h>

/* The library prints nothing: a program shows what it wants, here a line per epoch. */
static int show(const loom_epoch_metrics *m, const loom_fit_state *st, void *user) {
    (void)st;
    (void)user;
    printf("epoch %d: train loss %.4f acc %.2f%% | val acc %.2f%% | %.0f img/s\n", m->epoch, m->train_loss,
           100 * m->train_acc, 100 * m->val_acc, m->images_per_s);
    return 0;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    loom_dataset *train = loom_dataset_open_idx(dir, &(loom_dataset_opts){.split = "train"});
    loom_dataset *test = loom_dataset_open_idx(dir, &(loom_dataset_opts){.split = "test"});
    if (!train || !test) {
        fprintf(stderr, "%s\n", loom_error());
        return 1;
    }

    /* a small CNN, written out: conv-BN-ReLU, pool, dense head */
    loom_graph *g = loom_graph_new("small-cnn");
    loom_node x = loom_input(g, 1, 28, 28);
    x = loom_relu(g, loom_batchnorm(g, loom_conv2d(g, x, 16, 3, 1, 1)));
    x = loom_maxpool2d(g, x, 2, 2);
    x = loom_relu(g, loom_batchnorm(g, loom_conv2d(g, x, 32, 3, 1, 1)));
    x = loom_maxpool2d(g, x, 2, 2);
    x = loom_dropout(g, loom_relu(g, loom_dense(g, x, 64)), 0.25f);
    loom_dense(g, x, 10);
    if (loom_graph_finish(g, 42) != LOOM_OK) {
        fprintf(stderr, "%s\n", loom_error());
        return 1;
    }
    loom_graph_summary(g, stdout);

    loom_trainer *t = loom_trainer_new(g, &(loom_trainer_opts){
        .batch = 64, .threads = 0 /* all cores */, .seed = 42,
        .optim = {.kind = LOOM_ADAM}});
    loom_fit_opts fo = {.epochs = 2, .lr = 2e-3f, .schedule = "cosine", .val = test, .on_epoch = show,
                        .loader = {.producers = 1, .shuffle = 1, .seed = 42}};
    loom_epoch_metrics m[2];
    int ran = loom_fit(t, train, &fo, m);
    if (ran < 0) {
        fprintf(stderr, "%s\n", loom_error());
        return 1;
    }
    printf("after %d epochs: validation accuracy %.2f%% (loss %.4f)\n", ran, 100 * m[ran - 1].val_acc,
           m[ran - 1].val_loss);

    loom_trainer_free(t);
    loom_graph_free(g);
    loom_dataset_free(train);
    loom_dataset_free(test);
    return 0;
}

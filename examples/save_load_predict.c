/* A custom model from C, end to end: define it, train it briefly, save it as
 * a checkpoint, load it back into a new graph, and predict with it.
 *   build/example_save_load_predict [IDX folder] */
#include <stdio.h>
#include <stdlib.h>

#include <loom/loom.h>

/* A residual block written with the graph API: conv-BN-ReLU-conv-BN + input. */
static loom_node residual(loom_graph *g, loom_node x, int channels) {
    loom_node y = loom_relu(g, loom_batchnorm(g, loom_conv2d(g, x, channels, 3, 1, 1)));
    y = loom_batchnorm(g, loom_conv2d(g, y, channels, 3, 1, 1));
    return loom_relu(g, loom_add(g, x, y));
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    loom_dataset *train = loom_dataset_open_idx(dir, &(loom_dataset_opts){.split = "train"});
    loom_dataset *test = loom_dataset_open_idx(dir, &(loom_dataset_opts){.split = "test"});
    if (!train || !test) {
        fprintf(stderr, "%s\n", loom_error());
        return 1;
    }

    loom_graph *g = loom_graph_new("tiny-resnet");
    loom_node x = loom_input(g, 1, 28, 28);
    x = loom_relu(g, loom_batchnorm(g, loom_conv2d(g, x, 16, 3, 1, 1)));
    x = residual(g, x, 16);
    x = loom_maxpool2d(g, x, 2, 2);
    x = loom_global_avgpool(g, residual(g, x, 16));
    loom_dense(g, x, 10);
    loom_graph_set_default_init(g, (loom_init){LOOM_INIT_HE_NORMAL, 0, 0});
    if (loom_graph_finish(g, 7) != LOOM_OK) {
        fprintf(stderr, "%s\n", loom_error());
        return 1;
    }

    /* one epoch on the first 12,000 images */
    uint32_t *first = malloc(12000 * sizeof *first);
    for (uint32_t i = 0; i < 12000; i++) first[i] = i;
    loom_dataset *part = loom_dataset_subset(train, first, 12000);
    free(first);
    loom_trainer *t = loom_trainer_new(g, &(loom_trainer_opts){.batch = 64, .seed = 7,
                                                              .optim = {.kind = LOOM_ADAM}});
    loom_fit_opts fo = {.epochs = 1, .lr = 3e-3f, .val = test, .loader = {.shuffle = 1, .seed = 7}};
    if (!t || loom_fit(t, part, &fo, NULL) < 0) {
        fprintf(stderr, "%s\n", loom_error());
        return 1;
    }

    /* save, then load into a fresh graph (architecture and weights from the file) */
    const char *path = "/tmp/tiny-resnet.safetensors";
    if (loom_checkpoint_save(path, g, NULL) != LOOM_OK) {
        fprintf(stderr, "%s\n", loom_error());
        return 1;
    }
    loom_graph *back = loom_checkpoint_load(path);
    if (!back) {
        fprintf(stderr, "%s\n", loom_error());
        return 1;
    }
    printf("saved and reloaded %s: %zu parameters\n", path, loom_graph_param_count(back));

    /* predict the first five test images with the reloaded model */
    loom_exec *e = loom_exec_new(back, 5);
    uint8_t px[28 * 28];
    int32_t labels[5];
    for (int i = 0; i < 5; i++) {
        loom_dataset_get(test, (size_t)i, px, &labels[i]);
        for (int k = 0; k < 28 * 28; k++) loom_exec_input(e)[i * 784 + k] = px[k] / 255.0f;
    }
    loom_exec_forward(e, 5, 0, 0, 0); /* inference: batch norm uses running statistics */
    float probs[5 * 10];
    int32_t pred[5];
    loom_exec_probabilities(e, 5, probs, pred);
    for (int i = 0; i < 5; i++)
        printf("test image %d: predicted class %d (p = %.3f), true class %d\n", i, pred[i], probs[i * 10 + pred[i]],
               labels[i]);

    loom_exec_free(e);
    loom_graph_free(back);
    loom_trainer_free(t);
    loom_graph_free(g);
    loom_dataset_free(part);
    loom_dataset_free(train);
    loom_dataset_free(test);
    return 0;
}

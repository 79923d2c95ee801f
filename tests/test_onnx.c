/* ONNX import of models PyTorch exported (tests/data/onnx, made once by
 * tools/export_torch_onnx.py: LeNet-5, a CNN with batch norm, one with an
 * input normalisation, ReLU6, Hardtanh and LogSoftmax, a zero Pad folded
 * into a Conv, and cnn_shape: PyTorch's shape arithmetic, pads, products and
 * quotients of activations): the outputs match PyTorch's within 1e-4, and
 * an imported model is a normal loom graph: it checkpoints and loads back
 * with the same outputs, and trains data-parallel (its batch norms too),
 * bit-identically across thread counts in deterministic mode. With
 * LOOM_ONNX_LARGE=DIR (the test_onnx_large variant) it checks torchvision's
 * resnet18 at 150x150 and 224x224 instead, exported to DIR beforehand, and
 * reports itself skipped when they are not there. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
#include "loom/loom.h"

/* A raw float32 file (t_read_file's bytes), its float count in *n; NULL if unreadable. */
static float *read_f32(const char *path, size_t *n) {
    float *v = (float *)(void *)t_read_file(path, n);
    *n = v ? *n / sizeof(float) : 0;
    return v;
}

/* max |loom - reference| of the model's outputs on the stored inputs; -1 on error */
static double vs_reference(loom_graph *g, const char *dir, const char *name) {
    char ip[1024], op[1024];
    snprintf(ip, sizeof ip, "%s/%s.in.f32", dir, name);
    snprintf(op, sizeof op, "%s/%s.out.f32", dir, name);
    size_t ni, no;
    float *x = read_f32(ip, &ni), *want = read_f32(op, &no);
    const loom_layer *in = loom_graph_layer(g, 0);
    size_t osz = loom_graph_layer(g, loom_graph_output(g))->size;
    int n = x ? (int)(ni / in->size) : 0;
    double worst = -1;
    loom_exec *e = n > 0 ? loom_exec_new(g, n) : NULL;
    if (e && want && no == (size_t)n * osz) {
        memcpy(loom_exec_input(e), x, ni * sizeof(float));
        if (loom_exec_forward(e, n, 0, 0, 0) == LOOM_OK) {
            worst = 0;
            for (size_t q = 0; q < no; q++) worst = fmax(worst, fabs((double)loom_exec_output(e)[q] - want[q]));
        }
    }
    loom_exec_free(e);
    free(x), free(want);
    return worst;
}

static void pytorch_model(const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    loom_graph *g = loom_onnx_import(path);
    CHECK(g != NULL, "%s: %s", name, loom_error());
    if (!g) return;
    double d = vs_reference(g, dir, name);
    CHECK(d >= 0 && d <= 1e-4, "%s: max abs difference from PyTorch %g", name, d);
    printf("%-14s %3d layers, %8zu parameters: max abs difference from PyTorch %.2g\n", name, loom_graph_count(g),
           loom_graph_param_count(g), d);
    loom_graph_free(g);
}

/* Save, load: the same outputs. */
static void checkpoint_roundtrip(const char *dir, const char *name) {
    char path[1024], ck[] = "/tmp/loom_onnx_ck_XXXXXX";
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    loom_graph *g = loom_onnx_import(path);
    int fd = mkstemp(ck);
    CHECK(g && fd >= 0, "import: %s", loom_error());
    if (!g || fd < 0) return;
    close(fd);
    CHECK(loom_checkpoint_save(ck, g, NULL) == LOOM_OK, "save: %s", loom_error());
    loom_graph *h = loom_checkpoint_load(ck);
    CHECK(h != NULL, "load: %s", loom_error());
    if (h) {
        double d = vs_reference(h, dir, name);
        CHECK(d >= 0 && d <= 1e-4, "%s through a checkpoint: max abs difference %g", name, d);
        printf("%s saved as a loom checkpoint and loaded: max abs difference from PyTorch %.2g\n", name, d);
        for (int i = 0; i < loom_graph_count(g); i++)
            CHECK(loom_graph_layer(h, i)->frozen == loom_graph_layer(g, i)->frozen, "%s: layer %d frozen %d, was %d",
                  name, i, loom_graph_layer(h, i)->frozen, loom_graph_layer(g, i)->frozen);
    }
    unlink(ck);
    loom_graph_free(g);
    loom_graph_free(h);
}

/* Train an imported model (cnn_bn: batch norms; cnn_shape: arith, pad and reshape layers) a few steps,
 * deterministic, at 1 and 3 threads. */
static void training(const char *dir, const char *name, int c, int h, int w, int K) {
    enum { B = 16 };
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    size_t in = (size_t)c * h * w;
    float *x = malloc((size_t)B * in * sizeof(float));
    int32_t y[B];
    for (size_t i = 0; i < B * in; i++) x[i] = (float)((i * 7919) % 1000) / 1000.0f;
    for (int i = 0; i < B; i++) y[i] = i % K;
    float *first = NULL;
    size_t np = 0;
    for (int threads = 1; threads <= 3; threads += 2) {
        loom_graph *g = loom_onnx_import(path);
        CHECK(g != NULL, "import: %s", loom_error());
        if (!g) break;
        np = loom_graph_param_count(g);
        float *w0 = malloc(np * sizeof(float));
        memcpy(w0, loom_graph_params(g), np * sizeof(float));
        loom_trainer_opts o = {.batch = B, .threads = threads, .deterministic = 1, .seed = 3,
                               .optim = {.kind = LOOM_SGD, .momentum = 0.9f}};
        loom_trainer *t = loom_trainer_new(g, &o);
        CHECK(t != NULL, "trainer: %s", loom_error());
        double loss0 = 0, loss = 0;
        for (int s = 0; t && s < 8; s++) {
            loom_step_result r;
            CHECK(loom_trainer_step(t, x, y, B, 0.05f, &r) == LOOM_OK, "step: %s", loom_error());
            if (s == 0) loss0 = r.loss;
            loss = r.loss;
        }
        double moved = 0;
        for (size_t q = 0; q < np; q++) moved = fmax(moved, fabs(loom_graph_params(g)[q] - w0[q]));
        CHECK(loss < loss0, "%d threads: loss %g after 8 steps, %g at the first", threads, loss, loss0);
        CHECK(moved > 0, "%d threads: the weights did not move", threads);
        printf("imported %s trained, %d thread%s: loss %.4f -> %.4f over 8 steps\n", name, threads,
               threads > 1 ? "s" : "", loss0, loss);
        if (!first) {
            first = malloc(np * sizeof(float));
            memcpy(first, loom_graph_params(g), np * sizeof(float));
        } else {
            CHECK(memcmp(first, loom_graph_params(g), np * sizeof(float)) == 0,
                  "deterministic training of the imported model differs between 1 and 3 threads");
        }
        free(w0);
        loom_trainer_free(t);
        loom_graph_free(g);
    }
    free(first);
    free(x);
}

/* An imported model exported by loom and imported again: PyTorch's outputs still. */
static void reexport(const char *dir, const char *name) {
    char path[1024], out[] = "/tmp/loom_onnx_re_XXXXXX";
    snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
    loom_graph *g = loom_onnx_import(path);
    int fd = mkstemp(out);
    CHECK(g && fd >= 0, "import: %s", loom_error());
    if (!g || fd < 0) return;
    close(fd);
    CHECK(loom_onnx_export(g, out) == LOOM_OK, "%s: export: %s", name, loom_error());
    loom_graph *h = loom_onnx_import(out);
    CHECK(h != NULL, "%s exported by loom: import: %s", name, loom_error());
    if (h) {
        double d = vs_reference(h, dir, name);
        CHECK(d >= 0 && d <= 1e-4, "%s exported by loom and imported again: max abs difference %g", name, d);
        printf("%s exported by loom and imported again: max abs difference from PyTorch %.2g\n", name, d);
    }
    unlink(out);
    loom_graph_free(g);
    loom_graph_free(h);
}

/* Export, import back: the same outputs (the zoo's layers, with batch-norm
 * statistics away from 0 and 1). */
static void export_roundtrip(const char *model, int c, int h, int w) {
    loom_graph *g = loom_zoo_build(model, c, h, w, 6, 4);
    CHECK(g != NULL, "%s: %s", model, loom_error());
    if (!g) return;
    float *B = loom_graph_buffers(g);
    for (int i = 0; i < loom_graph_count(g); i++) {
        const loom_layer *l = loom_graph_layer(g, i);
        for (int k = 0; k < (int)l->buf_count / 2; k++) {
            B[l->buf_off + k] = 0.1f * (float)((k * 37 + i) % 11 - 5) / 5;
            B[l->buf_off + l->buf_count / 2 + k] = 0.5f + (float)((k * 13 + i) % 7) / 7;
        }
    }
    char path[] = "/tmp/loom_export_XXXXXX";
    int fd = mkstemp(path);
    if (fd >= 0) close(fd);
    CHECK(fd >= 0 && loom_onnx_export(g, path) == LOOM_OK, "%s: export: %s", model, loom_error());
    loom_graph *h2 = loom_onnx_import(path);
    CHECK(h2 != NULL, "%s: import of the export: %s", model, loom_error());
    if (h2) {
        int n = 3;
        size_t isz = loom_graph_layer(g, 0)->size, osz = 6;
        loom_exec *a = loom_exec_new(g, n), *b = loom_exec_new(h2, n);
        CHECK(a && b, "%s: execs: %s", model, loom_error());
        if (a && b) {
            for (size_t q = 0; q < n * isz; q++) loom_exec_input(a)[q] = (float)((q * 7919) % 1000) / 1000.0f;
            memcpy(loom_exec_input(b), loom_exec_input(a), n * isz * sizeof(float));
            CHECK(loom_exec_forward(a, n, 0, 0, 0) == LOOM_OK && loom_exec_forward(b, n, 0, 0, 0) == LOOM_OK,
                  "%s: forward: %s", model, loom_error());
            double worst = 0, scale = 0;
            for (size_t q = 0; q < n * osz; q++) {
                worst = fmax(worst, fabs((double)loom_exec_output(a)[q] - loom_exec_output(b)[q]));
                scale = fmax(scale, fabs((double)loom_exec_output(a)[q]));
            }
            CHECK(worst <= 1e-5 * fmax(scale, 1), "%s: exported and imported back, the outputs differ by %g", model, worst);
            CHECK(loom_graph_param_count(h2) == loom_graph_param_count(g), "%s: %zu parameters back, %zu out", model,
                  loom_graph_param_count(h2), loom_graph_param_count(g));
            printf("%-10s exported (%d layers) and imported back (%d): outputs differ by %.2g (of %.2g)\n", model,
                   loom_graph_count(g), loom_graph_count(h2), worst, scale);
        }
        loom_exec_free(a);
        loom_exec_free(b);
    }
    unlink(path);
    loom_graph_free(h2);
    loom_graph_free(g);
}

/* A PyTorch state_dict (safetensors, tools/export_torch_state.py) into the zoo model it was made for. */
static void torch_state(const char *data, const char *model, int c, int h, int w, int k) {
    char path[1024], dir[512];
    snprintf(dir, sizeof dir, "%s/torch", data);
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, model);
    loom_graph *g = loom_zoo_build(model, c, h, w, k, 99);
    CHECK(g != NULL, "%s: %s", model, loom_error());
    if (!g) return;
    CHECK(loom_load_torch_state(g, path) == LOOM_OK, "%s: %s", model, loom_error());
    double d = vs_reference(g, dir, model);
    CHECK(d >= 0 && d <= 1e-4, "%s with PyTorch's weights: max abs difference %g", model, d);
    printf("%-10s PyTorch state_dict loaded: max abs difference from PyTorch's output %.2g\n", model, d);
    loom_graph_free(g);
    /* the wrong model: refused, naming the tensor, and nothing written */
    loom_graph *o = loom_zoo_build(strcmp(model, "lenet5") ? "lenet5" : "mlp", 1, 28, 28, 10, 99);
    size_t np = o ? loom_graph_param_count(o) : 0;
    float *before = o ? malloc(np * sizeof(float)) : NULL;
    if (before) memcpy(before, loom_graph_params(o), np * sizeof(float));
    CHECK(o && loom_load_torch_state(o, path) == LOOM_ERR && strstr(loom_error(), path), "%s into another model: %s",
          model, loom_error());
    printf("  into another model: %s\n", loom_error());
    CHECK(before && !memcmp(before, loom_graph_params(o), np * sizeof(float)), "a refused load changed the weights");
    free(before);
    loom_graph_free(o);
}

/* A ceil_mode pool through a checkpoint and through ONNX export: the same output size and values. */
static void ceil_pool_roundtrip(void) {
    loom_graph *g = loom_graph_new("ceil");
    loom_node x = loom_input(g, 2, 7, 7);
    x = loom_maxpool2d(g, x, 2, 2);
    CHECK(loom_graph_set_pool_ceil(g, x) == LOOM_OK, "ceil: %s", loom_error());
    loom_dense(g, x, 3);
    CHECK(loom_graph_finish(g, 1) == LOOM_OK && loom_graph_layer(g, 1)->h == 4, "ceil pool: 7 -> %d",
          loom_graph_layer(g, 1)->h);
    char ck[] = "/tmp/loom_ceil_XXXXXX", ox[] = "/tmp/loom_ceil_onnx_XXXXXX";
    int f1 = mkstemp(ck), f2 = mkstemp(ox);
    if (f1 >= 0) close(f1);
    if (f2 >= 0) close(f2);
    CHECK(loom_checkpoint_save(ck, g, NULL) == LOOM_OK && loom_onnx_export(g, ox) == LOOM_OK, "save: %s", loom_error());
    loom_graph *a = loom_checkpoint_load(ck), *b = loom_onnx_import(ox);
    CHECK(a && b, "load: %s", loom_error());
    if (a && b) {
        CHECK(loom_graph_layer(a, 1)->h == 4 && loom_graph_layer(b, 1)->h == 4, "ceil pool back as %d and %d rows",
              loom_graph_layer(a, 1)->h, loom_graph_layer(b, 1)->h);
        printf("ceil_mode pool: through a checkpoint and through ONNX, 7 -> %d rows\n", loom_graph_layer(a, 1)->h);
    }
    unlink(ck);
    unlink(ox);
    loom_graph_free(a);
    loom_graph_free(b);
    loom_graph_free(g);
}

/* Telling an ONNX model from a checkpoint: a safetensors file starts with its
 * header's length, whose first byte is 0x08 for one header size in 256 (a
 * checkpoint once passed for ONNX that way and --resume refused it). Every
 * header size mod 256 is tried, by a metadata string of each length. */
static void sniff(const char *dir) {
    char tmp[256], path[300], onnx[1024];
    if (!t_mkdtemp(tmp, sizeof tmp, "sniff")) return;
    snprintf(path, sizeof path, "%s/c.safetensors", tmp);
    loom_graph *g = loom_zoo_build("mlp", 1, 8, 8, 3, 1);
    char pad[300];
    int wrong = 0, hit8 = 0;
    for (int len = 0; g && len < 256; len++) {
        memset(pad, 'x', (size_t)len);
        pad[len] = 0;
        loom_ckpt_meta m = {"pad", pad};
        loom_ckpt_extra x = {&m, 1, NULL, 0};
        CHECK(loom_checkpoint_save(path, g, &x) == LOOM_OK, "save: %s", loom_error());
        size_t n;
        unsigned char *b = t_read_file(path, &n);
        hit8 += b && n > 0 && b[0] == 0x08;
        wrong += loom_onnx_sniff(path) != 0;
        free(b);
    }
    CHECK(hit8 > 0, "one of the 256 header sizes starts with the byte 0x08");
    CHECK(wrong == 0, "%d of 256 checkpoints pass for ONNX models", wrong);
    snprintf(onnx, sizeof onnx, "%s/lenet5.onnx", dir);
    CHECK(loom_onnx_sniff(onnx) == 1, "%s is an ONNX model", onnx);
    loom_graph_free(g);
    t_rm_tree(tmp);
}

int main(void) {
    if (!loom_onnx_available()) TEST_SKIP("loom was built without ONNX import (LOOM_ONNX=OFF)");
    const char *data = getenv("LOOM_TEST_DATA") ? getenv("LOOM_TEST_DATA") : "data";
    const char *large = getenv("LOOM_ONNX_LARGE");
    if (large) { /* the test_onnx_large variant: torchvision's resnet18, exported beforehand */
        char probe[1024];
        snprintf(probe, sizeof probe, "%s/resnet18_150.onnx", large);
        if (access(probe, R_OK) != 0)
            TEST_SKIP("torchvision resnet18 is not exported to %s (45 MB each, not committed; needs python3-torch and "
                      "python3-torchvision): /usr/bin/python3 tools/export_torch_onnx.py %s --large", large, large);
        pytorch_model(large, "resnet18_150");
        pytorch_model(large, "resnet18_224");
        TEST_END();
    }
    char dir[256];
    snprintf(dir, sizeof dir, "%s/onnx", data);
    sniff(dir);
    pytorch_model(dir, "lenet5");
    pytorch_model(dir, "cnn_bn");
    pytorch_model(dir, "cnn_ops");
    pytorch_model(dir, "pad_conv");
    pytorch_model(dir, "cnn_shape");
    pytorch_model(dir, "cnn_v7");
    reexport(dir, "cnn_shape");
    reexport(dir, "cnn_ops");
    const struct { const char *m; int c, h, w; } zoo[] = {{"lenet5", 1, 28, 28}, {"mlp", 1, 8, 8}, {"minivgg", 3, 16, 16},
        {"resnet", 3, 16, 16}, {"inception", 3, 32, 32}, {"alexnet", 3, 64, 64}, {"vgg11", 3, 32, 32}};
    for (size_t k = 0; k < sizeof zoo / sizeof *zoo; k++) export_roundtrip(zoo[k].m, zoo[k].c, zoo[k].h, zoo[k].w);
    torch_state(data, "lenet5", 1, 28, 28, 10);
    torch_state(data, "resnet", 3, 16, 16, 6);
    ceil_pool_roundtrip();
    checkpoint_roundtrip(dir, "cnn_bn");
    checkpoint_roundtrip(dir, "cnn_ops");
    checkpoint_roundtrip(dir, "cnn_shape");
    training(dir, "cnn_bn", 3, 32, 32, 6);
    training(dir, "cnn_shape", 3, 16, 16, 4);
    TEST_END();
}

/* Checkpoints: a graph with every layer type survives save + load with the
 * same layers, bit-identical parameters and buffers and the same forward
 * output; extra metadata and tensors travel beside the model; non-finite
 * weights are refused on save and on load; the file is plain safetensors (checked here by parsing it independently);
 * every kind of damaged or foreign file is refused with a message naming the
 * file and the problem, without crashing or leaking (run under ASan); and a
 * failed save leaves neither a half file nor a temporary behind. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "check.h"
#include "util.h"
#include "io/safetensors.h"
#include "loom/checkpoint.h"
#include "loom/loom.h"

static char dir[256];

static const char *at(const char *name) { return t_path(dir, name); }

/* ---- the model: every layer type --------------------------------------------------- */

static loom_graph *build_all(void) {
    loom_graph *g = loom_graph_new("everything");
    loom_node x = loom_input(g, 3, 12, 12);
    loom_conv_shape s1 = {.oc = 8, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 1, .pw = 1, .groups = 1};
    loom_node c1 = loom_conv2d_ex(g, x, &s1, 1);
    loom_node b1 = loom_batchnorm(g, c1);
    loom_graph_set_batchnorm(g, b1, 1e-3f, 0.2f);
    loom_node r1 = loom_relu(g, b1);
    /* grouped, dilated, no bias: 8x12x12 -> 8x12x12 */
    loom_conv_shape s2 = {.oc = 8, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 2, .pw = 2, .dh = 2, .dw = 2,
                          .groups = 4};
    loom_node c2 = loom_conv2d_ex(g, r1, &s2, 0);
    loom_node l1 = loom_leaky_relu(g, c2, 0.1f);
    loom_node a1 = loom_add(g, r1, l1);
    loom_node m1 = loom_maxpool2d_ex(g, a1, 3, 3, 2, 2, 1, 1);
    loom_node p1 = loom_avgpool2d_ex(g, a1, 3, 3, 2, 2, 1, 1, 1);
    loom_node p2 = loom_avgpool2d(g, a1, 2, 2);
    loom_node cs[3] = {m1, p1, p2};
    loom_node cat = loom_concat(g, 3, cs);
    loom_node sg = loom_sigmoid(g, cat);
    loom_node d1 = loom_dropout(g, sg, 0.25f);
    loom_node c3 = loom_conv2d(g, d1, 12, 3, 1, 0);
    loom_node gp = loom_global_avgpool(g, c3);
    loom_node t1 = loom_tanh(g, d1);
    loom_node f1 = loom_flatten(g, t1);
    loom_node ds = loom_dense(g, f1, 12);
    loom_node b2 = loom_batchnorm(g, ds);
    loom_node a2 = loom_add(g, b2, gp);
    loom_node o = loom_dense(g, a2, 5);
    loom_softmax(g, o);
    loom_graph_set_frozen(g, c1, 1);
    if (loom_graph_finish(g, 1234) != LOOM_OK) {
        fprintf(stderr, "build: %s\n", loom_error());
        loom_graph_free(g);
        return NULL;
    }
    /* Running statistics away from their initial 0 and 1, so a load that
     * forgot them would show. */
    float *b = loom_graph_buffers(g);
    size_t nb = loom_graph_buffer_count(g);
    t_fill(b, nb, 7, 0.5f, 2.0f);
    return g;
}

static int same_layer(const loom_layer *a, const loom_layer *b) {
    if (a->op != b->op || strcmp(a->name, b->name) || a->nin != b->nin || a->c != b->c || a->h != b->h ||
        a->w != b->w || a->size != b->size || a->param_off != b->param_off ||
        a->param_count != b->param_count || a->weight_count != b->weight_count || a->buf_off != b->buf_off ||
        a->buf_count != b->buf_count || a->bias != b->bias || a->frozen != b->frozen ||
        a->count_include_pad != b->count_include_pad)
        return 0;
    for (int k = 0; k < a->nin; k++)
        if (a->in[k] != b->in[k]) return 0;
    switch (a->op) {
    case LOOM_OP_CONV2D: return !memcmp(&a->a.conv, &b->a.conv, sizeof a->a.conv);
    case LOOM_OP_MAXPOOL: case LOOM_OP_AVGPOOL: return !memcmp(&a->a.pool, &b->a.pool, sizeof a->a.pool);
    case LOOM_OP_DENSE: return a->a.dense.in == b->a.dense.in && a->a.dense.out == b->a.dense.out;
    case LOOM_OP_LEAKY_RELU: return !memcmp(&a->a.alpha, &b->a.alpha, sizeof(float));
    case LOOM_OP_DROPOUT: return !memcmp(&a->a.p, &b->a.p, sizeof(float));
    case LOOM_OP_BATCHNORM:
        return !memcmp(&a->a.bn.eps, &b->a.bn.eps, sizeof(float)) &&
               !memcmp(&a->a.bn.momentum, &b->a.bn.momentum, sizeof(float)) && a->a.bn.hw == b->a.bn.hw;
    default: return 1;
    }
}

/* Forward the same random batch through both graphs; 0 if bit-identical. */
static int forward_differs(loom_graph *a, loom_graph *b, int training) {
    loom_exec *ea = loom_exec_new(a, 4), *eb = loom_exec_new(b, 4);
    if (!ea || !eb) {
        loom_exec_free(ea);
        loom_exec_free(eb);
        return -1;
    }
    const loom_layer *in = loom_graph_layer(a, 0);
    t_fill(loom_exec_input(ea), 4 * in->size, 3, -1.0f, 1.0f);
    t_fill(loom_exec_input(eb), 4 * in->size, 3, -1.0f, 1.0f);
    loom_exec_forward(ea, 4, training, 99, 0);
    loom_exec_forward(eb, 4, training, 99, 0);
    size_t n = 4 * loom_exec_output_size(ea);
    int d = loom_exec_output_size(ea) != loom_exec_output_size(eb) ||
            memcmp(loom_exec_output(ea), loom_exec_output(eb), n * sizeof(float)) != 0;
    loom_exec_free(ea);
    loom_exec_free(eb);
    return d;
}



static void test_model_round_trip(void) {
    loom_graph *g = build_all();
    CHECK(g != NULL, "the model builds");
    if (!g) return;
    const char *p = at("model.safetensors");
    CHECK(loom_checkpoint_save(p, g, NULL) == LOOM_OK, "save: %s", loom_error());
    loom_graph *h = loom_checkpoint_load(p);
    CHECK(h != NULL, "load: %s", loom_error());
    if (h) {
        CHECK(!strcmp(loom_graph_name(h), "everything"), "graph name %s", loom_graph_name(h));
        CHECK(loom_graph_count(h) == loom_graph_count(g), "layer count %d vs %d", loom_graph_count(h),
              loom_graph_count(g));
        int bad = -1;
        for (int i = 0; i < loom_graph_count(g) && i < loom_graph_count(h) && bad < 0; i++)
            if (!same_layer(loom_graph_layer(g, i), loom_graph_layer(h, i))) bad = i;
        CHECK(bad < 0, "layer %d differs after the round trip", bad);
        CHECK(loom_graph_layer(h, 1)->frozen == 1 && loom_graph_layer(h, 2)->a.bn.eps == 1e-3f &&
                  loom_graph_layer(h, 2)->a.bn.momentum == 0.2f,
              "frozen flag and batch-norm settings restored");
        size_t np = loom_graph_param_count(g), nb = loom_graph_buffer_count(g);
        CHECK(loom_graph_param_count(h) == np && loom_graph_buffer_count(h) == nb, "counts");
        CHECK(!memcmp(loom_graph_params(g), loom_graph_params(h), np * sizeof(float)), "parameters bit-identical");
        CHECK(!memcmp(loom_graph_buffers(g), loom_graph_buffers(h), nb * sizeof(float)), "buffers bit-identical");
        CHECK(forward_differs(g, h, 0) == 0, "inference forward bit-identical");
        CHECK(forward_differs(g, h, 1) == 0, "training forward (dropout, batch statistics) bit-identical");
    }
    loom_graph_free(h);
    loom_checkpoint *ck = loom_checkpoint_open(p);
    CHECK(ck && loom_checkpoint_version(ck) == 2 && !loom_checkpoint_meta(ck, "loom.trainer") &&
              !loom_checkpoint_meta(ck, "loom.run"),
          "a model checkpoint: version 2, no training metadata");
    loom_checkpoint_close(ck);
    loom_graph_free(g);
}

/* Metadata strings and tensors of the layers above travel beside the model;
 * their names and keys are checked. */
static void test_extra(void) {
    loom_graph *g = build_all();
    if (!g) return;
    float v[6] = {1, -2, 3.5f, 0, 1e-30f, 7};
    loom_ckpt_tensor t[2] = {{.name = "optim.0.x", .ndim = 2, .shape = {2, 3}, .data = v, .count = 6},
                             {.name = "stats.y", .ndim = 1, .shape = {1}, .data = v + 5, .count = 1}};
    loom_ckpt_meta m[2] = {{"app.note", "caf\xc3\xa9 \"quoted\"\n"}, {"app.other", "{}"}};
    loom_ckpt_extra ex = {.meta = m, .nmeta = 2, .tensors = t, .ntensors = 2};
    const char *p = at("extra.safetensors");
    CHECK(loom_checkpoint_save(p, g, &ex) == LOOM_OK, "save with extras: %s", loom_error());
    loom_checkpoint *ck = loom_checkpoint_open(p);
    CHECK(ck != NULL, "open: %s", loom_error());
    if (ck) {
        CHECK(!strcmp(loom_checkpoint_meta(ck, "app.note") ? loom_checkpoint_meta(ck, "app.note") : "",
                      "caf\xc3\xa9 \"quoted\"\n"),
              "metadata string round trip");
        float back[6] = {0};
        loom_ckpt_tensor r = t[0];
        r.data = back;
        CHECK(loom_checkpoint_read(ck, &r) == LOOM_OK && !memcmp(back, v, sizeof back), "extra tensor round trip: %s",
              loom_error());
        r.shape[0] = 3, r.shape[1] = 2;
        CHECK(loom_checkpoint_read(ck, &r) == LOOM_ERR && strstr(loom_error(), "shape [3,2] expected"),
              "extra tensor of another shape refused: %s", loom_error());
        CHECK(loom_checkpoint_has(ck, "stats.y") && !loom_checkpoint_has(ck, "stats.z"), "has");
        loom_graph *h = loom_checkpoint_graph(ck);
        CHECK(h != NULL, "the model loads beside extras: %s", loom_error());
        loom_graph_free(h);
        loom_checkpoint_close(ck);
    }
    loom_ckpt_meta taken = {"loom.graph", "x"};
    ex = (loom_ckpt_extra){.meta = &taken, .nmeta = 1};
    CHECK(loom_checkpoint_save(p, g, &ex) == LOOM_ERR && strstr(loom_error(), "taken"), "a taken key refused: %s",
          loom_error());
    loom_ckpt_meta bad_utf8 = {"app.bad", "bad \xff byte"};
    ex = (loom_ckpt_extra){.meta = &bad_utf8, .nmeta = 1};
    CHECK(loom_checkpoint_save(p, g, &ex) == LOOM_ERR && strstr(loom_error(), "UTF-8"), "invalid UTF-8 refused: %s",
          loom_error());
    loom_ckpt_tensor clash = {.name = "dense_1.extra", .ndim = 1, .shape = {1}, .data = v, .count = 1};
    ex = (loom_ckpt_extra){.tensors = &clash, .ntensors = 1};
    CHECK(loom_checkpoint_save(p, g, &ex) == LOOM_ERR && strstr(loom_error(), "namespace"),
          "an extra tensor in a layer's namespace refused: %s", loom_error());
    /* nothing refused was written: the file is the one saved with extras */
    ck = loom_checkpoint_open(p);
    CHECK(ck && loom_checkpoint_meta(ck, "app.other"), "the refused saves left the file alone");
    loom_checkpoint_close(ck);
    loom_graph_free(g);
}

/* A NaN or an infinity is refused on save (nothing written) and on load. */
static void test_nonfinite(void) {
    loom_graph *g = build_all();
    if (!g) return;
    const char *p = at("nan.safetensors");
    float *w = loom_graph_params(g);
    float keep = w[5];
    w[5] = NAN;
    CHECK(loom_checkpoint_save(p, g, NULL) == LOOM_ERR && strstr(loom_error(), "NaN") &&
              strstr(loom_error(), "index 5") && access(p, F_OK) != 0,
          "a NaN weight is refused and nothing written: %s", loom_error());
    w[5] = keep;
    float *buf = loom_graph_buffers(g);
    buf[0] = INFINITY;
    CHECK(loom_checkpoint_save(p, g, NULL) == LOOM_ERR && strstr(loom_error(), "infinity") &&
              strstr(loom_error(), "running_mean"),
          "an infinite buffer is refused: %s", loom_error());
    buf[0] = 0;
    CHECK(loom_checkpoint_save(p, g, NULL) == LOOM_OK, "save: %s", loom_error());
    /* poke a NaN into the file's first weight: the tensor's CRC-32 no longer matches */
    size_t n;
    unsigned char *b = t_read_file(p, &n);
    uint64_t hl = 0;
    for (int i = 7; b && i >= 0; i--) hl = hl << 8 | b[i];
    if (b) {
        const unsigned char nan_le[4] = {0x00, 0x00, 0xc0, 0x7f};
        memcpy(b + 8 + hl, nan_le, 4);
        t_write_file(p, b, n);
    }
    loom_graph *h = loom_checkpoint_load(p);
    CHECK(h == NULL && strstr(loom_error(), "do not match the CRC-32") && strstr(loom_error(), "damaged") &&
              strstr(loom_error(), p),
          "a weight changed in the file is refused on load as damage: %s", loom_error());
    loom_graph_free(h);
    /* the same NaN with its CRC made to match (as a writer that saved a NaN would): refused as a NaN */
    sft_file f;
    const sft_tensor *first = NULL;
    if (b && sft_open(&f, p) == LOOM_OK) {
        for (size_t i = 0; i < f.n; i++)
            if (f.t[i].begin == 0) first = &f.t[i];
        char *at_crc = first ? strstr((char *)b + 8, "\"loom.crc32\":\"") : NULL;
        CHECK(at_crc && (unsigned char *)at_crc < b + 8 + hl, "the header holds loom.crc32");
        if (at_crc) {
            char hex[9];
            snprintf(hex, sizeof hex, "%08lx", crc32_z(crc32_z(0, Z_NULL, 0), b + 8 + hl, (size_t)first->end));
            memcpy(at_crc + strlen("\"loom.crc32\":\""), hex, 8); /* the first CRC is the first tensor's */
            t_write_file(p, b, n);
        }
        sft_close(&f);
    }
    free(b);
    h = loom_checkpoint_load(p);
    CHECK(h == NULL && strstr(loom_error(), "NaN") && strstr(loom_error(), "refused") && strstr(loom_error(), p),
          "a NaN in the file is refused on load: %s", loom_error());
    loom_graph_free(h);
    loom_graph_free(g);
}

/* Changes the byte at offset `at` from the start of `key` in the header of b (a copy written to q), and expects opening q
 * to be refused with a message naming q and holding needle. */
static void header_poke_refused(const char *q, unsigned char *b, size_t n, uint64_t hl, const char *key, size_t at,
                                char to, const char *needle, const char *what) {
    char *c = strstr((char *)b + 8, key);
    CHECK(c != NULL && c < (char *)b + 8 + hl, "%s: the header holds %s", what, key);
    if (!c) return;
    char was = c[at];
    c[at] = to;
    t_write_file(q, b, n);
    c[at] = was;
    loom_checkpoint *ck = loom_checkpoint_open(q);
    CHECK(ck == NULL && strstr(loom_error(), needle) && strstr(loom_error(), q), "%s is refused at open: %s", what,
          loom_error());
    loom_checkpoint_close(ck);
}

/* Every tensor's bytes are checked against the CRC-32 saved with them: a bit flipped anywhere in the data
 * section is refused, naming the file and the tensor; a damaged CRC list is refused at open. */
static void test_crc(void) {
    loom_graph *g = build_all();
    if (!g) return;
    const char *p = at("crc.safetensors"), *q = at("crc_bad.safetensors");
    CHECK(loom_checkpoint_save(p, g, NULL) == LOOM_OK, "save: %s", loom_error());
    size_t n;
    unsigned char *b = t_read_file(p, &n);
    loom_graph_free(g);
    if (!b) return;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    int refused = 0, tries = 0;
    for (size_t at_ = 8 + hl; at_ < n; at_ += (n - 8 - hl) / 37 + 1, tries++) {
        b[at_] ^= 0x10;
        t_write_file(q, b, n);
        b[at_] ^= 0x10;
        loom_graph *h = loom_checkpoint_load(q);
        refused += h == NULL && strstr(loom_error(), "do not match the CRC-32") && strstr(loom_error(), q) &&
                   strstr(loom_error(), "tensor ");
        loom_graph_free(h);
    }
    CHECK(tries > 30 && refused == tries, "%d of %d one-bit changes in the data refused as damage", refused, tries);
    /* a damaged CRC list, and the metadata (covered too: a run said to be of another version), refused at open */
    header_poke_refused(q, b, n, hl, "\"loom.crc32\":\"", 17, 'x', "loom.crc32", "a damaged CRC list");
    header_poke_refused(q, b, n, hl, "\"loom.version\":\"2\"", 16, '3', "the header is damaged",
                        "a changed metadata value");
    free(b);
    printf("CRC-32: %d of %d one-bit changes in the data refused; the metadata's checked\n", refused, tries);
}

/* ---- the format, read without loom ---------------------------------------------------- */

static int same_fbits(float a, float b) { return !memcmp(&a, &b, sizeof a); }

static void test_format(void) {
    loom_graph *g = build_all();
    if (!g) return;
    const char *p = at("format.safetensors");
    loom_trainer_opts to = {.batch = 4, .threads = 1, .loss = LOOM_LOSS_MSE, .optim = {.kind = LOOM_NADAM}};
    loom_trainer *tr = loom_trainer_new(g, &to);
    loom_fit_state st;
    loom_schedule sc;
    loom_schedule_parse("cosine", 0.1f, 3, &sc);
    loom_fit_state_init(&st, &sc);
    CHECK(tr && loom_train_save(p, tr, &st, NULL, 0) == LOOM_OK, "save: %s", loom_error());
    loom_trainer_free(tr);
    size_t n = 0;
    unsigned char *b = t_read_file(p, &n);
    CHECK(b && n >= 8, "file read");
    if (!b || n < 8) {
        free(b);
        loom_graph_free(g);
        return;
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    CHECK(hl % 8 == 0 && 8 + hl <= n, "header length %llu: 8-byte aligned data, inside the file",
          (unsigned long long)hl);
    json_error_t je;
    json_t *h = json_loadb((const char *)b + 8, hl, 0, &je);
    CHECK(h && json_is_object(h), "header is JSON: %s", h ? "" : je.text);
    CHECK(b[8] == '{', "header starts with '{' (the reference reader insists)");
    uint64_t data = n - 8 - hl, expect = 0;
    int ntensors = 0, order_ok = 1, first = 1, meta_first = 0, meta_strings = 1, nopt = 0;
    const char *key;
    json_t *v;
    json_object_foreach(h, key, v) {
        if (!strcmp(key, "__metadata__")) {
            meta_first = first;
            const char *k2;
            json_t *v2;
            json_object_foreach(v, k2, v2) {
                (void)k2;
                meta_strings &= json_is_string(v2);
            }
            CHECK(json_is_string(json_object_get(v, "loom.graph")) && json_is_string(json_object_get(v, "loom.trainer")) &&
                      json_is_string(json_object_get(v, "loom.fit")),
                  "metadata holds loom.graph, loom.trainer, loom.fit");
            CHECK(!strcmp(json_string_value(json_object_get(v, "loom.version")), "2"), "loom.version 2");
            first = 0;
            continue;
        }
        first = 0;
        ntensors++;
        nopt += !strncmp(key, "optim.", 6);
        json_t *offs = json_object_get(v, "data_offsets"), *shape = json_object_get(v, "shape");
        uint64_t b0 = (uint64_t)json_integer_value(json_array_get(offs, 0));
        uint64_t b1 = (uint64_t)json_integer_value(json_array_get(offs, 1));
        uint64_t elems = 1;
        for (size_t d = 0; d < json_array_size(shape); d++) elems *= (uint64_t)json_integer_value(json_array_get(shape, d));
        if (b0 != expect || b1 - b0 != elems * 4 || strcmp(json_string_value(json_object_get(v, "dtype")), "F32"))
            order_ok = 0;
        expect = b1;
    }
    CHECK(meta_first && meta_strings, "__metadata__ comes first and maps strings to strings");
    CHECK(order_ok && expect == data, "tensors contiguous, in order, F32, filling the %llu data bytes (got %llu)",
          (unsigned long long)data, (unsigned long long)expect);
    /* conv 2 + bn 4 + conv(no bias) 1 + conv 2 + dense 2 + bn 4 + dense 2 = 17 model tensors;
     * NAdam: 2 arrays x 13 parameter tensors. */
    CHECK(ntensors == 17 + 26 && nopt == 26, "%d tensors, %d of them optimizer state", ntensors, nopt);
    json_t *w = json_object_get(h, "conv2d_1.weight");
    CHECK(w && json_integer_value(json_array_get(json_object_get(w, "shape"), 1)) == 3 &&
              json_array_size(json_object_get(w, "shape")) == 4,
          "conv weight is [oc, c, kh, kw]");
    json_t *w2 = json_object_get(h, "conv2d_2.weight");
    CHECK(w2 && json_integer_value(json_array_get(json_object_get(w2, "shape"), 1)) == 2 &&
              !json_object_get(h, "conv2d_2.bias"),
          "grouped conv weight is [oc, c/groups, kh, kw], no bias tensor");
    json_t *dw = json_object_get(h, "dense_1.weight");
    CHECK(dw && json_integer_value(json_array_get(json_object_get(dw, "shape"), 0)) == 12 &&
              json_integer_value(json_array_get(json_object_get(dw, "shape"), 1)) == 24 * 6 * 6,
          "dense weight is [out, in]");
    CHECK(json_object_get(h, "batchnorm_2.running_var") && json_object_get(h, "optim.1.dense_2.bias"),
          "batch-norm buffers and optimizer state named as documented");
    /* The bytes are the parameters, little-endian. */
    if (w) {
        uint64_t off = (uint64_t)json_integer_value(json_array_get(json_object_get(w, "data_offsets"), 0));
        const unsigned char *q = b + 8 + hl + off;
        uint32_t u = (uint32_t)q[0] | (uint32_t)q[1] << 8 | (uint32_t)q[2] << 16 | (uint32_t)q[3] << 24;
        float f;
        memcpy(&f, &u, 4);
        CHECK(same_fbits(f, loom_graph_params(g)[0]), "first weight stored little-endian");
    }
    json_decref(h);
    free(b);
    loom_graph_free(g);
}

/* ---- damaged and foreign files ------------------------------------------------------ */

typedef struct {
    json_t *hdr;
    unsigned char *data;
    size_t dlen;
} parts;

/* The good file, taken apart for editing. */
static int split(const char *path, parts *p) {
    size_t n;
    unsigned char *b = t_read_file(path, &n);
    memset(p, 0, sizeof *p);
    if (!b) return -1;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    p->hdr = json_loadb((const char *)b + 8, hl, 0, NULL);
    /* the edits below would meet the tensors' CRCs first (test_crc tests those): edited as a file without them */
    json_object_del(json_object_get(p->hdr, "__metadata__"), "loom.crc32");
    p->dlen = n - 8 - hl;
    p->data = malloc(p->dlen + 64);
    memcpy(p->data, b + 8 + hl, p->dlen);
    free(b);
    return p->hdr ? 0 : -1;
}

static void unsplit(parts *p) {
    json_decref(p->hdr);
    free(p->data);
}

/* Write a safetensors file from a header and data (data_len bytes). */
static void assemble(const char *path, const json_t *hdr, const unsigned char *data, size_t dlen) {
    char *t = json_dumps(hdr, JSON_COMPACT);
    size_t len = strlen(t), padded = (len + 7) / 8 * 8;
    size_t n = 8 + padded + dlen;
    unsigned char *b = malloc(n);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    memcpy(b + 8, t, len);
    memset(b + 8 + len, ' ', padded - len);
    if (dlen) memcpy(b + 8 + padded, data, dlen);
    t_write_file(path, b, n);
    free(b);
    free(t);
}

static void expect_fail(const char *path, const char *what, const char *needle) {
    loom_graph *g = loom_checkpoint_load(path);
    CHECK(g == NULL, "%s: load must fail", what);
    loom_graph_free(g);
    const char *e = loom_error();
    CHECK(strstr(e, path) && strstr(e, needle), "%s: message names the file and says '%s': %s", what, needle, e);
    if (getenv("LOOM_TEST_VERBOSE")) printf("%-40s %s\n", what, e);
}

static json_t *meta(parts *p) { return json_object_get(p->hdr, "__metadata__"); }

static void set_offsets(json_t *entry, long long b, long long e) {
    json_object_set_new(entry, "data_offsets", json_pack("[II]", (json_int_t)b, (json_int_t)e));
}

static long long off_of(json_t *entry, int k) {
    return json_integer_value(json_array_get(json_object_get(entry, "data_offsets"), (size_t)k));
}

static void test_bad_files(void) {
    const char *good = at("model.safetensors"), *bad = at("bad.safetensors");
    size_t n;
    unsigned char *b = t_read_file(good, &n);
    CHECK(b != NULL, "the good file exists");
    if (!b) return;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];

    /* truncated at several points */
    t_write_file(bad, b, 0);
    expect_fail(bad, "zero-byte file", "empty");
    t_write_file(bad, b, 5);
    expect_fail(bad, "5-byte file", "shorter than the 8-byte header length");
    t_write_file(bad, b, 8);
    expect_fail(bad, "cut after the length", "exceeds");
    t_write_file(bad, b, 8 + hl / 2);
    expect_fail(bad, "cut in the header", "exceeds");
    t_write_file(bad, b, 8 + hl);
    expect_fail(bad, "cut at the data start", "outside");
    t_write_file(bad, b, n / 2);
    expect_fail(bad, "cut in the data", "outside");
    t_write_file(bad, b, n - 1);
    expect_fail(bad, "one byte short", "outside");

    /* header length */
    unsigned char *c = malloc(n);
    memcpy(c, b, n);
    uint64_t big = n; /* larger than what follows it, below 100 MB */
    for (int i = 0; i < 8; i++) c[i] = (unsigned char)(big >> (8 * i));
    t_write_file(bad, c, n);
    expect_fail(bad, "header length > file", "exceeds");
    for (int i = 0; i < 8; i++) c[i] = 0xff;
    t_write_file(bad, c, n);
    expect_fail(bad, "header length 2^64-1", "absurd");
    memset(c, 0, 8);
    t_write_file(bad, c, n);
    expect_fail(bad, "header length 0", "header length is 0");

    /* JSON syntax error: a brace turned into a bracket at byte 8+0 of the header */
    memcpy(c, b, n);
    c[8 + 1] = '[';
    t_write_file(bad, c, n);
    expect_fail(bad, "header JSON syntax error", "line 1, column");
    free(c);
    free(b);

    parts p;
    if (split(good, &p)) {
        CHECK(0, "cannot take the good file apart");
        return;
    }
    json_t *w = json_object_get(p.hdr, "conv2d_1.weight");
    json_t *bias = json_object_get(p.hdr, "conv2d_1.bias");

    /* reassembled unchanged, the file loads: the harness itself is sound */
    assemble(bad, p.hdr, p.data, p.dlen);
    loom_graph *g = loom_checkpoint_load(bad);
    CHECK(g != NULL, "reassembled file loads: %s", loom_error());
    loom_graph_free(g);

    json_object_set_new(w, "dtype", json_string("F16"));
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "dtype F16", "of F16 needs 432"); /* the label alone: the bytes are F32-sized */
    json_object_set_new(w, "dtype", json_string("F32"));

    /* same size, other shape: passes the format, fails the architecture */
    json_object_set_new(w, "shape", json_pack("[iiii]", 3, 8, 3, 3));
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "wrong shape", "tensor conv2d_1.weight: shape [8,3,3,3] expected, file has [3,8,3,3]");
    json_object_set_new(w, "shape", json_pack("[iiii]", 8, 3, 1, 1));
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "offsets not matching the shape", "bytes but shape [8,3,1,1] of F32 needs 96");
    json_object_set_new(w, "shape", json_pack("[iiii]", 8, 3, 3, 3));

    long long b0 = off_of(bias, 0), b1 = off_of(bias, 1);
    set_offsets(bias, b0 - 4, b1 - 4);
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "overlapping offsets", "overlap");
    set_offsets(bias, b0, b1);

    json_t *last = json_object_get(p.hdr, "dense_2.bias");
    long long l0 = off_of(last, 0), l1 = off_of(last, 1);
    set_offsets(last, l0 + 8, l1 + 8);
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "offsets out of range", "outside");
    set_offsets(last, l0, l1);
    json_object_set_new(bias, "data_offsets", json_pack("[I]", (json_int_t)b0));
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "one offset", "data_offsets must be [begin, end]");
    set_offsets(bias, b0, b1);

    assemble(bad, p.hdr, p.data, p.dlen + 4);
    expect_fail(bad, "trailing bytes", "gaps or trailing bytes");

    /* a missing tensor: the last one, with its bytes */
    json_incref(last);
    json_object_del(p.hdr, "dense_2.bias");
    assemble(bad, p.hdr, p.data, (size_t)l0);
    expect_fail(bad, "missing tensor", "tensor dense_2.bias is missing");
    json_object_set_new(p.hdr, "dense_2.bias", last);

    /* an extra one */
    json_object_set_new(p.hdr, "extra.weight", json_pack("{s:s, s:[i], s:[II]}", "dtype", "F32", "shape", 1,
                                                         "data_offsets", (json_int_t)p.dlen, (json_int_t)p.dlen + 4));
    json_object_del(p.hdr, "extra.weight");
    json_object_set_new(p.hdr, "dense_2.gain", json_pack("{s:s, s:[i], s:[II]}", "dtype", "F32", "shape", 1,
                                                         "data_offsets", (json_int_t)p.dlen, (json_int_t)p.dlen + 4));
    assemble(bad, p.hdr, p.data, p.dlen + 4);
    expect_fail(bad, "a part a layer does not have", "unknown tensor dense_2.gain (layer dense_2");
    json_object_del(p.hdr, "dense_2.gain");
    json_object_set_new(w, "colour", json_string("blue"));
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "unknown field in an entry", "conv2d_1.weight: unknown field \"colour\"");
    json_object_del(w, "colour");

    /* metadata */
    json_t *m = meta(&p);
    json_t *graph = json_incref(json_object_get(m, "loom.graph"));
    json_object_del(m, "loom.graph");
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "no loom.graph", "no loom.graph");

    json_t *arch = json_loads(json_string_value(graph), 0, NULL);
    json_t *layer3 = json_array_get(json_object_get(arch, "layers"), 3);
    json_object_set_new(layer3, "op", json_string("foo"));
    char *t = json_dumps(arch, JSON_COMPACT);
    json_object_set_new(m, "loom.graph", json_string(t));
    free(t);
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "unknown op", "loom.graph layer 3 (relu_1): unknown op \"foo\"");

    json_object_set_new(layer3, "op", json_string("relu"));
    /* kernel 5 with padding 2 keeps every shape, so only the weight disagrees */
    json_object_set_new(json_array_get(json_object_get(arch, "layers"), 1), "kh", json_integer(5));
    json_object_set_new(json_array_get(json_object_get(arch, "layers"), 1), "ph", json_integer(2));
    t = json_dumps(arch, JSON_COMPACT);
    json_object_set_new(m, "loom.graph", json_string(t));
    free(t);
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "architecture disagrees with the tensors", "shape [8,3,5,3] expected, file has [8,3,3,3]");

    json_object_set_new(json_array_get(json_object_get(arch, "layers"), 1), "kh", json_integer(0));
    t = json_dumps(arch, JSON_COMPACT);
    json_object_set_new(m, "loom.graph", json_string(t));
    free(t);
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "kernel 0", "field \"kh\" = 0 is out of range");

    json_object_set_new(json_array_get(json_object_get(arch, "layers"), 1), "kh", json_integer(3));
    json_object_set_new(json_array_get(json_object_get(arch, "layers"), 1), "ph", json_integer(1));
    json_object_set_new(json_array_get(json_object_get(arch, "layers"), 4), "inputs", json_pack("[i]", 9));
    t = json_dumps(arch, JSON_COMPACT);
    json_object_set_new(m, "loom.graph", json_string(t));
    free(t);
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "forward reference", "must be the index of an earlier layer");
    json_decref(arch);

    json_object_set_new(m, "loom.graph", json_string("{\"name\": \"x\", \"layers\": [}"));
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "loom.graph not JSON", "metadata loom.graph: JSON error at line 1");
    json_object_set(m, "loom.graph", graph);

    json_object_set_new(m, "loom.version", json_string("3"));
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "future version", "loom.version \"3\" is not supported");
    json_object_set_new(m, "loom.version", json_integer(2));
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "non-string metadata", "metadata \"loom.version\" must be a string");
    json_object_set_new(m, "loom.version", json_string("2"));

    json_object_del(p.hdr, "__metadata__");
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "no metadata at all", "no __metadata__");
    json_decref(graph);
    unsplit(&p);

    expect_fail(dir, "a directory", "is a directory");
    expect_fail(at("no-such-file.safetensors"), "a missing file", "cannot open");
}

/* Random damage, mostly to the header where it matters: every outcome must be
 * a graph or a message naming the file, never a crash or a leak (ASan). */
static void test_random_damage(void) {
    const char *good = at("format.safetensors"), *bad = at("damaged.safetensors");
    size_t n;
    unsigned char *b = t_read_file(good, &n);
    if (!b) return;
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | b[i];
    unsigned char *c = malloc(n);
    unsigned long long r = 12345;
    int loaded = 0, refused = 0, unnamed = 0;
    for (int it = 0; it < 600; it++) {
        memcpy(c, b, n);
        int flips = 1 + it % 3;
        for (int k = 0; k < flips; k++) {
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            size_t at_ = (size_t)((r >> 33) % (8 + hl + 16));
            r = r * 6364136223846793005ull + 1442695040888963407ull;
            /* Odd rounds change only digits: the JSON stays valid and the
             * damage reaches offsets, shapes and layer attributes. */
            if (it % 2 == 0) c[at_] = (unsigned char)(r >> 56);
            else if (c[at_] >= '0' && c[at_] <= '9') c[at_] = (unsigned char)('0' + (r >> 56) % 10);
        }
        size_t len = it % 7 == 6 ? (size_t)((r >> 20) % n) : n;
        t_write_file(bad, c, len);
        loom_graph *g = NULL;
        loom_checkpoint *ck = loom_checkpoint_open(bad);
        if (ck) {
            loom_trainer_opts to;
            loom_fit_state st;
            g = loom_checkpoint_graph(ck);
            /* the training state is read too: a refusal there must name the file as well */
            if (g && loom_train_read(ck, &to, &st)) {
                loom_graph_free(g);
                g = NULL;
            }
            loom_checkpoint_close(ck);
        }
        if (g) loaded++;
        else {
            refused++;
            unnamed += strstr(loom_error(), bad) == NULL;
            if (getenv("LOOM_TEST_VERBOSE")) printf("damage %d: %s\n", it, loom_error());
        }
        loom_graph_free(g);
    }
    CHECK(unnamed == 0, "%d of %d refusals did not name the file", unnamed, refused);
    printf("random damage: %d loaded, %d refused\n", loaded, refused);
    free(c);
    free(b);
}

/* ---- atomic writes ------------------------------------------------------------------ */

static void test_atomic(void) {
    loom_graph *g = build_all();
    if (!g) return;
    const char *p = at("model.safetensors");
    size_t n0, n1;
    unsigned char *before = t_read_file(p, &n0);

    CHECK(loom_checkpoint_save(at("nodir/x.safetensors"), g, NULL) == LOOM_ERR &&
              strstr(loom_error(), "nodir/x.safetensors"),
          "save into a missing directory fails: %s", loom_error());

    /* a directory is never replaced by a file */
    const char *sub = at("a-directory");
    mkdir(sub, 0755);
    CHECK(loom_checkpoint_save(sub, g, NULL) == LOOM_ERR && strstr(loom_error(), "is a folder"),
          "save over a directory fails: %s", loom_error());
    struct stat sb;
    CHECK(stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode), "the directory is untouched");

    loom_graph *unfinished = loom_graph_new("u");
    loom_input(unfinished, 1, 2, 2);
    CHECK(loom_checkpoint_save(p, unfinished, NULL) == LOOM_ERR && strstr(loom_error(), "not finished"),
          "unfinished graph refused: %s", loom_error());
    loom_graph_free(unfinished);

    /* A folder the writer may not write in: the save fails and the old file
     * stays. Root may write anywhere, so as root the save runs in a child
     * that has dropped to the unprivileged user "nobody" (65534). */
    const char *ro = at("ro");
    char file[300];
    snprintf(file, sizeof file, "%s/m.safetensors", ro);
    mkdir(ro, 0755);
    CHECK(loom_checkpoint_save(file, g, NULL) == LOOM_OK, "save into ro/ while writable: %s", loom_error());
    size_t a, bn;
    unsigned char *old = t_read_file(file, &a);
    chmod(ro, 0555);
    chmod(dir, 0755); /* (mkdtemp made it 0700: nobody could not even look) */
    int refused;
    if (geteuid() == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            if (setgid(65534) != 0 || setuid(65534) != 0) _exit(3);
            _exit(loom_checkpoint_save(file, g, NULL) == LOOM_ERR && strstr(loom_error(), "m.safetensors") ? 0 : 1);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) != 3, "could not drop privileges to test the read-only folder");
        refused = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        printf("read-only folder: tested as uid 65534 in a child (running as root)\n");
    } else {
        refused = loom_checkpoint_save(file, g, NULL) == LOOM_ERR;
    }
    CHECK(refused, "save into a read-only folder fails, naming the file");
    unsigned char *now = t_read_file(file, &bn);
    CHECK(old && now && a == bn && !memcmp(old, now, a), "the old file is intact");
    CHECK(t_count_entries(ro, ".tmp.") == 0, "no temporary in the read-only folder");
    chmod(ro, 0755);
    free(old);
    free(now);
    unlink(file);
    rmdir(ro);

    unsigned char *after = t_read_file(p, &n1);
    CHECK(before && after && n0 == n1 && !memcmp(before, after, n0), "failed saves left model.safetensors as it was");
    CHECK(t_count_entries(dir, ".tmp.") == 0 && t_count_entries(sub, ".tmp.") == 0, "no temporary files remain");
    free(before);
    free(after);
    rmdir(sub);
    loom_graph_free(g);
}

int main(void) {
    if (!t_mkdtemp(dir, sizeof dir, "checkpoint")) return 1;
    test_model_round_trip();
    test_extra();
    test_nonfinite();
    test_crc();
    test_format();
    test_bad_files();
    test_random_damage();
    test_atomic();
    if (getenv("LOOM_KEEP_CHECKPOINTS")) printf("files kept in %s\n", dir);
    else t_rm_tree(dir);
    TEST_END();
}

/* Checkpoints: a graph with every layer type survives save + load with the
 * same layers, bit-identical parameters and buffers and the same forward
 * output; the training state and optimizer state come back field for field;
 * the file is plain safetensors (checked here by parsing it independently);
 * every kind of damaged or foreign file is refused with a message naming the
 * file and the problem, without crashing or leaking (run under ASan); and a
 * failed save leaves neither a half file nor a temporary behind. */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "util.h"
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
    loom_set_batchnorm(g, b1, 1e-3f, 0.2f);
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
    loom_set_frozen(g, c1, 1);
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

static const char *state_diff(const loom_train_state *a, const loom_train_state *b);

static void test_model_round_trip(void) {
    loom_graph *g = build_all();
    CHECK(g != NULL, "the model builds");
    if (!g) return;
    const char *p = at("model.safetensors");
    CHECK(loom_checkpoint_save(p, g, NULL, NULL) == LOOM_OK, "save: %s", loom_error());
    loom_train_state st;
    memset(&st, 0x5a, sizeof st);
    loom_graph *h = loom_checkpoint_load(p, &st);
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
        loom_train_state zero;
        memset(&zero, 0, sizeof zero);
        const char *d = state_diff(&st, &zero);
        CHECK(d == NULL, "no training state in the file: st is zeroed, but %s is not", d);
    }
    loom_graph_free(h);
    loom_graph_free(g);
}

/* ---- training state -------------------------------------------------------------- */

static int same_bits(double a, double b) { return !memcmp(&a, &b, sizeof a); }
static int same_fbits(float a, float b) { return !memcmp(&a, &b, sizeof a); }

/* Field by field: padding bytes make a memcmp of the struct meaningless. */
static const char *state_diff(const loom_train_state *a, const loom_train_state *b) {
    const loom_optim_cfg *x = &a->optim, *y = &b->optim;
    const loom_schedule *s = &a->sched, *t = &b->sched;
    if (a->epoch != b->epoch) return "epoch";
    if (a->step != b->step) return "step";
    if (a->seed != b->seed) return "seed";
    if (a->epochs != b->epochs) return "epochs";
    if (!same_bits(a->best_metric, b->best_metric)) return "best_metric";
    if (x->kind != y->kind || !same_fbits(x->lr, y->lr) || !same_fbits(x->momentum, y->momentum) ||
        (x->nesterov != 0) != (y->nesterov != 0) || !same_fbits(x->weight_decay, y->weight_decay) ||
        !same_fbits(x->l1, y->l1) || !same_fbits(x->beta1, y->beta1) || !same_fbits(x->beta2, y->beta2) ||
        !same_fbits(x->eps, y->eps) || !same_fbits(x->alpha, y->alpha))
        return "optim";
    if (s->kind != t->kind || !same_fbits(s->base_lr, t->base_lr) || !same_fbits(s->gamma, t->gamma) ||
        s->step_size != t->step_size || s->n_milestones != t->n_milestones ||
        memcmp(s->milestones, t->milestones, sizeof(int) * (size_t)s->n_milestones) ||
        !same_fbits(s->warmup_epochs, t->warmup_epochs) || !same_fbits(s->min_lr, t->min_lr) ||
        s->patience != t->patience || s->epochs != t->epochs || !same_bits(s->best, t->best) ||
        s->bad_epochs != t->bad_epochs || !same_fbits(s->plateau_scale, t->plateau_scale))
        return "sched";
    if (a->batch != b->batch) return "batch";
    if ((a->deterministic != 0) != (b->deterministic != 0)) return "deterministic";
    if (strcmp(a->model, b->model)) return "model";
    if (a->input_c != b->input_c || a->input_h != b->input_h || a->input_w != b->input_w) return "input";
    if (a->classes != b->classes) return "classes";
    if (strcmp(a->augment, b->augment)) return "augment";
    if (strcmp(a->class_names, b->class_names)) return "class_names";
    return NULL;
}

static void fill_state(loom_train_state *st) {
    memset(st, 0, sizeof *st);
    st->epoch = 7;
    st->step = 123456789012L;
    st->seed = 0xFEDCBA9876543210ull; /* above INT64_MAX: must not go through a JSON integer */
    st->epochs = 30;
    st->best_metric = 0.91234567890123456;
    st->optim = (loom_optim_cfg){.kind = LOOM_NADAM, .lr = 3e-4f, .momentum = 0.9f, .nesterov = 1,
                                 .weight_decay = 1e-4f, .l1 = 1e-6f, .beta1 = 0.85f, .beta2 = 0.995f,
                                 .eps = 1e-7f, .alpha = 0.97f};
    loom_schedule_parse("multistep:3,7,11:0.5", 0.1f, 30, &st->sched);
    st->sched.warmup_epochs = 1.5f;
    st->sched.min_lr = 1e-5f;
    st->sched.patience = 4;
    st->sched.best = 0.3333333333333333;
    st->sched.bad_epochs = 2;
    st->sched.plateau_scale = 0.25f;
    st->batch = 64;
    st->deterministic = 1;
    snprintf(st->model, sizeof st->model, "minivgg");
    st->input_c = 3;
    st->input_h = 32;
    st->input_w = 32;
    st->classes = 10;
    snprintf(st->augment, sizeof st->augment, "flip:h,rotate:10,brightness:0.2");
    snprintf(st->class_names, sizeof st->class_names, "cat\ndog\n\"quoted\" \\ back\tslash\nZ\xc3\xbcrich\n");
}

static void test_state_round_trip(void) {
    loom_graph *g = build_all();
    if (!g) return;
    loom_train_state st, back;
    fill_state(&st);
    const char *p = at("state.safetensors");
    CHECK(loom_checkpoint_save(p, g, &st, NULL) == LOOM_OK, "save with state: %s", loom_error());
    loom_graph *h = loom_checkpoint_load(p, &back);
    CHECK(h != NULL, "load: %s", loom_error());
    const char *d = h ? state_diff(&st, &back) : "load";
    CHECK(d == NULL, "training state field %s differs after the round trip", d);
    loom_graph_free(h);

    /* What JSON cannot spell: the plateau schedule starts with best = inf. */
    loom_schedule_parse("plateau:3:0.5", 0.01f, 5, &st.sched);
    st.best_metric = -1;
    st.sched.best = INFINITY;
    st.optim.kind = LOOM_SGD;
    st.deterministic = 0;
    st.model[0] = 0;
    CHECK(loom_checkpoint_save(p, g, &st, NULL) == LOOM_OK, "save: %s", loom_error());
    h = loom_checkpoint_load(p, &back);
    d = h ? state_diff(&st, &back) : "load";
    CHECK(d == NULL && isinf(back.sched.best), "state with best = inf: field %s differs", d);
    loom_graph_free(h);

    /* Text that is not UTF-8 cannot go into JSON: refused, naming the field. */
    snprintf(st.augment, sizeof st.augment, "bad \xff byte");
    CHECK(loom_checkpoint_save(p, g, &st, NULL) == LOOM_ERR && strstr(loom_error(), "augment"),
          "invalid UTF-8 refused: %s", loom_error());
    h = loom_checkpoint_load(p, &back);
    CHECK(h != NULL, "the previous file is intact after the refused save");
    loom_graph_free(h);
    loom_graph_free(g);
}

/* ---- optimizer state ------------------------------------------------------------- */

static void optim_round_trip(loom_optim_kind kind, float momentum) {
    const char *name = loom_optim_name(kind);
    loom_graph *g = build_all();
    if (!g) return;
    size_t n = loom_graph_param_count(g);
    float *grad = malloc(n * sizeof(float));
    loom_train_state st;
    fill_state(&st);
    st.optim = (loom_optim_cfg){.kind = kind, .lr = 1e-2f, .momentum = momentum};
    loom_optim *o = loom_optim_new(&st.optim, n);
    for (int s = 0; s < 3; s++) {
        t_fill(grad, n, 10u + (unsigned)s, -1.0f, 1.0f);
        loom_optim_begin_step(o, st.optim.lr);
        loom_optim_apply(o, loom_graph_params(g), grad, 0, n);
    }
    const char *p = at("optim.safetensors");
    CHECK(loom_checkpoint_save(p, g, &st, o) == LOOM_OK, "%s: save: %s", name, loom_error());

    loom_train_state back;
    loom_graph *h = loom_checkpoint_load(p, &back);
    CHECK(h != NULL, "%s: load: %s", name, loom_error());
    if (!h) goto out;
    loom_optim *q = loom_optim_new(&back.optim, loom_graph_param_count(h));
    CHECK(loom_checkpoint_load_optim(p, q) == LOOM_OK, "%s: load_optim: %s", name, loom_error());
    CHECK(loom_optim_state_count(q) == loom_optim_state_count(o), "%s: state count", name);
    for (int k = 0; k < loom_optim_state_count(o); k++)
        CHECK(!memcmp(loom_optim_state(o, k), loom_optim_state(q, k), n * sizeof(float)),
              "%s: state array %d bit-identical", name, k);
    long s1, s2;
    double m1, m2;
    loom_optim_get_scalars(o, &s1, &m1);
    loom_optim_get_scalars(q, &s2, &m2);
    CHECK(s1 == 3 && s2 == s1 && same_bits(m1, m2), "%s: step %ld vs %ld, mu_product %.17g vs %.17g", name,
          s1, s2, m1, m2);
    /* The real test of a resumed optimizer: the next step is the same. */
    t_fill(grad, n, 77, -1.0f, 1.0f);
    loom_optim_begin_step(o, st.optim.lr);
    loom_optim_apply(o, loom_graph_params(g), grad, 0, n);
    loom_optim_begin_step(q, back.optim.lr);
    loom_optim_apply(q, loom_graph_params(h), grad, 0, n);
    CHECK(!memcmp(loom_graph_params(g), loom_graph_params(h), n * sizeof(float)),
          "%s: the step after resuming is bit-identical", name);
    loom_optim_free(q);

    /* A different optimizer kind, or one sized for another model, is refused. */
    loom_optim_cfg other = {.kind = loom_optim_state_count(o) == 2 ? LOOM_ADAGRAD : LOOM_ADAM, .lr = 0.1f};
    q = loom_optim_new(&other, n);
    CHECK(loom_checkpoint_load_optim(p, q) == LOOM_ERR && strstr(loom_error(), "optimizer state") &&
              strstr(loom_error(), loom_optim_name(other.kind)),
          "%s: mismatched optimizer refused: %s", name, loom_error());
    loom_optim_free(q);
    loom_optim_cfg same = st.optim;
    q = loom_optim_new(&same, n + 3);
    CHECK(loom_checkpoint_load_optim(p, q) == LOOM_ERR && strstr(loom_error(), "parameters"),
          "%s: optimizer of the wrong size refused: %s", name, loom_error());
    loom_optim_free(q);
    loom_graph_free(h);
out:
    loom_optim_free(o);
    free(grad);
    loom_graph_free(g);
}

static void test_optim_round_trip(void) {
    optim_round_trip(LOOM_ADAM, 0);
    optim_round_trip(LOOM_NADAM, 0);  /* mu_product != 1 */
    optim_round_trip(LOOM_SGD, 0.9f); /* one state array */
    optim_round_trip(LOOM_SGD, 0);    /* none, but the step count still travels */

    loom_optim_cfg c = {.kind = LOOM_ADAM, .lr = 0.1f};
    loom_optim *o = loom_optim_new(&c, 10);
    CHECK(loom_checkpoint_load_optim(at("model.safetensors"), o) == LOOM_ERR &&
              strstr(loom_error(), "no optimizer state"),
          "a file without optimizer state: %s", loom_error());
    loom_optim_free(o);
}

/* ---- the format, read without loom ---------------------------------------------------- */

static void test_format(void) {
    loom_graph *g = build_all();
    if (!g) return;
    const char *p = at("format.safetensors");
    loom_train_state st;
    fill_state(&st);
    loom_optim *o = loom_optim_new(&st.optim, loom_graph_param_count(g));
    CHECK(loom_checkpoint_save(p, g, &st, o) == LOOM_OK, "save: %s", loom_error());
    size_t n = 0;
    unsigned char *b = t_read_file(p, &n);
    CHECK(b && n >= 8, "file read");
    if (!b || n < 8) {
        free(b);
        loom_optim_free(o);
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
            CHECK(json_is_string(json_object_get(v, "loom.graph")) && json_is_string(json_object_get(v, "loom.state")) &&
                      json_is_string(json_object_get(v, "loom.optim")),
                  "metadata holds loom.graph, loom.state, loom.optim");
            CHECK(!strcmp(json_string_value(json_object_get(v, "loom.version")), "1"), "loom.version 1");
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
    loom_optim_free(o);
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
    loom_train_state st;
    loom_graph *g = loom_checkpoint_load(path, &st);
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
    loom_graph *g = loom_checkpoint_load(bad, NULL);
    CHECK(g != NULL, "reassembled file loads: %s", loom_error());
    loom_graph_free(g);

    json_object_set_new(w, "dtype", json_string("F16"));
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "dtype F16", "conv2d_1.weight: dtype F16");
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
    assemble(bad, p.hdr, p.data, p.dlen + 4);
    expect_fail(bad, "unknown tensor", "unknown tensor extra.weight");
    json_object_set(p.hdr, "optim.0.dense_2.bias", json_object_get(p.hdr, "extra.weight"));
    json_object_del(p.hdr, "extra.weight");
    assemble(bad, p.hdr, p.data, p.dlen + 4);
    expect_fail(bad, "optimizer tensor without loom.optim", "or the optimizer state");
    json_object_del(p.hdr, "optim.0.dense_2.bias");
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

    json_object_set_new(m, "loom.state", json_string("{\"epoch\": \"seven\"}"));
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "malformed loom.state", "loom.state: field \"epoch\" must be an integer");
    json_object_del(m, "loom.state");

    json_object_set_new(m, "loom.version", json_string("2"));
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "future version", "loom.version \"2\" is not supported");
    json_object_set_new(m, "loom.version", json_integer(1));
    assemble(bad, p.hdr, p.data, p.dlen);
    expect_fail(bad, "non-string metadata", "metadata \"loom.version\" must be a string");
    json_object_set_new(m, "loom.version", json_string("1"));

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
    const char *good = at("state.safetensors"), *bad = at("damaged.safetensors");
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
        loom_train_state st;
        loom_graph *g = loom_checkpoint_load(bad, &st);
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

    CHECK(loom_checkpoint_save(at("nodir/x.safetensors"), g, NULL, NULL) == LOOM_ERR &&
              strstr(loom_error(), "nodir/x.safetensors"),
          "save into a missing directory fails: %s", loom_error());

    /* rename() over a directory fails after the whole file was written: the
     * temporary must be removed and the directory left alone. */
    const char *sub = at("a-directory");
    mkdir(sub, 0755);
    CHECK(loom_checkpoint_save(sub, g, NULL, NULL) == LOOM_ERR && strstr(loom_error(), "rename"),
          "save over a directory fails: %s", loom_error());
    struct stat sb;
    CHECK(stat(sub, &sb) == 0 && S_ISDIR(sb.st_mode), "the directory is untouched");

    loom_graph *unfinished = loom_graph_new("u");
    loom_input(unfinished, 1, 2, 2);
    CHECK(loom_checkpoint_save(p, unfinished, NULL, NULL) == LOOM_ERR && strstr(loom_error(), "not finished"),
          "unfinished graph refused: %s", loom_error());
    loom_graph_free(unfinished);

    if (geteuid() != 0) {
        /* Root ignores permissions, so this only means something for others. */
        const char *ro = at("ro");
        char file[300];
        snprintf(file, sizeof file, "%s/m.safetensors", ro);
        mkdir(ro, 0755);
        loom_checkpoint_save(file, g, NULL, NULL);
        size_t a, bn;
        unsigned char *old = t_read_file(file, &a);
        chmod(ro, 0555);
        CHECK(loom_checkpoint_save(file, g, NULL, NULL) == LOOM_ERR, "save into a read-only directory fails");
        unsigned char *now = t_read_file(file, &bn);
        CHECK(old && now && a == bn && !memcmp(old, now, a), "the old file is intact");
        chmod(ro, 0755);
        free(old);
        free(now);
        unlink(file);
        rmdir(ro);
    } else {
        printf("running as root: read-only directory test skipped\n");
    }

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
    test_state_round_trip();
    test_optim_round_trip();
    test_format();
    test_bad_files();
    test_random_damage();
    test_atomic();
    if (getenv("LOOM_KEEP_CHECKPOINTS")) printf("files kept in %s\n", dir);
    else t_rm_tree(dir);
    TEST_END();
}

/* One replica's execution of a graph. Everything a forward/backward pass
 * writes is planned here once, from the shapes, for max_batch samples: the
 * steady-state training step allocates nothing. Parameters are read from the
 * graph and never written, which is what lets workers share them.
 *
 * The plan (DESIGN.md, "Kernels"):
 *  - each node writes a slot (activations + gradient) in a layout: PLAIN
 *    (NCHW) for the portable kernels, BLOCKED (oneDNN's nChw8c/16c) for the
 *    image layers that run through oneDNN, NHWC (channels last) for thin
 *    convolutions that oneDNN runs well only that way; where a consumer needs
 *    another layout, a conversion slot is filled after the producer;
 *  - a ReLU right after a conv or a batch norm that feeds nothing else is
 *    fused into it and shares its slot;
 *  - backward runs nodes in reverse; the first writer of a gradient
 *    overwrites it and later ones add, so gradients are zeroed only where
 *    the first writer is a kernel that can only add;
 *  - gradients live only from their first writer to their last reader, and
 *    share one arena by those lifetimes.
 * The public API sees none of this: inputs, outputs and parameter gradients
 * are plain tensors whatever the kernels. */
#include "exec_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/clock.h"
#include "kernels/kernels.h"
#include "kernels/parse.h"
#include "kernels/rng.h"
#include "loom/error.h"

/* ---- kernel choice ------------------------------------------------------------ */

static int kernels_choice = LOOM_KERNELS_AUTO;

int loom_set_kernels(loom_kernels k) {
    if (k != LOOM_KERNELS_AUTO && k != LOOM_KERNELS_PORTABLE && k != LOOM_KERNELS_ONEDNN)
        return loom_fail(LOOM_EINVAL, "loom_set_kernels: %d is not one of loom_kernels", (int)k);
    if (k == LOOM_KERNELS_ONEDNN && !loom_dnn_usable())
        return loom_fail(LOOM_EUNSUPPORTED, "oneDNN kernels: %s", loom_dnn_isa());
    kernels_choice = k;
    return LOOM_OK;
}

/* LOOM_KERNELS=portable|onednn|auto in the environment, when no call chose. */
static int env_choice(int *out) {
    const char *v = getenv("LOOM_KERNELS");
    if (!v || !*v || !strcmp(v, "auto")) *out = LOOM_KERNELS_AUTO;
    else if (!strcmp(v, "portable")) *out = LOOM_KERNELS_PORTABLE;
    else if (!strcmp(v, "onednn")) *out = LOOM_KERNELS_ONEDNN;
    else
        return loom_fail(LOOM_EINVAL, "LOOM_KERNELS=%s: not portable, onednn or auto", v);
    return LOOM_OK;
}

/* LOOM_WGRAD=loom|onednn and the switch LOOM_WINOGRAD (kernels/parse.h): whether loom's own 3x3
 * kernels may run where they fit (exec_dnnl.c). Read whenever an exec is made, whatever its model and
 * kernels, so that a malformed value is refused everywhere, not only where a layer would use it. */
static int env_own_kernels(int *wgrad, int *wino) {
    const char *v = getenv("LOOM_WGRAD");
    *wgrad = 1, *wino = 1;
    if (v && *v && strcmp(v, "loom")) {
        if (strcmp(v, "onednn"))
            return loom_fail(LOOM_EINVAL, "LOOM_WGRAD=%s: give loom (its own kernel, the default) or onednn", v);
        *wgrad = 0;
    }
    return loom_env_switch("LOOM_WINOGRAD", wino);
}

static int use_dnn(void) {
    int k = kernels_choice;
    if (k == LOOM_KERNELS_AUTO && env_choice(&k)) return -1;
    if (k == LOOM_KERNELS_PORTABLE) return 0;
    if (loom_dnn_usable()) return 1;
    if (k == LOOM_KERNELS_ONEDNN) return loom_fail(LOOM_EUNSUPPORTED, "oneDNN kernels: %s", loom_dnn_isa());
    return 0;
}

const char *loom_exec_kernels(const loom_exec *e) {
    static char buf[64];
    if (!e || !e->dnn) return "portable";
    snprintf(buf, sizeof buf, "onednn %s", loom_dnn_isa());
    return buf;
}

/* ---- the plan -------------------------------------------------------------------- */

enum { W_ADD, W_SET, W_BOTH }; /* what a gradient writer can do: add only, overwrite only, either */
#define LANES_MAX 1024 /* channels last with more channels is left to the portable kernels */

typedef struct {
    int *consumers;   /* per node: how many nodes read it */
    int *conv_of;     /* per node: its conversion slot, -1 if none */
} plan_ctx;

static int new_slot(loom_exec *e, int node, int lay, int c, int h, int w) {
    loom_slot *s = &e->slot[e->nslot];
    memset(s, 0, sizeof *s);
    s->node = node;
    s->lay = lay;
    s->c = c, s->h = h, s->w = w;
    size_t hw = (size_t)h * w;
    s->lanes = lay == LAY_BLOCKED ? e->block : lay == LAY_NHWC ? c : 0;
    s->stride = s->lanes ? (size_t)((c + s->lanes - 1) / s->lanes) * s->lanes * hw : (size_t)c * hw;
    s->first = s->last = -1;
    return e->nslot++;
}

/* The slot holding node j's output in layout lay: its own, or a conversion
 * made once and shared by every consumer that needs it. */
static int slot_in(loom_exec *e, plan_ctx *p, int j, int lay) {
    int s = e->step[j].out;
    if (e->slot[s].lay == lay) return s;
    if (p->conv_of[j] >= 0) return p->conv_of[j];
    const loom_slot *src = &e->slot[s];
    int t = new_slot(e, j, lay, src->c, src->h, src->w);
    e->conv[e->nconv++] = (loom_convert){.from = s, .to = t, .after = j};
    p->conv_of[j] = t;
    return t;
}

/* Decide each node's layout, kernels and slot. */
static void plan_layouts(loom_exec *e, plan_ctx *p) {
    loom_graph *g = e->g;
    for (int i = 0; i < g->n; i++) {
        const loom_layer *l = &g->nodes[i];
        loom_step *st = &e->step[i];
        int inlay = i ? e->slot[e->step[l->in[0]].out].lay : LAY_PLAIN;
        int lay = LAY_PLAIN, need = LAY_PLAIN;
        switch (l->op) {
        case LOOM_OP_INPUT: break;
        case LOOM_OP_CONV2D:
            if (e->dnn) {
                /* the layouts oneDNN has real kernels for, best first (bench/conv_routes.c):
                 * blocked; the image itself (thin) read as NCHW into blocked; channels last */
                static const int tries[3][2] = {{LAY_BLOCKED, LAY_BLOCKED}, {LAY_PLAIN, LAY_BLOCKED}, {LAY_NHWC, LAY_NHWC}};
                int j = l->in[0], grad = g->nodes[j].op != LOOM_OP_INPUT;
                for (int t = 0; t < 3 && !st->dnn; t++) {
                    if (tries[t][0] == LAY_PLAIN && l->a.conv.c >= e->block) continue;
                    if (tries[t][0] == LAY_NHWC && (l->a.conv.c > LANES_MAX || l->c > LANES_MAX)) continue;
                    const loom_slot *src = &e->slot[e->step[j].out];
                    loom_slot probe = *src;
                    probe.lay = tries[t][0];
                    if (loom_dnn_probe(e, i, &probe, tries[t][1], grad)) need = tries[t][0], lay = tries[t][1], st->dnn = 1;
                }
            }
            break;
        case LOOM_OP_MAXPOOL: need = lay = inlay; break; /* loom's own loops on either layout */
        case LOOM_OP_BATCHNORM: case LOOM_OP_AVGPOOL: case LOOM_OP_RELU:
        case LOOM_OP_LEAKY_RELU: case LOOM_OP_SIGMOID: case LOOM_OP_TANH:
            need = lay = inlay;
            /* a ceil_mode average pool (right padding past the left) stays on loom's loops: oneDNN's
             * SSE4.1 pooling read out of bounds on it */
            if (l->op == LOOM_OP_AVGPOOL && l->a.pool.ceil) need = lay = LAY_PLAIN;
            if (need != LAY_PLAIN) {
                st->dnn = loom_dnn_probe(e, i, &e->slot[e->step[l->in[0]].out], inlay, 1);
                if (!st->dnn) need = lay = LAY_PLAIN;
            }
            break;
        case LOOM_OP_DROPOUT: need = lay = inlay; break;
        case LOOM_OP_GAVGPOOL: need = inlay; break;
        case LOOM_OP_ADD:
            /* both inputs in one layout: blocked if either is, else channels last if either is */
            for (int k = 0; k < l->nin; k++) {
                int kl = e->slot[e->step[l->in[k]].out].lay;
                if (kl == LAY_BLOCKED || (kl == LAY_NHWC && need == LAY_PLAIN)) need = kl;
            }
            lay = need;
            break;
        case LOOM_OP_CONCAT:
            need = LAY_BLOCKED;
            for (int k = 0; k < l->nin; k++) {
                const loom_slot *s = &e->slot[e->step[l->in[k]].out];
                if (s->lay != LAY_BLOCKED || s->c % e->block) need = LAY_PLAIN; /* channel runs per group */
            }
            lay = need;
            break;
        default: break; /* dense, flatten, softmax: plain */
        }
        for (int k = 0; k < l->nin; k++) st->in[k] = slot_in(e, p, l->in[k], need);
        /* a ReLU fused into the conv or batch norm before it: same slot */
        if (l->op == LOOM_OP_RELU && st->dnn) {
            int j = l->in[0];
            const loom_layer *pl = &g->nodes[j];
            if ((pl->op == LOOM_OP_CONV2D || pl->op == LOOM_OP_BATCHNORM) && e->step[j].dnn &&
                p->consumers[j] == 1 && j != g->output && st->in[0] == e->step[j].out) {
                e->step[j].fused_relu = 1;
                st->alias = 1;
            }
        }
        /* and after an addition (loom's own loop, any layout): a residual block's end */
        if (l->op == LOOM_OP_RELU && !st->alias) {
            int j = l->in[0];
            if (g->nodes[j].op == LOOM_OP_ADD && !e->step[j].dnn && g->nodes[j].nin == 2 && p->consumers[j] == 1 &&
                j != g->output && st->in[0] == e->step[j].out) {
                e->step[j].fused_relu = 1;
                st->alias = 1;
            }
        }
        if (l->op == LOOM_OP_FLATTEN) st->alias = 1;
        st->out = st->alias ? st->in[0] : new_slot(e, i, lay, l->c, l->h, l->w);
    }
    /* the output is read by callers as a plain tensor */
    e->output = slot_in(e, p, g->output, LAY_PLAIN);
}

/* The node that alone reads node j's output, in the slot j writes; -1 if
 * there are other readers, a conversion, or j is the graph's output. */
static int sole_reader(const loom_exec *e, const plan_ctx *p, int j) {
    const loom_graph *g = e->g;
    if (p->consumers[j] != 1 || p->conv_of[j] >= 0 || j == g->output) return -1;
    for (int k = j + 1; k < g->n; k++)
        for (int q = 0; q < g->nodes[k].nin; q++)
            if (g->nodes[k].in[q] == j) return e->step[k].in[q] == e->step[j].out ? k : -1;
    return -1;
}

/* Inference fusions: a oneDNN convolution, the batch norm after it (folded
 * into its weights and bias from the running statistics), an addition of
 * another tensor after that (a binary post-op: a residual connection) and a
 * ReLU after that, each the only reader of the one before, become one
 * convolution. It runs where the last of them runs (the addition's other
 * input is ready by then) and writes that node's slot; the others are
 * skipped. Training forwards run every node, so nothing here touches
 * backward. Memory passes saved per residual block: the batch norm's, the
 * addition's and the ReLU's. */
static void plan_fusions(loom_exec *e, plan_ctx *p) {
    loom_graph *g = e->g;
    for (int i = 0; i < g->n; i++) e->step[i].fuse_other = -1;
    for (int i = 1; i < g->n; i++) {
        const loom_step *st = &e->step[i];
        if (g->nodes[i].op != LOOM_OP_CONV2D || !st->dnn || st->fused_relu) continue;
        int at = i, bn = 0, add = 0, other = -1, relu = 0, k = sole_reader(e, p, i);
        if (k > 0 && g->nodes[k].op == LOOM_OP_BATCHNORM && e->step[k].dnn) {
            bn = at = k;
            relu = e->step[k].fused_relu;
            k = relu ? -1 : sole_reader(e, p, k);
        }
        /* an addition of two such chains (a projection shortcut) goes to the first */
        if (k > 0 && g->nodes[k].op == LOOM_OP_ADD && g->nodes[k].nin == 2 && !e->step[k].skip_inf &&
            !e->step[k].fuse_conv) {
            const loom_step *ks = &e->step[k];
            int x = ks->in[0] == e->step[at].out ? 1 : 0;
            const loom_slot *o = &e->slot[ks->in[x]], *y = &e->slot[ks->out];
            if (ks->in[x] != e->step[at].out && o->lay == y->lay && o->stride == y->stride && o->c == y->c) {
                other = ks->in[x];
                add = at = k;
                relu = ks->fused_relu;
                k = relu ? -1 : sole_reader(e, p, k);
            } else {
                k = -1;
            }
        }
        if (k > 0 && g->nodes[k].op == LOOM_OP_RELU && !e->step[k].alias) at = k, relu = 1;
        if (at == i) continue;
        /* every node of the chain but the last is skipped */
        int members[3] = {i, bn, add};
        for (int q = 0; q < 3; q++)
            if (members[q] > 0 && members[q] != at) e->step[members[q]].skip_inf = at;
        loom_step *as = &e->step[at];
        as->fuse_conv = i, as->fuse_bn = bn, as->fuse_other = other, as->fuse_relu = relu;
    }
}

/* What node i's backward can do to its inputs' gradients. */
static int writer_kind(const loom_exec *e, int i) {
    const loom_layer *l = &e->g->nodes[i];
    if (e->step[i].dnn) return W_SET;
    switch (l->op) {
    case LOOM_OP_ADD: case LOOM_OP_CONCAT: case LOOM_OP_DROPOUT: case LOOM_OP_ARITH: case LOOM_OP_PAD:
    case LOOM_OP_RESHAPE: return W_BOTH;
    case LOOM_OP_GAVGPOOL: case LOOM_OP_MAXPOOL: return e->slot[e->step[i].in[0]].lanes ? W_BOTH : W_ADD;
    default: return W_ADD;
    }
}

/* Backward times: node k runs at 2k+1, the conversion after node j at 2j+2
 * (after every consumer of j, before j), the loss above everything. */
static int plan_writers(loom_exec *e, plan_ctx *p) {
    loom_graph *g = e->g;
    int top = 2 * g->n + 2;
    /* a node whose output gradient nobody writes has no backward to run */
    char *live = calloc((size_t)g->n + 1, 1);
    int *first_kind = calloc((size_t)e->nslot + 1, sizeof *first_kind);
    if (!live || !first_kind) {
        free(live);
        free(first_kind);
        return loom_fail(LOOM_ENOMEM, "loom_exec_new: out of memory");
    }
    /* a gradient is wanted only below a trainable layer: backward stops above a frozen body */
    char *want = calloc((size_t)g->n + 1, 1);
    if (!want) {
        free(live);
        free(first_kind);
        return loom_fail(LOOM_ENOMEM, "loom_exec_new: out of memory");
    }
    for (int k = 1; k < g->n; k++) {
        const loom_layer *l = &g->nodes[k];
        want[k] = l->param_count > 0 && !l->frozen;
        for (int s = 0; s < l->nin; s++) want[k] |= want[l->in[s]];
    }
    e->slot[e->output].first = top;
    first_kind[e->output] = W_ADD; /* the loss adds */
    e->slot[e->output].zero = 1;
    for (int k = g->n - 1; k >= 1; k--) {
        const loom_layer *l = &g->nodes[k];
        loom_step *st = &e->step[k];
        /* the conversion after k: reads its slot's gradient, writes k's */
        if (p->conv_of[k] >= 0) {
            for (int c = 0; c < e->nconv; c++) {
                loom_convert *cv = &e->conv[c];
                if (cv->after != k || e->slot[cv->to].first < 0) continue;
                int t = 2 * k + 2;
                e->slot[cv->to].last = t;
                loom_slot *s = &e->slot[cv->from];
                cv->acc = s->first >= 0;
                if (s->first < 0) s->first = t, first_kind[cv->from] = W_BOTH;
            }
        }
        if (st->alias) {
            live[k] = e->slot[st->out].first >= 0;
            continue;
        }
        if (e->slot[st->out].first < 0) continue; /* nothing flows back into k */
        live[k] = 1;
        int t = 2 * k + 1;
        e->slot[st->out].last = t;
        int kind = writer_kind(e, k);
        for (int s = 0; s < l->nin; s++) {
            st->grad_in[s] = g->nodes[l->in[s]].op != LOOM_OP_INPUT && want[l->in[s]];
            if (!st->grad_in[s]) continue;
            loom_slot *in = &e->slot[st->in[s]];
            /* two inputs of one node may be one slot (add(x, x)): the second adds */
            int dup = 0;
            for (int q = 0; q < s; q++) dup |= st->grad_in[q] && st->in[q] == st->in[s];
            st->acc[s] = in->first >= 0 || dup;
            if (!st->acc[s]) {
                in->first = t;
                first_kind[st->in[s]] = kind;
            }
        }
    }
    for (int s = 0; s < e->nslot; s++)
        if (e->slot[s].first >= 0 && first_kind[s] == W_ADD) e->slot[s].zero = 1;
    /* a deferred dense layer's output gradient is read again after backward */
    for (int k = 1; k < g->n; k++)
        if (loom_exec_defers(e, k)) e->slot[e->step[k].out].kept = 1;
    free(live);
    free(first_kind);
    free(want);
    return LOOM_OK;
}

/* Gradient offsets: slots whose lifetimes [last, first] do not meet share memory. */
static void plan_gradients(loom_exec *e) {
    size_t B = (size_t)e->max_batch, end = 0;
    int *order = malloc((size_t)e->nslot * sizeof *order), n = 0;
    int *placed = malloc((size_t)e->nslot * sizeof *placed), np = 0;
    if (!order || !placed) {
        free(order);
        free(placed);
        for (int s = 0; s < e->nslot; s++) e->slot[s].goff = end, end += B * e->slot[s].stride;
        e->garena_len = end;
        return;
    }
    for (int s = 0; s < e->nslot; s++)
        if (e->slot[s].first >= 0) order[n++] = s;
    /* in the order they come alive: latest first writer first */
    for (int a = 1; a < n; a++)
        for (int b = a; b > 0 && e->slot[order[b]].first > e->slot[order[b - 1]].first; b--) {
            int t = order[b];
            order[b] = order[b - 1];
            order[b - 1] = t;
        }
    for (int a = 0; a < n; a++) {
        loom_slot *s = &e->slot[order[a]];
        size_t need = B * s->stride;
        /* still live when s starts: their last reader is at or below s's first writer */
        int keep = 0;
        for (int q = 0; q < np; q++)
            if (e->slot[placed[q]].kept || e->slot[placed[q]].last <= s->first) placed[keep++] = placed[q];
        np = keep;
        /* lowest gap that fits among the live ones (sorted by offset) */
        for (int x = 1; x < np; x++)
            for (int y = x; y > 0 && e->slot[placed[y]].goff < e->slot[placed[y - 1]].goff; y--) {
                int t = placed[y];
                placed[y] = placed[y - 1];
                placed[y - 1] = t;
            }
        size_t at = 0;
        for (int q = 0; q < np; q++) {
            const loom_slot *o = &e->slot[placed[q]];
            if (o->goff >= at + need) break;
            size_t oend = o->goff + B * o->stride;
            if (oend > at) at = oend;
        }
        s->goff = at;
        if (at + need > end) end = at + need;
        placed[np++] = order[a];
    }
    e->garena_len = end;
    free(order);
    free(placed);
}

static int plan(loom_exec *e) {
    loom_graph *g = e->g;
    plan_ctx p = {0};
    p.consumers = calloc((size_t)g->n, sizeof *p.consumers);
    p.conv_of = malloc((size_t)g->n * sizeof *p.conv_of);
    e->step = calloc((size_t)g->n, sizeof *e->step);
    e->slot = calloc(2 * (size_t)g->n + 1, sizeof *e->slot);
    e->conv = calloc((size_t)g->n + 1, sizeof *e->conv);
    int rc = LOOM_ERR;
    if (!p.consumers || !p.conv_of || !e->step || !e->slot || !e->conv) {
        loom_fail(LOOM_ENOMEM, "loom_exec_new: out of memory");
        goto out;
    }
    for (int i = 0; i < g->n; i++) {
        p.conv_of[i] = -1;
        for (int k = 0; k < g->nodes[i].nin; k++) p.consumers[g->nodes[i].in[k]]++;
    }
    plan_layouts(e, &p);
    if (e->dnn && !e->unfused) plan_fusions(e, &p);
    if (plan_writers(e, &p)) goto out;
    plan_gradients(e);
    rc = LOOM_OK;
out:
    free(p.consumers);
    free(p.conv_of);
    return rc;
}

/* ---- creation ------------------------------------------------------------------------ */

static int allocate(loom_exec *e) {
    loom_graph *g = e->g;
    size_t B = (size_t)e->max_batch, fl = 0, il = 0, bl = 0, scratch = 0, tmp = 0, ptmp = 0;
    for (int s = 0; s < e->nslot; s++) fl += B * e->slot[s].stride;
    for (int i = 0; i < g->n; i++) {
        const loom_layer *l = &g->nodes[i];
        const loom_step *st = &e->step[i];
        if (l->op == LOOM_OP_DROPOUT) bl += B * e->slot[st->out].stride;
        if (l->op == LOOM_OP_MAXPOOL && !st->dnn && e->slot[st->out].lay == LAY_PLAIN) il += B * l->size;
        if (l->op == LOOM_OP_CONV2D && !st->dnn) {
            size_t s = loom_k_conv2d_scratch(&l->a.conv);
            if (s > scratch) scratch = s;
        }
        /* a oneDNN backward that must add into a gradient writes here first, and one whose
         * input gradient nobody wants (a batch norm above a frozen body) writes it here */
        for (int k = 0; k < l->nin; k++)
            if (st->dnn && (st->acc[k] || !st->grad_in[k]) && B * e->slot[st->in[k]].stride > tmp)
                tmp = B * e->slot[st->in[k]].stride;
        /* and its parameter gradients (batch norm's scale and shift, a conv's bias) */
        if (st->dnn && 2 * (size_t)l->c > ptmp) ptmp = 2 * (size_t)l->c;
    }
    fl += 2 * g->n_buffers + scratch + tmp + ptmp + 1;
    /* what this replica needs, against the machine's memory, before asking for it */
    double need = 4.0 * ((double)fl + (double)e->garena_len + (double)il + (double)g->n_params) + (double)bl;
    double ram = loom_k_memory_bytes();
    if (ram > 0 && need > ram) {
        loom_fail(LOOM_ENOMEM, "%s: one replica for a batch of %zu needs %.1f GB (activations, gradients, scratch), "
                                      "more than this machine's %.1f GB of memory: a smaller batch, fewer threads or "
                                      "smaller images", g->name, B, need / 1e9, ram / 1e9);
        return 2;
    }
    e->arena = loom_k_big_alloc(fl, sizeof(float));
    e->garena = loom_k_big_alloc(e->garena_len + 1, sizeof(float));
    e->iarena = malloc((il + 1) * sizeof(int32_t));
    e->barena = malloc(bl + 1);
    e->mask = calloc((size_t)g->n, sizeof *e->mask);
    e->argmax = calloc((size_t)g->n, sizeof *e->argmax);
    /* apart, and zeroed by calloc: pages of deferred weight gradients are never touched */
    e->pgrad = calloc(g->n_params + 1, sizeof(float));
    if (!e->pgrad || !e->arena || !e->garena || !e->iarena || !e->barena || !e->mask || !e->argmax) return LOOM_ERR;
    /* both zero already (loom_k_big_alloc): pages no layer uses never become resident */
    e->arena_len = fl;
    e->barena_len = bl;
    float *p = e->arena;
    int32_t *ip = e->iarena;
    uint8_t *bp = e->barena;
    for (int s = 0; s < e->nslot; s++) {
        e->slot[s].act = p, p += B * e->slot[s].stride;
        e->slot[s].grad = e->slot[s].first >= 0 ? e->garena + e->slot[s].goff : NULL;
    }
    for (int i = 0; i < g->n; i++) {
        const loom_layer *l = &g->nodes[i];
        if (l->op == LOOM_OP_DROPOUT) e->mask[i] = bp, bp += B * e->slot[e->step[i].out].stride;
        if (l->op == LOOM_OP_MAXPOOL && !e->step[i].dnn && e->slot[e->step[i].out].lay == LAY_PLAIN)
            e->argmax[i] = ip, ip += B * l->size;
    }
    e->save = p, p += g->n_buffers;
    e->stats = p, p += g->n_buffers;
    e->scratch = p, p += scratch;
    e->tmp = p, p += tmp;
    e->ptmp = p;
    return LOOM_OK;
}

loom_exec *loom_exec_new(loom_graph *g, int max_batch) { return loom_exec_new_flags(g, max_batch, 0); }

loom_exec *loom_exec_new_flags(loom_graph *g, int max_batch, unsigned flags) {
    if (!g || !g->finished) {
        loom_fail(LOOM_EINVAL, "loom_exec_new: the graph is not finished (call loom_graph_finish)");
        return NULL;
    }
    if (g->err[0]) {
        loom_fail(LOOM_EINVAL, "loom_exec_new: %s", g->err);
        return NULL;
    }
    if (max_batch <= 0) {
        loom_fail(LOOM_EINVAL, "loom_exec_new: batch %d must be positive", max_batch);
        return NULL;
    }
    if (flags & ~(unsigned)(LOOM_EXEC_DEFER_DENSE | LOOM_EXEC_UNFUSED)) {
        loom_fail(LOOM_EINVAL, "loom_exec_new: unknown flags 0x%x", flags);
        return NULL;
    }
    int dnn = use_dnn(), own_wgrad, own_wino;
    if (dnn < 0 || env_own_kernels(&own_wgrad, &own_wino)) return NULL;
    loom_exec *e = calloc(1, sizeof *e);
    if (!e) goto oom;
    e->g = g;
    e->own_wgrad = own_wgrad, e->own_wino = own_wino;
    e->max_batch = max_batch;
    e->defer = (flags & LOOM_EXEC_DEFER_DENSE) != 0;
    e->unfused = (flags & LOOM_EXEC_UNFUSED) != 0;
    e->dnn = dnn;
    e->block = dnn ? loom_dnn_block() : 0;
    if (plan(e)) goto fail;
    int arc = allocate(e); /* 2: more than the machine has, said */
    if (arc == 2) goto fail;
    if (arc) goto oom;
    if (e->dnn && loom_dnn_init(e)) goto fail;
    return e;
oom:
    loom_fail(LOOM_ENOMEM, "loom_exec_new: out of memory planning %s for batch %d", g->name, max_batch);
fail:
    loom_exec_free(e);
    return NULL;
}

void loom_exec_free(loom_exec *e) {
    if (!e) return;
    if (e->dn) loom_dnn_free(e);
    free(e->step);
    free(e->slot);
    free(e->conv);
    free(e->mask);
    free(e->argmax);
    loom_k_big_free(e->arena);
    loom_k_big_free(e->garena);
    free(e->iarena);
    free(e->barena);
    free(e->pgrad);
    free(e->t_fwd);
    free(e->t_bwd);
    free(e);
}

int loom_exec_set_timing(loom_exec *e, int on) {
    if (!e) return loom_fail(LOOM_EINVAL, "loom_exec_set_timing: no exec");
    free(e->t_fwd);
    free(e->t_bwd);
    e->t_fwd = e->t_bwd = NULL;
    if (!on) return LOOM_OK;
    e->t_fwd = calloc((size_t)e->g->n, sizeof *e->t_fwd);
    e->t_bwd = calloc((size_t)e->g->n, sizeof *e->t_bwd);
    if (!e->t_fwd || !e->t_bwd) return loom_fail(LOOM_ENOMEM, "loom_exec_set_timing: out of memory");
    return LOOM_OK;
}

void loom_exec_layer_seconds(const loom_exec *e, loom_node i, double *fwd, double *bwd) {
    int ok = e && e->t_fwd && i >= 0 && i < e->g->n;
    if (fwd) *fwd = ok ? e->t_fwd[i] : 0;
    if (bwd) *bwd = ok ? e->t_bwd[i] : 0;
}

int loom_exec_max_batch(const loom_exec *e) { return e->max_batch; }
float *loom_exec_input(loom_exec *e) { return e->slot[e->step[0].out].act; }
const float *loom_exec_output(const loom_exec *e) { return e->slot[e->output].act; }
size_t loom_exec_output_size(const loom_exec *e) { return e->g->nodes[e->g->output].size; }
float *loom_exec_output_grad(loom_exec *e) { return e->slot[e->output].grad; }
float *loom_exec_param_grad(loom_exec *e) { return e->pgrad; }
const float *loom_exec_batch_stats(const loom_exec *e) { return e->stats; }

int loom_exec_fusions(const loom_exec *e) {
    int k = 0;
    for (int i = 1; e && i < e->g->n; i++) k += e->step[i].fuse_conv > 0;
    return k;
}

int loom_exec_winograd(const loom_exec *e) { return e && e->dnn ? loom_dnn_winograd(e) : 0; }

size_t loom_exec_bytes(const loom_exec *e) {
    return (e->arena_len + e->garena_len + e->g->n_params) * sizeof(float) + e->barena_len +
           (e->dnn ? loom_dnn_extra_bytes(e) : 0);
}

const char *loom_exec_layer_impl(const loom_exec *e, loom_node i) {
    if (!e || i < 0 || i >= e->g->n) return NULL;
    const loom_step *st = &e->step[i];
    if (st->alias) return e->g->nodes[i].op == LOOM_OP_FLATTEN ? "(view)" : "(fused)";
    if (st->dnn) {
        const char *s = loom_dnn_impl(e, i);
        return s ? s : "onednn";
    }
    return "portable";
}

void loom_exec_probabilities(const loom_exec *e, int n, float *probs, int32_t *classes) {
    int k = (int)loom_exec_output_size(e);
    const float *out = loom_exec_output(e);
    /* a model that ends in softmax already gives probabilities: not twice */
    int done = e->g->nodes[e->g->output].op == LOOM_OP_SOFTMAX;
    for (int i = 0; i < n && i < e->max_batch; i++) {
        const float *o = out + (size_t)i * k;
        if (probs && done) memcpy(probs + (size_t)i * k, o, (size_t)k * sizeof(float));
        else if (probs) loom_k_softmax_fwd(o, probs + (size_t)i * k, 1, k);
        if (classes) classes[i] = loom_k_argmax(o, k);
    }
}

/* ---- loops that know the blocked layout ----------------------------------------------- */

/* Global average pool of a blocked slot into plain [n, c]. */
static void gap_blocked_fwd(const loom_slot *x, float *y, int n, int B) {
    size_t hw = (size_t)x->h * x->w;
    int groups = (x->c + B - 1) / B;
    for (int i = 0; i < n; i++) {
        const float *xi = x->act + (size_t)i * x->stride;
        for (int gi = 0; gi < groups; gi++) {
            double sum[LANES_MAX];
            for (int l = 0; l < B; l++) sum[l] = 0;
            const float *xg = xi + (size_t)gi * hw * B;
            for (size_t p = 0; p < hw; p++)
                for (int l = 0; l < B; l++) sum[l] += xg[p * B + l];
            for (int l = 0; l < B && gi * B + l < x->c; l++) y[(size_t)i * x->c + gi * B + l] = (float)(sum[l] / hw);
        }
    }
}

static void gap_blocked_bwd(const float *dy, const loom_slot *x, float *dx, int n, int B, int acc) {
    size_t hw = (size_t)x->h * x->w;
    int groups = (x->c + B - 1) / B;
    for (int i = 0; i < n; i++) {
        float *di = dx + (size_t)i * x->stride;
        for (int gi = 0; gi < groups; gi++) {
            float share[LANES_MAX];
            for (int l = 0; l < B; l++) {
                int ch = gi * B + l;
                share[l] = ch < x->c ? dy[(size_t)i * x->c + ch] / (float)hw : 0.0f;
            }
            float *dg = di + (size_t)gi * hw * B;
            for (size_t p = 0; p < hw; p++)
                for (int l = 0; l < B; l++) dg[p * B + l] = (acc ? dg[p * B + l] : 0.0f) + share[l];
        }
    }
}

/* Dropout, drawing each element's mask by its NCHW index (the portable
 * kernel's draws), so that both layouts drop the same elements; the mask is
 * kept as bytes. Padding channels stay zero. */
static void dropout_fwd(const loom_slot *x, float *y, uint8_t *mask, int n, float p, uint64_t key, uint64_t base,
                        int B) {
    size_t hw = (size_t)x->h * x->w;
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (int i = 0; i < n; i++) {
        uint64_t k = loom_rng_key(key, base + (uint64_t)i, 0, 0);
        uint8_t *m = mask + (size_t)i * x->stride;
        const float *xi = x->act + (size_t)i * x->stride;
        float *yi = y + (size_t)i * x->stride;
        if (!B) {
            for (size_t q = 0; q < x->stride; q++) m[q] = loom_rng_uniform(k, q) >= p;
        } else {
            int groups = (x->c + B - 1) / B;
            for (int gi = 0; gi < groups; gi++)
                for (int l = 0; l < B; l++) {
                    size_t ch = (size_t)gi * B + l;
                    uint8_t *mg = m + (size_t)gi * hw * B + l;
                    if (ch >= (size_t)x->c) {
                        for (size_t q = 0; q < hw; q++) mg[q * B] = 0;
                        continue;
                    }
                    /* draws in runs of consecutive counters (they vectorise), then spread out */
                    for (size_t q0 = 0; q0 < hw; q0 += 256) {
                        uint8_t run[256];
                        size_t len = hw - q0 < 256 ? hw - q0 : 256;
                        for (size_t q = 0; q < len; q++) run[q] = loom_rng_uniform(k, ch * hw + q0 + q) >= p;
                        for (size_t q = 0; q < len; q++) mg[(q0 + q) * B] = run[q];
                    }
                }
        }
        for (size_t q = 0; q < x->stride; q++) yi[q] = xi[q] * ((float)m[q] * scale);
    }
}

static void dropout_bwd(const float *dy, const uint8_t *mask, float *dx, size_t len, float p, int acc) {
    float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    /* a multiply by the byte (0 or 1) rather than a branch: it vectorises */
    if (acc)
        for (size_t q = 0; q < len; q++) dx[q] += dy[q] * ((float)mask[q] * scale);
    else
        for (size_t q = 0; q < len; q++) dx[q] = dy[q] * ((float)mask[q] * scale);
}

/* Max pool on a blocked slot, the B lanes of a channel group side by side.
 * The same windows, the same first-of-equal-maxima and the same all-padding
 * rule as the portable kernel; no argmax is stored: backward finds the
 * maximum again, reading the input and output (less memory than an index
 * per output, and the forward writes nothing more). */
static void pool_window(const loom_pool_shape *s, int oy, int ox, int *y0, int *y1, int *x0, int *x1) {
    *y0 = oy * s->sh - s->ph, *y1 = *y0 + s->kh;
    *x0 = ox * s->sw - s->pw, *x1 = *x0 + s->kw;
    if (*y0 < 0) *y0 = 0;
    if (*x0 < 0) *x0 = 0;
    if (*y1 > s->h) *y1 = s->h;
    if (*x1 > s->w) *x1 = s->w;
}

/* The common case, 2x2 windows tiling the input: the lanes (B channels,
 * a constant at the calls for the blocked layouts) are vector code. */
static inline void mp2_fwd_group(const float *xg, float *yg, int w, int oh, int ow, const int B) {
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            const float *a = xg + ((size_t)(2 * oy) * w + 2 * ox) * B, *b = a + B, *c = a + (size_t)w * B, *d = c + B;
            float *out = yg + ((size_t)oy * ow + ox) * B;
            /* in window order, keeping the earlier on ties and NaN, as the general loop */
            for (int l = 0; l < B; l++) {
                float m = a[l];
                m = b[l] > m ? b[l] : m;
                m = c[l] > m ? c[l] : m;
                m = d[l] > m ? d[l] : m;
                out[l] = m;
            }
        }
}

static inline void mp2_bwd_group(const float *xg, float *dg, const float *yg, const float *gg, int h, int w, int oh,
                                 int ow, const int B) {
    for (int oy = 0; oy < oh; oy++)
        for (int ox = 0; ox < ow; ox++) {
            size_t at = ((size_t)(2 * oy) * w + 2 * ox) * B, o = ((size_t)oy * ow + ox) * B;
            const float *a = xg + at, *b = a + B, *c = a + (size_t)w * B, *d = c + B, *m = yg + o, *g = gg + o;
            float *da = dg + at, *db = da + B, *dc = da + (size_t)w * B, *dd = dc + B;
            for (int l = 0; l < B; l++) {
                /* the first position equal to the maximum takes the gradient; none (NaN): the
                 * first. Masks on the bits, not branches: which one it is is data, unpredictable. */
                float ml = m[l];
                uint32_t gl, ea = -(uint32_t)(a[l] == ml), eb = -(uint32_t)(b[l] == ml), ec = -(uint32_t)(c[l] == ml),
                             ed = -(uint32_t)(d[l] == ml);
                memcpy(&gl, &g[l], sizeof gl);
                uint32_t hb = eb & ~ea, hc = ec & ~ea & ~eb, hd = ed & ~ea & ~eb & ~ec, ha = ~(hb | hc | hd);
                uint32_t va = gl & ha, vb = gl & hb, vc = gl & hc, vd = gl & hd;
                memcpy(&da[l], &va, sizeof va);
                memcpy(&db[l], &vb, sizeof vb);
                memcpy(&dc[l], &vc, sizeof vc);
                memcpy(&dd[l], &vd, sizeof vd);
            }
        }
    /* a last odd row or column gets no gradient */
    for (int iy = 0; iy < h; iy++)
        for (int ix = iy < 2 * oh ? 2 * ow : 0; ix < w; ix++) memset(dg + ((size_t)iy * w + ix) * B, 0, (size_t)B * sizeof(float));
}

static int mp2_tiles(const loom_pool_shape *s, int B) {
    (void)B; /* and every window inside the image (not the last one of a ceil_mode pool past the edge) */
    return s->kh == 2 && s->kw == 2 && s->sh == 2 && s->sw == 2 && s->ph == 0 && s->pw == 0 && 2 * s->oh <= s->h &&
           2 * s->ow <= s->w;
}

static void maxpool_blocked_fwd(const loom_pool_shape *s, const loom_slot *x, float *y, size_t ystride, int n, int B) {
    int groups = (x->c + B - 1) / B;
    for (int i = 0; i < n; i++)
        for (int gi = 0; gi < groups; gi++) {
            const float *xg = x->act + (size_t)i * x->stride + (size_t)gi * s->h * s->w * B;
            float *yg = y + (size_t)i * ystride + (size_t)gi * s->oh * s->ow * B;
            if (mp2_tiles(s, B)) {
                if (B == 8) mp2_fwd_group(xg, yg, s->w, s->oh, s->ow, 8);
                else if (B == 16) mp2_fwd_group(xg, yg, s->w, s->oh, s->ow, 16);
                else mp2_fwd_group(xg, yg, s->w, s->oh, s->ow, B);
                continue;
            }
            for (int oy = 0; oy < s->oh; oy++)
                for (int ox = 0; ox < s->ow; ox++) {
                    int y0, y1, x0, x1;
                    pool_window(s, oy, ox, &y0, &y1, &x0, &x1);
                    float *out = yg + ((size_t)oy * s->ow + ox) * B;
                    if (y0 >= y1 || x0 >= x1) {
                        for (int l = 0; l < B; l++) out[l] = 0.0f;
                        continue;
                    }
                    float best[LANES_MAX];
                    const float *first = xg + ((size_t)y0 * s->w + x0) * B;
                    for (int l = 0; l < B; l++) best[l] = first[l];
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++) {
                            const float *v = xg + ((size_t)iy * s->w + ix) * B;
                            for (int l = 0; l < B; l++) best[l] = v[l] > best[l] ? v[l] : best[l];
                        }
                    for (int l = 0; l < B; l++) out[l] = best[l];
                }
        }
}

static void maxpool_blocked_bwd(const loom_pool_shape *s, const loom_slot *x, const loom_slot *ys, float *dx, int n,
                                int B, int acc) {
    int groups = (x->c + B - 1) / B;
    /* windows that tile the input (stride = kernel, no padding) touch each
     * input once: they write their positions outright; others add into zeros */
    int tiles = s->sh == s->kh && s->sw == s->kw && s->ph == 0 && s->pw == 0 && !acc;
    int write = tiles;
    if (!acc && !tiles) memset(dx, 0, (size_t)n * x->stride * sizeof(float));
    for (int i = 0; i < n; i++)
        for (int gi = 0; gi < groups; gi++) {
            size_t goff = (size_t)gi * s->h * s->w * B, ooff = (size_t)gi * s->oh * s->ow * B;
            const float *xg = x->act + (size_t)i * x->stride + goff;
            float *dg = dx + (size_t)i * x->stride + goff;
            const float *yg = ys->act + (size_t)i * ys->stride + ooff, *gg = ys->grad + (size_t)i * ys->stride + ooff;
            if (tiles && mp2_tiles(s, B)) {
                if (B == 8) mp2_bwd_group(xg, dg, yg, gg, s->h, s->w, s->oh, s->ow, 8);
                else if (B == 16) mp2_bwd_group(xg, dg, yg, gg, s->h, s->w, s->oh, s->ow, 16);
                else mp2_bwd_group(xg, dg, yg, gg, s->h, s->w, s->oh, s->ow, B);
                continue;
            }
            if (tiles) {
                /* rows and columns past the last window get no gradient */
                for (int iy = 0; iy < s->h; iy++)
                    for (int ix = iy < s->oh * s->kh ? s->ow * s->kw : 0; ix < s->w; ix++)
                        memset(dg + ((size_t)iy * s->w + ix) * B, 0, (size_t)B * sizeof(float));
            }
            for (int oy = 0; oy < s->oh; oy++)
                for (int ox = 0; ox < s->ow; ox++) {
                    int y0, y1, x0, x1;
                    pool_window(s, oy, ox, &y0, &y1, &x0, &x1);
                    if (y0 >= y1 || x0 >= x1) continue;
                    const float *best = yg + ((size_t)oy * s->ow + ox) * B, *g = gg + ((size_t)oy * s->ow + ox) * B;
                    int done[LANES_MAX]; /* lane's maximum found (the first of equals takes it) */
                    for (int l = 0; l < B; l++) done[l] = 0;
                    for (int iy = y0; iy < y1; iy++)
                        for (int ix = x0; ix < x1; ix++) {
                            size_t at = ((size_t)iy * s->w + ix) * B;
                            const float *xv = xg + at;
                            float *d = dg + at;
                            if (write)
                                for (int l = 0; l < B; l++) {
                                    int hit = !done[l] & (xv[l] == best[l]);
                                    d[l] = hit ? g[l] : 0.0f;
                                    done[l] |= hit;
                                }
                            else
                                for (int l = 0; l < B; l++) {
                                    int hit = !done[l] & (xv[l] == best[l]);
                                    d[l] += hit ? g[l] : 0.0f;
                                    done[l] |= hit;
                                }
                        }
                    /* a NaN maximum matches nothing: the portable kernel routes it to the first position */
                    float *d0 = dg + ((size_t)y0 * s->w + x0) * B;
                    for (int l = 0; l < B; l++) d0[l] += done[l] ? 0.0f : g[l];
                }
        }
}

/* An addition with the ReLU after it fused in: y = max(a + b, 0) (NaN to 0,
 * as loom_k_relu_fwd); backward passes dy where y > 0 (where a + b > 0) to
 * both inputs, written or added (acc), in one pass. a and b may be one slot. */
static void add_relu_fwd(const float *restrict a, const float *restrict b, float *restrict y, size_t len) {
    for (size_t q = 0; q < len; q++) {
        float v = a[q] + b[q];
        y[q] = v > 0.0f ? v : 0.0f;
    }
}

/* The gradient through a ReLU after an addition, to one or both of its
 * inputs, each set or added to. One loop per case, with restrict pointers,
 * so that each vectorises (dy is loaded unconditionally: a select
 * of a conditional load ran scalar, 7% of a ResNet-14 step). */
static void relu_grad_put(const float *restrict y, const float *restrict dy, float *restrict d, int acc, size_t len) {
    if (acc)
        for (size_t q = 0; q < len; q++) {
            float g = dy[q];
            d[q] += y[q] > 0.0f ? g : 0.0f;
        }
    else
        for (size_t q = 0; q < len; q++) {
            float g = dy[q];
            d[q] = y[q] > 0.0f ? g : 0.0f;
        }
}

static void relu_grad_put2(const float *restrict y, const float *restrict dy, float *restrict da, float *restrict db,
                           size_t len) {
    for (size_t q = 0; q < len; q++) {
        float g = dy[q];
        g = y[q] > 0.0f ? g : 0.0f;
        da[q] = g;
        db[q] = g;
    }
}

static void add_relu_bwd(const float *y, const float *dy, float *da, int acc_a, float *db, int acc_b, size_t len) {
    if (da == db && da) { /* add(x, x): the second adds */
        float *restrict d = da;
        for (size_t q = 0; q < len; q++) {
            float g = 2.0f * dy[q], old = d[q], base = acc_a ? old : 0.0f;
            d[q] = base + (y[q] > 0.0f ? g : 0.0f);
        }
        return;
    }
    if (da && db && !acc_a && !acc_b) {
        relu_grad_put2(y, dy, da, db, len);
        return;
    }
    if (da) relu_grad_put(y, dy, da, acc_a, len);
    if (db) relu_grad_put(y, dy, db, acc_b, len);
}

static void put(float *restrict dst, const float *restrict src, size_t len, int acc) {
    if (acc)
        for (size_t i = 0; i < len; i++) dst[i] += src[i];
    else
        memcpy(dst, src, len * sizeof *dst);
}

/* ---- forward --------------------------------------------------------------------------- */

static void portable_forward(loom_exec *e, int i, int n, int training, uint64_t dropout_key,
                             uint64_t sample_base) {
    loom_graph *g = e->g;
    const loom_layer *l = &g->nodes[i];
    const loom_step *st = &e->step[i];
    const loom_slot *xs = &e->slot[st->in[0]];
    const float *x = xs->act;
    float *y = e->slot[st->out].act;
    size_t len = (size_t)n * e->slot[st->out].stride;
    const float *W = g->params + l->param_off, *b = W + l->weight_count;
    switch (l->op) {
    case LOOM_OP_DENSE: loom_k_dense_fwd(x, W, l->bias ? b : NULL, y, n, l->a.dense.in, l->a.dense.out); break;
    case LOOM_OP_CONV2D: loom_k_conv2d_fwd(&l->a.conv, x, W, l->bias ? b : NULL, y, n, e->scratch); break;
    case LOOM_OP_MAXPOOL:
        if (xs->lanes) maxpool_blocked_fwd(&l->a.pool, xs, y, e->slot[st->out].stride, n, xs->lanes);
        else loom_k_maxpool_fwd(&l->a.pool, x, y, e->argmax[i], n);
        break;
    case LOOM_OP_AVGPOOL: loom_k_avgpool_fwd(&l->a.pool, x, y, n, l->count_include_pad); break;
    case LOOM_OP_GAVGPOOL:
        if (xs->lanes) gap_blocked_fwd(xs, y, n, xs->lanes);
        else loom_k_gavgpool_fwd(x, y, n, xs->c, xs->h * xs->w);
        break;
    case LOOM_OP_RELU: loom_k_relu_fwd(x, y, len); break;
    case LOOM_OP_LEAKY_RELU: loom_k_leaky_relu_fwd(x, y, len, l->a.alpha); break;
    case LOOM_OP_SIGMOID: loom_k_sigmoid_fwd(x, y, len); break;
    case LOOM_OP_TANH: loom_k_tanh_fwd(x, y, len); break;
    case LOOM_OP_SOFTMAX: loom_k_softmax_fwd(x, y, n, (int)l->size); break;
    case LOOM_OP_LOG_SOFTMAX: loom_k_log_softmax_fwd(x, y, n, (int)l->size); break;
    case LOOM_OP_CLIP: loom_k_clip_fwd(x, y, len, l->a.clip.lo, l->a.clip.hi); break;
    case LOOM_OP_SCALE: loom_k_scale_fwd(x, W, b, y, n, l->size); break;
    case LOOM_OP_DROPOUT:
        if (training && l->a.p > 0) {
            uint64_t key = loom_rng_key(dropout_key, LOOM_RNG_DROPOUT, (uint64_t)i, 0);
            dropout_fwd(xs, y, e->mask[i], n, l->a.p, key, sample_base, xs->lanes);
        } else {
            memcpy(y, x, len * sizeof(float));
        }
        break;
    case LOOM_OP_BATCHNORM: {
        int c = l->c, hw = l->a.bn.hw;
        float eps = l->a.bn.eps;
        if (training) {
            float *sm = e->save + l->buf_off, *si = sm + c, *sv = e->stats + l->buf_off;
            loom_k_batchnorm_fwd_train(x, y, n, c, hw, W, b, eps, sm, si, sv + c);
            memcpy(sv, sm, (size_t)c * sizeof(float));
        } else {
            const float *rm = g->buffers + l->buf_off;
            loom_k_batchnorm_fwd_infer(x, y, n, c, hw, W, b, eps, rm, rm + c);
        }
        break;
    }
    case LOOM_OP_ADD:
        if (st->fused_relu) add_relu_fwd(x, e->slot[st->in[1]].act, y, len);
        else loom_k_add_fwd(x, e->slot[st->in[1]].act, y, len);
        break;
    case LOOM_OP_ARITH: {
        const loom_layer *la = &g->nodes[l->in[0]], *lb = &g->nodes[l->in[1]];
        int ad[3] = {la->c, la->h, la->w}, bd[3] = {lb->c, lb->h, lb->w}, yd[3] = {l->c, l->h, l->w};
        loom_k_arith_fwd(l->a.arith, x, ad, e->slot[st->in[1]].act, bd, y, yd, n);
        break;
    }
    case LOOM_OP_PAD:
        loom_k_pad_fwd(x, y, n, xs->c, xs->h, xs->w, l->a.pad.top, l->a.pad.left, l->a.pad.bottom, l->a.pad.right,
                       l->a.pad.value);
        break;
    case LOOM_OP_RESHAPE: memcpy(y, x, len * sizeof(float)); break;
    case LOOM_OP_CONCAT: {
        const float *xv[LOOM_MAX_INPUTS];
        int cs[LOOM_MAX_INPUTS];
        int blocked = e->slot[st->out].lay == LAY_BLOCKED;
        for (int k = 0; k < l->nin; k++) {
            xv[k] = e->slot[st->in[k]].act;
            cs[k] = blocked ? e->slot[st->in[k]].c / e->block : e->slot[st->in[k]].c;
        }
        loom_k_concat_fwd(xv, cs, l->nin, y, n, blocked ? l->h * l->w * e->block : l->h * l->w);
        break;
    }
    default: break;
    }
}

int loom_exec_forward(loom_exec *e, int n, int training, uint64_t dropout_key, uint64_t sample_base) {
    if (!e) return loom_fail(LOOM_EINVAL, "loom_exec_forward: no exec");
    if (n <= 0 || n > e->max_batch)
        return loom_fail(LOOM_EINVAL, "loom_exec_forward: %d samples, the exec was planned for 1..%d", n, e->max_batch);
    loom_graph *g = e->g;
    e->trained = training;
    e->fwd_n = n;
    for (int i = 0; i < g->n; i++) {
        const loom_step *st = &e->step[i];
        double t0 = e->t_fwd ? loom_seconds() : 0;
        if (i > 0 && !st->alias && !(st->skip_inf && !training)) {
            if (st->fuse_conv && !training) {
                if (loom_dnn_fused_forward(e, i, n)) return LOOM_ERR;
            } else if (st->dnn) {
                if (loom_dnn_forward(e, i, n, training)) return LOOM_ERR;
            } else {
                portable_forward(e, i, n, training, dropout_key, sample_base);
            }
        }
        for (int c = 0; c < e->nconv; c++)
            if (e->conv[c].after == i && loom_dnn_convert(e, &e->conv[c], n, 0)) return LOOM_ERR;
        if (e->t_fwd) e->t_fwd[i] += loom_seconds() - t0;
    }
    return LOOM_OK;
}

void loom_exec_zero_act_grad(loom_exec *e) {
    const loom_slot *o = &e->slot[e->output];
    memset(o->grad, 0, (size_t)e->max_batch * o->stride * sizeof(float));
}

void loom_exec_zero_param_grad(loom_exec *e) {
    if (!e->defer) {
        memset(e->pgrad, 0, e->g->n_params * sizeof(float));
        return;
    }
    /* all but the deferred weights, which backward does not touch */
    size_t at = 0;
    for (int i = 1; i < e->g->n; i++) {
        if (!loom_exec_defers(e, i)) continue;
        const loom_layer *l = &e->g->nodes[i];
        memset(e->pgrad + at, 0, (l->param_off - at) * sizeof(float));
        at = l->param_off + l->weight_count;
    }
    memset(e->pgrad + at, 0, (e->g->n_params - at) * sizeof(float));
}

void loom_exec_hold_weights(loom_exec *e, int held) {
    if (!e) return;
    if (held && !e->held && !++e->hold_gen) e->hold_gen = 1;
    e->held = held != 0;
}

void loom_exec_forget(loom_exec *e) {
    if (!e) return;
    e->fwd_n = 0;
    e->trained = 0;
}

int loom_exec_defers(const loom_exec *e, loom_node i) {
    if (!e || !e->defer || i <= 0 || i >= e->g->n) return 0;
    const loom_layer *l = &e->g->nodes[i];
    return l->op == LOOM_OP_DENSE && !l->frozen;
}

void loom_exec_dense_weight_grad_to(loom_exec *const *ex, int nrep, loom_node i, int r0, int r1, int c0, int c1,
                                    float *dst, int ld) {
    const loom_layer *l = &ex[0]->g->nodes[i];
    int in = l->a.dense.in, out = l->a.dense.out, started = 0;
    for (int r = 0; r < nrep; r++) {
        const loom_exec *e = ex[r];
        const loom_step *st = &e->step[i];
        if (!e->trained || e->fwd_n <= 0 || !e->slot[st->out].grad) continue;
        const float *x = e->slot[st->in[0]].act, *dy = e->slot[st->out].grad;
        loom_k_gemm(1, 0, r1 - r0, c1 - c0, e->fwd_n, 1.0f, dy + r0, out, x + c0, in, started ? 1.0f : 0.0f, dst, ld);
        started = 1;
    }
    if (!started)
        for (int o = r0; o < r1; o++) memset(dst + (size_t)(o - r0) * ld, 0, (size_t)(c1 - c0) * sizeof(float));
}

void loom_exec_dense_weight_grad(loom_exec *const *ex, int nrep, loom_node i, int r0, int r1, int c0, int c1,
                                 float *dW) {
    int in = ex[0]->g->nodes[i].a.dense.in;
    loom_exec_dense_weight_grad_to(ex, nrep, i, r0, r1, c0, c1, dW + (size_t)r0 * in + c0, in);
}

/* ---- backward -------------------------------------------------------------------------- */

static void portable_backward(loom_exec *e, int i, int n) {
    loom_graph *g = e->g;
    const loom_layer *l = &g->nodes[i];
    const loom_step *st = &e->step[i];
    const loom_slot *xs = &e->slot[st->in[0]], *ys = &e->slot[st->out];
    const float *x = xs->act, *y = ys->act, *dy = ys->grad;
    float *dx = st->grad_in[0] ? xs->grad : NULL;
    size_t len = (size_t)n * ys->stride;
    const float *W = g->params + l->param_off;
    float *dW = l->frozen ? NULL : e->pgrad + l->param_off;
    float *db = dW && l->bias ? dW + l->weight_count : NULL;
    switch (l->op) {
    case LOOM_OP_DENSE:
        loom_k_dense_bwd(x, W, dy, dx, loom_exec_defers(e, i) ? NULL : dW, db, n, l->a.dense.in, l->a.dense.out);
        break;
    case LOOM_OP_CONV2D: loom_k_conv2d_bwd(&l->a.conv, x, W, dy, dx, dW, db, n, e->scratch); break;
    case LOOM_OP_MAXPOOL:
        if (!dx) break;
        if (xs->lanes) maxpool_blocked_bwd(&l->a.pool, xs, ys, dx, n, xs->lanes, st->acc[0]);
        else loom_k_maxpool_bwd(&l->a.pool, dy, e->argmax[i], dx, n);
        break;
    case LOOM_OP_AVGPOOL: if (dx) loom_k_avgpool_bwd(&l->a.pool, dy, dx, n, l->count_include_pad); break;
    case LOOM_OP_GAVGPOOL:
        if (!dx) break;
        if (xs->lanes) gap_blocked_bwd(dy, xs, dx, n, xs->lanes, st->acc[0]);
        else loom_k_gavgpool_bwd(dy, dx, n, xs->c, xs->h * xs->w);
        break;
    case LOOM_OP_RELU: if (dx) loom_k_relu_bwd(x, dy, dx, len); break;
    case LOOM_OP_LEAKY_RELU: if (dx) loom_k_leaky_relu_bwd(x, dy, dx, len, l->a.alpha); break;
    case LOOM_OP_SIGMOID: if (dx) loom_k_sigmoid_bwd(y, dy, dx, len); break;
    case LOOM_OP_TANH: if (dx) loom_k_tanh_bwd(y, dy, dx, len); break;
    case LOOM_OP_SOFTMAX: if (dx) loom_k_softmax_bwd(y, dy, dx, n, (int)l->size); break;
    case LOOM_OP_LOG_SOFTMAX: if (dx) loom_k_log_softmax_bwd(y, dy, dx, n, (int)l->size); break;
    case LOOM_OP_CLIP: if (dx) loom_k_clip_bwd(x, dy, dx, len, l->a.clip.lo, l->a.clip.hi); break;
    case LOOM_OP_SCALE: loom_k_scale_bwd(x, W, dy, dx, dW, db, n, l->size); break;
    case LOOM_OP_DROPOUT:
        if (!dx) break;
        if (e->trained && l->a.p > 0) {
            dropout_bwd(dy, e->mask[i], dx, len, l->a.p, st->acc[0]);
        } else {
            put(dx, dy, len, st->acc[0]);
        }
        break;
    case LOOM_OP_BATCHNORM: {
        const float *sm = e->save + l->buf_off;
        loom_k_batchnorm_bwd(x, dy, dx, dW, dW ? dW + l->c : NULL, n, l->c, l->a.bn.hw, W, sm, sm + l->c);
        break;
    }
    case LOOM_OP_ADD:
        if (st->fused_relu) {
            add_relu_bwd(y, dy, st->grad_in[0] ? xs->grad : NULL, st->acc[0],
                         st->grad_in[1] ? e->slot[st->in[1]].grad : NULL, st->acc[1], len);
            break;
        }
        for (int k = 0; k < 2; k++)
            if (st->grad_in[k]) put(e->slot[st->in[k]].grad, dy, len, st->acc[k]);
        break;
    case LOOM_OP_ARITH: {
        const loom_layer *la = &g->nodes[l->in[0]], *lb = &g->nodes[l->in[1]];
        int ad[3] = {la->c, la->h, la->w}, bd[3] = {lb->c, lb->h, lb->w}, yd[3] = {l->c, l->h, l->w};
        const loom_slot *bs = &e->slot[st->in[1]];
        loom_k_arith_bwd(l->a.arith, x, ad, bs->act, bd, y, dy, yd, n, dx, st->acc[0],
                         st->grad_in[1] ? bs->grad : NULL, st->acc[1]);
        break;
    }
    case LOOM_OP_PAD:
        if (dx)
            loom_k_pad_bwd(dy, dx, st->acc[0], n, xs->c, xs->h, xs->w, l->a.pad.top, l->a.pad.left, l->a.pad.bottom,
                           l->a.pad.right);
        break;
    case LOOM_OP_RESHAPE: if (dx) put(dx, dy, len, st->acc[0]); break;
    case LOOM_OP_CONCAT: {
        int blocked = ys->lay == LAY_BLOCKED;
        size_t hw = (size_t)l->h * l->w * (blocked ? (size_t)e->block : 1), off = 0;
        for (int k = 0; k < l->nin; k++) {
            const loom_slot *s = &e->slot[st->in[k]];
            size_t run = (size_t)(blocked ? s->c / e->block : s->c) * hw;
            if (st->grad_in[k])
                for (int b = 0; b < n; b++) put(s->grad + (size_t)b * run, dy + (size_t)b * ys->stride + off, run, st->acc[k]);
            off += run;
        }
        break;
    }
    default: break;
    }
}

int loom_exec_backward(loom_exec *e, int n) {
    if (!e) return loom_fail(LOOM_EINVAL, "loom_exec_backward: no exec");
    if (!e->trained || n != e->fwd_n)
        return loom_fail(LOOM_EINVAL, "loom_exec_backward: %d samples, after a %s forward of %d", n,
                         e->trained ? "training" : "inference", e->fwd_n);
    loom_graph *g = e->g;
    for (int i = g->n - 1; i >= 1; i--) {
        double t0 = e->t_bwd ? loom_seconds() : 0;
        int did = 0; /* timed only when something ran: a frozen body shows no backward time */
        for (int c = e->nconv - 1; c >= 0; c--) {
            const loom_convert *cv = &e->conv[c];
            if (cv->after != i || !e->slot[cv->to].grad) continue;
            if (loom_dnn_convert(e, cv, n, 1)) return LOOM_ERR;
            did = 1;
        }
        const loom_step *st = &e->step[i];
        const loom_layer *l = &g->nodes[i];
        if (!st->alias && e->slot[st->out].grad && e->slot[st->out].last == 2 * i + 1) {
            /* the first writer of a gradient that can only add: zero it first */
            for (int k = 0; k < l->nin; k++) {
                loom_slot *s = &e->slot[st->in[k]];
                if (st->grad_in[k] && !st->acc[k] && s->zero && s->first == 2 * i + 1)
                    memset(s->grad, 0, (size_t)n * s->stride * sizeof(float));
            }
            if (st->dnn) {
                if (loom_dnn_backward(e, i, n)) return LOOM_ERR;
            } else {
                portable_backward(e, i, n);
            }
            did = 1;
        }
        if (e->t_bwd && did) e->t_bwd[i] += loom_seconds() - t0;
        if (e->on_backward) e->on_backward(e->on_backward_ctx, i);
    }
    if (e->on_backward) e->on_backward(e->on_backward_ctx, 0);
    return LOOM_OK;
}

void loom_exec_set_backward_hook(loom_exec *e, void (*fn)(void *ctx, int node), void *ctx) {
    if (!e) return;
    e->on_backward = fn;
    e->on_backward_ctx = ctx;
}

void loom_exec_update_running(loom_graph *g, loom_node layer, const float *const *stats, const size_t *counts,
                              int nrep) {
    const loom_layer *l = &g->nodes[layer];
    if (l->op != LOOM_OP_BATCHNORM || nrep <= 0) return;
    int c = l->c;
    size_t total = 0, per_value[LOOM_EXEC_MAX_REPLICAS];
    for (int r = 0; r < nrep; r++) {
        per_value[r] = counts[r] * (size_t)l->a.bn.hw;
        total += per_value[r];
    }
    float *rm = g->buffers + l->buf_off, *rv = rm + c;
    for (int k0 = 0; k0 < c; k0 += 64) {
        int w = c - k0 < 64 ? c - k0 : 64;
        const float *means[LOOM_EXEC_MAX_REPLICAS], *vars[LOOM_EXEC_MAX_REPLICAS];
        for (int r = 0; r < nrep; r++) {
            means[r] = stats[r] + l->buf_off + k0;
            vars[r] = stats[r] + l->buf_off + c + k0;
        }
        float bm[64], bv[64];
        loom_k_batchnorm_combine(means, vars, per_value, nrep, 0, w, bm, bv);
        loom_k_batchnorm_update_running(rm + k0, rv + k0, w, bm, bv, l->a.bn.momentum, total);
    }
}

/* Whether the n samples in slot s hold only finite values (the real channels of a blocked layout). */
static int slot_finite(const loom_slot *s, int n) {
    size_t hw = (size_t)s->h * s->w;
    for (int b = 0; b < n; b++) {
        const float *x = s->act + (size_t)b * s->stride;
        if (s->lay != LAY_BLOCKED) {
            for (size_t i = 0; i < (size_t)s->c * hw; i++)
                if (!isfinite(x[i])) return 0;
            continue;
        }
        int B = s->lanes, groups = (s->c + B - 1) / B;
        for (int g = 0; g < groups; g++)
            for (size_t p = 0; p < hw; p++)
                for (int l = 0; l < B && g * B + l < s->c; l++)
                    if (!isfinite(x[((size_t)g * hw + p) * B + l])) return 0;
    }
    return 1;
}

loom_node loom_exec_first_nonfinite(const loom_exec *e, int n) {
    if (!e || n <= 0 || n > e->max_batch) return -1;
    for (int i = 0; i < e->g->n; i++)
        if (!slot_finite(&e->slot[e->step[i].out], n)) return i;
    return -1;
}

/* The prefetching loader. Producers claim batch numbers in order and fill
 * slot (number % K) once the consumer has released what it held; the
 * consumer takes batch numbers in order. One mutex guards the small amount of
 * shared bookkeeping; the heavy work (decode, augment, convert) runs outside it. */
#include "loom/loader.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "loom/augment.h"
#include "loom/error.h"
#include "kernels/rng.h"
#include "kernels/clock.h"

enum { FREE, FILLING, READY, IN_USE };

typedef struct {
    loom_batch b;
    int state;
    int failed;
    loom_error_kind_t kind;
    char err[1024];
} slot;

typedef struct {
    struct loom_loader *l;
    int id;
    uint8_t *src;       /* one decoded sample */
    uint8_t *scratch;   /* augmentation scratch */
} producer;

struct loom_loader {
    loom_dataset *ds;
    loom_loader_opts o;
    int P, K;
    size_t src_bytes, out_floats, scratch_bytes;
    slot *slots;
    producer *prod;
    pthread_t *th;
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv_prod, cv_cons;
    uint32_t *perm;
    long nbatches;
    int epoch;
    long next_claim, next_take;
    int filling;
    int stop;
    uint8_t *cache;
    int32_t *cache_label;
    atomic_uchar *cached;
    double wait;
    atomic_long skipped;
};

/* Sample idx as uint8 HWC: from the cache, or decoded (and cached). */
static int load_sample(loom_loader *l, producer *p, uint32_t idx, const uint8_t **px, int32_t *label) {
    if (l->cache) {
        uint8_t *dst = l->cache + (size_t)idx * l->src_bytes;
        if (!atomic_load_explicit(&l->cached[idx], memory_order_acquire)) {
            if (loom_dataset_get(l->ds, idx, dst, &l->cache_label[idx])) return LOOM_ERR;
            atomic_store_explicit(&l->cached[idx], 1, memory_order_release);
        }
        *px = dst;
        *label = l->cache_label[idx];
        return LOOM_OK;
    }
    if (loom_dataset_get(l->ds, idx, p->src, label)) return LOOM_ERR;
    *px = p->src;
    return LOOM_OK;
}

static void fill(loom_loader *l, producer *p, slot *s, long k, int epoch) {
    const loom_dataset *ds = l->ds;
    long lo = k * l->o.batch;
    long n = (long)ds->count - lo < l->o.batch ? (long)ds->count - lo : l->o.batch;
    int j = 0, parts = l->o.parts > 1 ? l->o.parts : 1;
    long first = (long)l->o.part * n / parts, last = ((long)l->o.part + 1) * n / parts; /* this part of the batch */
    s->failed = 0;
    for (long i = first; i < last; i++) {
        uint32_t idx = l->perm[lo + i];
        const uint8_t *px = NULL;
        int32_t label;
        int bad = ds->get_f32 ? loom_dataset_get_f32((loom_dataset *)ds, idx, s->b.x + (size_t)j * l->out_floats, &label)
                              : load_sample(l, p, idx, &px, &label);
        if (bad) {
            if (l->o.skip_bad && parts == 1) {
                loom_warn("skipping unreadable sample: %s", loom_error());
                if (l->o.bad) l->o.bad[idx] = 1;
                atomic_fetch_add(&l->skipped, 1);
                continue;
            }
            snprintf(s->err, sizeof s->err, "%s", loom_error());
            s->kind = loom_error_kind();
            s->failed = 1;
            break;
        }
        uint64_t key = loom_rng_key(l->o.seed, LOOM_RNG_AUGMENT, (uint64_t)epoch, idx);
        if (!ds->get_f32 && loom_augment_apply(l->o.augment, px, ds->w, ds->h, ds->c, s->b.x + (size_t)j * l->out_floats,
                               l->o.out_w, l->o.out_h, key, p->scratch)) {
            snprintf(s->err, sizeof s->err, "%s", loom_error());
            s->kind = loom_error_kind();
            s->failed = 1;
            break;
        }
        s->b.y[j] = label;
        s->b.index[j] = idx;
        j++;
    }
    s->b.n = j;
    s->b.global_n = parts > 1 ? (int)n : j;
    s->b.number = k;
}

static void *producer_main(void *arg) {
    producer *p = arg;
    loom_loader *l = p->l;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && (l->next_claim >= l->nbatches || l->slots[l->next_claim % l->K].state != FREE))
            pthread_cond_wait(&l->cv_prod, &l->mu);
        if (l->stop) break;
        long k = l->next_claim++;
        slot *s = &l->slots[k % l->K];
        s->state = FILLING;
        l->filling++;
        int epoch = l->epoch;
        pthread_mutex_unlock(&l->mu);
        fill(l, p, s, k, epoch);
        pthread_mutex_lock(&l->mu);
        s->state = READY;
        l->filling--;
        pthread_cond_broadcast(&l->cv_cons);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

loom_loader *loom_loader_new(loom_dataset *ds, const loom_loader_opts *o) {
    if (!ds || !o) {
        loom_fail(LOOM_EINVAL, "loader: no %s", ds ? "options" : "data set");
        return NULL;
    }
    if (o->parts < 0 || (o->parts > 1 && (o->part < 0 || o->part >= o->parts)) || (o->parts <= 1 && o->part)) {
        loom_fail(LOOM_EINVAL, "loader: part %d of %d", o->part, o->parts);
        return NULL;
    }
    if (o->batch <= 0) {
        loom_fail(LOOM_EINVAL, "loader: batch size %d must be positive", o->batch);
        return NULL;
    }
    if (ds->count == 0) {
        loom_fail(LOOM_EINVAL, "%s: the data set is empty", ds->path);
        return NULL;
    }
    loom_loader *l = calloc(1, sizeof *l);
    if (!l) goto oom;
    l->ds = ds;
    l->o = *o;
    if (!l->o.out_c) l->o.out_c = ds->c;
    if (!l->o.out_h) l->o.out_h = ds->h;
    if (!l->o.out_w) l->o.out_w = ds->w;
    if (l->o.out_c != ds->c) {
        loom_fail(LOOM_EINVAL, "%s: loader wants %d channels, the data set gives %d", ds->path, l->o.out_c, ds->c);
        free(l);
        return NULL;
    }
    if (ds->get_f32 && (o->augment || l->o.out_h != ds->h || l->o.out_w != ds->w)) {
        loom_fail(LOOM_EINVAL, "%s: a set of float features is used as it is: no augmentation, resizing or scaling",
                  ds->path);
        free(l);
        return NULL;
    }
    l->P = o->producers > 0 ? o->producers : 1;
    l->K = o->slots > 0 ? o->slots : 2 * l->P + 1;
    l->src_bytes = (size_t)ds->c * ds->h * ds->w;
    l->out_floats = (size_t)l->o.out_c * l->o.out_h * l->o.out_w;
    l->scratch_bytes = loom_augment_scratch(o->augment, ds->w, ds->h, ds->c, l->o.out_w, l->o.out_h);
    l->nbatches = 0; /* no epoch yet: producers wait */
    l->next_claim = l->next_take = 0;
    l->epoch = -1;
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv_prod, NULL);
    pthread_cond_init(&l->cv_cons, NULL);
    l->slots = calloc((size_t)l->K, sizeof *l->slots);
    l->perm = malloc(ds->count * sizeof(uint32_t));
    l->prod = calloc((size_t)l->P, sizeof *l->prod);
    l->th = calloc((size_t)l->P, sizeof *l->th);
    if (!l->slots || !l->perm || !l->prod || !l->th) goto oom;
    for (int k = 0; k < l->K; k++) {
        loom_batch *b = &l->slots[k].b;
        b->x = malloc((size_t)o->batch * l->out_floats * sizeof(float));
        b->y = malloc((size_t)o->batch * sizeof(int32_t));
        b->index = malloc((size_t)o->batch * sizeof(uint32_t));
        if (!b->x || !b->y || !b->index) goto oom;
    }
    size_t budget = o->cache_budget ? o->cache_budget : (size_t)4 << 30;
    int want_cache = !ds->get_f32 && (o->cache > 0 || (o->cache == 0 && ds->count * l->src_bytes <= budget));
    if (want_cache) {
        l->cache = malloc(ds->count * l->src_bytes);
        l->cache_label = malloc(ds->count * sizeof(int32_t));
        l->cached = calloc(ds->count, sizeof(atomic_uchar));
        if (!l->cache || !l->cache_label || !l->cached) {
            if (o->cache > 0) goto oom;
            free(l->cache);
            free(l->cache_label);
            free((void *)l->cached);
            l->cache = NULL;
            l->cache_label = NULL;
            l->cached = NULL;
        }
    }
    for (int i = 0; i < l->P; i++) {
        producer *p = &l->prod[i];
        p->l = l;
        p->id = i;
        p->src = malloc(l->src_bytes);
        p->scratch = malloc(l->scratch_bytes + 1);
        if (!p->src || !p->scratch) goto oom;
    }
    for (int i = 0; i < l->P; i++) {
        if (pthread_create(&l->th[i], NULL, producer_main, &l->prod[i]) != 0) {
            loom_loader_free(l);
            loom_fail(LOOM_EIO, "loader: cannot start producer thread %d", i);
            return NULL;
        }
        l->nthreads++;
    }
    return l;
oom:
    loom_fail(LOOM_ENOMEM, "%s: loader: out of memory", ds->path);
    loom_loader_free(l);
    return NULL;
}

void loom_loader_free(loom_loader *l) {
    if (!l) return;
    if (l->nthreads) {
        pthread_mutex_lock(&l->mu);
        l->stop = 1;
        pthread_cond_broadcast(&l->cv_prod);
        pthread_mutex_unlock(&l->mu);
        for (int i = 0; i < l->nthreads; i++) pthread_join(l->th[i], NULL);
    }
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv_prod);
    pthread_cond_destroy(&l->cv_cons);
    for (int k = 0; l->slots && k < l->K; k++) {
        free(l->slots[k].b.x);
        free(l->slots[k].b.y);
        free(l->slots[k].b.index);
    }
    for (int i = 0; l->prod && i < l->P; i++) {
        free(l->prod[i].src);
        free(l->prod[i].scratch);
    }
    free(l->slots);
    free(l->prod);
    free(l->th);
    free(l->perm);
    free(l->cache);
    free(l->cache_label);
    free((void *)l->cached);
    free(l);
}

static long epoch_batches(const loom_loader *l) {
    long nb = ((long)l->ds->count + l->o.batch - 1) / l->o.batch;
    if (l->o.drop_last && l->ds->count % (size_t)l->o.batch && nb > 1) nb--;
    return nb;
}

long loom_loader_batches(const loom_loader *l) { return epoch_batches(l); }

int loom_loader_start(loom_loader *l, int epoch) { return loom_loader_start_at(l, epoch, 0); }

int loom_loader_start_at(loom_loader *l, int epoch, long first_batch) {
    if (first_batch < 0 || first_batch > epoch_batches(l))
        return loom_fail(LOOM_EINVAL, "%s: batch %ld of an epoch of %ld batches", l->ds->path, first_batch, epoch_batches(l));
    pthread_mutex_lock(&l->mu);
    /* stop claims, let in-flight fills finish, then reset the ring */
    l->nbatches = 0;
    while (l->filling > 0) pthread_cond_wait(&l->cv_cons, &l->mu);
    for (int k = 0; k < l->K; k++) l->slots[k].state = FREE;
    size_t n = l->ds->count;
    if (l->o.shuffle)
        loom_rng_permutation(loom_rng_key(l->o.seed, LOOM_RNG_SHUFFLE, (uint64_t)epoch, 0), l->perm, (uint32_t)n);
    else
        for (size_t i = 0; i < n; i++) l->perm[i] = (uint32_t)i;
    l->epoch = epoch;
    l->next_claim = l->next_take = first_batch;
    l->nbatches = epoch_batches(l);
    pthread_cond_broadcast(&l->cv_prod);
    pthread_mutex_unlock(&l->mu);
    return LOOM_OK;
}

int loom_loader_next(loom_loader *l, loom_batch **b) {
    *b = NULL;
    pthread_mutex_lock(&l->mu);
    if (l->next_take >= l->nbatches) {
        pthread_mutex_unlock(&l->mu);
        return 0;
    }
    slot *s = &l->slots[l->next_take % l->K];
    double t0 = loom_seconds();
    while (!(s->state == READY && s->b.number == l->next_take)) pthread_cond_wait(&l->cv_cons, &l->mu);
    l->wait += loom_seconds() - t0;
    if (s->failed) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", s->err);
        loom_error_kind_t k = s->kind;
        pthread_mutex_unlock(&l->mu);
        return loom_fail(k, "%s", msg); /* the producer's error, on the consumer's thread */
    }
    l->next_take++;
    s->state = IN_USE;
    *b = &s->b;
    pthread_mutex_unlock(&l->mu);
    return 1;
}

void loom_loader_release(loom_loader *l, loom_batch *b) {
    if (!b) return;
    pthread_mutex_lock(&l->mu);
    slot *s = (slot *)((char *)b - offsetof(slot, b));
    s->state = FREE;
    pthread_cond_broadcast(&l->cv_prod);
    pthread_mutex_unlock(&l->mu);
}

double loom_loader_wait_seconds(loom_loader *l) {
    pthread_mutex_lock(&l->mu);
    double w = l->wait;
    l->wait = 0;
    pthread_mutex_unlock(&l->mu);
    return w;
}

long loom_loader_skipped(const loom_loader *l) { return atomic_load(&((loom_loader *)l)->skipped); }
int loom_loader_cached(const loom_loader *l) { return l->cache != NULL; }

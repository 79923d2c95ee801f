/* loom — optimizers over flat arrays. The update of element i depends only on
 * element i of the parameters, gradient and state, so a step is applied slice
 * by slice (one slice per worker, or per MPI rank). Per-step scalars (bias
 * corrections, learning rate) are computed once in loom_optim_begin_step. The
 * update rules follow PyTorch's torch.optim (checked against it by tests). */
#ifndef LOOM_OPTIM_H
#define LOOM_OPTIM_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    LOOM_SGD, LOOM_ADAM, LOOM_ADAMW, LOOM_RMSPROP, LOOM_ADAGRAD, LOOM_NADAM
} loom_optim_kind;

typedef struct {
    loom_optim_kind kind;
    float momentum;       /* SGD, RMSprop */
    int nesterov;         /* SGD */
    float weight_decay;   /* L2 added to the gradient (AdamW: decoupled) */
    float l1;             /* L1: l1 * sign(p) added to the gradient */
    float beta1, beta2;   /* Adam family; 0 = defaults 0.9, 0.999 */
    float eps;            /* 0 = default of the optimizer */
    float alpha;          /* RMSprop smoothing; 0 = default 0.99 */
} loom_optim_cfg;

typedef struct loom_optim loom_optim;

/* Optimizer state for n parameters (zeroed). NULL on error. */
loom_optim *loom_optim_new(const loom_optim_cfg *cfg, size_t n);
void loom_optim_free(loom_optim *o);
/* Start step t+1 with learning rate lr: the rate has one home, the schedule
 * (loom_schedule_lr), which the caller asks every step. */
void loom_optim_begin_step(loom_optim *o, float lr);
/* Update params[lo, hi) from grad[lo, hi). Safe to call on disjoint slices concurrently. */
void loom_optim_apply(loom_optim *o, float *params, const float *grad, size_t lo, size_t hi);
/* The same for params[lo, hi) with its gradient in grad[0, hi - lo) (a block of it kept apart, in cache). */
void loom_optim_apply_from(loom_optim *o, float *params, const float *grad, size_t lo, size_t hi);
/* The optimizer's kind and the number of parameters it was made for. */
loom_optim_kind loom_optim_kind_of(const loom_optim *o);
size_t loom_optim_size(const loom_optim *o);
/* Steps begun so far. */
long loom_optim_steps(const loom_optim *o);
/* The state arrays (for checkpoints): count, and pointer k < count, each n floats. */
int loom_optim_state_count(const loom_optim *o);
float *loom_optim_state(loom_optim *o, int k);
/* Scalar state (step count and NAdam's mu product) for checkpoints. */
void loom_optim_get_scalars(const loom_optim *o, long *step, double *mu_product);
void loom_optim_set_scalars(loom_optim *o, long step, double mu_product);
const char *loom_optim_name(loom_optim_kind k);
/* Parse "sgd", "adam", ... ; -1 with the error set if unknown. */
int loom_optim_parse(const char *s);

#ifdef __cplusplus
}
#endif
#endif

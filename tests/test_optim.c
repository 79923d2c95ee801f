/* Optimizers against PyTorch: tests/data/optim_fixtures.txt holds torch.optim
 * parameter trajectories on a fixed quadratic (tools/gen_optim_fixtures.py);
 * loom replays the same steps, applying the update in two slices to show that
 * slicing does not change the result. PyTorch is not needed to run this. */
#include <stdlib.h>

#include "check.h"
#include "util.h"
#include "loom/loom.h"

#define MAXN 64

static int read_vec(FILE *f, const char *tag, float *v, int n) {
    char w[32];
    if (fscanf(f, "%31s", w) != 1 || strcmp(w, tag)) return -1;
    for (int i = 0; i < n; i++)
        if (fscanf(f, "%f", &v[i]) != 1) return -1;
    return 0;
}

int main(void) {
    const char *path = t_data_path("optim_fixtures.txt");
    FILE *f = fopen(path, "r");
    CHECK(f != NULL, "cannot open %s", path);
    if (!f) TEST_END();
    char line[512];
    if (!fgets(line, sizeof line, f)) return 1; /* comment */
    int n, steps;
    CHECK(fscanf(f, " n %d steps %d", &n, &steps) == 2 && n <= MAXN, "header");
    float p0[MAXN], a[MAXN], b[MAXN], want[MAXN], p[MAXN], g[MAXN];
    CHECK(!read_vec(f, "p0", p0, n) && !read_vec(f, "a", a, n) && !read_vec(f, "b", b, n), "vectors");
    int cases = 0;
    char name[32];
    float lr, mom, wd, b1, b2, eps, alpha;
    int nest;
    while (fscanf(f, " case %31s lr %f momentum %f nesterov %d weight_decay %f beta1 %f beta2 %f eps %f alpha %f",
                  name, &lr, &mom, &nest, &wd, &b1, &b2, &eps, &alpha) == 9) {
        loom_optim_cfg cfg = {.kind = loom_optim_parse(name), .momentum = mom, .nesterov = nest,
                              .weight_decay = wd, .beta1 = b1, .beta2 = b2, .eps = eps, .alpha = alpha};
        CHECK(cfg.kind >= 0, "known optimizer %s", name);
        loom_optim *o = loom_optim_new(&cfg, (size_t)n);
        memcpy(p, p0, sizeof p0);
        double worst = 0;
        for (int s = 0; s < steps; s++) {
            for (int i = 0; i < n; i++) g[i] = a[i] * p[i] + b[i];
            loom_optim_begin_step(o, lr);
            loom_optim_apply(o, p, g, 0, (size_t)n / 2);
            /* the second half from a gradient kept apart (the trainer's dense blocks) */
            float part[MAXN];
            memcpy(part, g + n / 2, (size_t)(n - n / 2) * sizeof *part);
            loom_optim_apply_from(o, p, part, (size_t)n / 2, (size_t)n);
            CHECK(!read_vec(f, "step", want, n), "fixture step %d of %s", s, name);
            for (int i = 0; i < n; i++) {
                double err = fabs(p[i] - want[i]) / fmax(fabs(want[i]), 1e-2);
                if (err > worst) worst = err;
            }
        }
        CHECK(worst < 2e-5, "%s (case %d) differs from torch.optim by relative %g", name, cases, worst);
        printf("optim %-8s case %2d: %d steps, worst relative difference to torch.optim %.2e\n", name, cases,
               steps, worst);
        loom_optim_free(o);
        cases++;
    }
    fclose(f);
    CHECK(cases == 12, "read %d cases", cases);

    /* L1 regularisation (not in torch.optim): SGD with l1 adds l1 * sign(p) to
     * the gradient; compare with the update written out in double. */
    loom_optim_cfg l1 = {.kind = LOOM_SGD, .l1 = 0.05f};
    loom_optim *o = loom_optim_new(&l1, (size_t)n);
    double ref[MAXN];
    for (int i = 0; i < n; i++) ref[i] = p[i] = p0[i];
    double worst = 0;
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < n; i++) g[i] = a[i] * p[i] + b[i];
        loom_optim_begin_step(o, 0.1f);
        loom_optim_apply(o, p, g, 0, (size_t)n);
        for (int i = 0; i < n; i++) {
            double gr = (double)a[i] * ref[i] + b[i] + 0.05 * ((ref[i] > 0) - (ref[i] < 0));
            ref[i] -= 0.1 * gr;
            worst = fmax(worst, fabs(ref[i] - p[i]));
        }
    }
    CHECK(worst < 1e-5, "L1 SGD differs from the closed form by %g", worst);
    loom_optim_free(o);
    TEST_END();
}

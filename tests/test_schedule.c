/* Learning-rate schedules against their closed forms (torch.optim.lr_scheduler
 * conventions), and bad specs rejected with a message. */
#include "check.h"
#include "loom/schedule.h"
#include "loom/error.h"

static float lr_of(const char *spec, int epochs, int epoch, double frac) {
    loom_schedule s;
    if (loom_schedule_parse(spec, 1.0f, epochs, &s)) return -1;
    return loom_schedule_lr(&s, epoch, frac);
}

int main(void) {
    CHECK_NEAR(lr_of("const", 5, 3, 0.5), 1.0, 1e-7, "const");
    CHECK_NEAR(lr_of("step:2:0.5", 10, 1, 0.9), 1.0, 1e-7, "step epoch 1");
    CHECK_NEAR(lr_of("step:2:0.5", 10, 2, 0.0), 0.5, 1e-7, "step epoch 2");
    CHECK_NEAR(lr_of("step:2:0.5", 10, 5, 0.0), 0.25, 1e-7, "step epoch 5");
    CHECK_NEAR(lr_of("step:3", 10, 3, 0.0), 0.1, 1e-7, "step default gamma 0.1");
    CHECK_NEAR(lr_of("multistep:2,4:0.1", 10, 1, 0.0), 1.0, 1e-7, "multistep before");
    CHECK_NEAR(lr_of("multistep:2,4:0.1", 10, 3, 0.0), 0.1, 1e-7, "multistep after first");
    CHECK_NEAR(lr_of("multistep:2,4:0.1", 10, 4, 0.0), 0.01, 1e-8, "multistep after second");
    CHECK_NEAR(lr_of("exp:0.9", 10, 3, 0.7), 0.729, 1e-6, "exp 0.9^3");
    /* cosine over 10 epochs: 0.5 * (1 + cos(pi * t / 10)) */
    CHECK_NEAR(lr_of("cosine", 10, 0, 0.0), 1.0, 1e-7, "cosine start");
    CHECK_NEAR(lr_of("cosine", 10, 5, 0.0), 0.5, 1e-6, "cosine middle");
    CHECK_NEAR(lr_of("cosine", 10, 2, 0.5), 0.5 * (1 + cos(3.141592653589793 * 0.25)), 1e-6, "cosine t=2.5");
    /* warm-up of 2 epochs: linear from 0, then cosine over the remaining 8 */
    CHECK_NEAR(lr_of("cosine:2", 10, 0, 0.5), 0.25, 1e-6, "warm-up t=0.5");
    CHECK_NEAR(lr_of("cosine:2", 10, 6, 0.0), 0.5, 1e-6, "cosine after warm-up, t=6");

    loom_schedule s;
    CHECK(loom_schedule_parse("plateau:1:0.5", 1.0f, 10, &s) == LOOM_OK, "plateau parses");
    double losses[] = {1.0, 0.9, 0.95, 0.96, 0.97, 0.5};
    float want[] = {1.0f, 1.0f, 1.0f, 0.5f, 0.5f, 0.5f};
    for (int e = 0; e < 6; e++) {
        loom_schedule_epoch_end(&s, losses[e]);
        CHECK_NEAR(loom_schedule_lr(&s, e + 1, 0), want[e], 1e-7, "plateau after epoch");
    }

    const char *bad[] = {"sometimes", "step", "step:x", "step:0", "exp:1.5", "multistep:", "cosine:-1", "exp:abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CHECK(loom_schedule_parse(bad[i], 0.1f, 5, &s) == LOOM_ERR && strstr(loom_error(), bad[i]),
              "'%s' must be rejected with a message naming it (%s)", bad[i], loom_error());
    }
    TEST_END();
}

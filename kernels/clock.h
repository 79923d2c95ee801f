/* The one monotonic clock of loom (internal): seconds since an arbitrary
 * start, for timings and progress. */
#ifndef LOOM_KERNELS_CLOCK_H
#define LOOM_KERNELS_CLOCK_H

double loom_seconds(void);

#endif

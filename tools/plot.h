/* Training curves drawn with cairo (no external program): loss and accuracy
 * per epoch, training and validation, as PNG or SVG by the file's name,
 * written atomically. */
#ifndef LOOM_TOOLS_PLOT_H
#define LOOM_TOOLS_PLOT_H

#include "loom/loom.h"

/* Whether path names a plot loom can write (.png or .svg, a writable
 * folder): checked before training. LOOM_OK or LOOM_ERR. */
int plot_check(const char *path);
/* Draw epochs h[0..n) to path. LOOM_OK, or LOOM_ERR with path left as it was. */
int plot_write(const char *path, const char *title, const loom_epoch_metrics *h, int n);
/* Release the drawing libraries' caches (fonts): at exit, so leak checkers see
 * only real leaks. */
void plot_shutdown(void);

#endif

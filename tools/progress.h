/* Progress within an epoch, drawn by the command (the library only reports
 * it): on a terminal a bar redrawn in place a few times a second; elsewhere
 * (a log file, a pipe, a batch system) one line every `every` seconds, so a
 * long epoch still shows it is alive. Validation is shown the same way. */
#ifndef LOOM_TOOLS_PROGRESS_H
#define LOOM_TOOLS_PROGRESS_H

#include "loom/loom.h"

typedef struct {
    int tty;          /* standard output is a terminal */
    int quiet;        /* draw nothing */
    double every;     /* seconds between lines when not a terminal (0 = no lines) */
    double last;      /* when the last bar or line was drawn */
    int drawn;        /* a bar is on the screen (to clear before other output) */
} progress;

void progress_init(progress *p, double every, int quiet);
/* A loom_fit_opts.on_progress callback; user is the progress. */
void progress_report(const loom_progress *lp, void *user);
/* Remove the bar from the terminal before printing a line of output. */
void progress_clear(progress *p);

#endif

/* Shared pieces of the loom command: option parsing and the commands. */
#ifndef LOOM_TOOLS_CLI_H
#define LOOM_TOOLS_CLI_H

#include <stdint.h>

/* One option of a command: --name takes a value unless is_flag. */
typedef struct {
    const char *name;
    const char *arg;   /* metavariable shown in help, NULL for a flag */
    const char *help;
    const char *value; /* parsed value (or default); "1" for a set flag */
} cli_opt;

/* Parse argv[first..argc) into opts (NULL-name terminated). Prints a clear
 * error and returns -1 on an unknown option or a missing value; returns 1 if
 * --help was asked (after printing help). */
int cli_parse(const char *cmd, const char *usage, cli_opt *opts, int argc, char **argv);
void cli_help(const char *cmd, const char *usage, const cli_opt *opts);
const char *cli_get(const cli_opt *opts, const char *name);
/* Typed getters: print "loom CMD: --name: 'v' is not ..." and return -1 on a bad value. */
int cli_int(const char *cmd, const cli_opt *opts, const char *name, long lo, long hi, long *out);
int cli_float(const char *cmd, const cli_opt *opts, const char *name, double lo, double hi, double *out);

int cmd_train(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_make_folder(int argc, char **argv);
int cmd_make_csv(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);

#endif

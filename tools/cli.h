/* The loom command's option parsing, exit codes and commands. */
#ifndef LOOM_TOOLS_CLI_H
#define LOOM_TOOLS_CLI_H

#include <stdint.h>

/* Exit codes, the same for every command (loom help prints them):
 * 0 done; 1 the work failed (bad data, a file that cannot be read or
 * written, training diverged); 2 the command line is wrong (unknown or
 * malformed option, a value out of range, options that contradict each other
 * or a checkpoint); 128 + N stopped by signal N (130 for Ctrl-C) after saving
 * what could be saved. */
enum { EXIT_DONE = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

/* One option of a command: --name takes a value unless it is a flag. */
typedef struct {
    const char *name;
    const char *arg;      /* metavariable shown in help; NULL for a flag */
    const char *help;
    const char *value;    /* parsed value (or default); "1" for a set flag */
    int given;            /* it was on the command line */
    const char *implicit; /* a flag that also takes --name=VALUE: the value when given bare */
} cli_opt;

/* An option that takes a value (arg names it in help) or a flag (arg NULL). */
#define CLI_OPT(name, arg, help, value) {(name), (arg), (help), (value), 0, NULL}
#define CLI_END {NULL, NULL, NULL, NULL, 0, NULL}

/* Parse argv[0..argc) into opts (NULL-name terminated) and up to maxpos
 * positional arguments into pos (their count into *npos; pos may be NULL
 * when maxpos is 0). Returns 0, 1 if --help was asked (help printed), or -1
 * after printing why the command line is wrong. */
int cli_parse(const char *cmd, const char *usage, cli_opt *opts, int argc, char **argv, const char **pos, int maxpos,
              int *npos);
void cli_help(const char *cmd, const char *usage, const cli_opt *opts);
cli_opt *cli_find(cli_opt *opts, const char *name);
const char *cli_get(const cli_opt *opts, const char *name);
int cli_given(const cli_opt *opts, const char *name);
/* Typed getters: print "loom CMD: --name: 'v' is not ..." and return -1 on a bad value. */
int cli_int(const char *cmd, const cli_opt *opts, const char *name, long lo, long hi, long *out);
int cli_float(const char *cmd, const cli_opt *opts, const char *name, double lo, double hi, double *out);
/* Refuse an option given together with another ("--a and --b exclude each
 * other: why"); -1 after printing. */
int cli_exclude(const char *cmd, const cli_opt *opts, const char *a, const char *b, const char *why);

int cmd_train(int argc, char **argv);
int cmd_summary(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_make_folder(int argc, char **argv);
int cmd_make_csv(int argc, char **argv);
int cmd_data(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_features(int argc, char **argv);

#endif

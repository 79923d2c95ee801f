/* Option parsing for the loom command: --name value, --name=value, flags,
 * positional arguments. */
#include "cli.h"

#include "kernels/parse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cli_help(const char *cmd, const char *usage, const cli_opt *opts) {
    printf("usage: loom %s %s\n\noptions:\n", cmd, usage);
    for (const cli_opt *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        if (o->implicit) snprintf(left, sizeof left, "--%s[=%s]", o->name, "N%");
        printf("  %-26s %s", left, o->help);
        if (o->arg && o->value) printf(" (default: %s)", o->value);
        printf("\n");
    }
    printf("  %-26s %s\n", "--help", "show this help");
}

cli_opt *cli_find(cli_opt *opts, const char *name) {
    for (cli_opt *o = opts; o->name; o++)
        if (!strcmp(o->name, name)) return o;
    return NULL;
}

static cli_opt *find_n(cli_opt *opts, const char *name, size_t len) {
    for (cli_opt *o = opts; o->name; o++)
        if (strlen(o->name) == len && !strncmp(o->name, name, len)) return o;
    return NULL;
}

int cli_parse(const char *cmd, const char *usage, cli_opt *opts, int argc, char **argv, const char **pos, int maxpos,
              int *npos) {
    int np = 0;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            cli_help(cmd, usage, opts);
            return 1;
        }
        if (strncmp(a, "--", 2) || !a[2]) {
            if (a[0] == '-' && a[1]) {
                fprintf(stderr, "loom %s: unknown option '%s' (options start with --; see loom %s --help)\n", cmd, a,
                        cmd);
                return -1;
            }
            if (np >= maxpos) {
                fprintf(stderr, "loom %s: unexpected argument '%s' (see loom %s --help)\n", cmd, a, cmd);
                return -1;
            }
            pos[np++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        cli_opt *o = find_n(opts, name, len);
        if (!o) {
            fprintf(stderr, "loom %s: unknown option '--%.*s' (see loom %s --help)\n", cmd, (int)len, name, cmd);
            return -1;
        }
        if (o->given) {
            fprintf(stderr, "loom %s: --%s given twice\n", cmd, o->name);
            return -1;
        }
        o->given = 1;
        if (!o->arg) {
            if (eq && !o->implicit) {
                fprintf(stderr, "loom %s: --%s is a flag and takes no value\n", cmd, o->name);
                return -1;
            }
            o->value = eq ? eq + 1 : o->implicit ? o->implicit : "1";
        } else if (eq) {
            o->value = eq + 1;
        } else if (i + 1 < argc) {
            o->value = argv[++i];
        } else {
            fprintf(stderr, "loom %s: --%s needs a value (%s)\n", cmd, o->name, o->arg);
            return -1;
        }
        if (o->value && !o->value[0]) {
            fprintf(stderr, "loom %s: --%s: an empty value (%s expected)\n", cmd, o->name, o->arg ? o->arg : "none");
            return -1;
        }
    }
    if (npos) *npos = np;
    return 0;
}

const char *cli_get(const cli_opt *opts, const char *name) {
    for (const cli_opt *o = opts; o->name; o++)
        if (!strcmp(o->name, name)) return o->value;
    return NULL;
}

int cli_given(const cli_opt *opts, const char *name) {
    for (const cli_opt *o = opts; o->name; o++)
        if (!strcmp(o->name, name)) return o->given;
    return 0;
}

int cli_int(const char *cmd, const cli_opt *opts, const char *name, long lo, long hi, long *out) {
    const char *v = cli_get(opts, name);
    if (!v) return 0;
    if (loom_parse_long(v, lo, hi, out)) {
        fprintf(stderr, "loom %s: --%s: '%s' is not a whole number in %ld..%ld\n", cmd, name, v, lo, hi);
        return -1;
    }
    return 0;
}

int cli_float(const char *cmd, const cli_opt *opts, const char *name, double lo, double hi, double *out) {
    const char *v = cli_get(opts, name);
    if (!v) return 0;
    if (loom_parse_double(v, lo, hi, out)) {
        fprintf(stderr, "loom %s: --%s: '%s' is not a number in %g..%g\n", cmd, name, v, lo, hi);
        return -1;
    }
    return 0;
}

int cli_exclude(const char *cmd, const cli_opt *opts, const char *a, const char *b, const char *why) {
    if (!cli_given(opts, a) || !cli_given(opts, b)) return 0;
    fprintf(stderr, "loom %s: --%s and --%s exclude each other: %s\n", cmd, a, b, why);
    return -1;
}

/* The command-line option parser (tools/cli.c): the input is argv, its
 * arguments separated by NUL bytes, parsed against options of every kind
 * (values, flags, a flag that takes --name=VALUE, positional arguments),
 * then read back through the typed getters. */
#include "fuzz.h"
#include "tools/cli.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    enum { MAX_ARGS = 24 };
    char *buf = malloc(size + 1), *argv[MAX_ARGS + 1];
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = 0;
    int argc = 0;
    for (size_t at = 0; at <= size && argc < MAX_ARGS;) {
        argv[argc++] = buf + at;
        at += strlen(buf + at) + 1;
    }
    argv[argc] = NULL;
    cli_opt o[] = {CLI_OPT("data", "PATH", "data", "x"), CLI_OPT("epochs", "N", "epochs", "5"),
                   CLI_OPT("lr", "X", "learning rate", "0.05"), CLI_OPT("quiet", NULL, "quiet", NULL),
                   {"skip-bad", "PCT", "skip", NULL, 0, "1%"}, CLI_OPT("threads", "LIST", "threads", "1,2"), CLI_END};
    const char *pos[4];
    int npos = 0;
    /* the parser's messages are answers, not findings: scripts/fuzz.sh runs this target with stderr closed */
    if (cli_parse("fuzz", "[options] FILE", o, argc, argv, pos, 4, &npos) == 0) {
        long n;
        double x;
        cli_int("fuzz", o, "epochs", 1, 1000, &n);
        cli_float("fuzz", o, "lr", 1e-9, 100, &x);
        cli_given(o, "quiet");
        cli_get(o, "skip-bad");
        cli_exclude("fuzz", o, "quiet", "data", "they exclude each other");
    }
    free(buf);
    return 0;
}

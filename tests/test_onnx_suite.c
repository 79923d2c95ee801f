/* ONNX's own test suite (Debian's libonnx-testdata) through loom's import:
 * every case (model.onnx, test_data_set_N/input_0.pb -> output_0.pb) of the
 * node, pytorch-converted, pytorch-operator and simple suites is imported;
 * what loom cannot express is skipped and counted by its reason (mostly the
 * operator), what it imports is run in inference and compared with the
 * suite's expected output at the suite's tolerance (|a - b| <= 1e-7 + 1e-3 |b|,
 * as onnx.backend.test's runner). Any failure fails the test.
 *
 *   test_onnx_suite [DATA_DIR] [-v]      (default /usr/share/libonnx-testdata/data)
 */
#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "check.h"
#include "loom/loom.h"

enum { MAX_REASONS = 256 };

typedef struct {
    char key[96];
    int count;
} reason;

static reason reasons[MAX_REASONS];
static int nreasons, verbose;

static void count_reason(const char *key) {
    for (int k = 0; k < nreasons; k++)
        if (!strcmp(reasons[k].key, key)) {
            reasons[k].count++;
            return;
        }
    if (nreasons < MAX_REASONS) {
        snprintf(reasons[nreasons].key, sizeof reasons[nreasons].key, "%s", key);
        reasons[nreasons++].count = 1;
    }
}

/* The skip's key: the operator named in "...: node N (name, Op): why" or
 * "(Op): why", else the reason's first words. */
static void skip_key(const char *msg, char *key, size_t cap) {
    const char *p = strstr(msg, ": node ");
    if (p && (p = strchr(p, '('))) {
        const char *end = strstr(p, "): ");
        if (end) {
            const char *q = end;
            while (q > p && q[-1] != ' ' && q[-1] != '(') q--;
            int op = (int)(end - q);
            const char *why = end + 3;
            /* a supported operator refused for its shape or an attribute: keep that apart */
            int has = !strncmp(why, "loom has no layer", 17) || !strncmp(why, "operator domain", 15);
            snprintf(key, cap, "%.*s%s", op, q, has ? "" : " (a form loom lacks)");
            return;
        }
    }
    const char *why = strchr(msg, ':');
    why = why ? why + 2 : msg;
    if (strstr(why, "-d: loom takes")) snprintf(key, cap, "input rank other than 2 or 4");
    else if (strstr(why, "opset")) snprintf(key, cap, "opset outside 6-17");
    else if (strstr(why, "loom models have one input")) snprintf(key, cap, "several inputs");
    else if (strstr(why, "graph outputs")) snprintf(key, cap, "several outputs");
    else if (strstr(why, "element type")) snprintf(key, cap, "input not float32");
    else if (strstr(why, "needs every size but the batch")) snprintf(key, cap, "input size not fixed");
    else snprintf(key, cap, "%.40s", why);
}

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

typedef struct {
    int passed, failed, skipped;
} tally;

/* The import of a case with test data set s: inputs after the first bound
 * as constants from input_1.pb, ... NULL after an error. */
static loom_graph *import_set(const char *dir, int s) {
    char model[4096], files[8][4200];
    const char *fp[8];
    int nc = 0;
    snprintf(model, sizeof model, "%s/model.onnx", dir);
    for (; nc < 8; nc++) {
        snprintf(files[nc], sizeof files[nc], "%s/test_data_set_%d/input_%d.pb", dir, s, nc + 1);
        if (!exists(files[nc])) break;
        fp[nc] = files[nc];
    }
    return loom_onnx_import_with(model, nc, fp);
}

/* One case: 1 passed, 0 skipped, -1 failed. */
static int run_case(const char *dir, const char *name) {
    if (strlen(dir) > 2048) return 0;
    int result = 1, sets = 0;
    for (int s = 0; result == 1; s++) {
        char ip[4096], op[4096], extra[4096];
        snprintf(ip, sizeof ip, "%s/test_data_set_%d/input_0.pb", dir, s);
        snprintf(op, sizeof op, "%s/test_data_set_%d/output_0.pb", dir, s);
        snprintf(extra, sizeof extra, "%s/test_data_set_%d/output_1.pb", dir, s);
        if (!exists(ip) || !exists(op)) break;
        loom_graph *g = import_set(dir, s);
        if (!g) {
            char key[96];
            if (loom_error_kind() != LOOM_EUNSUPPORTED) {
                printf("FAIL %s: import: %s\n", name, loom_error());
                return -1;
            }
            skip_key(loom_error(), key, sizeof key);
            count_reason(key);
            if (verbose) printf("skip %s: %s\n", name, loom_error());
            return 0;
        }
        if (exists(extra)) { /* a second output: loom models have one */
            count_reason("several outputs");
            loom_graph_free(g);
            return 0;
        }
        const loom_layer *in = loom_graph_layer(g, 0);
        size_t isz = in->size, osz = loom_graph_layer(g, loom_graph_output(g))->size;
        int64_t idims[8], odims[8];
        int irank, orank;
        size_t icount, ocount;
        float *x = loom_onnx_read_tensor(ip, idims, &irank, &icount);
        float *want = x ? loom_onnx_read_tensor(op, odims, &orank, &ocount) : NULL;
        loom_exec *e = NULL;
        int n = x && irank ? (int)idims[0] : 1;
        if (!x || !want) {
            printf("FAIL %s: test data: %s\n", name, loom_error());
            result = -1;
        } else if (n < 1 || icount != (size_t)n * isz || ocount != (size_t)n * osz) {
            printf("FAIL %s: test data of %zu -> %zu values, the imported model takes %d x %zu -> %zu\n", name, icount,
                   ocount, n, isz, osz);
            result = -1;
        } else if (!(e = loom_exec_new(g, n))) {
            printf("FAIL %s: exec: %s\n", name, loom_error());
            result = -1;
        } else {
            memcpy(loom_exec_input(e), x, icount * sizeof(float));
            if (loom_exec_forward(e, n, 0, 0, 0)) {
                printf("FAIL %s: forward: %s\n", name, loom_error());
                result = -1;
            } else {
                const float *got = loom_exec_output(e);
                size_t bad = 0, worst_i = 0;
                double worst = 0;
                for (size_t q = 0; q < ocount; q++) {
                    double d = fabs((double)got[q] - want[q]), tol = 1e-7 + 1e-3 * fabs(want[q]);
                    int ok = d <= tol || (isnan(got[q]) && isnan(want[q])) || got[q] == want[q];
                    if (!ok) bad++;
                    if (d / tol > worst) worst = d / tol, worst_i = q;
                }
                if (bad) {
                    printf("FAIL %s: set %d: %zu of %zu outputs out of tolerance; worst [%zu] %.9g, expected %.9g\n", name,
                           s, bad, ocount, worst_i, got[worst_i], want[worst_i]);
                    result = -1;
                } else if (verbose) {
                    printf("pass %s: set %d, %zu outputs, worst %.3f of the tolerance\n", name, s, ocount, worst);
                }
            }
        }
        loom_exec_free(e);
        free(x), free(want);
        loom_graph_free(g);
        sets++;
    }
    if (result == 1 && sets == 0) {
        count_reason("no test data set");
        result = 0;
    }
    return result;
}

static int by_name(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static tally run_suite(const char *root, const char *suite) {
    tally t = {0, 0, 0};
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/%s", root, suite);
    DIR *d = opendir(dir);
    if (!d) return t;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            names = realloc(names, cap * sizeof *names);
        }
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    if (n) qsort(names, n, sizeof *names, by_name);
    for (size_t k = 0; k < n; k++) {
        char cdir[2048], model[2100];
        snprintf(cdir, sizeof cdir, "%s/%s", dir, names[k]);
        snprintf(model, sizeof model, "%s/model.onnx", cdir);
        if (exists(model)) {
            int r = run_case(cdir, names[k]);
            if (r > 0) t.passed++;
            else if (r == 0) t.skipped++;
            else t.failed++;
        }
        free(names[k]);
    }
    free(names);
    return t;
}

static int by_count(const void *a, const void *b) {
    const reason *x = a, *y = b;
    return x->count != y->count ? y->count - x->count : strcmp(x->key, y->key);
}

int main(int argc, char **argv) {
    const char *root = "/usr/share/libonnx-testdata/data";
    for (int k = 1; k < argc; k++) {
        if (!strcmp(argv[k], "-v")) verbose = 1;
        else root = argv[k];
    }
    if (!loom_onnx_available()) TEST_SKIP("loom was built without ONNX import (LOOM_ONNX=OFF)");
    char node[4096];
    snprintf(node, sizeof node, "%s/node", root);
    if (!exists(node)) TEST_SKIP("%s not found: apt-get install libonnx-testdata (scripts/deps.sh does)", node);
    const char *suites[] = {"node", "pytorch-converted", "pytorch-operator", "simple"};
    tally all = {0, 0, 0};
    for (int s = 0; s < 4; s++) {
        tally t = run_suite(root, suites[s]);
        printf("%-18s %4d passed, %d failed, %4d skipped\n", suites[s], t.passed, t.failed, t.skipped);
        all.passed += t.passed, all.failed += t.failed, all.skipped += t.skipped;
    }
    printf("%-18s %4d passed, %d failed, %4d skipped\n", "all", all.passed, all.failed, all.skipped);
    qsort(reasons, (size_t)nreasons, sizeof *reasons, by_count);
    printf("skipped, by reason:");
    for (int k = 0; k < nreasons; k++) printf("%s %s %d", k ? "," : "", reasons[k].key, reasons[k].count);
    printf("\n");
    CHECK(all.failed == 0, "%d cases failed", all.failed);
    CHECK(all.passed > 0, "no case passed");
    TEST_END();
}

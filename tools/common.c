#include "common.h"
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

loom_augment *eval_chain(const char *spec, int *err) {
    *err = 0;
    if (!spec || !spec[0]) return NULL;
    char buf[256], keep[256] = "";
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *p = buf, *tok; (tok = strsep(&p, ",")) != NULL;)
        if (!strncmp(tok, "normalize", 9)) snprintf(keep, sizeof keep, "%s", tok);
    if (!keep[0]) return NULL;
    loom_augment *a = loom_augment_parse(keep);
    if (!a) *err = 1;
    return a;
}

int parse_hw(const char *s, int *h, int *w) {
    char extra;
    if (sscanf(s, "%dx%d%c", h, w, &extra) == 2 && *h > 0 && *w > 0) return 0;
    if (sscanf(s, "%d%c", h, &extra) == 1 && *h > 0) {
        *w = *h;
        return 0;
    }
    return -1;
}

const char *plural(long n) { return n == 1 ? "" : "s"; }

long online_cores(void) {
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return cores < 1 ? 1 : cores;
}

int cli_threads(const char *cmd, const cli_opt *o, long *threads) {
    const char *v = cli_get(o, "threads");
    if (!v) return 0;
    long cores = online_cores();
    int digits = *v != 0;
    for (const char *p = v; *p; p++) digits &= *p >= '0' && *p <= '9';
    if (!digits) {
        fprintf(stderr, "loom %s: --threads: '%s' is not a number of threads (0 for one per core, or 1..%ld on this "
                        "machine's %ld core%s)\n", cmd, v, 4 * cores, cores, plural(cores));
        return -1;
    }
    errno = 0;
    long n = strtol(v, NULL, 10);
    if (errno == ERANGE || n > 4 * cores) {
        fprintf(stderr,
                "loom %s: --threads %s: this machine has %ld core%s; more than %ld threads only make it slower (each "
                "thread waits for a core)\n",
                cmd, v, cores, plural(cores), 4 * cores);
        return -1;
    }
    if (n > cores)
        /* on standard error: standard output may be the data (predict --out -) */
        fprintf(stderr,
                "warning: --threads %ld on %ld core%s: threads will wait for cores (expect it slower than --threads "
                "%ld)\n",
                n, cores, plural(cores), cores);
    *threads = n;
    return 0;
}

int check_writable(const char *path) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return loom_set_error("%s is a folder, not a file", path);
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (stat(dir, &st) != 0) return loom_set_error("%s: the folder %s does not exist", path, dir);
    if (!S_ISDIR(st.st_mode)) return loom_set_error("%s: %s is not a folder", path, dir);
    /* access() answers for the real user; a probe file answers for the file system too (read-only mounts) */
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/.loom-probe.XXXXXX", dir);
    int fd = mkstemp(probe);
    if (fd < 0) return loom_set_error("%s: cannot write in %s: %s", path, dir, strerror(errno));
    close(fd);
    unlink(probe);
    return LOOM_OK;
}

char *absolute_path(const char *path) {
    char *r = realpath(path, NULL);
    if (r) return r;
    const char *slash = strrchr(path, '/');
    char dir[4096];
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    char *d = realpath(dir, NULL);
    if (!d) return NULL;
    size_t n = strlen(d) + strlen(path) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s/%s", strcmp(d, "/") ? d : "", slash ? slash + 1 : path);
    free(d);
    return out;
}

int check_output(const char *opt, const char *out, const char *const *inputs) {
    if (!out[0]) return loom_set_error("%s: an empty path", opt);
    char *o = absolute_path(out);
    int rc = LOOM_OK;
    for (const char *const *in = inputs; o && rc == LOOM_OK && *in; in++) {
        if (!(*in)[0]) continue;
        char *a = absolute_path(*in); /* inputs still to be written (a checkpoint, a log) count too */
        if (!a) continue;
        size_t n = strlen(a);
        struct stat st;
        int dir = stat(a, &st) == 0 && S_ISDIR(st.st_mode);
        if (!strcmp(o, a))
            rc = loom_set_error("%s %s is %s, which this command also reads or writes: one would overwrite the other",
                                opt, out, *in);
        else if (dir && !strncmp(o, a, n) && o[n] == '/')
            rc = loom_set_error("%s %s is inside %s, an input folder of this command: outputs and data would mix",
                                opt, out, *in);
        free(a);
    }
    free(o);
    return rc;
}

int check_out_file(const char *cmd, const char *out, const char *const *inputs) {
    if (check_output("--out", out, inputs)) {
        fprintf(stderr, "loom %s: %s\n", cmd, loom_error());
        return EXIT_USAGE;
    }
    if (check_writable(out)) {
        fprintf(stderr, "loom %s: --out: %s\n", cmd, loom_error());
        return EXIT_FAILED;
    }
    return 0;
}

char **copy_names(int n, char *const *names) {
    if (!names || n <= 0) return NULL;
    char **c = calloc((size_t)n, sizeof *c);
    for (int k = 0; c && k < n; k++)
        if (!(c[k] = strdup(names[k] ? names[k] : ""))) {
            free_names(k, c);
            return NULL;
        }
    return c;
}

void free_names(int n, char **names) {
    if (!names) return;
    for (int k = 0; k < n; k++) free(names[k]);
    free(names);
}

const char *model_class_name(const model_side *m, int k, char *buf, size_t cap) {
    if (k >= 0 && k < m->classes && m->labels) return m->labels[k];
    if (k >= 0 && k < m->classes && m->names) return m->names[k];
    snprintf(buf, cap, "%d", k);
    return buf;
}

void model_side_free(model_side *m) {
    free_names(m->classes, m->names);
    free_names(m->classes, m->labels);
    memset(m, 0, sizeof *m);
}

int model_side_of(model_side *m, const loom_dataset *ds, int c, int h, int w) {
    memset(m, 0, sizeof *m);
    m->classes = ds->num_classes;
    m->names = copy_names(ds->num_classes, ds->class_names);
    if (ds->class_names && !m->names) return loom_set_error("out of memory");
    m->native_c = ds->native_c, m->native_h = ds->native_h, m->native_w = ds->native_w;
    m->c = c, m->h = h, m->w = w;
    return LOOM_OK;
}

const char *describe_classes(int n, char *const *names, char *buf, size_t cap) {
    size_t len = (size_t)snprintf(buf, cap, "%d class%s", n, n == 1 ? "" : "es");
    if (!names || len >= cap) return buf;
    for (int k = 0; k < n && len + 8 < cap; k++) {
        if (k == 6 && n > 7) {
            snprintf(buf + len, cap - len, ", ...)");
            return buf;
        }
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", k ? ", " : " (", names[k]);
    }
    if (len + 1 < cap) snprintf(buf + len, cap - len, ")");
    return buf;
}

static int names_equal(char *const *a, char *const *b, int n, int *first) {
    for (int k = 0; k < n; k++)
        if (strcmp(a[k], b[k])) {
            *first = k;
            return 0;
        }
    return 1;
}

/* "the model", or "the model (ck.loom)" when its checkpoint is known. */
static const char *the_model(const model_side *m, char *buf, size_t cap) {
    if (!m->from) return "the model";
    snprintf(buf, cap, "the model (%s)", m->from);
    return buf;
}

int check_fits(const char *what, const loom_dataset *ds, const model_side *m, int convert, const char *resize_opt) {
    char a[256], b[256], tm[4200];
    if (ds->num_classes != m->classes)
        return loom_set_error("%s has %s, %s has %s: the outputs would be paired with the wrong classes", what,
                              describe_classes(ds->num_classes, ds->class_names, a, sizeof a),
                              the_model(m, tm, sizeof tm),
                              describe_classes(m->classes, m->labels ? m->labels : m->names, b, sizeof b));
    int k = 0, k2 = 0;
    if (ds->class_names && (m->names || m->labels) &&
        !(m->names && names_equal(ds->class_names, m->names, m->classes, &k)) &&
        !(m->labels && names_equal(ds->class_names, m->labels, m->classes, &k2))) {
        char *const *mn = m->labels ? m->labels : m->names;
        int at = m->labels ? k2 : k;
        return loom_set_error("%s: class %d is \"%s\", %s has \"%s\" there (a different data set, or classes in "
                              "another order)",
                              what, at, ds->class_names[at], the_model(m, tm, sizeof tm), mn[at]);
    }
    return check_shape(what, ds, m, convert, resize_opt);
}

int check_shape(const char *what, const loom_dataset *ds, const model_side *m, int convert, const char *resize_opt) {
    char tm[4200];
    if (ds->c != m->c && strcmp(ds->format, "folder") && strcmp(ds->format, "images"))
        return loom_set_error("%s gives %d-channel images, %s takes %d channels (%s data cannot be converted)",
                              what, ds->c, the_model(m, tm, sizeof tm), m->c, ds->format);
    if (convert) return LOOM_OK;
    if (ds->native_c != m->native_c && ds->native_c != m->c) /* already in the channels the model takes */
        return loom_set_error("%s holds %s images, %s was trained on %s images (give %s to convert them)",
                              what, ds->native_c == 1 ? "grey" : "colour", the_model(m, tm, sizeof tm),
                              m->native_c == 1 ? "grey" : "colour", resize_opt);
    if (ds->native_h != m->native_h || ds->native_w != m->native_w)
        return loom_set_error("%s holds %dx%d images, %s was trained on %dx%d images%s (give %s to resize "
                              "them)",
                              what, ds->native_h, ds->native_w, the_model(m, tm, sizeof tm), m->native_h, m->native_w,
                              m->native_h != m->h || m->native_w != m->w ? " (resized for it)" : "", resize_opt);
    return LOOM_OK;
}

int utf8_valid(const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        int n = *p < 0x80 ? 0 : (*p & 0xE0) == 0xC0 ? 1 : (*p & 0xF0) == 0xE0 ? 2 : (*p & 0xF8) == 0xF0 ? 3 : -1;
        if (n < 0 || (n == 1 && *p < 0xC2)) return 0;
        p++;
        for (int i = 0; i < n; i++, p++)
            if ((*p & 0xC0) != 0x80) return 0;
    }
    return 1;
}

const char *shell_quote(const char *path, char *buf, size_t cap) {
    if (!strpbrk(path, " \t\n'\"\\$`!*?[](){}<>|&;#~,")) {
        snprintf(buf, cap, "%s", path);
        return buf;
    }
    size_t n = 0;
    if (n + 1 < cap) buf[n++] = '\'';
    for (const char *p = path; *p && n + 5 < cap; p++) {
        if (*p == '\'') {
            memcpy(buf + n, "'\\''", 4);
            n += 4;
        } else {
            buf[n++] = *p;
        }
    }
    if (n + 1 < cap) buf[n++] = '\'';
    buf[n < cap ? n : cap - 1] = 0;
    return buf;
}

int drop_final_softmax(loom_graph **g) {
    loom_node o = loom_graph_output(*g);
    const loom_layer *l = loom_graph_layer(*g, o);
    if (l->op != LOOM_OP_SOFTMAX) return 0;
    loom_graph *p = loom_graph_new_prefix(*g, l->in[0]);
    if (!p) return -1;
    loom_graph_free(*g);
    *g = p;
    return 1;
}

loom_graph *open_model(const char *path, const char **kind) {
    if (loom_onnx_sniff(path)) {
        *kind = "ONNX";
        return loom_onnx_import(path);
    }
    *kind = "checkpoint";
    return loom_checkpoint_load(path);
}

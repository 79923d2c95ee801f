#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

loom_augment *eval_chain(const char *spec, int *err) {
    *err = 0;
    if (!spec) return NULL;
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

void class_names_of(const loom_dataset *ds, char *buf, size_t cap) {
    buf[0] = 0;
    for (int k = 0; k < ds->num_classes; k++) {
        char nb[32];
        size_t len = strlen(buf);
        snprintf(buf + len, cap - len, "%s%s", k ? "\n" : "", loom_dataset_class_name(ds, k, nb, sizeof nb));
    }
}

const char *class_name_at(const char *names, int k, char *buf, size_t cap) {
    const char *p = names;
    for (int i = 0; i < k && p; i++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    if (!p || !*p) {
        snprintf(buf, cap, "%d", k);
        return buf;
    }
    size_t n = strcspn(p, "\n");
    snprintf(buf, cap, "%.*s", (int)n, p);
    return buf;
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int mkdirs(const char *path) {
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0755) && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(tmp, 0755) && errno != EEXIST ? -1 : 0;
}

/* Strict number parsing (parse.h): the syntax is checked by hand, then
 * strtod/strtol convert what is known to be plain decimal. */
#include "kernels/parse.h"

#include "loom/error.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int digit(char c) { return c >= '0' && c <= '9'; }

/* Length of a decimal number at s (integer: no fraction or exponent), or 0. */
static size_t scan(const char *s, size_t n, int real) {
    size_t i = 0, d = 0;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    while (i < n && digit(s[i])) i++, d++;
    if (real && i < n && s[i] == '.') {
        i++;
        while (i < n && digit(s[i])) i++, d++;
    }
    if (!d) return 0;
    if (real && i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t j = i + 1, e = 0;
        if (j < n && (s[j] == '+' || s[j] == '-')) j++;
        while (j < n && digit(s[j])) j++, e++;
        if (!e) return 0;
        i = j;
    }
    return i;
}

int loom_parse_long(const char *s, long lo, long hi, long *out) {
    size_t n = s ? strlen(s) : 0;
    if (!n || scan(s, n, 0) != n) return -1;
    errno = 0;
    long v = strtol(s, NULL, 10);
    if (errno || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int loom_parse_double_n(const char *s, int n, double lo, double hi, double *out) {
    if (!s || n <= 0 || n > 63 || scan(s, (size_t)n, 1) != (size_t)n) return -1;
    char buf[64];
    memcpy(buf, s, (size_t)n);
    buf[n] = 0;
    errno = 0;
    double v = strtod(buf, NULL);
    if (errno == ERANGE && fabs(v) > 1) return -1; /* overflow; underflow to 0 is fine */
    if (!isfinite(v) || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

int loom_parse_double(const char *s, double lo, double hi, double *out) {
    return loom_parse_double_n(s, s ? (int)strlen(s) : 0, lo, hi, out);
}

int loom_env_switch(const char *name, int *on) {
    const char *v = getenv(name);
    *on = 1;
    if (!v || !*v) return LOOM_OK;
    static const char *yes[] = {"1", "on", "yes", "true"}, *no[] = {"0", "off", "no", "false"};
    for (int k = 0; k < 4; k++) {
        if (!strcasecmp(v, yes[k])) return LOOM_OK;
        if (!strcasecmp(v, no[k])) return *on = 0, LOOM_OK;
    }
    return loom_fail(LOOM_EINVAL, "%s=%s: give 1 (on, the default) or 0 (off)", name, v);
}

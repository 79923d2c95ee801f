/* Strict field-by-field reading of JSON objects (see jfield.h). */
#include "jfield.h"

#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "loom/error.h"

int jf_fail(jf_obj *r, const char *fmt, ...) {
    if (r->err) return -1;
    r->err = 1;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return loom_fail(LOOM_EFORMAT, "%s: %s: %s", r->path, r->where, msg);
}

int jf_open(jf_obj *r, const json_t *v, const char *path, const char *fmt, ...) {
    memset(r, 0, sizeof *r);
    r->obj = v;
    r->path = path;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->where, sizeof r->where, fmt, ap);
    va_end(ap);
    if (!json_is_object(v)) return jf_fail(r, "expected a JSON object");
    return 0;
}

static const char *type_name(int type) {
    switch (type) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "true or false";
    default: return "null";
    }
}

const json_t *jf_get(jf_obj *r, const char *key, int type) {
    if (r->err) return NULL;
    if (r->nused == JF_MAX_FIELDS) {
        jf_fail(r, "more than %d fields asked for (loom bug)", JF_MAX_FIELDS);
        return NULL;
    }
    r->used[r->nused++] = key;
    const json_t *v = json_object_get(r->obj, key);
    if (!v) {
        jf_fail(r, "missing field \"%s\"", key);
        return NULL;
    }
    if (type >= 0 && (int)json_typeof(v) != type) {
        jf_fail(r, "field \"%s\" must be %s", key, type_name(type));
        return NULL;
    }
    return v;
}

int jf_int(jf_obj *r, const char *key, long long min, long long max, long long *out) {
    const json_t *v = jf_get(r, key, JSON_INTEGER);
    if (!v) return -1;
    long long x = json_integer_value(v);
    if (x < min || x > max)
        return jf_fail(r, "field \"%s\" = %lld is out of range %lld..%lld", key, x, min, max);
    *out = x;
    return 0;
}

int jf_double(jf_obj *r, const char *key, double *out) {
    const json_t *v = jf_get(r, key, -1);
    if (!v) return -1;
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (s && !strcmp(s, "inf")) *out = INFINITY;
    else if (s && !strcmp(s, "-inf")) *out = -INFINITY;
    else if (s && !strcmp(s, "nan")) *out = NAN;
    else return jf_fail(r, "field \"%s\" must be a number (or \"inf\", \"-inf\", \"nan\")", key);
    return 0;
}

int jf_float(jf_obj *r, const char *key, float *out) {
    double d = 0;
    if (jf_double(r, key, &d)) return -1;
    /* Converting an out-of-range double to float is undefined behaviour. */
    if (isfinite(d) && fabs(d) > FLT_MAX)
        return jf_fail(r, "field \"%s\" = %g is out of float range", key, d);
    *out = (float)d;
    return 0;
}

int jf_bool(jf_obj *r, const char *key, int *out) {
    const json_t *v = jf_get(r, key, -1);
    if (!v) return -1;
    if (!json_is_boolean(v)) return jf_fail(r, "field \"%s\" must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

int jf_str(jf_obj *r, const char *key, char *buf, size_t cap) {
    const json_t *v = jf_get(r, key, JSON_STRING);
    if (!v) return -1;
    size_t n = json_string_length(v);
    const char *s = json_string_value(v);
    if (n >= cap) return jf_fail(r, "field \"%s\" is %zu bytes long (at most %zu)", key, n, cap - 1);
    if (memchr(s, 0, n)) return jf_fail(r, "field \"%s\" contains a NUL character", key);
    memcpy(buf, s, n + 1);
    return 0;
}

int jf_done(jf_obj *r) {
    if (r->err) return -1;
    const char *key;
    json_t *v;
    json_object_foreach((json_t *)r->obj, key, v) {
        (void)v;
        int known = 0;
        for (int i = 0; i < r->nused && !known; i++) known = !strcmp(r->used[i], key);
        if (!known) return jf_fail(r, "unknown field \"%s\"", key);
    }
    return 0;
}

json_t *jf_number(double v) {
    if (isnan(v)) return json_string("nan");
    if (isinf(v)) return json_string(v > 0 ? "inf" : "-inf");
    return json_real(v);
}

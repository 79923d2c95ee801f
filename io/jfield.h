/* io — reading a JSON object field by field, strictly: a missing field, a
 * field of the wrong type or range, and a field nobody asked for are all
 * errors, reported as "<file>: <where>: <reason>". Only the first error of an
 * object is kept (later ones are usually its consequences), so a caller reads
 * every field and checks once, at jf_done. Shared by the files of io/ only. */
#ifndef LOOM_IO_JFIELD_H
#define LOOM_IO_JFIELD_H

#include <jansson.h>
#include <stddef.h>

#define JF_MAX_FIELDS 32

typedef struct {
    const json_t *obj;
    const char *path;           /* the file, first in every message */
    char where[160];            /* which object, e.g. "loom.state sched" */
    const char *used[JF_MAX_FIELDS];
    int nused;
    int err;
} jf_obj;

/* Start reading v, which must be an object; where is printf-style. 0 or -1. */
int jf_open(jf_obj *r, const json_t *v, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Record an error about the object (first one wins). Always -1. */
int jf_fail(jf_obj *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The field key of the given type (a JSON_* type, or -1 for any). NULL after an error. */
const json_t *jf_get(jf_obj *r, const char *key, int type);
int jf_int(jf_obj *r, const char *key, long long min, long long max, long long *out);
/* A number; "inf", "-inf" and "nan" as strings stand for what JSON cannot spell. */
int jf_double(jf_obj *r, const char *key, double *out);
/* As jf_double, and representable as a float. */
int jf_float(jf_obj *r, const char *key, float *out);
int jf_bool(jf_obj *r, const char *key, int *out);
/* A string that fits in cap bytes with its terminator and has no NUL inside. */
int jf_str(jf_obj *r, const char *key, char *buf, size_t cap);
/* 0 if every field was read and all were fine, else -1 (with the message set). */
int jf_done(jf_obj *r);

/* The JSON for a double: a number, or one of the strings jf_double accepts. */
json_t *jf_number(double v);

#endif

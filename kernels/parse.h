/* Strict number parsing, one way for every part of loom that reads numbers
 * from text (command-line options, augmentation and schedule specs): plain
 * decimal only — an optional sign, digits, for reals an optional fraction and
 * exponent — and nothing else around it. "0x10", " 5", "1e", "inf", "nan" and
 * an empty string are not numbers. Internal to loom. */
#ifndef LOOM_KERNELS_PARSE_H
#define LOOM_KERNELS_PARSE_H

/* s as a whole number in [lo, hi] into *out: 0, or -1 (out untouched). */
int loom_parse_long(const char *s, long lo, long hi, long *out);
/* s as a finite real in [lo, hi] into *out: 0, or -1 (out untouched). */
int loom_parse_double(const char *s, double lo, double hi, double *out);
/* The same for the first n bytes of s (a field inside a longer spec). */
int loom_parse_double_n(const char *s, int n, double lo, double hi, double *out);

/* An on/off switch in the environment (LOOM_TAILS, LOOM_OVERLAP, LOOM_WINOGRAD): unset or empty is on,
 * 1/on/yes/true and 0/off/no/false (any case) set *on; anything else fails (loom_fail, LOOM_EINVAL) with
 * "NAME=VALUE: give 1 (on, the default) or 0 (off)" and leaves *on at 1. */
int loom_env_switch(const char *name, int *on);

#endif

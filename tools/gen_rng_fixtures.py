#!/usr/bin/env python3
"""Known answers for loom's counter-based generator (kernels/rng.c), from an
independent Python implementation of the same functions, written once to
tests/data/rng_known.txt:  python3 tools/gen_rng_fixtures.py > tests/data/rng_known.txt
Each line: kind key-arguments counter value."""
import math
import struct

M = (1 << 64) - 1


def mix(z):
    z = (z + 0x9E3779B97F4A7C15) & M
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M
    return z ^ (z >> 31)


def key(seed, a, b, c):
    k = mix(seed & M)
    k = mix(k ^ a)
    k = mix(k ^ ((b + 0x632BE59BD9B4E019) & M))
    return mix(k ^ ((c + 0x8CB92BA72F3D8DD7) & M))


def u64(k, counter):
    return mix(k ^ mix((counter * 0xD1B54A32D192ED03 + 1) & M))


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def uniform(k, counter):
    return f32((u64(k, counter) >> 40) * (1.0 / 16777216.0))


def normal(k, counter):
    b = u64(k, counter)
    u1 = ((b >> 32) + 1.0) / 4294967296.0
    u2 = (b & 0xFFFFFFFF) / 4294967296.0
    return f32(math.sqrt(-2.0 * math.log(u1)) * math.cos(6.283185307179586 * u2))


def below(k, counter, n):
    m = (u64(k, counter) & 0xFFFFFFFF) * n
    lo = m & 0xFFFFFFFF
    if lo < n:
        t = ((1 << 32) - n) % n
        k2 = mix(k ^ 0xA0761D6478BD642F)
        j = 0
        while lo < t:
            m = (u64(k2, (counter * 64 + j) & M) & 0xFFFFFFFF) * n
            lo = m & 0xFFFFFFFF
            j += 1
    return m >> 32


def permutation(k, n):
    p = list(range(n))
    for i in range(n, 1, -1):
        j = below(k, i, i)
        p[i - 1], p[j] = p[j], p[i - 1]
    return p


keys = [(0, 0, 0, 0), (1, 99, 0, 0), (5, 1, 2, 3), (0xFEDCBA9876543210, 4, 7, 123456789)]
for seed, a, b, c in keys:
    k = key(seed, a, b, c)
    print("key %d %d %d %d %d" % (seed, a, b, c, k))
    for counter in (0, 1, 2, 1000, 0xFFFFFFFFFFFF):
        print("u64 %d %d %d" % (k, counter, u64(k, counter)))
        print("uniform %d %d %.9e" % (k, counter, uniform(k, counter)))
        print("normal %d %d %.9e" % (k, counter, normal(k, counter)))
        for n in (1, 2, 3, 10, 1000003, 0xFFFFFFFF):
            print("below %d %d %d %d" % (k, counter, n, below(k, counter, n)))
    print("perm %d 10 %s" % (k, " ".join(str(x) for x in permutation(k, 10))))

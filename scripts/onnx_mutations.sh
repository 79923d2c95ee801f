#!/usr/bin/env bash
# Bad ONNX input, many times: random truncations and random byte changes of
# the committed test models, each run through `loom run`, which must answer
# with exit status 0, 1 or 2 and never crash. Use an AddressSanitizer +
# UBSan build to make memory errors count:
#   scripts/onnx_mutations.sh build-asan/loom [N per model]
# Prints the counts; exits 1 on any crash (the input kept in the work folder).
set -u
LOOM=${1:?usage: $0 path/to/loom [N]}
N=${2:-60}
D=$(cd "$(dirname "$0")/../tests/data/onnx" && pwd)
W=$(mktemp -d /tmp/loom-onnx-mut-XXXXXX)
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1
head -c 64 /dev/zero >"$W/x.f32"
runs=0 ran=0 crashes=0
one() {
    timeout 60 "$LOOM" run "$W/t.onnx" --input "$W/x.f32" --output "$W/o.f32" >/dev/null 2>"$W/err"
    local rc=$?
    runs=$((runs + 1))
    [ $rc -eq 0 ] && ran=$((ran + 1))
    if [ $rc -gt 2 ]; then
        crashes=$((crashes + 1))
        cp "$W/t.onnx" "$W/crash_$runs.onnx"
        echo "crash (exit $rc): $W/crash_$runs.onnx" >&2
        grep -m3 'ERROR\|runtime error' "$W/err" >&2
    fi
}
for f in "$D/cnn_bn.onnx" "$D/cnn_ops.onnx" "$D/cnn_shape.onnx" "$D/bad/ok.onnx"; do
    size=$(stat -c %s "$f")
    for i in $(seq "$N"); do
        head -c $(((RANDOM * 32768 + RANDOM) % size)) "$f" >"$W/t.onnx"
        one
        cp "$f" "$W/t.onnx"
        for _ in $(seq $((RANDOM % 8 + 1))); do # 1 to 8 bytes set to random values
            at=$(((RANDOM * 32768 + RANDOM) % (RANDOM % 2 ? size : (size < 4000 ? size : 4000))))
            printf "\\x$(printf %02x $((RANDOM % 256)))" | dd of="$W/t.onnx" bs=1 seek="$at" conv=notrunc status=none
        done
        one
    done
done
echo "onnx mutations: $runs runs of $LOOM ($ran ran a model), $crashes crashes"
[ "$crashes" -eq 0 ] && rm -rf "$W"
[ "$crashes" -eq 0 ]

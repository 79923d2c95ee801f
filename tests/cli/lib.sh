# Shared by the command-line tests (tests/cli/*.sh), each run by ctest as
#   bash tests/cli/NAME.sh path/to/loom
# Every case runs the loom command on tiny data made here, checks its exit
# status and what it says, and counts; the last line is "N passed, M failed"
# and the exit status is 1 when anything failed.
set -u
LOOM=${1:?usage: $0 path/to/loom}
T=$(mktemp -d "${TMPDIR:-/tmp}/loom-cli-XXXXXX")
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 2
pass=0
fail=0
rc=0
out=""
err=""

# run ARGS...: loom ARGS, with $rc, $out and $err set.
run() {
    "$LOOM" "$@" >"$T/.out" 2>"$T/.err"
    rc=$?
    out=$(cat "$T/.out")
    err=$(cat "$T/.err")
}

report_failure() {
    fail=$((fail + 1))
    echo "FAIL: $1" >&2
    echo "  exit status $rc" >&2
    [ -n "$out" ] && printf '  stdout: %s\n' "${out:0:3000}" >&2
    [ -n "$err" ] && printf '  stderr: %s\n' "${err:0:3000}" >&2
    return 0
}

# expect DESC STATUS [TEXT...]: the last run exited with STATUS and its
# output (stdout and stderr together) holds every TEXT.
expect() {
    local desc=$1 want=$2
    shift 2
    if [ "$rc" != "$want" ]; then
        report_failure "$desc (expected exit status $want)"
        return 0
    fi
    local t
    for t in "$@"; do
        if ! printf '%s\n%s\n' "$out" "$err" | grep -qF -- "$t"; then
            report_failure "$desc (expected to read: $t)"
            return 0
        fi
    done
    pass=$((pass + 1))
}

# lacks DESC TEXT: the last run's output does not hold TEXT.
lacks() {
    if printf '%s\n%s\n' "$out" "$err" | grep -qF -- "$2"; then
        report_failure "$1 (did not expect to read: $2)"
    else
        pass=$((pass + 1))
    fi
}

# check DESC COMMAND...: COMMAND succeeds.
check() {
    local desc=$1
    shift
    if "$@"; then pass=$((pass + 1)); else report_failure "$desc"; fi
}

# The weights digest `loom summary` prints for a checkpoint.
digest() { "$LOOM" summary "$1" | sed -n 's/^weights digest: \([0-9a-f]*\).*/\1/p'; }

finish() {
    echo "$pass passed, $fail failed"
    [ "$fail" -eq 0 ]
    exit $?
}

# ---- tiny data ---------------------------------------------------------------------

FASHION=/usr/share/datasets/fashion-mnist
# A test that cannot run here says why and exits 77: ctest reports it as skipped, not passed.
skip() {
    echo "SKIPPED: $*"
    exit 77
}
[ -d "$FASHION" ] || skip "$FASHION is missing (apt-get install dataset-fashion-mnist; scripts/deps.sh does)"

# mk_csv DIR TRAIN TEST: Kaggle Digit Recognizer files from Fashion-MNIST rows.
mk_csv() { "$LOOM" make-csv --out "$1" --train "$2" --test "$3" >/dev/null || exit 2; }

# mk_folder DIR [SIZE] [PER_CLASS]: an Intel-layout folder of synthetic JPEGs (6 classes).
mk_folder() { "$LOOM" make-folder --out "$1" --size "${2:-16}" --train "${3:-8}" --test 3 >/dev/null || exit 2; }

# be32 N: N as 4 big-endian bytes (printf escapes).
be32() { printf '\\x%02x\\x%02x\\x%02x\\x%02x' $(($1 >> 24 & 255)) $(($1 >> 16 & 255)) $(($1 >> 8 & 255)) $(($1 & 255)); }

# mk_idx IMAGES LABELS LABEL...: an IDX pair of 16x16 images, one per label given.
mk_idx() {
    local img=$1 lab=$2
    shift 2
    local n=$#
    { printf '\x00\x00\x08\x03'; printf "$(be32 "$n")$(be32 16)$(be32 16)"; head -c $((n * 256)) /dev/urandom; } >"$img"
    { printf '\x00\x00\x08\x01'; printf "$(be32 "$n")"; for l in "$@"; do printf "\\x$(printf %02x "$l")"; done; } >"$lab"
}

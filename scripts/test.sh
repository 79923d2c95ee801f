#!/usr/bin/env bash
# Fresh Debian machine -> every test: install what is missing, then
#   1. gcc, -Werror, AddressSanitizer + UndefinedBehaviorSanitizer: all tests;
#   2. clang, the same (clang's UBSan catches what gcc's does not, e.g. NULL + 0);
#   3. ThreadSanitizer: the threaded tests;
#   4. Open MPI (-DLOOM_MPI=ON), ASan + UBSan: training under mpirun on this machine;
#   5. without oneDNN (-DLOOM_ONEDNN=OFF), gcc, ASan + UBSan: the kernel tests and the zoo, so the
#      portable-only build keeps compiling and working;
#   6. libFuzzer (scripts/fuzz.sh): every reader 20 s, committed findings replayed.
# The closing line counts passed, failed and skipped tests over all runs; a
# skipped test is never counted as passed.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh clang libclang-rt-14-dev
jobs=$(nproc)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1

run_suite() { # NAME BUILD-DIR CC SANITIZERS TARGETS ("" = all) [ctest args...]
    local name=$1 dir=$2 cc=$3 san=$4 targets=$5
    shift 5
    echo "== $name: build"
    # shellcheck disable=SC2086
    CC=$cc cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOOM_WERROR=ON -DLOOM_SANITIZE="$san" \
        ${LOOM_CMAKE_EXTRA:-} >/dev/null
    # shellcheck disable=SC2086
    cmake --build "$dir" -j"$jobs" ${targets:+--target $targets} >/dev/null
    echo "== $name: tests"
    ctest --test-dir "$dir" -j"$jobs" --output-on-failure --timeout 600 "$@" | tee -a "$log"
}

run_suite "gcc, ASan + UBSan" build-asan gcc address,undefined ""
run_suite "clang, ASan + UBSan" build-clang clang address,undefined ""
threaded="test_pool test_trainer test_loader test_resume test_train_state test_lifecycle"
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    run_suite "ThreadSanitizer (threaded tests)" build-tsan gcc thread "$threaded" -R "^(${threaded// /|})\$"
# (Open MPI keeps its memory to the end: leaks are not counted there)
LOOM_CMAKE_EXTRA="-DLOOM_MPI=ON" ASAN_OPTIONS=detect_leaks=0 \
    run_suite "Open MPI, ASan + UBSan (mpirun, 2-4 ranks on this machine)" build-mpi gcc address,undefined \
    "loom test_mpi" -L mpi

nodnn="test_kernels_conv test_conv3x3 test_zoo test_graph"
LOOM_CMAKE_EXTRA="-DLOOM_ONEDNN=OFF" \
    run_suite "without oneDNN, ASan + UBSan" build-nodnn gcc address,undefined "loom $nodnn" -R "^(${nodnn// /|})\$"

# 6. libFuzzer over every reader, a short budget each; every committed finding replayed first
echo "== libFuzzer (clang, ASan + UBSan): 20 s per target"
if scripts/fuzz.sh all 20 | tee -a "$log"; then
  echo "100% tests passed, 0 tests failed out of 1" >>"$log"
else
  echo "fuzzing found a problem (above)"
  exit 1
fi

# one closing line for all runs (set -e and pipefail stop earlier on any failure)
skipped=$(grep -c '\*\*\*Skipped\|Not Run' "$log" || true)
sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1 \2/p' "$log" |
    awk -v s="$skipped" '{f += $1; n += $2} END {printf "total: %d passed, %d failed, %d skipped\n", n - f - s, f, s}'

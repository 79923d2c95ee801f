#!/usr/bin/env bash
# Fresh Debian machine -> every test: install what is missing, build with
# -Werror and AddressSanitizer + UndefinedBehaviorSanitizer, run ctest; then
# build the threaded tests with ThreadSanitizer and run those.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
jobs=$(nproc)

echo "== build: -Werror, ASan + UBSan"
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOOM_WERROR=ON \
      -DLOOM_SANITIZE=address,undefined >/dev/null
cmake --build build-asan -j"$jobs" >/dev/null
echo "== tests (ASan + UBSan)"
log=$(mktemp)
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -j"$jobs" --output-on-failure --timeout 600 | tee "$log"

threaded="test_pool test_trainer test_loader"
echo "== build: ThreadSanitizer (threaded tests: $threaded)"
cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOOM_WERROR=ON \
      -DLOOM_SANITIZE=thread >/dev/null
# shellcheck disable=SC2086
cmake --build build-tsan -j"$jobs" --target $threaded >/dev/null
echo "== tests (TSan)"
TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
  ctest --test-dir build-tsan -R "^(${threaded// /|})\$" --output-on-failure --timeout 600 | tee -a "$log"
# one closing line for both runs (set -e and pipefail stop earlier on any failure)
sed -n 's/.*tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\1 \2/p' "$log" |
  awk '{f += $1; n += $2} END {printf "total: %d passed, %d failed\n", n - f, f}'
rm -f "$log"

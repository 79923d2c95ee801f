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
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build-asan -j"$jobs" --output-on-failure --timeout 600

if ls tests/test_*.c | grep -qE 'test_(pool|trainer)'; then
  echo "== build: ThreadSanitizer (threaded tests)"
  cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOOM_WERROR=ON \
        -DLOOM_SANITIZE=thread >/dev/null
  cmake --build build-tsan -j"$jobs" --target test_pool test_trainer >/dev/null
  echo "== tests (TSan)"
  TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
    ctest --test-dir build-tsan -R 'test_(pool|trainer)' --output-on-failure --timeout 600
fi

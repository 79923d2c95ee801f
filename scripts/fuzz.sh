#!/usr/bin/env bash
# libFuzzer over every reader (tests/fuzz/fuzz_*.c), with AddressSanitizer and
# UBSan, clang:
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS per target] [JOBS]
#
# e.g. scripts/fuzz.sh all 30 (CI), scripts/fuzz.sh onnx 600. Targets: idx csv
# image cifar folder checkpoint augment cli onnx. Each target first replays
# its committed findings (tests/fuzz/crashes/TARGET/: every one a regression
# test) and its seeds, then fuzzes from its seeds (tests/fuzz/seeds/TARGET/,
# made by tools/make_fuzz_seeds.py) and the corpus it grew before
# (build-fuzz/corpus/TARGET/), with its dictionary (tests/fuzz/dict/) if any.
# Prints per target: executions, seconds, coverage (edges, features),
# findings; a finding is kept in build-fuzz/findings/TARGET/ (copy it to
# tests/fuzz/crashes/TARGET/ once fixed) and makes the script exit 1.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-all}
secs=${2:-30}
jobs=${3:-$(nproc)}
all="idx csv image cifar folder checkpoint augment cli onnx"
[ "$which" = all ] && which=$all
for t in $which; do
  case " $all " in *" $t "*) ;; *) echo "fuzz.sh: no target '$t' (one of: $all)" >&2; exit 2 ;; esac
done
scripts/deps.sh clang libclang-rt-14-dev
B=build-fuzz
CC=clang cmake -S . -B $B -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOOM_SANITIZE=address,undefined -DLOOM_FUZZ=ON \
  -DLOOM_BUILD_TESTS=OFF -DLOOM_WERROR=ON >/dev/null
# shellcheck disable=SC2046
cmake --build $B -j"$(nproc)" --target $(for t in $which; do printf 'fuzz_%s ' "$t"; done) >/dev/null
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

one() { # TARGET: replay, then fuzz; writes $B/report/TARGET
  local t=$1 bin=$B/fuzz_$1 seeds=tests/fuzz/seeds/$1 crashes=tests/fuzz/crashes/$1
  local corpus=$B/corpus/$t findings=$B/findings/$t log=$B/logs/$t.log
  mkdir -p "$corpus" "$findings" "$B/logs" "$B/report"
  local replay=0
  if [ -d "$crashes" ] && [ -n "$(ls -A "$crashes" 2>/dev/null)" ]; then
    replay=$(ls "$crashes" | wc -l)
    if ! "$bin" "$crashes"/* >"$B/logs/$t.replay.log" 2>&1; then
      echo "$t: a committed finding fails again (see $B/logs/$t.replay.log)" >"$B/report/$t"
      return
    fi
  fi
  local dict=() mask=1
  [ -f "tests/fuzz/dict/$t.dict" ] && dict=(-dict="tests/fuzz/dict/$t.dict")
  [ "$t" = cli ] && mask=3 # the parser explains every bad command line on stderr
  "$bin" "$corpus" "$seeds" "${dict[@]}" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$findings/" -close_fd_mask=$mask >"$log" 2>&1 || true
  local execs cov ft found
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1 || true)
  cov=$( (grep -o 'cov: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
  ft=$( (grep -o 'ft: [0-9]*' "$log" || true) | tail -1 | cut -d' ' -f2)
  found=$(find "$findings" -type f | wc -l)
  printf '%-11s %12s executions in %4ss  coverage %6s edges %7s features  %d finding%s  (%d replayed)\n' \
    "$t" "${execs:-?}" "$secs" "${cov:-?}" "${ft:-?}" "$found" "$([ "$found" = 1 ] || echo s)" "$replay" >"$B/report/$t"
}

rm -rf "$B/report" "$B/findings"
running=0
for t in $which; do
  one "$t" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then wait -n || true; running=$((running - 1)); fi
done
wait || true
bad=0
for t in $which; do
  [ -f "$B/report/$t" ] || echo "$t: no report (the run itself failed: see $B/logs/$t.log)" >"$B/report/$t"
  cat "$B/report/$t"
  if ! grep -q ' 0 findings' "$B/report/$t"; then
    bad=1
    for f in "$B/findings/$t"/*; do [ -e "$f" ] && echo "  finding: $f (log: $B/logs/$t.log)"; done
  fi
done
exit $bad

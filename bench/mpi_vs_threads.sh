#!/usr/bin/env bash
# Wall time of the same training as 1 rank x T threads and as T ranks x 1 thread
# (mpirun on this machine), MiniVGG on synthetic 64x64 JPEG scenes by default:
#
#   bench/mpi_vs_threads.sh [path/to/loom built with -DLOOM_MPI=ON] [ranks] [model] [size]
#
# Both runs: the same global batch (64), 2 epochs, the second one's images/s
# (images decoded and cached by then) and the whole run's wall time. Run it on
# a quiet machine; figures go to docs/BENCHMARKS.md.
set -euo pipefail
L=${1:-build-mpi/loom}
R=${2:-2}
MODEL=${3:-minivgg}
SIZE=${4:-64}
W=$(mktemp -d /tmp/loom-mpi-bench-XXXXXX)
trap 'rm -rf "$W"' EXIT
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
"$L" make-folder --out "$W/d" --train 200 --test 20 --size "$SIZE" >/dev/null
common=(train --data "$W/d" --model "$MODEL" --epochs 2 --batch 64 --seed 1 --quiet --val-split 0)
epoch2() { sed -n 's/^epoch 2\/2:.* \([0-9][0-9]*\) img\/s.*/\1/p' "$1"; }
t0=$(date +%s.%N)
"$L" "${common[@]}" --threads "$R" >"$W/threads.log"
t1=$(date +%s.%N)
mpirun --oversubscribe -np "$R" "$L" "${common[@]}" --threads 1 >"$W/ranks.log"
t2=$(date +%s.%N)
a=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
b=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.1f", b - a }')
echo "$MODEL ${SIZE}x${SIZE}, batch 64, 2 epochs of 1,200 images, $(nproc) cores:"
echo "  1 rank x $R threads: ${a}s wall, epoch 2 $(epoch2 "$W/threads.log") img/s"
echo "  $R ranks x 1 thread:  ${b}s wall, epoch 2 $(epoch2 "$W/ranks.log") img/s (mpirun, loopback)"

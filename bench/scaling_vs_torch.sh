#!/usr/bin/env bash
# Training and inference images/s per thread count, loom vs PyTorch, on this
# machine in one run: LeNet-5 (1x28x28, batch 64), MiniVGG (3x64x64, batch 64)
# and MiniVGG (3x150x150, batch 32). The PyTorch side is
# ../shared/bench/torch_bench.py (same models, random data, SGD momentum 0.9).
#
#   bench/scaling_vs_torch.sh [models]     models: any of A B C (default "A B")
#
# Needs build/loom (scripts/demo.sh builds it); installs python3-torch (scripts/deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh python3-torch
models=${1:-"A B"}
ref=${LOOM_SHARED:-../shared}/bench/torch_bench.py
[ -x build/loom ] || { echo "build/loom missing: run scripts/demo.sh --epochs 1 first" >&2; exit 1; }
[ -f "$ref" ] || { echo "$ref missing (PyTorch reference script)" >&2; exit 1; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
declare -A spec=([A]="lenet5 1x28x28 10 64 200" [B]="minivgg 3x64x64 6 64 20" [C]="minivgg 3x150x150 6 32 6")
printf '%-5s %-22s %3s %12s %12s %7s | %12s %12s %7s\n' model "" thr "loom train" "torch train" ratio \
       "loom infer" "torch infer" ratio
for m in $models; do
  read -r name input classes batch steps <<< "${spec[$m]}"
  build/loom bench --model "$name" --input "$input" --classes "$classes" --batch "$batch" \
    --threads 1,2 --steps "$steps" --warmup 3 --csv > "$out/loom.$m"
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$ref" --models "$m" --threads 1 2 > "$out/torch.$m"
  for th in 1 2; do
    lt=$(awk -F, -v t="$th" 'NR>1 && $1==t {print $2}' "$out/loom.$m")
    li=$(awk -F, -v t="$th" 'NR>1 && $1==t {print $11}' "$out/loom.$m")
    tt=$(awk -v m="$m" -v t="$th" '$1==m && $2=="train-random" && $3==t {print $4}' "$out/torch.$m")
    ti=$(awk -v m="$m" -v t="$th" '$1==m && $2=="infer-b64" && $3==t {print $4}' "$out/torch.$m")
    printf '%-5s %-22s %3s %12.1f %12.1f %6.2fx | %12.1f %12.1f %6.2fx\n' "$m" "$name $input b$batch" "$th" \
      "$lt" "$tt" "$(echo "$lt / $tt" | bc -l)" "$li" "$ti" "$(echo "$li / $ti" | bc -l)"
  done
  l1=$(awk -F, 'NR>1 && $1==1 {print $2}' "$out/loom.$m"); l2=$(awk -F, 'NR>1 && $1==2 {print $2}' "$out/loom.$m")
  t1=$(awk -v m="$m" '$1==m && $2=="train-random" && $3==1 {print $4}' "$out/torch.$m")
  t2=$(awk -v m="$m" '$1==m && $2=="train-random" && $3==2 {print $4}' "$out/torch.$m")
  printf '%-5s 2-thread speedup: loom %.2fx, torch %.2fx\n' "$m" "$(echo "$l2 / $l1" | bc -l)" "$(echo "$t2 / $t1" | bc -l)"
done

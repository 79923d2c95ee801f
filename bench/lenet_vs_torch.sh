#!/usr/bin/env bash
# LeNet-5 on Fashion-MNIST, loom vs PyTorch, on this machine in this run:
# SGD lr 0.05 momentum 0.9, batch 64, 5 epochs, constant rate, no augmentation,
# pixels / 255 -- the settings of ../shared/bench/train_fmnist.py, which runs
# the PyTorch side. Runs are interleaved so both see the same machine state.
#
#   bench/lenet_vs_torch.sh [seeds] [threads]      e.g. bench/lenet_vs_torch.sh "1 2 3" 1
#
# Needs: build/loom (scripts/demo.sh builds it), python3-torch (installed by scripts/deps.sh), and shared/
# beside the repository (../shared/bench).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh python3-torch
seeds=${1:-"1 2 3"}
threads=${2:-1}
ref=${LOOM_SHARED:-../shared}/bench/train_fmnist.py
[ -x build/loom ] || { echo "build/loom missing: run scripts/demo.sh --epochs 1 first" >&2; exit 1; }
[ -f "$ref" ] || { echo "$ref missing (PyTorch reference script)" >&2; exit 1; }
out=$(mktemp -d)
printf '%-6s %-8s %10s %12s\n' seed side "test acc" "train img/s"
for s in $seeds; do
  build/loom train --model lenet5 --epochs 5 --batch 64 --lr 0.05 --momentum 0.9 --schedule const \
    --threads "$threads" --seed "$s" > "$out/loom.$s"
  acc=$(sed -n 's/^final test accuracy: \([0-9.]*\)%.*/\1/p' "$out/loom.$s")
  ips=$(sed -n 's/^epoch .*, \([0-9]*\) img\/s.*/\1/p' "$out/loom.$s" | awk '{s+=$1} END {printf "%.0f", s/NR}')
  printf '%-6s %-8s %9s%% %12s\n' "$s" loom "$acc" "$ips"
  echo "$acc $ips" >> "$out/loom.all"
  (cd "$(dirname "$ref")" && OPENBLAS_NUM_THREADS=1 /usr/bin/python3 train_fmnist.py --threads "$threads" \
     --seed "$s") > "$out/torch.$s"
  acc=$(sed -n 's/^epoch 5: .*test_acc \([0-9.]*\)%.*/\1/p' "$out/torch.$s")
  ips=$(sed -n 's/.*(\([0-9]*\) img\/s.*/\1/p' "$out/torch.$s" | awk '{s+=$1} END {printf "%.0f", s/NR}')
  printf '%-6s %-8s %9s%% %12s\n' "$s" pytorch "$acc" "$ips"
  echo "$acc $ips" >> "$out/torch.all"
done
la=$(awk '{a+=$1; i+=$2} END {printf "%.2f %.0f", a/NR, i/NR}' "$out/loom.all")
ta=$(awk '{a+=$1; i+=$2} END {printf "%.2f %.0f", a/NR, i/NR}' "$out/torch.all")
echo "mean    loom    ${la% *}%  ${la#* } img/s"
echo "mean    pytorch ${ta% *}%  ${ta#* } img/s"
awk -v l="$la" -v t="$ta" 'BEGIN {split(l, a, " "); split(t, b, " ");
  printf "accuracy difference loom - pytorch: %+.2f points; training speed ratio loom/pytorch: %.2fx\n",
         a[1] - b[1], a[2] / b[2]}'
rm -rf "$out"

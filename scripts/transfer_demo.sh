#!/bin/sh
# The transfer-learning demonstration, start to end (figures in docs/BENCHMARKS.md):
#
#   scripts/transfer_demo.sh [OUTDIR]        (default /tmp/loom-transfer)
#
# 1. PyTorch trains a LeNet-5 with batch norm on Fashion-MNIST classes 0-4 and
#    exports it to ONNX, with an untrained copy; classes 5-9 become a folder
#    of PNGs (tools/pretrain_fashion_torch.py; python3-torch, python3-onnx,
#    dataset-fashion-mnist, all installed by scripts/deps.sh).
# 2. loom fine-tunes on classes 5-9 for 3 epochs, each with a new 5-class head:
#    from scratch (the untrained copy), and from the pretrained body, frozen
#    for epochs 1-2 and trained with the rest in epoch 3 (--unfreeze-at 3).
#    Epoch 2 of each (images decoded and cached by then) gives the speed of
#    a full step and of a frozen-body step.
# 3. Feature extraction: the fine-tuned model's 84 features of every image
#    (loom features), and a logistic regression trained on them.
#
# LOOM=path/to/loom picks the binary (default build/loom).
set -eu
OUT=${1:-/tmp/loom-transfer}
L=${LOOM:-build/loom}
[ -x "$L" ] || { echo "transfer_demo: no loom binary at $L (build first, or set LOOM)" >&2; exit 2; }
if [ ! -e "$OUT/pretrained_0to4.onnx" ] || [ ! -d "$OUT/fashion5to9/test" ]; then
    /usr/bin/python3 tools/pretrain_fashion_torch.py "$OUT"
fi
D=$OUT/fashion5to9
common="--classes 5 --data $D --channels 1 --epochs 3 --threads 2 --seed 1 --overwrite"

echo "== from scratch: the untrained network, a new head, 3 epochs"
$L train --init "$OUT/scratch.onnx" $common --checkpoint "$OUT/scratch" | tee "$OUT/scratch.log"
echo "== pretrained on classes 0-4: body frozen up to 8/Flatten for 2 epochs, all layers in epoch 3"
$L train --init "$OUT/pretrained_0to4.onnx" $common --freeze-until 8/Flatten --unfreeze-at 3 \
    --checkpoint "$OUT/pretrained" | tee "$OUT/pretrained.log"
echo "== features: the fine-tuned model's layer 12/Relu (84 values), and a logistic regression on them"
$L features "$OUT/pretrained/best.safetensors" --layer 12/Relu --data "$D" --out "$OUT/f_train.safetensors"
$L features "$OUT/pretrained/best.safetensors" --layer 12/Relu --data "$D" --split test --out "$OUT/f_test.safetensors"
$L train --data "$OUT/f_train.safetensors" --val "$OUT/f_test.safetensors" --epochs 3 --overwrite \
    --checkpoint "$OUT/logreg" | tee "$OUT/logreg.log"

# epoch N's images per second; the validation accuracy of every epoch; the run's time
speed() { sed -n "s/^epoch $2\/[0-9]*:.* \([0-9][0-9]*\) img\/s.*/\1/p" "$1" | tail -1; }
accs() { sed -n 's/^epoch [0-9]*\/[0-9]*:.*| val loss [0-9.]* acc \([0-9.]*%\).*/\1/p' "$1" | paste -sd' ' | sed 's/ / -> /g'; }
took() { sed -n 's/^final test accuracy: .*, \([0-9.]*s\))$/\1/p' "$1"; }
echo
echo "== summary (Fashion-MNIST classes 5-9, 30,000 training / 5,000 test images; validation accuracy per epoch)"
echo "from scratch, 3 epochs:                       $(accs "$OUT/scratch.log") ($(took "$OUT/scratch.log"))"
echo "pretrained on 0-4, 2 frozen + 1 all layers:   $(accs "$OUT/pretrained.log") ($(took "$OUT/pretrained.log"))"
echo "logistic regression on its 84 features:       $(accs "$OUT/logreg.log")"
f=$(speed "$OUT/pretrained.log" 2) s=$(speed "$OUT/scratch.log" 2)
echo "epoch 2: frozen-body steps $f img/s, full steps $s img/s ($(awk -v a="$f" -v b="$s" 'BEGIN { printf "%.2f", a / b }')x)"

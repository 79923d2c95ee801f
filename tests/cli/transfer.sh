# Transfer learning from the command line: loom train --init MODEL.onnx (or a
# checkpoint), --classes N replaces the last dense layer, --freeze-until
# LAYER freezes the body (its weights stay as they were), the run checkpoints
# with the imported layer names and continues from there with the whole
# model trainable; wrong uses are refused before training.
D=$(cd "$(dirname "$0")/../data/onnx" && pwd)
. "$(dirname "$0")/lib.sh"
run summary "$D/lenet5.onnx"
case "$err$out" in *"built without ONNX"*) skip "loom was built without ONNX import (LOOM_ONNX=OFF)" ;; esac
expect "summary of an ONNX model names its layers" 0 "ONNX model" "0/Conv (conv2d)" "11/Gemm (dense)"

mk_csv d 300 10
mk_folder f 16 10
run train --init "$D/lenet5.onnx" --data d/train.csv --epochs 1 --quiet --checkpoint a
expect "an ONNX model with as many outputs as classes trains as it is" 0 "final "
run train --init "$D/lenet5.onnx" --data f --image-size 28x28 --channels 1 --epochs 1
expect "6 classes for a 10-output model: refused, --classes suggested" 1 "--classes 6 replaces its last dense layer"
run train --init "$D/lenet5.onnx" --classes 6 --freeze-until 6/Flatten --data f --image-size 28x28 --channels 1 \
    --epochs 2 --checkpoint t --deterministic
expect "a new head on a frozen body" 0 "frozen: layers 1 to 7 (up to 6/Flatten), 2572 of 61366 parameters" \
    "final "
run summary t/last.safetensors
expect "the checkpoint keeps the imported names and the new head" 0 "0/Conv (conv2d)" "11/Gemm (dense)" "(6)"
head -c $((28 * 28 * 4 * 2)) "$D/lenet5.in.f32" >x.f32
run run t/last.safetensors --input x.f32 --output y.f32
expect "the fine-tuned checkpoint runs" 0 "(checkpoint): 2 samples of 1x28x28 -> 6 float32 each"
run train --init t/last.safetensors --data f --image-size 28x28 --channels 1 --epochs 1 --checkpoint u --quiet
expect "the second phase: the whole model from the first phase's checkpoint" 0 "final "
lacks "nothing frozen in the second phase" "frozen:"

# both phases in one run: --unfreeze-at; a resume at the boundary or after it ends where the whole run does
T6=(--init "$D/lenet5.onnx" --classes 6 --freeze-until 6/Flatten --unfreeze-at 2 --data f --image-size 28x28 --channels 1
    --epochs 3 --deterministic --quiet)
run train "${T6[@]}" --checkpoint u1
expect "frozen, then every layer from epoch 2" 0 "frozen: layers 1 to 7" "from epoch 2 every layer trains (--unfreeze-at 2)"
run train "${T6[@]}" --checkpoint u2 --stop-after 1
expect "stopped after the frozen phase" 0 "stopped after 1 epoch as asked"
lacks "before the second phase" "every layer trains"
run train --resume u2/last.safetensors --unfreeze-at 3
expect "another --unfreeze-at when resuming" 2 "--unfreeze-at 3 contradicts the checkpoint"
run train --resume u2/last.safetensors --quiet
expect "resumed at the boundary: unfreezes" 0 "from epoch 2 every layer trains"
check "and ends with the uninterrupted run's weights" [ "$(digest u1/last.safetensors)" = "$(digest u2/last.safetensors)" ]
run train "${T6[@]}" --checkpoint u3 --stop-after 2
run train --resume u3/last.safetensors --quiet
expect "resumed in the second phase" 0
lacks "nothing left to unfreeze" "every layer trains"
check "also the uninterrupted run's weights" [ "$(digest u1/last.safetensors)" = "$(digest u3/last.safetensors)" ]
run train --init "$D/lenet5.onnx" --classes 6 --unfreeze-at 2 --data f --image-size 28x28 --channels 1 --epochs 2
expect "--unfreeze-at without --freeze-until" 2 "--unfreeze-at needs --freeze-until"

# PyTorch weights (a state_dict as safetensors) into a zoo model
W=$(cd "$D/../torch" && pwd)
run train --model lenet5 --weights "$W/lenet5.safetensors" --data d/train.csv --epochs 1 --quiet
expect "a PyTorch state_dict starts a zoo model" 0 "weights: $W/lenet5.safetensors (PyTorch state_dict) into lenet5"
run train --model minivgg --weights "$W/lenet5.safetensors" --data d/train.csv --epochs 1
expect "a state_dict of another architecture" 1 "0.weight has shape [6,1,5,5], loom's layer conv2d_1 (conv2d) needs"
run train --init "$D/lenet5.onnx" --weights "$W/lenet5.safetensors" --data d/train.csv --epochs 1
expect "--weights with --init" 2 "--init brings its own weights"
run train --model lenet5 --weights a/last.safetensors --data d/train.csv --epochs 1
expect "--weights given a loom checkpoint" 1 "is a loom checkpoint, not a PyTorch state_dict: start from it with --init"
run train --model lenet5 --weights "$D/lenet5.onnx" --data d/train.csv --epochs 1
expect "--weights given an ONNX model" 2 "an ONNX model (architecture and weights): start from it with --init"
cp "$D/lenet5.onnx" m.onnx
run train --resume m.onnx --data d/train.csv
expect "--resume of an ONNX model" 2 "an ONNX model has no run to resume"
check "and no lock is left beside it" [ ! -e .lock ]
run train --resume t/last.safetensors --freeze-until 3
expect "--freeze-until when resuming" 2 "a resumed run keeps the model it started with"

# wrong uses
run train --classes 6 --data f --epochs 1
expect "--classes without --init" 2 "--classes applies to a model given with --init"
run train --freeze-until 3 --data f --epochs 1
expect "--freeze-until without --init" 2 "--freeze-until applies to a model given with --init"
run train --init "$D/lenet5.onnx" --classes 7 --data f --image-size 28x28 --channels 1 --epochs 1
expect "--classes other than the data's" 2 "--classes 7: f has 6 classes"
run train --init "$D/lenet5.onnx" --classes 6 --freeze-until nosuch --data f --image-size 28x28 --channels 1 --epochs 1
expect "an unknown layer" 2 "--freeze-until nosuch: the model has no layer of that name (loom summary"
run train --init "$D/lenet5.onnx" --classes 6 --freeze-until 11/Gemm --data f --image-size 28x28 --channels 1 --epochs 1
expect "freezing the head" 2 "at or after the last dense layer"
run train --init "$D/lenet5.onnx" --classes 6 --data f --epochs 1
expect "images of another shape" 1 "takes 1x28x28 images"
check "no checkpoint folder from refused runs" [ ! -e nosuch ]
finish

# loom run: ONNX models exported by PyTorch (tests/data/onnx, made by
# tools/export_torch_onnx.py) give PyTorch's outputs; a loom checkpoint runs
# the same way; broken or unsupported models (tools/gen_onnx_bad.py), a
# truncated file, input of the wrong size and an output that cannot be
# written are refused with the file, the node and the reason.
D=$(cd "$(dirname "$0")/../data/onnx" && pwd)
. "$(dirname "$0")/lib.sh"
run run "$D/bad/ok.onnx" --input /dev/null --output o.f32
case "$err" in *"built without ONNX"*) skip "loom was built without ONNX import (LOOM_ONNX=OFF)" ;; esac

# maxdiff A B: the largest absolute difference of two raw float32 files (or "size" if they differ in length)
maxdiff() {
    paste <(od -An -v -f -w4 "$1") <(od -An -v -f -w4 "$2") |
        awk -F'\t' 'NF != 2 || $1 == "" || $2 == "" { bad = 1 } { d = $1 - $2; if (d < 0) d = -d; if (d > m) m = d }
                    END { if (bad || NR == 0) print "size"; else printf "%.3g\n", m }'
}
within() { awk -v d="$1" -v t="$2" 'BEGIN { exit !(d != "size" && d + 0 <= t + 0) }'; }

for m in lenet5 cnn_bn cnn_ops pad_conv cnn_shape cnn_v7; do
    run run "$D/$m.onnx" --input "$D/$m.in.f32" --output "$m.out.f32"
    expect "$m from PyTorch runs" 0 "$m.onnx (ONNX): 2 samples" "written to $m.out.f32"
    d=$(maxdiff "$m.out.f32" "$D/$m.out.f32")
    echo "$m: max abs difference from PyTorch $d"
    check "$m matches PyTorch within 1e-4 (got $d)" within "$d" 1e-4
    run run "$D/$m.onnx" --input "$D/$m.in.f32" --output "$m.b1.f32" --batch 1
    expect "$m one sample at a time" 0
    d=$(maxdiff "$m.b1.f32" "$D/$m.out.f32")
    check "$m one at a time matches too (got $d)" within "$d" 1e-4
done
run run "$D/lenet5.onnx" --input "$D/lenet5.in.f32" --output - 
check "--output - writes the floats to standard output" [ "$(printf '%s' "$out" | wc -c)" -gt 0 ]

# a checkpoint, the same way
mk_csv d 200 10
run train --data d/train.csv --epochs 1 --checkpoint ck --quiet
expect "a tiny model trains" 0
head -c $((28 * 28 * 4 * 3)) /dev/zero >zeros.f32
run run ck/last.safetensors --input zeros.f32 --output ck.f32
expect "a checkpoint runs" 0 "(checkpoint): 3 samples of 1x28x28 -> 10 float32 each"
check "3 x 10 floats written" [ "$(stat -c %s ck.f32)" = 120 ]

# bad models
head -c 3000 "$D/lenet5.onnx" >trunc.onnx
run run trunc.onnx --input "$D/lenet5.in.f32" --output t.f32
expect "a truncated model" 1 "trunc.onnx: not an ONNX model: the protobuf does not parse"
run run "$D/bad/opset3.onnx" --input zeros.f32 --output t.f32
expect "too old an opset" 1 "opset 3: loom reads opsets 6 to 17"
run run "$D/bad/opset99.onnx" --input zeros.f32 --output t.f32
expect "too new an opset" 1 "opset 99: loom reads opsets 6 to 17 (re-export with opset_version=17)"
run run "$D/bad/unknown_op.onnx" --input zeros.f32 --output t.f32
expect "an unknown operator" 1 "node 1 (frob, Frobnicate): loom has no layer for this operator"
run run "$D/bad/no_init.onnx" --input zeros.f32 --output t.f32
expect "a missing initializer" 1 "node 3 (fc, Gemm): input 1 (B) reads \"fc_w\", which" "no node makes"
run run "$D/bad/shape.onnx" --input zeros.f32 --output t.f32
expect "a weight of the wrong shape" 1 "node 3 (fc, Gemm): B [3, 7] (transposed) takes 7 features, the input has 8"
run run "$D/bad/cycle.onnx" --input zeros.f32 --output t.f32
expect "a cycle" 1 "node 0 (relu_a, Relu): input 0 (X) reads \"r2\", which node 1 (relu_b) makes later" "a cycle"
run run "$D/bad/asym_pad.onnx" --input zeros.f32 --output t.f32
expect "asymmetric padding of an average" 1 "node 1 (pool, AveragePool): padding top 1, left 1, bottom 0, right 0: loom averages"
run run "$D/bad/reshape_batch.onnx" --input zeros.f32 --output t.f32
expect "a reshape across samples" 1 "node 2 (reshape, Reshape): a reshape that merges the batch with other dimensions"
run run "$D/bad/dyn_input.onnx" --input zeros.f32 --output t.f32
expect "a symbolic image size" 1 "dimension 2 is symbolic H"
check "no output was written for any of them" [ ! -e t.f32 ]
printf 'junk' >junk.onnx
run run junk.onnx --input zeros.f32 --output t.f32
expect "a file that is not a model" 1 "junk.onnx"

# bad input and output
head -c 100 /dev/zero >odd.f32
run run "$D/bad/ok.onnx" --input odd.f32 --output t.f32
expect "input of another shape" 1 "odd.f32: 100 bytes is not a whole number of samples of 1x4x4 float32 (64 bytes each)"
run run "$D/bad/ok.onnx" --input "$D/lenet5.in.f32" --output /nonexistent/o.f32
expect "an output folder that does not exist, before the work" 1 "--output" "/nonexistent"
run run "$D/bad/ok.onnx" --input missing.f32 --output t.f32
expect "a missing input" 1 "missing.f32"
run run "$D/bad/ok.onnx" --output t.f32
expect "--input is required" 2 "--input FILE and --output FILE are required"
run run --input zeros.f32 --output t.f32
expect "the model is required" 2 "give the model"
check "still no output file" [ ! -e t.f32 ]
cp "$D/bad/ok.onnx" m.onnx
run run m.onnx --input "$D/lenet5.in.f32" --output m.onnx
expect "the output may not be the model" 2 "--output"
check "and the model is untouched" cmp -s m.onnx "$D/bad/ok.onnx"
cp "$D/lenet5.in.f32" in.f32
run run m.onnx --input in.f32 --output ./in.f32
expect "nor the input" 2 "--output"
check "and the input is untouched" cmp -s in.f32 "$D/lenet5.in.f32"
mkdir -p dd
run run m.onnx --input dd --output t.f32
expect "a folder as input" 1 "--input dd: a folder, not a file of float32 values"
printf 'abc' >x16.f32
run summary x16.f32
expect "summary of a file that is no model says what is wrong with it" 1 "x16.f32"
lacks "and not that it does not exist" "no model 'x16.f32'"
# a classifier that ends in a Softmax: eval, predict and train --init take it
mk_folder f 16 4
run predict "$D/bad/softmax.onnx" --data f/seg_test/seg_test --resize --out p.csv
expect "predict with a model ending in Softmax" 0
run train --init "$D/bad/softmax.onnx" --classes 6 --data f --image-size 4x4 --channels 1 --epochs 1 --quiet
expect "train --init of it" 0 "its final Softmax is left out: the cross-entropy loss applies its own"
run export "$D/bad/ok.onnx" --out -
expect "export to standard output is refused" 2 "written to a file"
finish

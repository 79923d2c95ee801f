# loom export: a checkpoint, an ONNX model or a zoo model as ONNX; imported
# back, the same outputs; what cannot be exported or written is refused.
. "$(dirname "$0")/lib.sh"
run export lenet5 --input 1x28x28 --classes 10 --out z.onnx
case "$err" in *"built without ONNX"*) skip "loom was built without ONNX support (LOOM_ONNX=OFF)" ;; esac
expect "a zoo model exports" 0 "z.onnx: lenet5, 12 layers, 61706 parameters, as ONNX opset 13"
mk_csv d 300 10
run train --data d/train.csv --model minivgg --epochs 1 --checkpoint ck --quiet
expect "a tiny minivgg trains" 0
run export ck/last.safetensors --out m.onnx
expect "a checkpoint exports" 0 "m.onnx: minivgg"
head -c $((28 * 28 * 4 * 5)) /dev/urandom >x.f32
run run ck/last.safetensors --input x.f32 --output a.f32
expect "the checkpoint runs" 0
: >empty.f32
run run ck/last.safetensors --input empty.f32 --output e.f32
expect "an empty input is refused as such" 1 "empty.f32: the file is empty: no samples to run"
check "and no output written" [ ! -e e.f32 ]
run run m.onnx --input x.f32 --output b.f32
expect "its export runs" 0 "(ONNX): 5 samples of 1x28x28 -> 10 float32 each"
check "the export gives the checkpoint's outputs exactly" cmp -s a.f32 b.f32
run export m.onnx --out m2.onnx
expect "an ONNX model exports again" 0 "m2.onnx"
run run m2.onnx --input x.f32 --output c.f32
check "and still gives the same outputs" cmp -s a.f32 c.f32
# refusals
run export ck/last.safetensors
expect "--out is required" 2 "--out FILE is required"
run export --out q.onnx
expect "the model is required" 2 "give the model"
run export lenet5 --out q.onnx
expect "a zoo model needs its input" 2 "needs --input CxHxW and --classes N"
run export ck/last.safetensors --input 1x28x28 --out q.onnx
expect "--input for a checkpoint" 2 "describe a zoo model"
run export ck/last.safetensors --out /nonexistent/q.onnx
expect "an output folder that does not exist" 1 "/nonexistent"
run export ck/last.safetensors --out ck/last.safetensors
expect "overwriting the input" 2 "--out"
run export nosuch.safetensors --out q.onnx
expect "a missing checkpoint" 1 "nosuch.safetensors"
check "nothing written by the refusals" [ ! -e q.onnx ]
finish

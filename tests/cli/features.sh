# loom features: a layer's outputs for a data set, with the labels, as a
# safetensors file that loom data describes and loom train fits a linear
# classifier on (--model logreg, the default for features); from a
# checkpoint or an ONNX model; wrong uses refused.
D=$(cd "$(dirname "$0")/../data/onnx" && pwd)
. "$(dirname "$0")/lib.sh"
mk_csv d 400 10
run train --data d/train.csv --epochs 1 --checkpoint ck --quiet
expect "a tiny lenet5" 0
run features ck/last.safetensors --layer relu_4 --data d/train.csv --out f.safetensors
expect "features of a checkpoint's layer" 0 "f.safetensors: 400 samples x 84 features of ck/last.safetensors (layer relu_4), 10 classes"
run data f.safetensors
expect "loom data describes them" 0 "format: features" "features: 84 floats per sample" "samples: 400"
run train --data f.safetensors --epochs 2 --val-split 0.25
expect "a linear classifier on them" 0 "logreg" "850 parameters" "final validation accuracy"
run train --data f.safetensors --epochs 1 --augment flip-h
expect "augmenting features is refused" 2 "--augment: f.safetensors holds float features"
run train --data f.safetensors --epochs 1 --model lenet5
expect "an image model on features" 2 "lenet5"
run features ck/last.safetensors --layer 10 --data d/train.csv --out g.safetensors
expect "a layer by index" 0 "x 84 features"
check "by name and by index: the same bytes" cmp -s f.safetensors g.safetensors
run features "$D/lenet5.onnx" --layer 8/Relu --data d/train.csv --out o.safetensors
case "$err" in *"built without ONNX"*) ;; *) expect "features of an ONNX model" 0 "x 120 features of" ;; esac
# refusals
run features ck/last.safetensors --layer nosuch --data d/train.csv --out h.safetensors
expect "an unknown layer" 2 "--layer nosuch: the model has no layer of that name"
cp ck/last.safetensors other.safetensors
d_other=$(digest other.safetensors)
run features ck/last.safetensors --layer relu_4 --data d/train.csv --out other.safetensors
expect "features over another checkpoint are refused" 2 "--out other.safetensors is a checkpoint (a model)"
check "which stays as it was" [ "$(digest other.safetensors)" = "$d_other" ]
run features ck/last.safetensors --layer relu_4 --data d/train.csv --out g.safetensors
expect "features over a features file are written" 0 "g.safetensors: 400 samples"
run features ck/last.safetensors --layer relu_4 --data d/train.csv --out h.csv
expect "another kind of output" 2 "written as a .safetensors file"
run features ck/last.safetensors --layer relu_4 --out h.safetensors
expect "--data is required" 2 "--layer NAME, --data PATH and --out FILE are required"
run features ck/last.safetensors --layer relu_4 --data d/train.csv --out /nonexistent/h.safetensors
expect "an unwritable output, before the work" 1 "/nonexistent"
run train --data ck/last.safetensors --epochs 1
expect "a checkpoint is not features" 1 "no features (a checkpoint?"
check "nothing written by the refusals" [ ! -e h.safetensors ] && [ ! -e h.csv ]
finish

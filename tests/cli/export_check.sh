# loom export's files pass ONNX's own checker (python3-onnx,
# onnx.checker.check_model with full_check, which also infers every shape),
# for each zoo model, and for an imported PyTorch model with pad, arith and
# reshape layers (tests/data/onnx/cnn_shape.onnx).
. "$(dirname "$0")/lib.sh"
/usr/bin/python3 -c "import onnx" 2>/dev/null || skip "python3-onnx is not installed (scripts/deps.sh installs it)"
run export lenet5 --input 1x28x28 --classes 10 --out z.onnx
case "$err" in *"built without ONNX"*) skip "loom was built without ONNX support (LOOM_ONNX=OFF)" ;; esac
for m in lenet5:1x28x28 mlp:1x28x28 minivgg:3x32x32 shallownet:3x32x32 alexnet:3x64x64 vgg11:3x32x32 resnet:3x32x32 \
         resnet20:3x32x32 inception:3x32x32; do
    n=${m%%:*}
    run export "$n" --input "${m##*:}" --classes 6 --out "$n.onnx"
    expect "$n exports" 0 "$n.onnx"
    r=$(/usr/bin/python3 -c "import onnx; onnx.checker.check_model(onnx.load('$n.onnx'), full_check=True); print('ok')" 2>&1)
    check "$n passes onnx.checker (full): $r" [ "$r" = ok ]
done
run export "$(cd "$(dirname "$0")/../data/onnx" && pwd)/cnn_shape.onnx" --out re.onnx
expect "an imported model exports again" 0 "re.onnx"
r=$(/usr/bin/python3 -c "import onnx; onnx.checker.check_model(onnx.load('re.onnx'), full_check=True); print('ok')" 2>&1)
check "it passes onnx.checker (full): $r" [ "$r" = ok ]
finish

#!/usr/bin/python3
"""Check an ONNX model loom exported against PyTorch's own layers: every
node of the file is computed with torch.nn.functional from the file's
initializers (no loom code involved), on a raw float32 input, and the result
is compared with loom's output for the same input (loom run). Needs Debian's
python3-torch and python3-onnx:

    loom export ckpt.safetensors --out m.onnx
    loom run m.onnx --input x.f32 --output y.f32
    /usr/bin/python3 tools/check_onnx_torch.py m.onnx x.f32 y.f32

Prints the largest absolute difference and exits 1 above --tol (1e-4).
"""
import argparse
import sys

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def run(model, x):
    env = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in model.graph.initializer}
    env[model.graph.input[0].name] = x
    for n in model.graph.node:
        a, i = attrs(n), [env[k] if k else None for k in n.input]
        op = n.op_type
        if op == "Conv":
            p = a.get("pads", [0, 0, 0, 0])
            assert p[0] == p[2] and p[1] == p[3]
            y = F.conv2d(i[0], i[1], i[2] if len(i) > 2 else None, tuple(a.get("strides", [1, 1])), (p[0], p[1]),
                         tuple(a.get("dilations", [1, 1])), a.get("group", 1))
        elif op == "Gemm":
            assert a.get("transB", 0) == 1 and a.get("alpha", 1.0) == 1.0 and a.get("beta", 1.0) == 1.0
            y = F.linear(i[0], i[1], i[2])
        elif op in ("MaxPool", "AveragePool"):
            p = a.get("pads", [0, 0, 0, 0])
            k, s = tuple(a["kernel_shape"]), tuple(a.get("strides", [1, 1]))
            ceil = bool(a.get("ceil_mode", 0))
            y = (F.max_pool2d(i[0], k, s, (p[0], p[1]), ceil_mode=ceil) if op == "MaxPool" else
                 F.avg_pool2d(i[0], k, s, (p[0], p[1]), ceil_mode=ceil,
                              count_include_pad=bool(a.get("count_include_pad", 0))))
        elif op == "GlobalAveragePool":
            y = i[0].mean(dim=(2, 3), keepdim=True)
        elif op == "Flatten":
            y = torch.flatten(i[0], a.get("axis", 1))
        elif op == "Relu":
            y = F.relu(i[0])
        elif op == "LeakyRelu":
            y = F.leaky_relu(i[0], a.get("alpha", 0.01))
        elif op == "Sigmoid":
            y = torch.sigmoid(i[0])
        elif op == "Tanh":
            y = torch.tanh(i[0])
        elif op == "Softmax":
            y = F.softmax(i[0], a.get("axis", -1))
        elif op == "LogSoftmax":
            y = F.log_softmax(i[0], a.get("axis", -1))
        elif op == "Dropout":
            y = i[0]
        elif op == "BatchNormalization":
            y = F.batch_norm(i[0], i[3], i[4], i[1], i[2], False, 0.0, a.get("epsilon", 1e-5))
        elif op == "Add":
            y = i[0] + i[1]
        elif op == "Sub":
            y = i[0] - i[1]
        elif op == "Mul":
            y = i[0] * i[1]
        elif op == "Div":
            y = i[0] / i[1]
        elif op == "Reshape":  # 0 copies the input's dimension, -1 is inferred
            y = i[0].reshape([i[0].shape[k] if v == 0 else int(v) for k, v in enumerate(i[1].tolist())])
        elif op == "Pad":  # [x1_begin, x2_begin, ..., x1_end, ...] as ONNX, constant
            pads, r = i[1].tolist(), i[0].dim()
            value = float(i[2]) if len(i) > 2 and i[2] is not None else 0.0
            tp = []
            for d in reversed(range(r)):
                tp += [pads[d], pads[d + r]]
            y = F.pad(i[0], tp, value=value)
        elif op == "Concat":
            y = torch.cat(i, a.get("axis", 1))
        elif op == "Clip":
            y = torch.clamp(i[0], float(i[1]), float(i[2]))
        elif op == "Identity":
            y = i[0]
        else:
            raise SystemExit(f"{n.name}: {op} is not one loom exports")
        env[n.output[0]] = y
    return env[model.graph.output[0].name]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model")
    ap.add_argument("input")
    ap.add_argument("loom_output")
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    m = onnx.load(a.model)
    dims = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim[1:]]
    x = torch.from_numpy(np.fromfile(a.input, "<f4").reshape([-1] + dims))
    with torch.no_grad():
        y = run(m, x).numpy().reshape(-1)
    ref = np.fromfile(a.loom_output, "<f4")
    if ref.size != y.size:
        raise SystemExit(f"loom's output has {ref.size} values, PyTorch's {y.size}")
    d = float(np.abs(ref - y).max())
    print(f"{a.model}: {len(m.graph.node)} nodes through torch.nn.functional: max abs difference from loom {d:.3g}")
    sys.exit(0 if d <= a.tol else 1)


if __name__ == "__main__":
    main()

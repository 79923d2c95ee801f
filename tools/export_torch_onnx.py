#!/usr/bin/python3
"""PyTorch models exported to ONNX with reference inputs and outputs, for
loom's ONNX import tests (tests/test_onnx.c, tests/cli/onnx.sh). Needs Debian's
python3-torch, python3-torchvision and python3-onnx:

    /usr/bin/python3 tools/export_torch_onnx.py OUTDIR [--large]

For each model NAME it writes OUTDIR/NAME.onnx (opset 13, batch dimension
dynamic), OUTDIR/NAME.in.f32 (a batch of 2 inputs) and OUTDIR/NAME.out.f32
(PyTorch's eval-mode outputs for them), raw little-endian float32.

    lenet5       loom's zoo LeNet-5 written in torch.nn, 1x28x28, 10 classes
    cnn_bn       conv-BN-ReLU x 2 with max and average pools, dropout, 3x32x32
    cnn_ops      input normalisation (Sub, Div), ReLU6 and Hardtanh (Clip), LogSoftmax,
                 3x16x16
    cnn_shape    what PyTorch writes as shape arithmetic and element-wise products: a
                 ZeroPad2d (asymmetric), a squeeze-and-excitation gate (a mean over H and
                 W, x * gate.view(n, -1, 1, 1)), a difference and a quotient of two
                 activations, a max pool after a pad by -1, an average pool in ceil_mode
                 counting its padding, x.view(x.size(0), -1); 3x16x16
    cnn_v7       opset 7 and no dynamic axes (a fixed batch of 2), as older code exports: shape
                 constants as float64, x.view(x.size(0), -1) with the batch fixed, an average
                 pool in ceil_mode written as uneven padding; 3x16x16
    pad_conv     a zero Pad (pads an initializer, opset 13) before a Conv, written with
                 onnx.helper (PyTorch exports ZeroPad2d as a shape computation), its
                 reference from torch.nn.functional.pad + conv2d, 2x7x7
    resnet18_150 torchvision resnet18 at 3x150x150, 1000 classes   (--large)
    resnet18_224 torchvision resnet18 at 3x224x224, 1000 classes   (--large)

Weights are PyTorch's initialisation from a fixed seed (this machine has no
internet for pretrained downloads); batch-norm running statistics are set
away from 0 and 1 so that folding them is tested. The small ones are
committed in tests/data/onnx; the large ones (45 MB each) are not, and the
tests that need them say so when they are absent.
"""
import argparse
import os
import sys

import numpy as np
import torch
import torch.nn as nn


def lenet5(classes=10):
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, 1, 2), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, classes))


def cnn_bn(classes=6):
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2, 2),
        nn.Conv2d(16, 32, 3, 2, 1), nn.BatchNorm2d(32), nn.ReLU(), nn.AvgPool2d(3, 2, 1, count_include_pad=False),
        nn.Dropout(0.3), nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.BatchNorm1d(64), nn.LeakyReLU(0.1),
        nn.Linear(64, classes))


class Normalize(nn.Module):
    """(x - mean) / std per channel, as torchvision's transforms do, inside the model."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def cnn_ops(classes=5):
    return nn.Sequential(
        Normalize(), nn.Conv2d(3, 8, 3, padding=1), nn.ReLU6(), nn.MaxPool2d(2, 2),
        nn.Conv2d(8, 8, 3, padding=1), nn.Hardtanh(-0.5, 0.5), nn.Flatten(), nn.Linear(8 * 8 * 8, classes),
        nn.LogSoftmax(dim=1))


class ShapeOps(nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.pad = nn.ZeroPad2d((1, 2, 0, 1))
        self.conv = nn.Conv2d(3, 8, 3)
        self.fc1, self.fc2 = nn.Linear(8, 4), nn.Linear(4, 8)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.pool = nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=True)
        self.fc = nn.Linear(8 * 5 * 5, classes)

    def forward(self, x):
        f = nn.functional
        y = torch.relu(self.conv(self.pad(x)))                       # 8x15x17
        g = torch.sigmoid(self.fc2(torch.relu(self.fc1(y.mean((2, 3))))))
        y = y * g.view(g.size(0), -1, 1, 1)
        z = torch.sigmoid(self.conv2(y)) + 0.5
        y = (y - z) / z
        y = f.max_pool2d(f.pad(y, (0, 1, 1, 0), value=-1.0), 2)      # 8x8x9
        y = self.pool(y)                                              # 8x5x5, the last windows past the padding
        return self.fc(y.view(y.size(0), -1))


def cnn_shape():
    return ShapeOps()


class OldExport(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3)
        self.pool = nn.AvgPool2d(3, 2, ceil_mode=True)
        self.fc = nn.Linear(6 * 7 * 7, classes)

    def forward(self, x):
        y = self.pool(torch.relu(self.conv(x)))                     # 14x14 -> 7x7 (ceil; floor: 6x6)
        return self.fc(y.view(y.size(0), -1))


def cnn_v7():
    return OldExport()


def resnet18():
    import torchvision
    return torchvision.models.resnet18(weights=None)


MODELS = {
    "lenet5": (lenet5, (1, 28, 28), False),
    "cnn_bn": (cnn_bn, (3, 32, 32), False),
    "cnn_ops": (cnn_ops, (3, 16, 16), False),
    "cnn_shape": (cnn_shape, (3, 16, 16), False),
    "cnn_v7": (cnn_v7, (3, 16, 16), False),
    "resnet18_150": (resnet18, (3, 150, 150), True),
    "resnet18_224": (resnet18, (3, 224, 224), True),
}


def pad_conv(outdir):
    """Pad (top 1, left 2, bottom 1, right 0) -> Conv 3@3x3 with pads (0, 0, 0, 2): symmetric together."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    g = torch.Generator().manual_seed(5)
    w = torch.rand((3, 2, 3, 3), generator=g) - 0.5
    b = torch.rand(3, generator=g) - 0.5
    x = torch.rand((2, 2, 7, 7), generator=g)
    y = torch.nn.functional.conv2d(torch.nn.functional.pad(x, (2, 2, 1, 1)), w, b)  # the Pad, and the Conv's right 2
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], name="pad", mode="constant"),
             helper.make_node("Conv", ["p", "w", "b"], ["c"], name="conv", pads=[0, 0, 0, 2]),
             helper.make_node("Flatten", ["c"], ["y"], name="flatten")]
    inits = [numpy_helper.from_array(np.array([0, 0, 1, 2, 0, 0, 1, 0], np.int64), "pads"),
             numpy_helper.from_array(w.numpy(), "w"), numpy_helper.from_array(b.numpy(), "b")]
    graph = helper.make_graph(nodes, "pad_conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 7, 7])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", int(y[0].numel())])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="loom tests")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    path = os.path.join(outdir, "pad_conv.onnx")
    onnx.save(m, path)
    x.numpy().astype("<f4").tofile(os.path.join(outdir, "pad_conv.in.f32"))
    y.reshape(2, -1).numpy().astype("<f4").tofile(os.path.join(outdir, "pad_conv.out.f32"))
    print(f"{path}: input {list(x.shape)}, output {list(y.shape)}", file=sys.stderr)


def export(name, outdir):
    build, shape, _ = MODELS[name]
    torch.manual_seed(1234)
    model = build()
    g = torch.Generator().manual_seed(99)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.2 - 0.1)
    model.eval()
    x = torch.rand((2,) + shape, generator=g)
    with torch.no_grad():
        y = model(x)
    path = os.path.join(outdir, name + ".onnx")
    old = name == "cnn_v7"
    torch.onnx.export(model, x, path, opset_version=7 if old else 13, input_names=["input"], output_names=["output"],
                      dynamic_axes=None if old else {"input": {0: "batch"}, "output": {0: "batch"}},
                      do_constant_folding=True)
    x.numpy().astype("<f4").tofile(os.path.join(outdir, name + ".in.f32"))
    y.numpy().astype("<f4").tofile(os.path.join(outdir, name + ".out.f32"))
    import onnx
    onnx.checker.check_model(onnx.load(path), full_check=True)
    print(f"{path}: input {list(x.shape)}, output {list(y.shape)}, {os.path.getsize(path)} bytes", file=sys.stderr)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--large", action="store_true", help="also the resnet18 models (45 MB each)")
    ap.add_argument("--only", nargs="*", help="these models only")
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    if not a.only or "pad_conv" in a.only:
        pad_conv(a.outdir)
    for name, (_, _, large) in MODELS.items():
        if a.only and name not in a.only:
            continue
        if large and not a.large and not a.only:
            continue
        export(name, a.outdir)


if __name__ == "__main__":
    np.random.seed(0)
    main()

#!/usr/bin/python3
"""The transfer-learning demonstration's PyTorch side (scripts/transfer_demo.sh runs it all):
train a LeNet-5 with batch norm on Fashion-MNIST classes 0-4 with PyTorch,
export it to ONNX, and write classes 5-9 as their own data set (a folder of
class folders of PNGs) for loom to fine-tune on. Needs Debian's python3-torch,
python3-onnx and dataset-fashion-mnist:

    /usr/bin/python3 tools/pretrain_fashion_torch.py OUTDIR [--epochs 2]

writes OUTDIR/pretrained_0to4.onnx, OUTDIR/scratch.onnx (the same network
untrained, PyTorch's initialisation) and OUTDIR/fashion5to9/{train,test}/<class>/*.png
(a folder of class folders, Pillow; 30,000 + 5,000 images).
"""
import argparse
import gzip
import os
import struct
import sys

import numpy as np
import torch
import torch.nn as nn

FASHION = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = struct.unpack(">" + "I" * dims, data[4:4 + 4 * dims])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * dims).reshape(shape)


def model():
    return nn.Sequential(
        nn.Conv2d(1, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 5), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 5))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("outdir")
    ap.add_argument("--epochs", type=int, default=2)
    a = ap.parse_args()
    from PIL import Image
    x = read_idx(os.path.join(FASHION, "train-images-idx3-ubyte.gz"))
    y = read_idx(os.path.join(FASHION, "train-labels-idx1-ubyte.gz"))
    xt = read_idx(os.path.join(FASHION, "t10k-images-idx3-ubyte.gz"))
    yt = read_idx(os.path.join(FASHION, "t10k-labels-idx1-ubyte.gz"))
    names = ["sandal", "shirt", "sneaker", "bag", "ankle_boot"]
    for split, xs, ys in (("train", x, y), ("test", xt, yt)):
        for k, name in enumerate(names):
            d = os.path.join(a.outdir, "fashion5to9", split, name)
            os.makedirs(d, exist_ok=True)
            for i in np.nonzero(ys == k + 5)[0]:
                Image.fromarray(xs[i]).save(os.path.join(d, f"{i:05d}.png"))
    keep = y < 5
    X = torch.tensor(x[keep], dtype=torch.float32).unsqueeze(1) / 255.0
    Y = torch.tensor(y[keep], dtype=torch.long)
    torch.manual_seed(1)
    m = model()
    # the same architecture untrained, for the from-scratch comparison
    torch.onnx.export(model().eval(), torch.zeros(2, 1, 28, 28), os.path.join(a.outdir, "scratch.onnx"), opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    opt = torch.optim.SGD(m.parameters(), lr=0.05, momentum=0.9)
    for ep in range(a.epochs):
        perm = torch.randperm(len(X))
        m.train()
        for i in range(0, len(X), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(m(X[idx]), Y[idx])
            loss.backward()
            opt.step()
        m.eval()
        keept = yt < 5
        with torch.no_grad():
            out = m(torch.tensor(xt[keept], dtype=torch.float32).unsqueeze(1) / 255.0)
        acc = (out.argmax(1).numpy() == yt[keept]).mean()
        print(f"PyTorch epoch {ep + 1}: test accuracy on classes 0-4 {100 * acc:.2f}%", file=sys.stderr)
    path = os.path.join(a.outdir, "pretrained_0to4.onnx")
    torch.onnx.export(m, X[:2], path, opset_version=13, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
                      training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False)
    print(f"{path}; classes 5-9 in {os.path.join(a.outdir, 'fashion5to9')}", file=sys.stderr)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""The PyTorch side of bench/vs_torch.py: ../shared/bench/torch_bench.py (the
team's reference script, imported from where it lives, not copied), with one
model added that it does not define: R, loom's zoo "resnet" (a CIFAR-style
ResNet-14: 3x3 stem of 16, stages of 16/32/64 with two basic blocks each, the
first block of stages 2 and 3 strided with a 1x1 conv + BN projection, global
average pool, linear), at 3x64x64, 6 classes, batch 64.

    OPENBLAS_NUM_THREADS=1 /usr/bin/python3 bench/torch_side.py --models R --threads 1 [--channels-last]

Arguments are torch_bench.py's. LOOM_SHARED points at the shared folder
(default: ../shared beside the repository).
"""
import os
import sys

here = os.path.dirname(os.path.abspath(__file__))
shared = os.environ.get("LOOM_SHARED", os.path.join(here, "..", "..", "shared"))
sys.path.insert(0, os.path.join(shared, "bench"))

import torch.nn as nn  # noqa: E402

import torch_bench  # noqa: E402


def conv_bn(cin, cout, k, stride, pad):
    return [nn.Conv2d(cin, cout, k, stride, pad, bias=False), nn.BatchNorm2d(cout)]


class Block(nn.Module):
    """Basic block as models/zoo.c builds it: conv-BN-ReLU, conv-BN, plus the
    identity or (when strided) a 1x1 conv-BN projection, then ReLU."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(cin, cout, 3, stride, 1), nn.ReLU(inplace=True), *conv_bn(cout, cout, 3, 1, 1))
        self.short = nn.Identity() if stride == 1 else nn.Sequential(*conv_bn(cin, cout, 1, stride, 0))

    def forward(self, x):
        return (self.body(x) + self.short(x)).relu_()


def loom_resnet(classes=6, blocks=2):
    layers = [*conv_bn(3, 16, 3, 1, 1), nn.ReLU(inplace=True)]  # stride 1 below 96 px, as stem_stride()
    cin = 16
    for s, width in enumerate((16, 32, 64)):
        for b in range(blocks):
            layers.append(Block(cin, width, 2 if s > 0 and b == 0 else 1))
            cin = width
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, classes)]
    return nn.Sequential(*layers)


torch_bench.MODELS["R"] = (loom_resnet, (3, 64, 64), 6, 64)
torch_bench.DESC["R"] = "ResNet-14 (loom zoo resnet) 3x64x64"
torch_bench.DEFAULT_STEPS["R"] = (30, 3)
torch_bench.DEFAULT_INFER_STEPS["R"] = (50, 3)

if __name__ == "__main__":
    torch_bench.main()

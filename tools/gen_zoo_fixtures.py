#!/usr/bin/python3
"""Generate tests/data/zoo_fixtures.txt: the zoo's architectures written
independently in torch.nn, and for each (model, input, classes) case the
numbers loom's models/zoo.c must reproduce. Run once with Debian's torch
(apt-get install python3-torch):

    /usr/bin/python3 tools/gen_zoo_fixtures.py > tests/data/zoo_fixtures.txt

One line per case:
    MODEL C H W CLASSES PARAMS BN_STATS OUT CONVS DENSES MACS
PARAMS counts trainable parameters, BN_STATS the running mean and variance
values of every BatchNorm (num_batches_tracked is not counted), OUT the
per-sample output size, CONVS/DENSES the number of Conv2d/Linear layers and
MACS their forward multiply-adds for one sample, taken from the output shapes
torch actually produced (forward hooks). loom's conv+dense FLOPs are 2*MACS."""
import warnings

import torch
import torch.nn as nn


class PoolIfFits(nn.Module):
    """Max pool that is an identity when the window no longer fits the map,
    decided from the tensor torch delivers rather than from shape arithmetic."""

    def __init__(self, k, s):
        super().__init__()
        self.pool = nn.MaxPool2d(k, s)
        self.k = k

    def forward(self, x):
        if x.shape[-2] < self.k or x.shape[-1] < self.k:
            return x
        return self.pool(x)


def cbr(cin, cout, k, stride=1, pad=0, relu=True):
    layers = [nn.Conv2d(cin, cout, k, stride, pad, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU())
    return layers


def stem_stride(h, w):
    return 2 if min(h, w) >= 96 else 1


def lenet5(c, h, w, k):
    return nn.Sequential(
        nn.Conv2d(c, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.LazyLinear(120), nn.ReLU(),
        nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, k))


def mlp(c, h, w, k):
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 256), nn.ReLU(),
                         nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, k))


def logreg(c, h, w, k):
    return nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, k))


def minivgg(c, h, w, k):
    def two(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                nn.MaxPool2d(2), nn.Dropout(0.25)]
    return nn.Sequential(*two(c, 32), *two(32, 64), nn.Flatten(),
                         nn.LazyLinear(512), nn.BatchNorm1d(512), nn.ReLU(), nn.Dropout(0.5),
                         nn.Linear(512, k))


def shallownet(c, h, w, k):
    return nn.Sequential(nn.Conv2d(c, 32, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(32 * h * w, k))


def alexnet(c, h, w, k):
    return nn.Sequential(
        nn.Conv2d(c, 64, 5, 2, 2), nn.ReLU(), PoolIfFits(3, 2),
        nn.Conv2d(64, 192, 5, 1, 2), nn.ReLU(), PoolIfFits(3, 2),
        nn.Conv2d(192, 384, 3, 1, 1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, 1, 1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, 1, 1), nn.ReLU(), PoolIfFits(3, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Dropout(0.5), nn.Linear(256, 1024), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(1024, 1024), nn.ReLU(),
        nn.Linear(1024, k))


VGG = {
    "vgg": ([64, 64, "M", 128, 128, "M", 256, 256, "M"], 0),
    "vgg11": ([64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"], 4096),
    "vgg13": ([64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"], 4096),
    "vgg16": ([64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
               512, 512, 512, "M"], 4096),
}


def vgg(name):
    cfg, fc = VGG[name]
    div = 1 if name == "vgg" else 4  # the vggNN are the paper's tables at 1/4 width

    def build(c, h, w, k):
        layers, cin = [], c
        for v in cfg:
            if v == "M":
                layers.append(PoolIfFits(2, 2))
            else:
                layers += cbr(cin, v // div, 3, 1, 1)
                cin = v // div
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if fc:
            f = fc // div
            layers += [nn.Linear(cin, f), nn.ReLU(), nn.Dropout(0.5),
                       nn.Linear(f, f), nn.ReLU(), nn.Dropout(0.5)]
            cin = f
        layers.append(nn.Linear(cin, k))
        return nn.Sequential(*layers)
    return build


class Basic(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.body = nn.Sequential(*cbr(cin, cout, 3, stride, 1), *cbr(cout, cout, 3, 1, 1, relu=False))
        self.short = nn.Identity() if stride == 1 and cin == cout else \
            nn.Sequential(*cbr(cin, cout, 1, stride, 0, relu=False))

    def forward(self, x):
        return torch.relu(self.body(x) + self.short(x))


def resnet(n):
    def build(c, h, w, k):
        layers = cbr(c, 16, 3, stem_stride(h, w), 1)
        cin = 16
        for i, cout in enumerate([16, 32, 64]):
            for b in range(n):
                layers.append(Basic(cin, cout, 2 if i > 0 and b == 0 else 1))
                cin = cout
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, k)]
        return nn.Sequential(*layers)
    return build


class Inception(nn.Module):
    def __init__(self, cin, n1, r3, n3, r5, n5, pp):
        super().__init__()
        self.b1 = nn.Sequential(*cbr(cin, n1, 1))
        self.b3 = nn.Sequential(*cbr(cin, r3, 1), *cbr(r3, n3, 3, 1, 1))
        self.b5 = nn.Sequential(*cbr(cin, r5, 1), *cbr(r5, n5, 5, 1, 2))
        self.bp = nn.Sequential(nn.MaxPool2d(3, 1, 1), *cbr(cin, pp, 1))
        self.out = n1 + n3 + n5 + pp

    def forward(self, x):
        return torch.cat([self.b1(x), self.b3(x), self.b5(x), self.bp(x)], 1)


def inception(c, h, w, k):
    # GoogLeNet table 1, modules 3a, 3b, 4a, every width divided by 4
    a = Inception(48, 64 // 4, 96 // 4, 128 // 4, 16 // 4, 32 // 4, 32 // 4)
    b = Inception(a.out, 128 // 4, 128 // 4, 192 // 4, 32 // 4, 96 // 4, 64 // 4)
    d = Inception(b.out, 192 // 4, 96 // 4, 208 // 4, 16 // 4, 48 // 4, 64 // 4)
    return nn.Sequential(*cbr(c, 48, 3, stem_stride(h, w), 1), PoolIfFits(2, 2),
                         a, PoolIfFits(2, 2), b, PoolIfFits(2, 2), d,
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.4),
                         nn.Linear(d.out, k))


MODELS = {
    "lenet5": lenet5, "mlp": mlp, "logreg": logreg, "minivgg": minivgg, "shallownet": shallownet,
    "alexnet": alexnet, "vgg": vgg("vgg"), "vgg11": vgg("vgg11"), "vgg13": vgg("vgg13"),
    "vgg16": vgg("vgg16"), "resnet": resnet(2), "resnet20": resnet(3), "inception": inception,
}

CASES = [
    ("lenet5", (1, 28, 28), 10), ("mlp", (1, 28, 28), 10), ("logreg", (84, 1, 1), 5), ("logreg", (1, 28, 28), 10),
    ("minivgg", (3, 64, 64), 6), ("minivgg", (1, 28, 28), 10), ("minivgg", (3, 150, 150), 6),
    ("shallownet", (3, 32, 32), 10), ("shallownet", (1, 28, 28), 10),
    ("alexnet", (3, 150, 150), 6), ("alexnet", (3, 64, 64), 10), ("alexnet", (1, 28, 28), 10),
    ("vgg", (3, 32, 32), 10), ("vgg", (3, 150, 150), 6),
    ("vgg11", (3, 64, 64), 6), ("vgg11", (1, 28, 28), 10), ("vgg13", (3, 32, 32), 10),
    ("vgg16", (3, 64, 64), 6), ("vgg16", (3, 150, 150), 6),
    ("resnet", (3, 32, 32), 10), ("resnet", (3, 150, 150), 6), ("resnet", (1, 28, 28), 10),
    ("resnet20", (3, 32, 32), 10),
    ("inception", (3, 64, 64), 6), ("inception", (3, 150, 150), 6), ("inception", (1, 28, 28), 10),
]


def measure(name, shape, k):
    m = MODELS[name](*shape, k)
    m.eval()
    macs, convs, denses = [0], [0], [0]

    def hook(mod, inp, out):
        if isinstance(mod, nn.Conv2d):
            convs[0] += 1
            macs[0] += out[0].numel() * (mod.in_channels // mod.groups) * \
                mod.kernel_size[0] * mod.kernel_size[1]
        else:
            denses[0] += 1
            macs[0] += mod.in_features * mod.out_features

    with torch.no_grad():
        m(torch.zeros(1, *shape))  # materialises the lazy layers
        for mod in m.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.register_forward_hook(hook)
        out = m(torch.zeros(1, *shape))
    params = sum(p.numel() for p in m.parameters() if p.requires_grad)
    stats = sum(mod.running_mean.numel() + mod.running_var.numel()
                for mod in m.modules() if isinstance(mod, nn.modules.batchnorm._BatchNorm))
    return params, stats, out[0].numel(), convs[0], denses[0], macs[0]


def main():
    warnings.filterwarnings("ignore", message="Lazy modules")
    print(f"# zoo fixtures: torch {torch.__version__} (tools/gen_zoo_fixtures.py)")
    print("# model c h w classes params bn_stats out convs denses macs")
    for name, shape, k in CASES:
        r = measure(name, shape, k)
        print(name, *shape, k, *r)


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""Generate tests/data/optim_fixtures.txt: parameter trajectories of torch.optim
optimizers on a fixed quadratic, L = sum(0.5 * a * p^2 + b * p), so grad = a*p + b.
Run once with Debian's PyTorch (apt-get install python3-torch):

    /usr/bin/python3 tools/gen_optim_fixtures.py > tests/data/optim_fixtures.txt

The C test (tests/test_optim.c) replays the same steps and compares."""
import torch

N, STEPS = 9, 12
torch.manual_seed(0)
p0 = torch.linspace(-2.0, 2.0, N) + 0.1
a = torch.linspace(0.5, 3.0, N)
b = torch.linspace(0.3, -0.4, N)

CASES = [
    ("sgd", dict(lr=0.1)),
    ("sgd", dict(lr=0.05, momentum=0.9)),
    ("sgd", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("adam", dict(lr=0.1)),
    ("adam", dict(lr=0.05, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.02)),
    ("adamw", dict(lr=0.05, weight_decay=0.1)),
    ("rmsprop", dict(lr=0.01)),
    ("rmsprop", dict(lr=0.01, alpha=0.9, momentum=0.5, weight_decay=0.01)),
    ("adagrad", dict(lr=0.3)),
    ("adagrad", dict(lr=0.3, weight_decay=0.05)),
    ("nadam", dict(lr=0.05)),
    ("nadam", dict(lr=0.02, betas=(0.85, 0.99), weight_decay=0.01)),
]
CLS = dict(sgd=torch.optim.SGD, adam=torch.optim.Adam, adamw=torch.optim.AdamW,
           rmsprop=torch.optim.RMSprop, adagrad=torch.optim.Adagrad, nadam=torch.optim.NAdam)


def vec(t):
    return " ".join("%.9g" % v for v in t.tolist())


print("# torch.optim trajectories on L = sum(0.5*a*p^2 + b*p); torch %s" % torch.__version__)
print("n %d steps %d" % (N, STEPS))
print("p0 " + vec(p0))
print("a " + vec(a))
print("b " + vec(b))
for name, kw in CASES:
    p = p0.clone().requires_grad_(True)
    # NAdam: torch 1.13's single-tensor path computes mu_product_next as
    # mu_product * mu * mu_next (mu twice); its foreach path has the paper's
    # mu_product * mu_next, which is what loom implements.
    extra = dict(foreach=True) if name == "nadam" else {}
    opt = CLS[name]([p], **kw, **extra)
    betas = kw.get("betas", (0.9, 0.999))
    print("case %s lr %.9g momentum %.9g nesterov %d weight_decay %.9g beta1 %.9g beta2 %.9g eps %.9g alpha %.9g" % (
        name, kw["lr"], kw.get("momentum", 0.0), int(kw.get("nesterov", False)),
        kw.get("weight_decay", 0.0), betas[0], betas[1], kw.get("eps", 0.0), kw.get("alpha", 0.0)))
    for s in range(STEPS):
        opt.zero_grad()
        loss = (0.5 * a * p * p + b * p).sum()
        loss.backward()
        opt.step()
        print("step " + vec(p.detach()))

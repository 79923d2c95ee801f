#!/usr/bin/python3
"""PyTorch state_dicts as safetensors, for loom_load_torch_state's tests
(tests/test_onnx.c, tests/cli/torch_weights.sh): loom's zoo models written
in torch.nn (tools/gen_zoo_fixtures.py), their weights from PyTorch's own
initialisation with batch-norm statistics set away from 0 and 1, saved as
the safetensors library saves a state_dict (keys sorted, F32 tensors, the
I64 num_batches_tracked counters included; Debian has no python3-safetensors,
so the format is written here, 8-byte header length + JSON + data), with
reference inputs and eval-mode outputs:

    /usr/bin/python3 tools/export_torch_state.py tests/data/torch

writes NAME.safetensors, NAME.in.f32, NAME.out.f32 for lenet5 (1x28x28, 10
classes) and resnet (3x16x16, 6 classes: batch norms, projection shortcuts,
module paths such as 4.body.0 and 4.short.1).
"""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gen_zoo_fixtures import MODELS  # noqa: E402

CASES = {"lenet5": ((1, 28, 28), 10), "resnet": ((3, 16, 16), 6)}


def save_safetensors(state, path):
    header, blobs, off = {}, [], 0
    for k in sorted(state):
        t = state[k].detach().contiguous()
        dtype = {torch.float32: "F32", torch.int64: "I64"}[t.dtype]
        b = t.numpy().tobytes()
        header[k] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main(outdir):
    os.makedirs(outdir, exist_ok=True)
    for name, (shape, k) in CASES.items():
        torch.manual_seed(3)
        m = MODELS[name](*shape, k)
        g = torch.Generator().manual_seed(4)
        for mod in m.modules():
            if isinstance(mod, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                mod.running_mean.copy_(torch.rand(mod.num_features, generator=g) * 0.2 - 0.1)
                mod.running_var.copy_(torch.rand(mod.num_features, generator=g) * 0.5 + 0.75)
                mod.num_batches_tracked.fill_(7)
        m.eval()
        x = torch.rand((2,) + shape, generator=g)
        with torch.no_grad():
            y = m(x)
        save_safetensors(m.state_dict(), os.path.join(outdir, name + ".safetensors"))
        x.numpy().astype("<f4").tofile(os.path.join(outdir, name + ".in.f32"))
        y.numpy().astype("<f4").tofile(os.path.join(outdir, name + ".out.f32"))
        print(f"{name}: {len(m.state_dict())} tensors, output {list(y.shape)}", file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/data/torch")

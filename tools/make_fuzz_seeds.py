#!/usr/bin/python3
"""The fuzz targets' seed inputs (tests/fuzz/seeds/<target>/), small and
committed; scripts/fuzz.sh copies them into a working corpus. Needs Debian's
python3-pil (Pillow) and a built loom (for the checkpoint seed):

    /usr/bin/python3 tools/make_fuzz_seeds.py [path/to/loom]
"""
import gzip
import io
import os
import struct
import subprocess
import sys
import tempfile

from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fuzz", "seeds")


def put(target, name, data):
    d = os.path.join(ROOT, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def png(mode, size=(4, 3), **kw):
    im = Image.new(mode, size)
    for y in range(size[1]):
        for x in range(size[0]):
            v = (x * 60 + y * 30) % 256
            im.putpixel((x, y), v if mode in ("L", "P") else (v * 256 + 7 if mode == "I;16" else
                                                               tuple((v + k * 50) % 256 for k in range(len(mode)))))
    b = io.BytesIO()
    im.save(b, format="PNG" if "jpeg" not in kw else "JPEG")
    return b.getvalue()


def jpeg(mode, size=(5, 4)):
    im = Image.new(mode, size, (90, 140, 200) if mode == "RGB" else 120)
    b = io.BytesIO()
    im.save(b, format="JPEG", quality=80)
    return b.getvalue()


def main():
    loom = sys.argv[1] if len(sys.argv) > 1 else "build/loom"
    idx = struct.pack(">I", 0x0803) + struct.pack(">III", 2, 4, 4) + bytes(range(32))
    lab = struct.pack(">I", 0x0801) + struct.pack(">I", 2) + bytes([1, 3])
    put("idx", "images", b"\0" + idx)
    put("idx", "images_gz", b"\1" + gzip.compress(idx))
    put("idx", "labels", b"\0" + lab)
    put("csv", "train", b"\0label,pixel0,pixel1,pixel2,pixel3\n1,0,255,3,4\n0,9,8,7,6\n")
    put("csv", "test", b"\1pixel0,pixel1,pixel2,pixel3\n0,255,3,4\n")
    put("image", "rgb_png", b"\3" + png("RGB"))
    put("image", "gray_png", b"\1" + png("L"))
    put("image", "rgba_png", b"\2" + png("RGBA"))
    put("image", "rgb_jpeg", b"\3" + jpeg("RGB"))
    put("image", "gray_jpeg", b"\4" + jpeg("L"))
    put("cifar", "batch", bytes([3]) + bytes((i * 7) % 256 for i in range(3072)))
    put("augment", "full", b"flip-h,rotate=15,brightness=0.2,contrast=0.2,crop=4,normalize=0.5/0.25")
    put("augment", "some", b"flip-v,rotate=5")
    put("cli", "train", b"--data\0x.csv\0--epochs\0003\0--quiet\0file")
    put("cli", "eq", b"--skip-bad=5%\0--lr=0.1\0--threads\0001,2\0a\0b")
    rec = b""
    for k, data in enumerate([png("RGB"), png("L"), jpeg("RGB")]):
        rec += bytes([k | (0x80 if k == 2 else 0)]) + struct.pack("<H", len(data)) + data
    put("folder", "three", rec)
    for f in ("bad/ok.onnx", "pad_conv.onnx", "cnn_v7.onnx"):
        with open(os.path.join(ROOT, "..", "..", "data", "onnx", f), "rb") as src:
            put("onnx", os.path.basename(f), src.read())
    # a training checkpoint of a tiny model: loom train (logistic regression) on 30 rows of 4x4 pixels
    with tempfile.TemporaryDirectory() as t:
        rows = "label," + ",".join(f"pixel{i}" for i in range(16)) + "\n"
        rows += "".join(f"{i % 3}," + ",".join(str((i * j) % 256) for j in range(16)) + "\n" for i in range(30))
        with open(os.path.join(t, "train.csv"), "w") as f:
            f.write(rows)
        subprocess.run([loom, "train", "--data", os.path.join(t, "train.csv"), "--model", "logreg", "--epochs", "1",
                        "--batch", "8", "--val-split", "0", "--checkpoint", os.path.join(t, "ck"), "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(t, "ck", "last.safetensors"), "rb") as f:
            put("checkpoint", "logreg_train", f.read())
    for d in sorted(os.listdir(ROOT)):
        print(d, sum(os.path.getsize(os.path.join(ROOT, d, f)) for f in os.listdir(os.path.join(ROOT, d))), "bytes")


if __name__ == "__main__":
    main()

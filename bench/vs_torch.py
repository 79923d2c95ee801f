#!/usr/bin/python3
"""loom against PyTorch on this machine, in one run: training and inference
images/s per thread count and peak resident memory, for

    A  LeNet-5 1x28x28, 10 classes, batch 64
    B  MiniVGG 3x64x64, 6 classes, batch 64
    C  MiniVGG 3x150x150, 6 classes, batch 32
    R  ResNet-14 (the zoo's resnet) 3x64x64, 6 classes, batch 64

Every measurement is its own process (so its peak RSS is its own): loom
(`build/loom bench`), PyTorch in NCHW and PyTorch in channels_last
(bench/torch_side.py, i.e. ../shared/bench/torch_bench.py, with
OPENBLAS_NUM_THREADS=1). For each model loom runs at every thread count back
to back (its speedup is the ratio of two of these runs, and this machine's
speed drifts over minutes), then PyTorch in both layouts at every thread
count; the comparison takes PyTorch's better layout. With --rounds N the
whole set runs N times and each figure is the median. One core's FMA peak
(bench/fma_peak.c) is measured in the same run, and MiniVGG-150's training
GFLOP/s is given against it.

A run with fewer threads than the machine has cores is pinned, both sides
alike, to the cores from --cpu on (default 0; --cpu none leaves them to the
scheduler): the two vCPUs of the machine these figures come from differ
(ResNet-14 on the second one ran ~15% slower, the same FMA peak), and an
unpinned 1-thread run lands on either.

    /usr/bin/python3 bench/vs_torch.py [--models A B C R] [--threads 1 2] [--rounds 1] [--cpu 0|1|none]

Needs build/loom (scripts/demo.sh builds it) and a C compiler; installs
python3-torch through scripts/deps.sh when it is missing.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
LOOM = os.path.join(ROOT, "build", "loom")

# model: loom zoo name, input, classes, batch, train steps, warm-up, inference batches (torch_bench's counts)
SPEC = {
    "A": ("lenet5", "1x28x28", 10, 64, 200, 20, 500),
    "B": ("minivgg", "3x64x64", 6, 64, 30, 3, 50),
    "C": ("minivgg", "3x150x150", 6, 32, 10, 2, 15),
    "R": ("resnet", "3x64x64", 6, 64, 30, 3, 50),
}
NAME = {"A": "LeNet-5 1x28x28 b64", "B": "MiniVGG 3x64x64 b64", "C": "MiniVGG 3x150x150 b32",
        "R": "ResNet-14 3x64x64 b64"}


def run_rss(cmd, env=None, cpus=None):
    """Runs cmd (its stderr to /tmp/vs_torch.err; on the CPUs in cpus when given) and returns (stdout, its own
    peak RSS in MB, from wait4)."""
    e = dict(os.environ)
    e.update(env or {})
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 1)
        errf = os.open("/tmp/vs_torch.err", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(errf, 2)
        try:
            if cpus:
                os.sched_setaffinity(0, cpus)
            os.execvpe(cmd[0], cmd, e)
        finally:
            os._exit(127)
    os.close(w)
    chunks = []
    while True:
        b = os.read(r, 65536)
        if not b:
            break
        chunks.append(b)
    os.close(r)
    _, status, ru = os.wait4(pid, 0)
    out = b"".join(chunks).decode()
    if os.waitstatus_to_exitcode(status) != 0:
        err = open("/tmp/vs_torch.err").read()[-2000:]
        sys.exit(f"{' '.join(cmd)} failed ({os.waitstatus_to_exitcode(status)}):\n{err}")
    return out, ru.ru_maxrss / 1024.0


def fma_peak(cpus):
    exe = os.path.join(ROOT, "build", "fma_peak")
    src = os.path.join(HERE, "fma_peak.c")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        subprocess.run([os.environ.get("CC", "cc"), "-O2", "-o", exe, src], check=True)
    out = run_rss([exe, "1"], cpus=cpus)[0]
    return float(re.search(r"fma peak: ([\d.]+)", out).group(1)), out.strip()


def loom_once(m, threads, cpus):
    name, inp, classes, batch, steps, warm, isteps = SPEC[m]
    out, rss = run_rss([LOOM, "bench", "--model", name, "--input", inp, "--classes", str(classes), "--batch",
                        str(batch), "--threads", str(threads), "--steps", str(steps), "--warmup", str(warm),
                        "--infer-steps", str(isteps), "--csv"], cpus=cpus)
    row = [l for l in out.splitlines() if re.match(r"^\d+,", l)][0].split(",")
    return {"train": float(row[1]), "infer": float(row[10]), "rss": rss, "step_ms": float(row[4]),
            "fwd_ms": float(row[5]), "bwd_ms": float(row[6]), "reduce_ms": float(row[7]), "idle_ms": float(row[9])}


def torch_once(m, threads, channels_last, cpus):
    cmd = ["/usr/bin/python3", os.path.join(HERE, "torch_side.py"), "--models", m, "--threads", str(threads)]
    if channels_last:
        cmd.append("--channels-last")
    out, rss = run_rss(cmd, {"OPENBLAS_NUM_THREADS": "1"}, cpus)
    r = {"rss": rss}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0] == m and f[2] == str(threads):
            if f[1] == "train-random":
                r["train"] = float(f[3])
            elif f[1] == "infer-b64":
                r["infer"] = float(f[3])
        mm = re.search(r"train \(fwd\+dW\+dX\) ([\d.]+) MFLOP/img", line)
        if mm:
            r["mflop"] = float(mm.group(1))
    return r


def med(rows, key):
    return statistics.median(r[key] for r in rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["A", "B", "C", "R"], choices=sorted(SPEC))
    ap.add_argument("--threads", nargs="+", type=int, default=[1, 2])
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--cpu", default="0", help="first core of the runs with fewer threads than cores, both sides "
                    "(none: unpinned)")
    args = ap.parse_args()
    have = sorted(os.sched_getaffinity(0))
    if args.cpu != "none" and (not args.cpu.isdigit() or int(args.cpu) not in have):
        sys.exit(f"--cpu {args.cpu}: not one of this process's cores {have} (or none)")

    def cpus_for(t):
        if args.cpu == "none" or t >= len(have):
            return None
        first = have.index(int(args.cpu))
        return set((have * 2)[first:first + t])
    if not os.access(LOOM, os.X_OK):
        sys.exit(f"{LOOM} missing: run scripts/demo.sh --epochs 1 (or cmake --build build) first")
    # PyTorch before loom's first run, not after it: scripts/deps.sh installs only what is missing
    if subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode != 0:
        if subprocess.run([os.path.join(ROOT, "scripts", "deps.sh"), "python3-torch"]).returncode != 0:
            sys.exit("python3-torch is missing and scripts/deps.sh python3-torch could not install it")
    t_start = time.time()
    peak, peak_text = fma_peak(cpus_for(1))
    pin = "unpinned" if args.cpu == "none" else f"runs on fewer cores than {len(have)} pinned from core {args.cpu} on"
    print(f"machine: {os.cpu_count()} cores; {peak_text.splitlines()[-1]} (bench/fma_peak.c, this run); {pin}")
    print(f"loom: {subprocess.run([LOOM, '--version'], capture_output=True, text=True).stdout.splitlines()[0]}; "
          f"PyTorch: bench/torch_side.py (../shared/bench/torch_bench.py), OPENBLAS_NUM_THREADS=1")
    print("images/s are medians of 5 chunks (both sides); 'torch' is PyTorch's better layout; RSS is each process's "
          "peak\n")
    res = {}
    for r in range(args.rounds):
        for m in args.models:
            # loom's thread counts back to back (its speedup is a ratio of two runs, and this machine's
            # speed drifts over minutes), then PyTorch's
            for t, side in [(t, "loom") for t in args.threads] + \
                    [(t, side) for t in args.threads for side in ("nchw", "cl")]:
                v = loom_once(m, t, cpus_for(t)) if side == "loom" else torch_once(m, t, side == "cl", cpus_for(t))
                res.setdefault((m, t, side), []).append(v)
                print(f"  round {r + 1}: {m} {t} thread{'s' if t > 1 else ''} {side:4s} train {v['train']:9.1f} "
                      f"infer {v['infer']:9.1f} img/s  peak RSS {v['rss']:7.0f} MB", file=sys.stderr, flush=True)
    hdr = (f"{'model':24s} {'thr':>3s} | {'loom':>9s} {'nchw':>9s} {'ch-last':>9s} {'ratio':>6s} | "
           f"{'loom':>9s} {'nchw':>9s} {'ch-last':>9s} {'ratio':>6s} | {'loom MB':>8s} {'torch MB':>8s} {'ratio':>6s}")
    print(f"{'':28s} | {'training images/s':^38s} | {'inference images/s (batch 64)':^38s} | "
          f"{'peak RSS':^26s}")
    print(hdr)
    summary = []
    for m in args.models:
        for t in args.threads:
            L, N, C = res[(m, t, "loom")], res[(m, t, "nchw")], res[(m, t, "cl")]
            lt, nt, ct = med(L, "train"), med(N, "train"), med(C, "train")
            li, ni, ci = med(L, "infer"), med(N, "infer"), med(C, "infer")
            lr = max(x["rss"] for x in L)
            tr = min(max(x["rss"] for x in N), max(x["rss"] for x in C))
            rt, ri = lt / max(nt, ct), li / max(ni, ci)
            summary.append((m, t, rt, ri, lr / tr))
            print(f"{NAME[m]:24s} {t:3d} | {lt:9.1f} {nt:9.1f} {ct:9.1f} {rt:5.2f}x | {li:9.1f} {ni:9.1f} {ci:9.1f} "
                  f"{ri:5.2f}x | {lr:8.0f} {tr:8.0f} {lr / tr:5.2f}x")
    print("\n(ratio: loom / the better PyTorch layout; memory ratio: loom / the smaller PyTorch peak)")
    if len(args.threads) > 1:
        a, b = args.threads[0], args.threads[-1]
        for m in args.models:
            ls = med(res[(m, b, "loom")], "train") / med(res[(m, a, "loom")], "train")
            ts = max(med(res[(m, b, s)], "train") for s in ("nchw", "cl")) / \
                max(med(res[(m, a, s)], "train") for s in ("nchw", "cl"))
            L1, L2 = res[(m, a, "loom")], res[(m, b, "loom")]
            per_round = ", ".join(f"{y['train'] / x['train']:.2f}x" for x, y in zip(L1, L2))
            print(f"{NAME[m]:24s} {b}-thread speedup: loom {ls:.2f}x (rounds {per_round}), torch {ts:.2f}x; "
                  f"loom step {a} thread: "
                  f"{med(L1, 'step_ms'):.1f} ms (reduce+optimizer {med(L1, 'reduce_ms'):.1f}, idle "
                  f"{med(L1, 'idle_ms'):.1f}), {b} threads: {med(L2, 'step_ms'):.1f} ms (reduce+optimizer "
                  f"{med(L2, 'reduce_ms'):.1f}, idle {med(L2, 'idle_ms'):.1f})")
    if "C" in args.models and 1 in args.threads:
        mflop = statistics.median(x["mflop"] for x in res[("C", 1, "nchw")] if "mflop" in x)
        gf = med(res[("C", 1, "loom")], "train") * mflop / 1e3
        print(f"\nMiniVGG-150 training at 1 thread: {gf:.1f} GFLOP/s ({mflop:.0f} MFLOP/image x "
              f"{med(res[('C', 1, 'loom')], 'train'):.2f} img/s) = {100 * gf / peak:.0f}% of the FMA peak "
              f"{peak:.1f} GFLOP/s")
    worst = min(min(s[2], s[3]) for s in summary)
    print(f"\nworst loom/torch ratio {worst:.2f}x; worst memory ratio {max(s[4] for s in summary):.2f}x; "
          f"{time.time() - t_start:.0f} s")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Our CUDA backend vs a plain PyTorch TopK SAE on the same GPU and data (issue 7's benchmark).

  python3 benchmarks/cuda/compare_torch_cuda.py [--build build] [--epochs 25]
                                                [--configs 5x512,32x65536] [--no-ours] [--no-topk]

Writes 7,473 x 2,048 planted rows to --workdir once (unless planted_7473x2048.npy is there already:
benchmarks/cuda/gpu_check.sh puts bench_cuda's own planted rows there), runs
build/benchmarks/bench_cuda on them (whole report-001 grid, our top-k kernel vs a CUB sort), then
the PyTorch reference with --device cuda config by config (--configs KxF,...; default the report-001
grid), and torch.topk on the top-k shapes; prints both tables. --no-ours skips bench_cuda,
--no-topk the torch.topk table.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
from compare_torch import planted  # noqa: E402  same planted generator as the CPU comparison


def torch_topk_rate(rows, f, k, reps=50):
    x = torch.randn(rows, f, device="cuda")
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        x.topk(k, dim=-1)
    torch.cuda.synchronize()
    return rows / ((time.perf_counter() - start) / reps) / 1e6


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--workdir", default="/tmp/sae-compare-cuda")
    grid = ",".join(f"{k}x{d}" for d in (512, 1024, 2048) for k in (5, 10, 20, 100))
    ap.add_argument("--configs", default=grid,
                    help="KxF pairs for the PyTorch runs, comma-separated (default: the report-001 grid)")
    ap.add_argument("--no-ours", action="store_true", help="do not run bench_cuda")
    ap.add_argument("--no-topk", action="store_true", help="do not time torch.topk")
    args = ap.parse_args()
    configs = [tuple(int(v) for v in c.split("x")) for c in args.configs.split(",") if c]
    os.makedirs(args.workdir, exist_ok=True)
    data = os.path.join(args.workdir, "planted_7473x2048.npy")
    if not os.path.exists(data):
        np.save(data, planted(7473, 2048, 4096, 32, 0.05, 0))
    if not args.no_ours:
        ours = subprocess.run([os.path.join(args.build, "benchmarks", "bench_cuda"), str(args.epochs), data],
                              check=True, capture_output=True, text=True).stdout
        print(ours)
    print("| K | d | torch s/SAE | torch EV |\n|---|---|---|---|", flush=True)
    total = 0.0
    for k, d in configs:
        ref = json.loads(subprocess.run([sys.executable, os.path.join(os.path.dirname(HERE), "reference",
                                                                      "topk_sae_torch.py"),
                                         "--data", data, "-k", str(k), "--latents", str(d), "--epochs",
                                         str(args.epochs), "--device", "cuda"],
                                        check=True, capture_output=True, text=True).stdout)
        total += ref["seconds"]
        print(f"| {k} | {d} | {ref['seconds']:.3f} | {ref['ev']:.4f} |", flush=True)
    if args.configs == grid:
        print(f"\ntorch grid: {total:.1f} s; projected 1,152-SAE sweep: {total * 96 / 60:.1f} min")
    else:
        print(f"\ntorch total: {total:.1f} s over {len(configs)} SAEs")
    if args.no_topk:
        return
    print("\ntorch.topk, million rows/s\n| rows | F | K | torch.topk |\n|---|---|---|---|")
    for f in (2048, 16384, 65536):
        for k in (20, 100, 512):
            print(f"| 256 | {f} | {k} | {torch_topk_rate(256, f, k):.3f} |")


if __name__ == "__main__":
    main()

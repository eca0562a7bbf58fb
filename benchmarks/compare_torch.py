#!/usr/bin/env python3
"""Times our sae-train against the PyTorch reference on the report-001 grid, config by config,
alternating, on the same data and thread count, and prints a Markdown table.

  python3 benchmarks/compare_torch.py [--build build] [--epochs 25] [--threads 2] [--unset-openblas-env]

Data: 7,473 planted samples of D=2,048 (written once to --workdir as .npy); both train on the first
5,978 rows and report explained variance on the other 1,495, scored once after training (neither
validates per epoch; our final checkpoint is written after the clock stops, as the reference saves
nothing). Needs numpy and torch (Debian: python3-numpy python3-torch). Both programs run in this
process's environment; --unset-openblas-env removes OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for both.

"FLOP-bound" is the time the training FLOPs would take at the encoder-GEMM rate bench_gemm measures
at the start of the same run (the GEMM our build uses): per epoch N x (2 D F for the encoder GEMM +
8 K D for decode, the code gradient and the two weight gradients); "of bound" is that time over ours.
"""
import argparse
import json
import os
import re
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def planted(n, d, features, k, noise, seed):
    rng = np.random.default_rng(seed)
    dic = rng.standard_normal((features, d))
    dic /= np.linalg.norm(dic, axis=1, keepdims=True)
    x = noise * rng.standard_normal((n, d))
    for i in range(n):
        idx = rng.choice(features, size=k, replace=False)
        x[i] += (rng.pareto(3.0, size=k) + 1.0) @ dic[idx]
    return x.astype(np.float32)


def measure_gemm_rate(build, env):
    """GFLOP/s of the encoder GEMM for each F, from bench_gemm, for the GEMM the build uses."""
    blas = "SAE_USE_BLAS:BOOL=ON" in open(os.path.join(build, "CMakeCache.txt")).read()
    out = subprocess.run([os.path.join(build, "benchmarks", "bench_gemm")], check=True, env=env, capture_output=True,
                         text=True).stdout
    rate = {}
    for line in out.splitlines():
        m = re.match(r"\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+[\d.]+\s*$", line)
        if m:
            rate[int(m.group(1))] = float(m.group(3) if blas else m.group(2))
    return rate


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ks", default="5,10,20,100")
    ap.add_argument("--latents", default="512,1024,2048")
    ap.add_argument("--workdir", default="/tmp/sae-compare")
    ap.add_argument("--unset-openblas-env", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    data = os.path.join(args.workdir, "planted_7473x2048.npy")
    if not os.path.exists(data):
        np.save(data, planted(7473, 2048, 4096, 32, 0.05, 0))
    ours_bin = os.path.join(args.build, "examples", "sae-train")
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if args.unset_openblas_env:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    gemm_rate = measure_gemm_rate(args.build, env)
    print("encoder GEMM rate (GFLOP/s, bench_gemm, this run): " +
          ", ".join(f"F={f}: {r:.0f}" for f, r in sorted(gemm_rate.items())), flush=True)
    n_train, dim = 5978, 2048
    rows = []
    print(f"| K | d | ours s | torch s | speed-up | FLOP-bound s | of bound | ours EV | torch EV |\n"
          f"|---|---|---|---|---|---|---|---|---|", flush=True)
    for d in map(int, args.latents.split(",")):
        for k in map(int, args.ks.split(",")):
            out = os.path.join(args.workdir, f"ours_K{k}_d{d}")
            subprocess.run([ours_bin, "--data", data, "-k", str(k), "--latents", str(d), "--epochs", str(args.epochs),
                            "--threads", str(args.threads), "--validate-every", "0", "--quiet", "--out", out], check=True, env=env,
                           stdout=subprocess.DEVNULL)
            ours = json.load(open(os.path.join(out, "metrics.json")))
            ref = json.loads(subprocess.run([sys.executable, os.path.join(HERE, "reference", "topk_sae_torch.py"),
                                             "--data", data, "-k", str(k), "--latents", str(d), "--epochs",
                                             str(args.epochs), "--threads", str(args.threads)],
                                            check=True, env=env, capture_output=True, text=True).stdout)
            flops = args.epochs * n_train * (2.0 * dim * d + 8.0 * k * dim)
            bound = flops / (gemm_rate[d] * 1e9)
            rows.append((k, d, ours["train_seconds"], ref["seconds"], ours["validation"]["explained_variance"], ref["ev"],
                         bound))
            r = rows[-1]
            print(f"| {k} | {d} | {r[2]:.1f} | {r[3]:.1f} | {r[3] / r[2]:.1f}x | {bound:.1f} | {bound / r[2]:.0%} | "
                  f"{r[4]:.4f} | {r[5]:.4f} |", flush=True)
    ours_total, ref_total = sum(r[2] for r in rows), sum(r[3] for r in rows)
    bound_total = sum(r[6] for r in rows)
    print(f"\nwhole grid: ours {ours_total:.1f} s, torch {ref_total:.1f} s, speed-up {ref_total / ours_total:.1f}x; "
          f"FLOP-bound {bound_total:.1f} s ({bound_total / ours_total:.0%} of it reached) "
          f"(epochs {args.epochs}, {args.threads} threads)")


if __name__ == "__main__":
    main()

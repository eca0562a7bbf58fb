#!/usr/bin/env python3
"""Times our sae-train against the PyTorch reference on the report-001 grid, config by config,
alternating, on the same data and thread count, and prints a Markdown table.

  python3 benchmarks/compare_torch.py [--build build] [--epochs 25] [--threads 2] [--precisions fp32,bf16]
                                      [--unset-openblas-env]

Data: 7,473 planted samples of D=2,048 (written once to --workdir as .npy); both train on the first
5,978 rows and report explained variance on the other 1,495, scored once after training (neither
validates per epoch; our final checkpoint is written after the clock stops, as the reference saves
nothing). Needs numpy and torch (Debian: python3-numpy python3-torch). Both programs run in this
process's environment; --unset-openblas-env removes OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for both.

Ours runs once per --precisions entry (the encoder GEMM's arithmetic, sae-train --encoder-precision);
for bf16 the EV column is the same weights scored with the fp32 encoder, and "overlap" is the share
of active validation latents the bf16 and fp32 encoders agree on.

"FLOP-bound" is the time the training FLOPs would take at the machine's fp32 encoder-GEMM rate, the
best of Eigen, BLAS and our fp32 kernel as bench_gemm measures it at the start of the same run: per
epoch N x (2 D F for the encoder GEMM + 8 K D for decode, the code gradient and the two weight
gradients); "of bound" is that time over ours.
"""
import argparse
import json
import os
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
    """The machine's fp32 encoder-GEMM rate for each F, GFLOP/s: bench_gemm's best of Eigen, BLAS and our kernel."""
    out = subprocess.run([os.path.join(build, "benchmarks", "bench_gemm")], check=True, env=env, capture_output=True,
                         text=True).stdout
    rate = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 6 and fields[0].isdigit():
            rate[int(fields[0])] = float(fields[5])
    return rate


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default="build")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ks", default="5,10,20,100")
    ap.add_argument("--latents", default="512,1024,2048")
    ap.add_argument("--workdir", default="/tmp/sae-compare")
    ap.add_argument("--precisions", default="fp32,bf16")
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
    precisions = args.precisions.split(",")
    if not precisions or any(p not in ("fp32", "bf16") for p in precisions):
        sys.exit(f"--precisions takes fp32 and/or bf16, got '{args.precisions}'")
    header = ["K", "d"] + [f"ours {p} s" for p in precisions] + ["torch s"] + [f"speed-up {p}" for p in precisions]
    header += ["FLOP-bound s"] + [f"of bound {p}" for p in precisions] + [f"EV {p}" for p in precisions] + ["torch EV"]
    if "bf16" in precisions:
        header.append("bf16 overlap")
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header), flush=True)
    totals = {p: 0.0 for p in precisions}
    torch_total = bound_total = 0.0
    bound_2048 = {p: [0.0, 0.0] for p in precisions}  # FLOP-bound and our seconds at d=2048
    for d in map(int, args.latents.split(",")):
        for k in map(int, args.ks.split(",")):
            ours = {}
            for p in precisions:
                out = os.path.join(args.workdir, f"ours_{p}_K{k}_d{d}")
                subprocess.run([ours_bin, "--data", data, "-k", str(k), "--latents", str(d), "--epochs",
                                str(args.epochs), "--threads", str(args.threads), "--validate-every", "0",
                                "--encoder-precision", p, "--quiet", "--out", out],
                               check=True, env=env, stdout=subprocess.DEVNULL)
                ours[p] = json.load(open(os.path.join(out, "metrics.json")))
            ref = json.loads(subprocess.run([sys.executable, os.path.join(HERE, "reference", "topk_sae_torch.py"),
                                             "--data", data, "-k", str(k), "--latents", str(d), "--epochs",
                                             str(args.epochs), "--threads", str(args.threads)],
                                            check=True, env=env, capture_output=True, text=True).stdout)
            flops = args.epochs * n_train * (2.0 * dim * d + 8.0 * k * dim)
            bound = flops / (gemm_rate[d] * 1e9)
            secs = {p: ours[p]["train_seconds"] for p in precisions}
            ev = {p: ours[p].get("validation_fp32_encoder", ours[p]["validation"])["explained_variance"]
                  for p in precisions}
            for p in precisions:
                totals[p] += secs[p]
                if d == 2048:
                    bound_2048[p][0] += bound
                    bound_2048[p][1] += secs[p]
            torch_total += ref["seconds"]
            bound_total += bound
            row = [str(k), str(d)] + [f"{secs[p]:.1f}" for p in precisions] + [f"{ref['seconds']:.1f}"]
            row += [f"{ref['seconds'] / secs[p]:.1f}x" for p in precisions] + [f"{bound:.1f}"]
            row += [f"{bound / secs[p]:.0%}" for p in precisions] + [f"{ev[p]:.4f}" for p in precisions]
            row.append(f"{ref['ev']:.4f}")
            if "bf16" in precisions:
                row.append(f"{ours['bf16']['bf16_active_overlap']:.2%}")
            print("| " + " | ".join(row) + " |", flush=True)
    print(f"\nwhole grid ({args.epochs} epochs, {args.threads} threads): torch {torch_total:.1f} s; FLOP-bound "
          f"{bound_total:.1f} s")
    for p in precisions:
        b, s = bound_2048[p]
        at_2048 = f"; d=2048: {b / s:.0%} of FLOP-bound" if s > 0 else ""
        print(f"  ours {p}: {totals[p]:.1f} s, speed-up {torch_total / totals[p]:.1f}x, "
              f"{bound_total / totals[p]:.0%} of FLOP-bound{at_2048}")


if __name__ == "__main__":
    main()

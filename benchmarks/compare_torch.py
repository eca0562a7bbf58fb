#!/usr/bin/env python3
"""Times our sae-train against the PyTorch reference on the report-001 grid, config by config,
alternating, on the same data and thread count, and prints Markdown tables.

  python3 benchmarks/compare_torch.py [--builds native=build,avx2=build-avx2] [--coretype avx2=Haswell]
                                      [--python ~/torch-venv/bin/python,/usr/bin/python3]
                                      [--epochs 25] [--threads 2] [--precisions fp32,bf16] [--unset-openblas-env]

Each --builds entry (LABEL=DIR, a CMake build of this project, e.g. the native one and one made with
-DSAE_NATIVE_ARCH=OFF -DCMAKE_CXX_FLAGS=-march=x86-64-v3) runs once per --precisions entry (the
encoder GEMM's arithmetic, sae-train --encoder-precision; bf16 only where that build has it). Each
--python entry runs the plain PyTorch reference (benchmarks/reference/topk_sae_torch.py): PyTorch 2.x
from PyPI in a venv is the peer a user has today (README, "Speed"); Debian's python3-torch 1.13 is
older and slower. This script itself needs numpy only.

Data: 7,473 planted samples of D=2,048 (written once to --workdir as .npy); all train on the first
5,978 rows and report explained variance on the other 1,495, scored once after training (none
validates per epoch; our final checkpoint is written after the clock stops, as the reference saves
nothing). --unset-openblas-env removes OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE for every program.
For bf16 the EV column is the same weights scored with the fp32 encoder, and "overlap" is the
share of active validation latents the bf16 and fp32 encoders agree on.

"FLOP-bound" is the time the training FLOPs would take at the build's fp32 encoder-GEMM rate, the
best of Eigen, BLAS and our fp32 kernel as that build's bench_gemm measures it at the start of the
same run (--coretype LABEL=NAME runs it with OPENBLAS_CORETYPE=NAME, e.g. Haswell for an AVX2
build on an AVX-512 machine, since OpenBLAS picks its kernel at run time): per epoch N x (2 D F for
the encoder GEMM + 8 K D for decode, the code gradient and the two weight gradients); "of bound" is
that time over ours. "RSS" is the peak resident memory of each training process (wait4's ru_maxrss).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

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
    """A build's fp32 encoder-GEMM rate for each F, GFLOP/s: bench_gemm's best of Eigen, BLAS and our kernel."""
    out = subprocess.run([os.path.join(build, "benchmarks", "bench_gemm")], check=True, env=env, capture_output=True,
                         text=True).stdout
    rate = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) >= 6 and fields[0].isdigit():
            rate[int(fields[0])] = float(fields[-1])
    return rate


def run_measured(cmd, env):
    """Runs cmd to completion; returns (stdout text, peak RSS in MiB). Fails loudly with its stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.read().decode(errors='replace')}")
        return out.read().decode(), usage.ru_maxrss / 1024.0


def pairs(text, what):
    """'a=x,b=y' -> {'a': 'x', 'b': 'y'}."""
    result = {}
    for item in filter(None, text.split(",")):
        if "=" not in item:
            sys.exit(f"{what} takes LABEL=VALUE entries separated by commas, got '{item}'")
        label, value = item.split("=", 1)
        result[label] = value
    return result


def has_bf16(build):
    """Whether a build's programs were compiled with AVX512-BF16 (tests/CMakeLists.txt records it)."""
    cache = os.path.join(build, "CMakeCache.txt")
    return os.path.exists(cache) and "SAE_PROGRAMS_HAVE_BF16:INTERNAL=1" in open(cache).read()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--builds", default="native=build", help="LABEL=DIR,... CMake builds of this project")
    ap.add_argument("--coretype", default="", help="LABEL=NAME,... OPENBLAS_CORETYPE for a build's bench_gemm")
    ap.add_argument("--python", default=sys.executable, help="Python interpreters with torch, comma-separated")
    ap.add_argument("--epochs", type=int, default=25)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ks", default="5,10,20,100")
    ap.add_argument("--latents", default="512,1024,2048")
    ap.add_argument("--workdir", default="/tmp/sae-compare")
    ap.add_argument("--precisions", default="fp32,bf16")
    ap.add_argument("--unset-openblas-env", action="store_true")
    args = ap.parse_args()
    builds, coretypes = pairs(args.builds, "--builds"), pairs(args.coretype, "--coretype")
    pythons = [p for p in args.python.split(",") if p]
    precisions = args.precisions.split(",")
    if not precisions or any(p not in ("fp32", "bf16") for p in precisions):
        sys.exit(f"--precisions takes fp32 and/or bf16, got '{args.precisions}'")
    for label in coretypes:
        if label not in builds:
            sys.exit(f"--coretype {label}=...: no build labelled '{label}' in --builds")
    for label, build in builds.items():
        if not os.access(os.path.join(build, "examples", "sae-train"), os.X_OK):
            sys.exit(f"--builds {label}={build}: no examples/sae-train there; build the project first")
    os.makedirs(args.workdir, exist_ok=True)
    data = os.path.join(args.workdir, "planted_7473x2048.npy")
    if not os.path.exists(data):
        np.save(data, planted(7473, 2048, 4096, 32, 0.05, 0))
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    if args.unset_openblas_env:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)

    # Our variants: (label, build, precision); the peers: (label, python).
    variants = [(f"{label} {p}", build, p) for label, build in builds.items() for p in precisions
                if p == "fp32" or has_bf16(build)]
    torch_label = {}
    for py in pythons:
        if not (os.path.isfile(py) and os.access(py, os.X_OK)):
            sys.exit(f"--python {py}: no such executable")
        version = subprocess.run([py, "-c", "import torch; print(torch.__version__)"], env=env, capture_output=True,
                                 text=True)
        if version.returncode != 0:
            why = (version.stderr.strip().splitlines() or [f"exit status {version.returncode}"])[-1]
            sys.exit(f"--python {py}: cannot import torch ({why})")
        torch_label[py] = "torch " + version.stdout.strip()
    gemm_rate = {}
    for label, build in builds.items():
        bench_env = dict(env, OPENBLAS_CORETYPE=coretypes[label]) if label in coretypes else env
        gemm_rate[label] = measure_gemm_rate(build, bench_env)
        print(f"encoder GEMM rate, {label} (GFLOP/s, bench_gemm, this run): " +
              ", ".join(f"F={f}: {r:.0f}" for f, r in sorted(gemm_rate[label].items())), flush=True)
    n_train, dim = 5978, 2048
    names = [v[0] for v in variants] + [torch_label[py] for py in pythons]
    header = ["K", "d"] + [f"{n} s" for n in names] + [f"{n} EV" for n in names] + [f"{n} RSS MiB" for n in names]
    header += [f"FLOP-bound {label} s" for label in builds]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header), flush=True)
    seconds = {n: {} for n in names}
    bound = {label: {} for label in builds}
    for d in map(int, args.latents.split(",")):
        for k in map(int, args.ks.split(",")):
            row_s, row_ev, row_rss = [], [], []
            for name, build, p in variants:
                out = os.path.join(args.workdir, f"ours_{name.replace(' ', '_')}_K{k}_d{d}")
                _, rss = run_measured([os.path.join(build, "examples", "sae-train"), "--data", data, "-k", str(k),
                                       "--latents", str(d), "--epochs", str(args.epochs), "--threads",
                                       str(args.threads), "--validate-every", "0", "--encoder-precision", p,
                                       "--quiet", "--out", out], env)
                m = json.load(open(os.path.join(out, "metrics.json")))
                seconds[name][(k, d)] = m["train_seconds"]
                ev = m.get("validation_fp32_encoder", m["validation"])["explained_variance"]
                overlap = f" ({m['bf16_active_overlap']:.2%} overlap)" if p == "bf16" else ""
                row_s.append(f"{m['train_seconds']:.1f}")
                row_ev.append(f"{ev:.4f}{overlap}")
                row_rss.append(f"{rss:.0f}")
            for py in pythons:
                text, rss = run_measured([py, os.path.join(HERE, "reference", "topk_sae_torch.py"), "--data", data,
                                          "-k", str(k), "--latents", str(d), "--epochs", str(args.epochs),
                                          "--threads", str(args.threads)], env)
                ref = json.loads(text)
                seconds[torch_label[py]][(k, d)] = ref["seconds"]
                row_s.append(f"{ref['seconds']:.1f}")
                row_ev.append(f"{ref['ev']:.4f}")
                row_rss.append(f"{rss:.0f}")
            flops = args.epochs * n_train * (2.0 * dim * d + 8.0 * k * dim)
            for label in builds:
                bound[label][(k, d)] = flops / (gemm_rate[label][d] * 1e9)
            row = [str(k), str(d)] + row_s + row_ev + row_rss + [f"{bound[label][(k, d)]:.1f}" for label in builds]
            print("| " + " | ".join(row) + " |", flush=True)

    print(f"\nWhole grid, {args.epochs} epochs, {args.threads} threads (speed-up = peer seconds / ours; "
          "K=100: the weakest K=100 config)")
    peers = [torch_label[py] for py in pythons]
    header = ["ours", "seconds"] + [f"vs {t}" for t in peers] + [f"K=100 vs {t}" for t in peers]
    header += ["of FLOP bound", "d=2048 of FLOP bound"]
    print("| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    for name, build, p in variants:
        label = next(lb for lb, b in builds.items() if b == build)
        ours = seconds[name]
        total = sum(ours.values())
        row = [name, f"{total:.1f}"]
        row += [f"{sum(seconds[t].values()) / total:.1f}x" for t in peers]
        for t in peers:
            at_100 = [seconds[t][c] / ours[c] for c in ours if c[0] == 100]
            row.append(f"{min(at_100):.1f}x" if at_100 else "-")
        row.append(f"{sum(bound[label].values()) / total:.0%}")
        at_2048 = [c for c in ours if c[1] == 2048]
        row.append(f"{sum(bound[label][c] for c in at_2048) / sum(ours[c] for c in at_2048):.0%}" if at_2048 else "-")
        print("| " + " | ".join(row) + " |")
    print("peers: " + ", ".join(f"{t} {sum(seconds[t].values()):.1f} s" for t in peers))


if __name__ == "__main__":
    main()

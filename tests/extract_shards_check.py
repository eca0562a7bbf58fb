#!/usr/bin/env python3
"""tools/extract_activations.py's shard-set writer against the programs that read it: a set written
by write_shard_set (no numpy or torch needed) trains with sae-train, whose checkpoint records the
set's metadata; sae-convert encodes a set of the same layer and refuses one of another layer; an
interrupted write leaves the previous set whole and no scratch folder behind.

  python3 tests/extract_shards_check.py PROGRAM_DIR SCRATCH_DIR
"""
import json
import os
import random
import shutil
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tools"))
import extract_activations as ea  # noqa: E402

programs, scratch = sys.argv[1], sys.argv[2]
shutil.rmtree(scratch, ignore_errors=True)
os.makedirs(scratch)
rng = random.Random(7)
D, SHARDS, ROWS = 8, 3, 100


def chunks(fail_after=None):
    for s in range(SHARDS):
        if fail_after is not None and s == fail_after:
            raise RuntimeError("interrupted")
        values = [round(rng.gauss(0, 1) * 8) / 8 for _ in range(ROWS * D)]  # exact in f16
        yield struct.pack("<%de" % len(values), *values), ROWS


def write(name, layer):
    meta = {"model": "test-model", "hook": f"hidden_states[{layer + 1}]", "layer": layer, "position": 1,
            "normalization": "none", "source": "check"}
    return ea.write_shard_set(os.path.join(scratch, name), chunks(), D, "float16", meta)


def run(program, *args):
    p = subprocess.run([os.path.join(programs, program), *args], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def check(ok, what):
    if not ok:
        sys.exit("extract_shards_check: FAILED: " + what)


check(write("layer2", 2) == SHARDS * ROWS, "row count")
manifest = json.load(open(os.path.join(scratch, "layer2", "manifest.json")))
check([s["rows"] for s in manifest["shards"]] == [ROWS] * SHARDS, "manifest rows")
check(manifest["metadata"]["layer"] == 2 and manifest["metadata"]["d_in"] == D, "manifest metadata")

rc, out = run("sae-train", "--data", os.path.join(scratch, "layer2"), "-k", "2", "--latents", "16", "--epochs", "1",
              "--batch-size", "64", "--quiet", "--out", os.path.join(scratch, "run"))
check(rc == 0, "sae-train on the set: " + out)
ckpt = os.path.join(scratch, "run", "checkpoint")
data = json.load(open(os.path.join(ckpt, "config.json")))["data"]
check(data.get("model") == "test-model" and data.get("layer") == "2" and data.get("position") == "1", "recorded: %s" % data)
check(data.get("dtype") == "f16" and data.get("d_in") == str(D) and data.get("rows") == str(SHARDS * ROWS), "recorded: %s" % data)

rc, out = run("sae-convert", "--from", ckpt, "--encode", os.path.join(scratch, "layer2"), "--codes", os.path.join(scratch, "codes"))
check(rc == 0 and "encoded 300 rows" in out, "encoding the same layer: " + out)
write("layer3", 3)
rc, out = run("sae-convert", "--from", ckpt, "--encode", os.path.join(scratch, "layer3"), "--codes", os.path.join(scratch, "codes3"))
check(rc == 2 and "layer '2' vs '3'" in out and "--force-mismatch" in out, "another layer refused: rc %d: %s" % (rc, out))

# An interrupted rewrite: the previous set stays, nothing partial is left.
before = sorted(os.listdir(os.path.join(scratch, "layer2")))
try:
    ea.write_shard_set(os.path.join(scratch, "layer2"), chunks(fail_after=2), D, "float16", {"model": "x"})
    check(False, "the interrupted write did not raise")
except RuntimeError:
    pass
check(sorted(os.listdir(os.path.join(scratch, "layer2"))) == before, "previous set changed")
check(not [f for f in os.listdir(scratch) if ".partial." in f or ".old." in f], "scratch left: %s" % os.listdir(scratch))
shutil.rmtree(scratch)
print("extract_shards_check: the writer's sets train, record their metadata and refuse another layer")

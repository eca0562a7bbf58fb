"""Writes the .safetensors fixtures the io tests read, with the reference `safetensors` package
(pip install safetensors numpy), then corrupts copies of one of them by hand:
    python3 tests/data/make_safetensors_fixtures.py
Well-formed tensors hold value(i) = 0.25 * i - 3 at flat row-major index i."""
import json
import os
import struct

import numpy as np
from safetensors.numpy import save_file

here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "safetensors")
os.makedirs(here, exist_ok=True)


def ramp(shape, dtype):
    return (0.25 * np.arange(int(np.prod(shape))) - 3).reshape(shape).astype(dtype)


def path(name):
    return os.path.join(here, name)


# Well-formed, written by the reference implementation.
save_file({"w": ramp((3, 4), np.float32), "b": ramp((4,), np.float32)}, path("f32.safetensors"),
          metadata={"format": "pt", "note": "fixture"})
save_file({"h": ramp((2, 3), np.float16), "d": ramp((5,), np.float64), "steps": np.arange(3, dtype=np.int64)},
          path("mixed.safetensors"))
save_file({"acts": ramp((6, 2, 3, 4), np.float32)}, path("acts_4d.safetensors"))
save_file({"acts": ramp((6, 4), np.float16)}, path("acts_2d_f16.safetensors"))
save_file({"nothing": np.zeros((0, 4), np.float32)}, path("empty_tensor.safetensors"))
# bfloat16 has no NumPy dtype: write its bit patterns (the top half of each float32) as raw bytes.
bf = ramp((2, 2), np.float32).view(np.uint32) >> 16
header = json.dumps({"x": {"dtype": "BF16", "shape": [2, 2], "data_offsets": [0, 8]}}).encode()
header += b" " * ((8 - len(header) % 8) % 8)
with open(path("bf16.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + bf.astype("<u2").tobytes())


# Malformed: a valid two-tensor file with one thing wrong each.
def write_raw(name, header_obj=None, header_bytes=None, data=None, length=None):
    hb = header_bytes if header_bytes is not None else json.dumps(header_obj).encode()
    d = data if data is not None else ramp((2, 2), np.float32).tobytes() + ramp((2,), np.float32).tobytes()
    with open(path(name), "wb") as f:
        f.write(struct.pack("<Q", len(hb) if length is None else length) + hb + d)


good = {"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}}


def changed(**tensors):
    h = json.loads(json.dumps(good))
    h.update(tensors)
    return h


write_raw("bad_header_length.safetensors", good, length=10**12)
write_raw("huge_header_length.safetensors", good, length=2 * 10**8)
write_raw("truncated_header.safetensors", header_bytes=json.dumps(good).encode()[:20], length=len(json.dumps(good)), data=b"")
write_raw("not_json.safetensors", header_bytes=b"{'a': 1}")
write_raw("header_not_object.safetensors", header_bytes=b"[1, 2]")
write_raw("overlap.safetensors", changed(b={"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}),
          data=ramp((2, 2), np.float32).tobytes())
write_raw("gap.safetensors", changed(b={"dtype": "F32", "shape": [2], "data_offsets": [24, 32]}),
          data=bytes(32))
write_raw("out_of_bounds.safetensors", changed(b={"dtype": "F32", "shape": [2], "data_offsets": [16, 64]}))
write_raw("shape_mismatch.safetensors", changed(b={"dtype": "F32", "shape": [3], "data_offsets": [16, 24]}))
write_raw("unknown_dtype.safetensors", changed(b={"dtype": "F12", "shape": [2], "data_offsets": [16, 24]}))
write_raw("negative_shape.safetensors", changed(b={"dtype": "F32", "shape": [-2], "data_offsets": [16, 24]}))
write_raw("huge_offset.safetensors", changed(b={"dtype": "F32", "shape": [2], "data_offsets": [16, 7.7e38]}))
write_raw("zero_extent_overflow.safetensors",
          changed(b={"dtype": "F32", "shape": [0, 10**12, 10**15], "data_offsets": [16, 16]}), data=ramp((2, 2), np.float32).tobytes())
write_raw("extra_field.safetensors", changed(b={"dtype": "F32", "shape": [2], "data_offsets": [16, 24], "x": 1}))
write_raw("metadata_not_string.safetensors", changed(__metadata__={"epochs": 25}))
write_raw("trailing_bytes.safetensors", good, data=ramp((2, 2), np.float32).tobytes() + bytes(12))
write_raw("truncated_data.safetensors", good, data=ramp((2, 2), np.float32).tobytes())
write_raw("duplicate_name.safetensors",
          header_bytes=b'{"a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}, '
                       b'"a": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]}}')
with open(path("too_short.safetensors"), "wb") as f:
    f.write(b"\x10\x00\x00")

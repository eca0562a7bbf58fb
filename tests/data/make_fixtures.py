"""Writes the .npy fixtures the io tests read. Run with a Python that has NumPy:
    python3 tests/data/make_fixtures.py
Every well-formed fixture holds value(i) = 0.25 * i - 3 at flat C-order index i, so the C++ test
can check any of them with one formula."""
import os
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))


def ramp(shape, dtype):
    n = int(np.prod(shape)) if len(shape) else 1
    return (0.25 * np.arange(n) - 3).reshape(shape).astype(dtype)


def save(name, arr, version=None, order="C"):
    path = os.path.join(here, name)
    if arr.ndim > 0:  # ascontiguousarray would turn a 0-d array into shape (1,)
        arr = np.asfortranarray(arr) if order == "F" else np.ascontiguousarray(arr)
    with open(path, "wb") as f:
        np.lib.format.write_array(f, arr, version=version)


# Well-formed: dtypes, byte orders, memory orders, ranks, header versions.
save("f4_c_2d.npy", ramp((3, 5), "<f4"))
save("f4_f_2d.npy", ramp((3, 5), "<f4"), order="F")
save("f8_be_2d.npy", ramp((4, 3), ">f8"))
save("f4_be_3d_f.npy", ramp((2, 3, 4), ">f4"), order="F")
save("f2_1d.npy", ramp((7,), "<f2"))
save("f2_be_2d.npy", ramp((2, 3), ">f2"))
save("f8_0d.npy", ramp((), "<f8"))
save("f4_v2_4d.npy", ramp((3, 2, 2, 4), "<f4"), version=(2, 0))
save("f4_v3_2d.npy", ramp((2, 2), "<f4"), version=(3, 0))
save("f4_empty.npy", np.zeros((0, 4), "<f4"))

# Malformed.
good = open(os.path.join(here, "f4_c_2d.npy"), "rb").read()
header_end = good.index(b"\n") + 1


def raw(name, data):
    with open(os.path.join(here, name), "wb") as f:
        f.write(data)


raw("bad_magic.npy", b"\x93NUMPX" + good[6:])
raw("truncated_header.npy", good[:30])
raw("truncated_data.npy", good[: header_end + 4 * 7])
raw("trailing_data.npy", good + b"\0\0\0\0")
save("int32.npy", np.arange(6, dtype="<i4").reshape(2, 3))
save("complex.npy", np.zeros(3, dtype="<c8"))
raw("bad_version.npy", good[:6] + b"\x09\x00" + good[8:])
raw("bad_shape.npy", good.replace(b"(3, 5)", b"(3, x)"))
raw("missing_key.npy", good.replace(b"'fortran_order': False, ", b"'fortran_order_': False,"))
nan = ramp((2, 3), "<f4")
nan[1, 2] = np.nan
save("nan.npy", nan)
inf = ramp((2, 3), "<f4")
inf[0, 1] = np.inf
save("inf.npy", inf)
raw("empty_file.npy", b"")
# A small report-002 array [N, layers, positions, D] for the sweep's command-line tests.
save("sweep_4d.npy", np.random.default_rng(2).normal(size=(240, 2, 2, 8)).astype("<f4"))

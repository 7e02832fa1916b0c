"""Time the fused kernel per network step, side by side with an earlier kernel.c (default: 3d5ce3b, one vector
of points at a time; cefb774: before inputs of several dimensions and block-diagonal layers), all builds in one
process, repeats interleaved.

    make bench-kernel     # or: python scripts/kernel_speed.py [--before REV] [--trials 300] [--repeats 15]

One step: forward, MSE and backward of `trials` nets of depth 5, width 4 on 500 points (the raw-weight stage's
call: gradients written into given tensors), one thread. Prints the median and quartiles over the repeats.
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch

from compnet import kernel
from compnet.init import generators, random_weights
from compnet.model import Shapes, layer_tensors
from compnet.targets import get_target, train_grid

GENERIC = ["-march=x86-64" if f == "-march=native" else f for f in kernel.FLAGS]


class _WithoutGroups:
    """A kernel.c from before block-diagonal layers: its functions take no `groups` (argument 4), so the
    current caller's argument is dropped on the way in."""

    def __init__(self, lib: ctypes.CDLL):
        self._lib = lib

    def __getattr__(self, name: str):
        fn = getattr(self._lib, name)
        return (lambda *a: fn(*a[:4], *a[5:])) if name in kernel._FN.values() else fn


def build(source: Path, flags: list[str], out: Path) -> kernel._Built:
    subprocess.run(["cc", *flags, "-o", str(out), str(source)], check=True)
    lib = ctypes.CDLL(str(out))
    grouped = "groups" in source.read_text()
    for name in kernel._FN.values():
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int
        types = getattr(kernel.library(), name).argtypes
        fn.argtypes = types if grouped else types[:4] + types[5:]
    return kernel._Built(lib if grouped else _WithoutGroups(lib), ["cc"], "", flags, out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="3d5ce3b", help="git revision of the earlier kernel.c")
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--calls", type=int, default=40, help="steps timed per repeat")
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    args = ap.parse_args()
    torch.set_num_threads(1)
    dtype = getattr(torch, args.dtype)

    tmp = Path(tempfile.mkdtemp())
    old_src = tmp / "kernel_before.c"
    git = subprocess.run(["git", "show", f"{args.before}:compnet/kernel.c"], capture_output=True, text=True, check=True)
    old_src.write_text(git.stdout)
    included = subprocess.run(["git", "show", f"{args.before}:compnet/encode.c"], capture_output=True, text=True)
    if included.returncode == 0:  # kernel.c includes it from this commit on
        (tmp / "encode.c").write_text(included.stdout)
    builds = {
        f"before ({args.before}, {' '.join(kernel.FLAGS[:3])})": build(old_src, kernel.FLAGS, tmp / "before.so"),
        "before, generic x86-64 build (SSE2)": build(old_src, GENERIC, tmp / "before_generic.so"),
        "now": build(kernel.SOURCE, kernel.FLAGS, tmp / "now.so"),
        "now, generic x86-64 build (SSE2)": build(kernel.SOURCE, GENERIC, tmp / "generic.so"),
    }

    shapes = Shapes(5, 4)
    layers = shapes.split(random_weights("kaiming", shapes, generators(0, args.trials), dtype))
    x = train_grid(500, dtype)
    y = get_target("x3")(x)
    grads = [torch.empty_like(t) for t in layer_tensors(layers)]

    times: dict[str, list[float]] = {name: [] for name in builds}
    for _ in range(args.repeats):
        for name, built in builds.items():
            kernel._outcome = lambda built=built: built
            kernel.mlp_mse_into(layers, x, y, grads)  # warm
            t0 = time.perf_counter()
            for _ in range(args.calls):
                kernel.mlp_mse_into(layers, x, y, grads)
            times[name].append((time.perf_counter() - t0) / args.calls)
    print(
        f"{args.trials} trials, depth 5, width 4, 500 points, {args.dtype}, one thread; "
        f"ms per step over {args.repeats} interleaved repeats of {args.calls} steps"
    )
    base = statistics.median(next(iter(times.values())))
    for name, ts in times.items():
        q = statistics.quantiles(ts, n=4)
        med = statistics.median(ts)
        print(
            f"  {name:40s} median {med * 1e3:6.3f}  min {min(ts) * 1e3:6.3f}  "
            f"(quartiles {q[0] * 1e3:.3f}–{q[2] * 1e3:.3f})  {med / base:5.3f}× before"
        )


if __name__ == "__main__":
    main()

"""Time the fused kernel per network step, side by side with an earlier kernel.c (default: before the
fixed lanes and -ffp-contract=off), all builds in one process, repeats interleaved.

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

OLD_FLAGS = ["-O3", "-march=native", "-shared", "-fPIC", "-std=gnu11"]  # kernel.py's before the fixed lanes
OLD_GENERIC = ["-march=x86-64" if f == "-march=native" else f for f in OLD_FLAGS]
GENERIC = ["-march=x86-64" if f == "-march=native" else f for f in kernel.FLAGS]


def build(source: Path, flags: list[str], out: Path) -> kernel._Built:
    subprocess.run(["cc", *flags, "-o", str(out), str(source)], check=True)
    lib = ctypes.CDLL(str(out))
    for name in kernel._FN.values():
        fn = getattr(lib, name)
        fn.restype = ctypes.c_int
        fn.argtypes = getattr(kernel.library(), name).argtypes
    return kernel._Built(lib, ["cc"], "", flags, out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--before", default="f2dc1c9", help="git revision of the earlier kernel.c")
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
    builds = {
        f"before ({args.before}, {' '.join(OLD_FLAGS[:2])})": build(old_src, OLD_FLAGS, tmp / "before.so"),
        "before + -ffp-contract=off": build(old_src, [*OLD_FLAGS, "-ffp-contract=off"], tmp / "before_nofma.so"),
        "before, generic x86-64 build (SSE2)": build(old_src, OLD_GENERIC, tmp / "before_generic.so"),
        "now (fixed lanes, -ffp-contract=off)": build(kernel.SOURCE, kernel.FLAGS, tmp / "now.so"),
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

"""Benchmark: compnet's batched engine against the plain per-trial loop, side by side in one run.

    make bench            # or: python scripts/bench.py [--trials 30] [--epochs 1000] [--skip-tables]

1. the plain loop a researcher writes without compnet: per trial a fresh nn.Sequential (1-4-4-4-4-4-1,
   PyTorch default init) and its own Adam, full-batch epochs on 500 points;
2. compnet's engine on the same trials (same starting weights), with torch's ops and with the fused kernel;
3. Tables 1 and 2 together (4 targets × 5 methods × 30 trials = 600 networks, paper epochs) through
   `compnet train`, as one experiment: fused on every core, fused on one, torch's ops on every core, and
   fused with the figures drawn (what a user waits for by default).
Prints wall times, the ratio (1)/(2), peak memory, and the arithmetic floor: the FLOPs of the forward and
backward passes over this machine's measured matrix-multiply rate.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from common import COMPNET

from compnet import kernel
from compnet.batching import workers_default
from compnet.init import generators, random_weights
from compnet.model import Shapes
from compnet.reference import raw_loop
from compnet.stages import train_raw
from compnet.targets import get_target, train_grid


def plain_loop(start: torch.Tensor, shapes: Shapes, x: torch.Tensor, y: torch.Tensor, epochs: int) -> float:
    """(1): compnet.reference.raw_loop, the tests' oracle, timed."""
    t0 = time.perf_counter()
    raw_loop(start, shapes, x, y, epochs, 1e-3)
    return time.perf_counter() - t0


def engine(
    start: torch.Tensor, shapes: Shapes, x: torch.Tensor, y: torch.Tensor, epochs: int, workers: int, fused: bool
) -> float:
    t0 = time.perf_counter()
    train_raw(shapes, start, x, y.expand(start.shape[0], -1), epochs, 1e-3, workers, fused)
    return time.perf_counter() - t0


def matmul_rate(n: int = 2048, reps: int = 5) -> float:
    """Sustained float32 GEMM rate of this machine (FLOP/s), the best of a few tries."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best


def flops_per_step(shapes: Shapes, points: int) -> float:
    """Multiply-adds of the forward pass ×2 (FLOPs), backward ≈ 2× forward: 3× in all."""
    return 3 * 2 * points * sum(o * i for o, i in shapes.dims)


def tables_run(trials: int, workers: int, engine: str, plots: bool = False) -> dict:
    """Tables 1 and 2 (all four targets, five methods) through the installed command, one experiment."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cmd = [COMPNET, "train", "experiment=table1", "experiment.targets=[x3,x11,sin,tanh]", f"trials={trials}"]
        cmd += [f"plots={str(plots).lower()}", f"workers={workers}", f"engine={engine}"]
        p = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if p.returncode:
            sys.exit(f"bench: compnet failed:\n{p.stderr[-2000:]}")
        summaries = [json.loads(f.read_text()) for f in Path(tmp).rglob("summary.json")]
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "process": wall,
        "training": summaries[0]["wall_seconds"],
        "networks": sum(s["n_trials"] for s in summaries),
        "peak_mib": child,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--skip-tables", action="store_true", help="only the loop-vs-engine comparison")
    args = p.parse_args()

    shapes, x = Shapes(5), train_grid(500)
    y = get_target("x3")(x)
    start = random_weights("kaiming", shapes, generators(0, args.trials))
    rate = matmul_rate()
    step_flops = flops_per_step(shapes, x.numel())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32 GEMM rate {rate / 1e9:.1f} GFLOP/s")

    if why := kernel.unavailable():
        sys.exit(f"bench: the fused kernel does not build here: {why}")
    kernel.library()  # built before the clock starts (≈1 s, once per machine)
    workers = workers_default()
    t_loop = plain_loop(start, shapes, x, y, args.epochs)
    t_torch = engine(start, shapes, x, y, args.epochs, workers, fused=False)
    t_fused = engine(start, shapes, x, y, args.epochs, workers, fused=True)
    floor = args.trials * args.epochs * step_flops / rate
    print(f"\n{args.trials} trials x {args.epochs} epochs, 500 points, depth 5 width 4 (training time only):")
    print(f"  (1) plain per-trial loop   {t_loop:8.2f} s")
    print(f"  (2) compnet, torch's ops   {t_torch:8.2f} s   (1)/(2) = {t_loop / t_torch:5.1f}x")
    print(f"  (2) compnet, fused kernel  {t_fused:8.2f} s   (1)/(2) = {t_loop / t_fused:5.1f}x")
    print(f"  arithmetic floor           {floor:8.3f} s   (fused takes {t_fused / floor:.0f}x the floor)")
    print(f"  peak memory so far         {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:8.0f} MiB")

    if not args.skip_tables:
        fused = tables_run(args.trials, workers, "fused")
        one = tables_run(args.trials, 1, "fused")
        ops = tables_run(args.trials, workers, "torch")
        drawn = tables_run(args.trials, workers, "fused", plots=True)
        # pretraining (2 methods) + raw stage (5 methods), 1000 epochs each, per target
        steps = 4 * args.trials * (2 * 1000 + 5 * 1000)
        print(f"\n(3) Tables 1+2: {fused['networks']} networks through `compnet train` (one experiment):")
        print(f"  training (wall_seconds)    {fused['training']:8.2f} s   (fused, {workers} worker threads)")
        print(f"      fused, one worker      {one['training']:8.2f} s")
        print(f"      torch's ops            {ops['training']:8.2f} s   ({workers} worker threads)")
        print(
            f"  whole process              {fused['process']:8.2f} s   (fused; start-up, writing results, region counts)"
        )
        print(f"      torch's ops            {ops['process']:8.2f} s")
        print(f"      with the figures       {drawn['process']:8.2f} s   (fused; what `compnet train` does by default)")
        floor = steps * step_flops / rate
        print(
            f"  arithmetic floor           {floor:8.2f} s   (fused training takes {fused['training'] / floor:.0f}x the floor)"
        )
        print(f"  peak memory                {fused['peak_mib']:8.0f} MiB")


if __name__ == "__main__":
    main()

"""Benchmark: compnet's batched engine against the plain per-trial loop, side by side in one run.

    make bench            # or: python scripts/bench.py [--trials 30] [--epochs 1000] [--skip-loop] [--skip-tables]
                          #     [--skip-scaling] [--skip-blocks] [--more] [--loop-trials 5] [--before DIR] [--repeat 3]

1. 30 trials, raw stage, 1000 epochs: the plain loop a researcher writes without compnet (per trial a fresh
   nn.Sequential, 1-4-4-4-4-4-1, PyTorch default init, and its own Adam; `compnet.reference.raw_loop`; it
   trains one trial after another, so it is timed on 5 of them and scaled; one intra-op thread), and compnet's engine on the same trials (same starting weights) with torch's ops and with the fused kernel;
2. Tables 1 and 2 together (4 targets × 5 methods × 30 trials = 600 networks, paper epochs) through the
   `compnet train` command, as one experiment: with plots=false and with its figures drawn (the default, what
   a user waits for), each the fastest of `--repeat` tries taken in turn (the load of these machines comes and
   goes; the floor's GEMM rate is a best of tries too); training time (summary.json's wall_seconds) and the
   whole process, and where the rest went (the run's timings.json: start-up, analysis, writing, figures;
   compnet/timings.py); `--more` adds the
   fused engine on one worker and torch's ops, `--before DIR` the same two runs of the compnet package in DIR
   (an earlier commit's: `git archive C compnet | tar -x -C DIR`), side by side; and a process that only
   imports torch, the least any run spends above its training (best of three);
3. scaling: µs per network-step of both stages (fused kernel; both loops in C, `kernel.bind_adam`) at 30, 300 and 3,000 trials (depth 5) and at depth 5, 10, 11, 12 and 16 (300 trials), each point in
   a fresh process, with that process's peak resident memory (wait4's ru_maxrss of that process alone, started
   from a small launcher: Python, torch and every tensor of both stages);
4. networks of blocks (scripts/bench_blocks.py): both stages of x³ − x (split) and r³ (composed), 30 trials,
   ns per hidden neuron, point and step beside the 1-D network of Tables 1–2 (the bar: ≤ 2×).
Prints wall times, ratios, peak memory and the arithmetic floor: the FLOPs of the forward and backward passes
over this machine's measured float32 matrix-multiply rate (torch's GEMM on every core).
"""

from __future__ import annotations

import argparse
import json
import os
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
from compnet.init import draw_peaks, generators, random_weights
from compnet.model import Reparam, Shapes
from compnet.reference import raw_loop
from compnet.stages import pretrain, train_raw
from compnet.targets import get_target, train_grid

POINTS = [(30, 5), (300, 5), (3000, 5), (300, 10), (300, 11), (300, 12), (300, 16)]  # (trials, depth)


def plain_loop(start: torch.Tensor, shapes: Shapes, x: torch.Tensor, y: torch.Tensor, epochs: int) -> float:
    """(1): compnet.reference.raw_loop, the tests' oracle, timed on one intra-op thread: its ops are tiny, and
    with torch's default (a thread per core) every op synchronises the threads, which on a shared machine made
    it 20-60x slower (a flattering baseline: 978 s for 30 trials in one run, 49 s in a quiet one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        raw_loop(start[:1], shapes, x, y, 3, 1e-3)  # torch.optim's first step imports and sets up (~2 s, once)
        t0 = time.perf_counter()
        raw_loop(start, shapes, x, y, epochs, 1e-3)
        return time.perf_counter() - t0
    finally:
        torch.set_num_threads(threads)


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


# runs a command and reports its peak resident memory: a process forked from this one would count this one's
# memory at the fork in its own ru_maxrss (Linux keeps the larger), so the measured command is started from here,
# a small process, and its getrusage read by wait4
LAUNCHER = """import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
open(sys.argv[1], "w").write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def child(cmd: list[str], **kw) -> tuple[float, subprocess.CompletedProcess, float]:
    """Run `cmd` to its end: wall seconds, its result, and its own peak resident memory in MiB."""
    with tempfile.NamedTemporaryFile() as peak:
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", LAUNCHER, peak.name, *cmd], capture_output=True, text=True, **kw)
        wall = time.perf_counter() - t0
        if done.returncode:
            sys.exit(f"bench: {' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
        return wall, done, int(Path(peak.name).read_text()) / 1024


def tables_run(trials: int, workers: int, engine: str, plots: bool = False, source: str | None = None) -> dict:
    """Tables 1 and 2 (all four targets, five methods) through the installed command, one experiment (with
    `source`: the compnet package found there instead, e.g. an earlier commit's, `git archive C compnet`)."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [COMPNET, "train", "experiment=table1", "experiment.targets=[x3,x11,sin,tanh]", f"trials={trials}"]
        cmd += [f"plots={str(plots).lower()}", f"workers={workers}", f"engine={engine}"]
        env = None if source is None else os.environ | {"PYTHONPATH": source}
        wall, _, peak = child(cmd, cwd=tmp, env=env)
        summaries = [json.loads(f.read_text()) for f in Path(tmp).rglob("summary.json")]
        figures = len(list(Path(tmp).rglob("*.png")))
        timings = [json.loads(f.read_text()) for f in Path(tmp).rglob("timings.json")]  # compnet/timings.py
    return {
        "process": wall,
        "training": summaries[0]["wall_seconds"],
        "networks": sum(s["n_trials"] for s in summaries),
        "figures": figures,
        "peak_mib": peak,
        "timings": timings[0] if timings else {},
    }


PHASES = ("startup", "analysis", "writing", "figures")


def breakdown(r: dict) -> str:
    """Where a run's time outside training went (its timings.json), and after the run until the process ended."""
    t = r["timings"]
    if not t:
        return "    (no timings.json: a compnet before it)"
    parts = [f"{k} {t[k]:.2f}" for k in PHASES if k in t] + [f"after the run {r['process'] - t['total']:.2f}"]
    line = "    outside training (s): " + ", ".join(parts)
    if h := t.get("figure_helpers"):
        line += (
            f"\n    figure helpers: {h['helpers']}, ready {h['warm_up']:.2f} s after start; {h.get('jobs', h.get('figures'))} jobs,"
            f" {h['cpu']:.2f} s of their CPU ({h['seconds']:.2f} s wall)"
        )
    return line


def point(trials: int, depth: int, epochs: int) -> dict:
    """One point of the scaling table, in this process: both fused stages, float32, 500 points, every core."""
    shapes, x = Shapes(depth), train_grid(500)
    y = get_target("x3")(x).expand(trials, -1)
    workers = workers_default()
    kernel.library()
    peaks = draw_peaks(generators(0, trials), depth + 1, 0.25, 0.75)
    sign, free = torch.full((trials,), -1.0), torch.arange(trials) % 2 == 0  # enforced and not enforced
    t0 = time.perf_counter()
    pretrain(Reparam(), peaks, free, sign, x, y, epochs, 1e-3, workers, fused=True)
    t_pre = time.perf_counter() - t0
    start = random_weights("kaiming", shapes, generators(0, trials))
    t0 = time.perf_counter()
    train_raw(shapes, start, x, y, epochs, 1e-3, workers, fused=True)
    t_raw = time.perf_counter() - t0
    steps = trials * epochs
    return {"pre_us": t_pre / steps * 1e6, "raw_us": t_raw / steps * 1e6, "epochs": epochs}


def scaling(rate: float) -> None:
    print("\n(3) Scaling: µs per network-step (wall time / (trials × epochs)), fused, both stages, float32,")
    print(
        f"    500 points, {workers_default()} worker threads; peak memory: each point's own process (wait4's ru_maxrss)"
    )
    print("    trials  depth  epochs   pretraining       raw   raw/floor   peak memory")
    rows = {}
    for trials, depth in POINTS:
        epochs = max(50, min(1000, 1_500_000 // (trials * depth)))
        cmd = [sys.executable, __file__, "--point", str(trials), str(depth), str(epochs)]
        _, done, peak = child(cmd)
        r = rows[trials, depth] = json.loads(done.stdout.strip().splitlines()[-1]) | {"peak_mib": peak}
        floor_us = flops_per_step(Shapes(depth), 500) / rate * 1e6
        print(
            f"    {trials:6d}  {depth:5d}  {epochs:6d}  {r['pre_us']:8.1f} µs  {r['raw_us']:6.1f} µs"
            f"  {r['raw_us'] / floor_us:8.1f}x  {r['peak_mib']:8.0f} MiB"
        )
    flat = rows[3000, 5]["raw_us"] / rows[300, 5]["raw_us"], rows[3000, 5]["pre_us"] / rows[300, 5]["pre_us"]
    print(f"  3,000 ÷ 300 trials per network-step: raw {flat[0]:.2f}, pretraining {flat[1]:.2f} (flat: ≤ 1.5)")
    base = {d: flops_per_step(Shapes(d), 500) for d in (5, 10, 16)}
    for d in (10, 16):
        print(
            f"  depth {d} ÷ depth 5 per network-step: raw {rows[300, d]['raw_us'] / rows[300, 5]['raw_us']:.2f}, "
            f"pretraining {rows[300, d]['pre_us'] / rows[300, 5]['pre_us']:.2f} "
            f"(FLOPs {base[d] / base[5]:.2f}: linear in depth)"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--trials", type=int, default=30)
    p.add_argument("--epochs", type=int, default=1000)
    p.add_argument("--skip-loop", action="store_true", help="no loop-vs-engine comparison (1)")
    p.add_argument("--skip-tables", action="store_true", help="no Tables 1+2 (2)")
    p.add_argument("--skip-scaling", action="store_true", help="no scaling table (3)")
    p.add_argument("--skip-blocks", action="store_true", help="no networks of blocks (4)")
    p.add_argument("--more", action="store_true", help="Tables 1+2 also on one worker and with torch's ops")
    p.add_argument("--loop-trials", type=int, default=5, help="trials the plain loop is timed on (default 5)")
    p.add_argument("--before", metavar="DIR", help="Tables 1+2 also with the compnet package in DIR (before)")
    p.add_argument("--repeat", type=int, default=3, help="tries of each Tables 1+2 run, the fastest shown (default 3)")
    p.add_argument("--point", type=int, nargs=3, metavar=("TRIALS", "DEPTH", "EPOCHS"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.point:  # one point of the scaling table, in its own process
        print(json.dumps(point(*args.point)))
        return

    shapes, x = Shapes(5), train_grid(500)
    y = get_target("x3")(x)
    rate = matmul_rate()
    step_flops = flops_per_step(shapes, x.numel())
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; float32 GEMM rate {rate / 1e9:.1f} GFLOP/s")
    print(f"CPU: {kernel.cpu_model()}; load average before: {', '.join(f'{v:.2f}' for v in os.getloadavg())}")

    if why := kernel.unavailable():
        sys.exit(f"bench: the fused kernel does not build here: {why}")
    kernel.library()  # built before the clock starts (≈1 s, once per machine)
    workers = workers_default()
    if not args.skip_loop:
        start = random_weights("kaiming", shapes, generators(0, args.trials))
        # the plain loop trains one trial after the other: timed on the first `--loop-trials`, scaled to all
        n = min(args.loop_trials, args.trials)
        t_loop = plain_loop(start[:n], shapes, x, y, args.epochs) * args.trials / n
        t_torch = engine(start, shapes, x, y, args.epochs, workers, fused=False)
        t_fused = engine(start, shapes, x, y, args.epochs, workers, fused=True)
        floor = args.trials * args.epochs * step_flops / rate
        print(
            f"\n(1) {args.trials} trials x {args.epochs} epochs, raw stage, 500 points, depth 5 width 4 (training only):"
        )
        print(
            f"  plain per-trial loop       {t_loop:8.2f} s   ({n} of the {args.trials} trials timed, x{args.trials / n:g})"
        )
        print(f"  compnet, torch's ops       {t_torch:8.2f} s   loop / this = {t_loop / t_torch:5.1f}x")
        print(f"  compnet, fused kernel      {t_fused:8.2f} s   loop / this = {t_loop / t_fused:5.1f}x")
        print(f"  arithmetic floor           {floor:8.3f} s   (fused takes {t_fused / floor:.1f}x the floor)")
        print(f"  peak memory so far         {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:8.0f} MiB")

    if not args.skip_tables:
        # each version with and without figures, `--repeat` times in turn; each row the fastest of its tries (by
        # the whole process), as the floor's GEMM rate is the best of its tries: the machine's load comes and goes
        sources = [None] + [args.before] * bool(args.before)
        tries = {(source, p): [] for source in sources for p in (False, True)}
        for _ in range(args.repeat):
            for source, p in tries:
                tries[source, p].append(tables_run(args.trials, workers, "fused", p, source))
        fastest = {k: min(v, key=lambda r: r["process"]) for k, v in tries.items()}
        plain, drawn = fastest[None, False], fastest[None, True]
        # pretraining (2 methods) + raw stage (5 methods), 1000 epochs each, per target
        steps = 4 * args.trials * (2 * 1000 + 5 * 1000)
        floor = steps * step_flops / rate
        runs = [("plots=false", plain), (f"with {drawn['figures']} figures", drawn)]
        if args.before:
            runs += [
                ("before: plots=false", fastest[args.before, False]),
                ("before: figures", fastest[args.before, True]),
            ]
        print(
            f"\n(2) Tables 1+2: {plain['networks']} networks through `compnet train` (one experiment, fused; each row"
            f" the fastest of {args.repeat} tries, taken in turn):"
        )
        print("                              training    whole process   above training")
        for name, r in runs:
            print(
                f"  {name:24s} {r['training']:8.2f} s   {r['process']:8.2f} s   {r['process'] - r['training']:8.2f} s"
                f"   (peak memory {r['peak_mib']:.0f} MiB)"
            )
            print(breakdown(r))
        print(f"  the figures                             {drawn['process'] - plain['process']:8.2f} s")
        if args.before:
            print(f"      before                              {runs[3][1]['process'] - runs[2][1]['process']:8.2f} s")
        imported = min(child([sys.executable, "-c", "import torch"])[0] for _ in range(3))
        print(f"  a process that only imports torch       {imported:8.2f} s   (the least a run spends above training)")
        print(
            f"  arithmetic floor           {floor:8.2f} s   (training takes {plain['training'] / floor:.1f}x "
            f"and {drawn['training'] / floor:.1f}x the floor)"
        )
        # every run of this version trains the same networks: its fastest training against the floor, beside all
        trainings = sorted(r["training"] for (source, _), v in tries.items() if source is None for r in v)
        print(
            f"  fastest training of its {len(trainings)} runs {trainings[0]:6.2f} s   ({trainings[0] / floor:.1f}x the floor;"
            f" all: {', '.join(f'{t / floor:.1f}x' for t in trainings)})"
        )
        if args.more:
            one = tables_run(args.trials, 1, "fused")
            ops = tables_run(args.trials, workers, "torch")
            print(f"  fused, one worker          {one['training']:8.2f} s   {one['process']:8.2f} s")
            print(f"  torch's ops                {ops['training']:8.2f} s   {ops['process']:8.2f} s")

    if not args.skip_scaling:
        scaling(rate)

    if not args.skip_blocks:
        from bench_blocks import blocks_table

        print(f"\n(4) {blocks_table(args.trials, epochs=200)}")


if __name__ == "__main__":
    main()

"""Running a batch of trials on every core: one slice of the trials per worker thread, one progress bar.

Trials never interact, so slicing changes nothing but the batch size each step sees (trial i is bit for bit
the same alone, beside 4 others or beside 129, on 1 or 2 threads: tested). Each thread runs with one
intra-op thread: the ops are too small for torch's intra-op threads to pay, and the fused kernel's C call
releases the GIL. glibc is told to keep freed memory instead of handing it back to the kernel, which
otherwise zero-fills fresh pages for every large tensor of every step.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import torch

from compnet.optim import Fit, Report, Snapshot

# Below ~64 trials a step of torch's ops is Python overhead more than arithmetic: a second thread then costs more
# than it brings (make bench: 30 trials trained faster on one worker). That one worker also runs with one intra-op
# thread, as every worker does: with torch's default (a thread per core), on a machine shared with other
# processes, the threads' synchronisation in the step's small ops made 30 trials × 1000 raw steps take 8.1 s
# instead of 0.6 s (the "depth-11 cliff", depth=11 trials=10 workers=1 4.8 s against 0.3 s, was this: it came
# and went with the machine's load, not with the depth; no subnormals were seen).
MIN_TRIALS_PER_WORKER = 64
# With the whole loop in C (the fused engine's raw stage and 1-D pretraining: `kernel.bind_adam`) a step has no
# Python in it, and two threads pay from a few trials on: 30 trials × 1000 raw steps 0.30 → 0.16 s
MIN_TRIALS_PER_WORKER_NATIVE = 8


class Progress:
    """One tqdm bar for a batch trained in slices (one per worker thread), on an interactive terminal only
    (log files and CI output stay clean): epochs done by the slowest slice, best and median loss over the
    live trials of all slices. Its reporters also carry `stop` to the workers: set (Ctrl-C in the main
    thread), each worker ends within 25 steps instead of training on."""

    def __init__(self, desc: str, epochs: int, slices: int) -> None:
        self.bar = None
        if epochs and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=epochs, desc=desc, unit="epoch", leave=False, dynamic_ncols=True)
        self.steps = [0] * slices
        self.live: list[torch.Tensor] = [torch.empty(0)] * slices
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def reporter(self, i: int) -> Report:
        def report(step: int, loss: torch.Tensor, alive: torch.Tensor) -> None:
            if self.stop.is_set():
                raise KeyboardInterrupt
            if self.bar is not None:
                self._report(i, step, loss[alive])

        return report

    def _report(self, i: int, step: int, live: torch.Tensor) -> None:
        with self.lock:
            self.steps[i], self.live[i] = step, live
            every = torch.cat(self.live)
            if every.numel():
                self.bar.set_postfix(
                    best=f"{every.min().item():.2e}", median=f"{every.median().item():.2e}", refresh=False
                )
            self.bar.update(min(self.steps) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def workers_default() -> int:
    """The worker threads of `workers=0`: the CPUs this job was given. A scheduler that starts several jobs on
    one machine does not always narrow their CPU affinity (Slurm without cgroups does not; submitit's local
    launcher starts every job of a sweep at once), and a thread per core in each job would oversubscribe it."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    slurm = os.environ.get("SLURM_CPUS_PER_TASK", "")  # set by --cpus-per-task (hydra.launcher.cpus_per_task)
    if slurm.isdigit() and int(slurm) > 0:
        return min(int(slurm), cores)
    if os.environ.get("SUBMITIT_EXECUTOR") == "local":  # submitit's local jobs are told nothing of CPUs
        return 1
    return cores


@functools.cache  # process-wide: once is enough
def keep_freed_memory() -> None:
    """glibc only: serve large tensors from the heap and never trim it (no page-fault storm per step)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)  # glibc's maximum
    libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
    libc.mallopt(M_TOP_PAD, 64 << 20)


def alone(pair: Fit) -> Fit:
    """A single trial is trained beside a copy of itself, then the copy dropped: with torch's ops a batch of
    one takes BLAS's matrix-vector path, whose sums round differently, and trial i would not be bit for bit
    what it is in any larger batch (where its numbers do not depend on the batch size). The fused kernel
    needs no such care; the copy costs it one trial's work."""
    first = [Snapshot(s.epoch, [p[:1] for p in s.params]) for s in pair.snapshots]
    return Fit([p[:1] for p in pair.params], pair.history[:, :1], pair.diverged[:1], first)


def chunked(
    fit_chunk: Callable[[slice | torch.Tensor, Report | None], Fit],
    trials: int,
    workers: int,
    desc: str,
    epochs: int,
    native: bool = False,
) -> Fit:
    """Run `fit_chunk` on one slice of the trials per worker thread and stitch the results together (the
    slices keep their snapshots at the same epochs: each is stitched along the trial axis too). `native`: the
    steps run in C (a worker pays from MIN_TRIALS_PER_WORKER_NATIVE trials on)."""
    keep_freed_memory()
    n = max(1, min(workers, trials // (MIN_TRIALS_PER_WORKER_NATIVE if native else MIN_TRIALS_PER_WORKER)))
    bounds = [round(i * trials / n) for i in range(n + 1)]
    slices = [slice(a, b) for a, b in zip(bounds, bounds[1:])]
    progress = Progress(desc, epochs, n)
    threads = torch.get_num_threads()
    if n == 1:  # one intra-op thread here too: see MIN_TRIALS_PER_WORKER's note
        torch.set_num_threads(1)
        try:
            if trials == 1:  # see `alone`
                return alone(fit_chunk(torch.zeros(2, dtype=torch.long), progress.reporter(0)))
            return fit_chunk(slices[0], progress.reporter(0))
        finally:
            torch.set_num_threads(threads)
            progress.close()

    def work(i: int) -> Fit:
        torch.set_num_threads(1)
        return fit_chunk(slices[i], progress.reporter(i))

    pool = ThreadPoolExecutor(n)
    try:
        futures = [pool.submit(work, i) for i in range(n)]
        while True:  # in short waits: Ctrl-C can land on a worker thread, and Python raises it in the main thread
            # only when that runs again; an untimed wait here would end only when the training did (test_batching)
            done, pending = wait(futures, timeout=0.2, return_when=FIRST_EXCEPTION)
            if failed := next((f for f in done if f.exception() is not None), None):
                raise failed.exception()  # and the others stop at their next report (below)
            if not pending:
                break
        fits = [f.result() for f in futures]
    except BaseException:  # a failed slice, or Ctrl-C (raised in the main thread only): tell the workers
        progress.stop.set()
        raise
    finally:
        pool.shutdown(wait=True)
        torch.set_num_threads(threads)
        progress.close()
    return Fit(
        _cat([f.params for f in fits]),
        torch.cat([f.history for f in fits], 1),
        torch.cat([f.diverged for f in fits]),
        [Snapshot(kept[0].epoch, _cat([s.params for s in kept])) for kept in zip(*(f.snapshots for f in fits))],
    )


def _cat(slices: list[list[torch.Tensor]]) -> list[torch.Tensor]:
    """Parameter lists of consecutive slices of the trials as one list over all of them."""
    return [torch.cat(ps) for ps in zip(*slices)]


class Stopwatch:
    """Accumulates the wall time spent inside `with` blocks (training only, not start-up or writing)."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> Stopwatch:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds += time.perf_counter() - self._t0

"""Where a `compnet train` run's time goes, written to its folder as timings.json (what `make bench` prints).

    startup    process start (or, where the system does not say when that was, compnet's import) to the
               training call: imports, configuration, the figure helpers' warm-up;
    training   the training clock (summary.json's wall_seconds);
    analysis   the rest of the training call, outside its clock: start weights, linear pieces, failures,
               held-out MSE;
    writing    each cell's files (trials.csv, losses.npz, weights.npz, …), summaries, tables;
    figures    drawing in this process, plus waiting for the figure helpers (compnet/painter.py) once
               everything else is written;
    total      process start to the end of the run (the command then only prints its table);
    figure_helpers  where they drew (compnet/painter.py): how many, their start-up to ready, the jobs they
               did (a figure of a share of a target's cells) and the time they spent on them (wall clock,
               and their own CPU time).

The phases are measured in this process with one clock, one after another: they add up to `total` (less
what falls between them, a few milliseconds).
"""

from __future__ import annotations

import json
import os
import time
from contextlib import contextmanager
from pathlib import Path

FILE = "timings.json"
_IMPORTED = time.perf_counter()


def since_start() -> float:
    """Seconds since this process started (Linux: /proc), else since compnet was imported."""
    try:
        with open("/proc/self/stat") as f:
            started = int(f.read().rsplit(")", 1)[1].split()[19]) / os.sysconf("SC_CLK_TCK")
        with open("/proc/uptime") as f:
            return float(f.read().split()[0]) - started
    except (OSError, ValueError, IndexError, AttributeError):
        return time.perf_counter() - _IMPORTED


class Phases:
    """Seconds per phase, added up by `with phases("writing"): ...`."""

    def __init__(self) -> None:
        self.start = time.perf_counter() - since_start()  # the process's start on perf_counter's clock
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - t0)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def write(self, folder: Path, more: dict | None = None) -> dict:
        """timings.json in `folder`, with `total` (process start to now) and `more`; returns what it wrote."""
        out = {k: round(v, 4) for k, v in self.seconds.items()} | {"total": round(time.perf_counter() - self.start, 4)}
        out |= more or {}
        (folder / FILE).write_text(json.dumps(out, indent=2) + "\n")
        return out

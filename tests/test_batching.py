"""Slicing a batch over worker threads, and its one progress bar."""

import os

import pytest
import torch

from compnet.batching import Progress, workers_default
from compnet.init import generators, random_weights
from compnet.model import Shapes
from compnet.stages import train_raw
from compnet.targets import get_target, train_grid

f64 = torch.float64


def test_worker_threads_change_nothing_but_speed(engine):
    """Trials split over worker threads come back in order, bit for bit equal to one batch."""
    shapes, x = Shapes(3), train_grid(40, f64)
    T = 2 * 64 + 3
    y = get_target("x3")(x).expand(T, -1)
    start = random_weights("kaiming", shapes, generators(4, T), f64)
    start[100] *= 1e300  # one diverged trial, in the second worker's slice
    one = train_raw(shapes, start, x, y, 20, 1e-3, workers=1, fused=engine == "fused")
    two = train_raw(shapes, start, x, y, 20, 1e-3, workers=2, fused=engine == "fused")
    assert two.diverged.nonzero().flatten().tolist() == [100] == one.diverged.nonzero().flatten().tolist()
    keep = torch.arange(T) != 100
    assert torch.equal(one.params[0][keep], two.params[0][keep])
    assert torch.equal(one.history[:, keep], two.history[:, keep])


@pytest.mark.parametrize(
    "env, expected",
    [
        ({}, "cores"),
        ({"SLURM_CPUS_PER_TASK": "1"}, 1),
        ({"SLURM_CPUS_PER_TASK": "1000"}, "cores"),  # never more threads than CPUs this process may use
        ({"SLURM_CPUS_PER_TASK": "1", "SUBMITIT_EXECUTOR": "slurm"}, 1),
        ({"SUBMITIT_EXECUTOR": "local"}, 1),  # every job of the sweep runs at once
        ({"SLURM_CPUS_PER_TASK": "", "SUBMITIT_EXECUTOR": "slurm"}, "cores"),
    ],
)
def test_workers_default_follows_the_scheduler(monkeypatch, env, expected):
    for key in ("SLURM_CPUS_PER_TASK", "SUBMITIT_EXECUTOR"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    cores = len(os.sched_getaffinity(0))
    assert workers_default() == (cores if expected == "cores" else expected)


class _FakeBar:
    def __init__(self) -> None:
        self.n, self.postfix, self.closed = 0, {}, False

    def set_postfix(self, refresh: bool = True, **kw) -> None:
        self.postfix = kw

    def update(self, k: int) -> None:
        self.n += k

    def close(self) -> None:
        self.closed = True


def test_progress_bar_reports_best_and_median_over_every_slice():
    """Two worker slices: the bar shows the slowest slice's epoch and best/median over all live trials."""
    progress = Progress("train", 100, 2)
    progress.bar = bar = _FakeBar()  # what a terminal would get
    first, second = progress.reporter(0), progress.reporter(1)
    first(50, torch.tensor([4.0, 1.0, float("nan")]), torch.tensor([True, True, False]))
    assert bar.n == 0  # the other slice has not reported yet
    second(25, torch.tensor([3.0, 2.0]), torch.tensor([True, True]))
    assert bar.n == 25
    assert bar.postfix == {"best": "1.00e+00", "median": "2.00e+00"}  # over 4, 1, 3, 2 (torch: the lower median)
    progress.close()
    assert bar.closed


def test_no_progress_bar_off_a_terminal():
    progress = Progress("train", 100, 2)
    assert progress.bar is None  # pytest's stderr is not a terminal
    progress.reporter(0)(25, torch.ones(2), torch.ones(2, dtype=torch.bool))  # reports go nowhere


def test_a_stop_ends_every_worker_at_its_next_report(engine):
    """Ctrl-C in the main thread sets `stop`; a worker's next report (every 25 steps) raises instead of
    training on, so an interrupted run ends in seconds, not when the workers finish."""
    import threading

    from compnet import batching

    calls = []
    original = batching.Progress.reporter

    def reporter(self, i):
        report = original(self, i)
        if i == 1:  # the second slice asks everyone to stop after its first report, as Ctrl-C would

            def stopping(step, loss, alive):
                calls.append(step)
                report(step, loss, alive)
                self.stop.set()

            return stopping
        return report

    shapes, x = Shapes(2), train_grid(20)
    T = 2 * 64
    y = get_target("x3")(x).expand(T, -1)
    start = random_weights("kaiming", shapes, generators(0, T))
    mp = pytest.MonkeyPatch()
    mp.setattr(batching.Progress, "reporter", reporter)
    try:
        with pytest.raises(KeyboardInterrupt):
            train_raw(shapes, start, x, y, 100_000, 1e-3, workers=2, fused=engine == "fused")
    finally:
        mp.undo()
    assert calls == [25, 50] and threading.active_count() < 5  # raised at its next report, not 100000 steps on


def test_a_failing_slice_stops_the_others_at_once():
    """An error in one worker surfaces within a report or two of the others, not after they finish."""
    from compnet import batching

    reports = []
    original = batching.Progress.reporter

    def reporter(self, i):
        report = original(self, i)

        def failing(step, loss, alive):
            reports.append((i, step))
            if i == 1:
                raise ValueError("slice 1 broke")
            report(step, loss, alive)

        return failing

    shapes, x = Shapes(2), train_grid(20)
    y = get_target("x3")(x).expand(128, -1)
    start = random_weights("kaiming", shapes, generators(0, 128))
    mp = pytest.MonkeyPatch()
    mp.setattr(batching.Progress, "reporter", reporter)
    try:
        with pytest.raises(ValueError, match="slice 1 broke"):
            train_raw(shapes, start, x, y, 100_000, 1e-3, workers=2)
    finally:
        mp.undo()
    assert max(step for i, step in reports if i == 0) < 5000  # not 100,000 epochs: stopped when slice 1 failed


def test_ctrl_c_landing_on_a_worker_thread_still_stops_the_run():
    """The kernel may hand SIGINT to any thread; Python raises it in the main thread, which must wake up to do
    so while the workers train (an untimed wait there lasted until the training ended)."""
    import signal
    import threading
    import time

    from compnet.batching import chunked
    from compnet.optim import Fit

    def fit(sl, report):
        for step in range(1, 2000):  # ≈20 s unless stopped
            if step == 3 and sl.start == 0:
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)  # Ctrl-C, delivered to this worker
            report(step, torch.zeros(1), torch.ones(1, dtype=torch.bool))
            time.sleep(0.01)
        return Fit([torch.zeros(sl.stop - sl.start)], torch.zeros(1, sl.stop - sl.start), torch.zeros(1))

    t0 = time.perf_counter()
    # Python's own Ctrl-C handler, also where the suite inherited an ignored SIGINT (`make test &`)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt):
            chunked(fit, 128, 2, "train", 2000)
    finally:
        signal.signal(signal.SIGINT, before)
    assert time.perf_counter() - t0 < 5

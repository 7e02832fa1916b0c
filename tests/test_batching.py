"""Slicing a batch over worker threads, and its one progress bar."""

import torch

from compnet.batching import Progress
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
    assert Progress("train", 100, 2).reporter(0) is None  # pytest's stderr is not a terminal

"""The trial engine: every trial of every configuration in one batched model, trained by one Adam.

All trials' weights are stacked along a leading trial axis and the loss is the sum of the per-trial MSEs,
so the gradient with respect to trial t's weights is exactly that of trial t's own MSE; Adam acts
elementwise, hence one Adam over the stacked tensors equals one Adam per trial (paper §4: full batch,
Adam, lr 1e-3). A trial whose loss turns NaN or infinite is frozen where it stands and marked diverged.

Two stages (METHOD.md §4):
- pretraining: Adam on the reparameterisation (peaks θ, and s_1 or every scale), the network rebuilt from
  them by `model.encode` at every step, so gradients reach the peaks;
- raw: Adam on the plain weights and biases (a fresh Adam after pretraining).
Peaks stay in (0, 1) by a clamp to [0.01, 0.99] in the forward pass (zero gradient outside) or by
a = sigmoid(θ).

Speed (see scripts/bench.py): the networks are tiny, so with torch's ops a step is a few dozen memory-bound
tensor ops; the fused engine (`kernel.py`) does the forward and backward pass in one C call instead, and
torch keeps the rest (the encoding, Adam). Trials are split into one chunk per core, each trained by its
own thread with one intra-op thread (the ops are too small for torch's intra-op threads to pay; the C call
releases the GIL), and glibc is told to keep freed memory instead of handing it back to the kernel, which
otherwise zero-fills fresh pages for every large tensor of every step.
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

import torch

from compnet import kernel
from compnet.config import PEAK_CLAMP
from compnet.model import Layer, Shapes, encode, forward, law_scales, layer_pairs, layer_tensors

# Below ~64 trials a step is Python overhead more than arithmetic: a second thread then costs more than it
# brings (make bench: 30 trials train faster on one worker).
MIN_TRIALS_PER_WORKER = 64


Report = Callable[[int, torch.Tensor, torch.Tensor], None]  # (step, per-trial loss, alive) every 25 steps


@dataclass
class Fit:
    params: list[torch.Tensor]
    history: torch.Tensor  # [epochs + 1, T]: loss after 0 … epochs steps
    diverged: torch.Tensor  # [T] bool


def adam(
    params: list[torch.Tensor],
    loss_fn: Callable[[list[torch.Tensor]], torch.Tensor],
    epochs: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    report: Report | None = None,
) -> Fit:
    """Adam on trial-stacked tensors (leading axis T); loss_fn returns the per-trial loss [T], either with
    autograd history or, having written d loss_t / d params into the leaves' `.grad` itself, without.

    All parameters live in one flat buffer and their gradients in another (parameter after parameter,
    each [T, ...] block contiguous), so an update is a few ops over one tensor however many parameters
    there are, and autograd accumulates every gradient in place into its slot. A parameter the loss does
    not use (a tied s_1) keeps a zero gradient, hence zero moments and exactly zero steps."""
    sizes = [p.numel() for p in params]
    flat = torch.cat([p.detach().reshape(-1) for p in params])
    grad, m, v = torch.zeros_like(flat), torch.zeros_like(flat), torch.zeros_like(flat)
    leaves = []
    for p, pf, gf in zip(params, flat.split(sizes), grad.split(sizes)):
        leaf = pf.view(p.shape).requires_grad_(True)
        leaf.grad = gf.view(p.shape)
        leaves.append(leaf)
    b1, b2 = betas
    with torch.no_grad():
        loss = loss_fn(leaves)
    T = loss.shape[0]
    history = torch.empty(epochs + 1, T, dtype=loss.dtype)
    alive = torch.ones(T, dtype=torch.bool)
    keep, n_alive = torch.ones_like(flat, dtype=torch.bool), T
    for step in range(1, epochs + 1):
        loss = loss_fn(leaves)
        history[step - 1] = loss.detach()
        alive &= torch.isfinite(loss.detach())
        if loss.requires_grad:  # else loss_fn wrote the gradients itself (the fused raw stage)
            grad.zero_()
            torch.where(alive, loss, torch.zeros_like(loss)).sum().backward()
        bc1, bc2 = 1 - b1**step, (1 - b2**step) ** 0.5
        with torch.no_grad():
            if int(alive.sum()) < n_alive:  # a trial diverged: freeze it (its gradient may be NaN)
                keep, n_alive = torch.cat([alive.repeat_interleave(n // T) for n in sizes]), int(alive.sum())
            g = torch.where(keep, grad, 0.0)
            m.lerp_(g, 1 - b1)
            v.mul_(b2).addcmul_(g, g, value=1 - b2)
            flat.addcdiv_(torch.where(keep, m, 0.0), (v.sqrt() / bc2).add_(eps), value=-lr / bc1)
        if report is not None and (step % 25 == 0 or step == epochs):
            report(step, history[step - 1], alive)
    with torch.no_grad():
        history[epochs] = loss_fn(leaves)
    alive &= torch.isfinite(history[epochs])
    return Fit([leaf.detach() for leaf in leaves], history, ~alive)


class Progress:
    """One tqdm bar for a batch trained in slices (one per worker thread), on an interactive terminal only
    (log files and CI output stay clean): epochs done by the slowest slice, best and median loss over the
    live trials of all slices."""

    def __init__(self, desc: str, epochs: int, slices: int) -> None:
        self.bar = None
        if epochs and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=epochs, desc=desc, unit="epoch", leave=False, dynamic_ncols=True)
        self.steps = [0] * slices
        self.live: list[torch.Tensor] = [torch.empty(0)] * slices
        self.lock = threading.Lock()

    def reporter(self, i: int) -> Report | None:
        if self.bar is None:
            return None
        return lambda step, loss, alive: self._report(i, step, loss[alive])

    def _report(self, i: int, step: int, live: torch.Tensor) -> None:
        with self.lock:
            self.steps[i], self.live[i] = step, live
            every = torch.cat(self.live)
            if every.numel():
                self.bar.set_postfix(best=f"{every.min().item():.2e}", median=f"{every.median().item():.2e}", refresh=False)
            self.bar.update(min(self.steps) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((pred - y) ** 2).mean(-1)


def batch_mse(layers: list[Layer], x: torch.Tensor, y: torch.Tensor, fused: bool) -> torch.Tensor:
    """Per-trial training loss [T]: by the fused kernel, or by torch's ops (the reference it is tested against)."""
    return kernel.mlp_mse(layers, x, y) if fused else mse(forward(layers, x), y)


def workers_default() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


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
    return Fit([p[:1] for p in pair.params], pair.history[:, :1], pair.diverged[:1])


def chunked(fit_chunk: Callable[[slice | torch.Tensor, Report | None], Fit], trials: int, workers: int, desc: str, epochs: int) -> Fit:
    """Run `fit_chunk` on one slice of the trials per worker thread and stitch the results together.

    Trials never interact, so this changes nothing but the batch size each kernel sees."""
    keep_freed_memory()
    n = max(1, min(workers, trials // MIN_TRIALS_PER_WORKER))
    bounds = [round(i * trials / n) for i in range(n + 1)]
    slices = [slice(a, b) for a, b in zip(bounds, bounds[1:])]
    progress = Progress(desc, epochs, n)
    if n == 1:
        try:
            if trials == 1:  # see `alone`
                return alone(fit_chunk(torch.zeros(2, dtype=torch.long), progress.reporter(0)))
            return fit_chunk(slices[0], progress.reporter(0))
        finally:
            progress.close()

    def work(i: int) -> Fit:
        torch.set_num_threads(1)
        return fit_chunk(slices[i], progress.reporter(i))

    threads = torch.get_num_threads()
    try:
        with ThreadPoolExecutor(n) as pool:
            fits = list(pool.map(work, range(n)))
    finally:
        torch.set_num_threads(threads)
        progress.close()
    return Fit(
        [torch.cat(ps) for ps in zip(*(f.params for f in fits))],
        torch.cat([f.history for f in fits], 1),
        torch.cat([f.diverged for f in fits]),
    )


# ---- the reparameterisation (pretraining stage) -------------------------------------------------------


@dataclass
class Reparam:
    """How peaks and scales become network weights during pretraining (one setting for the whole batch;
    `free` says per trial whether every scale is its own parameter or the law ties them)."""

    peaks: str = "clamp"  # clamp | sigmoid
    s1: str = "trainable"  # trainable | tied
    offset: bool = True

    def theta(self, a: torch.Tensor) -> torch.Tensor:
        return a.clone() if self.peaks == "clamp" else torch.logit(a)

    def peak_values(self, theta: torch.Tensor) -> torch.Tensor:
        return theta.clamp(*PEAK_CLAMP) if self.peaks == "clamp" else torch.sigmoid(theta)

    def scales(self, a: torch.Tensor, s1: torch.Tensor, s: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
        law = law_scales(a, s1 if self.s1 == "trainable" else None)
        return torch.where(free.unsqueeze(1), s, law)

    def start(self, peaks: torch.Tensor) -> list[torch.Tensor]:
        """Parameters [θ, s_1, s] at the manifold point of the given starting peaks."""
        s = law_scales(peaks)
        return [self.theta(peaks), s[:, 0].clone(), s]

    def layers(self, params: list[torch.Tensor], free: torch.Tensor, sign: torch.Tensor) -> list[Layer]:
        theta, s1, s = params
        a = self.peak_values(theta)
        return encode(a, self.scales(a, s1, s, free), sign, self.offset)


def pretrain(
    reparam: Reparam,
    peaks: torch.Tensor,
    free: torch.Tensor,
    sign: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    lr: float,
    workers: int = 1,
    fused: bool = False,
) -> Fit:
    """Adam on (peaks, scales) through the encoding; returns Fit with params [θ, s_1, s]."""

    def fit(sl: slice | torch.Tensor, report: Report | None) -> Fit:
        f, sg = free[sl], sign[sl]
        loss = lambda p: batch_mse(reparam.layers(p, f, sg), x, y[sl], fused)  # noqa: E731
        return adam(reparam.start(peaks[sl]), loss, epochs, lr, report=report)

    return chunked(fit, peaks.shape[0], workers, "pretrain", epochs)


def train_raw(
    shapes: Shapes,
    flat: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    lr: float,
    workers: int = 1,
    fused: bool = False,
) -> Fit:
    """Adam on the raw weights, all packed in one [T, P] tensor."""

    def fit(sl: slice | torch.Tensor, report: Report | None) -> Fit:
        if fused:  # no autograd: the kernel writes every gradient straight into Adam's buffer
            loss = lambda p: kernel.mlp_mse_into(layer_pairs(p), x, y[sl], [t.grad for t in p])  # noqa: E731
        else:
            loss = lambda p: batch_mse(layer_pairs(p), x, y[sl], fused=False)  # noqa: E731
        fit = adam(layer_tensors(shapes.split(flat[sl])), loss, epochs, lr, report=report)
        return Fit([Shapes.join(layer_pairs(fit.params))], fit.history, fit.diverged)

    return chunked(fit, flat.shape[0], workers, "train", epochs)


class Stopwatch:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> "Stopwatch":
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.seconds += time.perf_counter() - self._t0

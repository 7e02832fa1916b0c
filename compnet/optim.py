"""Adam over trial-stacked parameters: one optimiser for every trial of a batch (paper §4: full batch, Adam).

All trials' parameters are stacked along a leading trial axis T and the loss is the sum of the per-trial
losses, so the gradient with respect to trial t's parameters is exactly that of trial t's own loss; Adam
acts elementwise, hence one Adam over the stacked tensors equals one Adam per trial. A trial whose loss
turns NaN or infinite is frozen where it stands and marked diverged. On request (`keep_every=N`) it keeps
copies of the parameters at steps 0, N, 2N, … and the last: copies only, so the trajectory is the same bits
with or without them. Nothing here knows about networks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import torch

Report = Callable[[int, torch.Tensor, torch.Tensor], None]  # (step, per-trial loss, alive) every 25 steps


@dataclass
class Buffers:
    """Adam's state, for a native loop that runs its steps in place (`kernel.bind_adam`): the parameters,
    gradients and moments (flat, parameter after parameter, `sizes` entries each), the trials' `alive` flags
    and the loss history [epochs + 1, T]."""

    flat: torch.Tensor
    grad: torch.Tensor
    m: torch.Tensor
    v: torch.Tensor
    sizes: list[int]
    alive: torch.Tensor
    history: torch.Tensor
    lr: float
    betas: tuple[float, float]
    eps: float


# given the leaves and the buffers: a function that runs steps first … last (Adam's update as below, same bits)
Native = Callable[[list[torch.Tensor], Buffers], Callable[[int, int], None]]


class Snapshot(NamedTuple):
    epoch: int  # steps taken
    params: list[torch.Tensor]  # as Fit.params, after `epoch` steps


@dataclass
class Fit:
    params: list[torch.Tensor]
    history: torch.Tensor  # [epochs + 1, T]: loss after 0 … epochs steps
    diverged: torch.Tensor  # [T] bool
    snapshots: list[Snapshot] = field(default_factory=list)  # keep_every=N: epochs 0, N, 2N, … and the last


def _mask(alive: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Per entry of the flat buffer, whether its trial is alive (each parameter's block is [T, ...])."""
    T = alive.shape[0]
    return torch.cat([alive.unsqueeze(1).expand(T, n // T).reshape(-1) for n in sizes])


def adam(
    params: list[torch.Tensor],
    loss_fn: Callable[[list[torch.Tensor]], torch.Tensor],
    epochs: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    report: Report | None = None,
    keep_every: int = 0,
    native: Native | None = None,
) -> Fit:
    """Adam on trial-stacked tensors (leading axis T); loss_fn returns the per-trial loss [T], either with
    autograd history or, having written d loss_t / d params into the leaves' `.grad` itself, without.

    All parameters live in one flat buffer and their gradients in another (parameter after parameter,
    each [T, ...] block contiguous), so an update is a few ops over one tensor however many parameters
    there are, and autograd accumulates every gradient in place into its slot. A parameter the loss does
    not use (a tied s_1) keeps a zero gradient, hence zero moments and exactly zero steps. keep_every=N > 0
    keeps a copy of the parameters at steps 0, N, 2N, … and at the last step (`Fit.snapshots`).

    `native` runs the steps between two reports or snapshots in one call (the fused raw stage: kernel and
    update in C, no Python per step), with the same bits as the loop here."""
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
    history = torch.empty(epochs + 1, T, dtype=loss.dtype, device=loss.device)
    alive = torch.ones(T, dtype=torch.bool, device=loss.device)
    keep, n_alive = torch.ones_like(flat, dtype=torch.bool), T
    snapshots: list[Snapshot] = []

    def snap(step: int) -> None:
        if keep_every and (step % keep_every == 0 or step == epochs):
            snapshots.append(Snapshot(step, [leaf.detach().clone() for leaf in leaves]))  # flat moves in place

    snap(0)
    if native is not None:
        run = native(leaves, Buffers(flat, grad, m, v, sizes, alive, history, lr, betas, eps))
        first = 1
        while first <= epochs:  # up to the next report (every 25 steps) or snapshot
            last = min(epochs, -(-first // 25) * 25, -(-first // keep_every) * keep_every if keep_every else epochs)
            run(first, last)
            snap(last)
            if report is not None:
                report(last, history[last - 1], alive)
            first = last + 1
        return _end(leaves, loss_fn, history, alive, epochs, snapshots)
    # on a GPU, reading `alive` back every step would wait for the step: the mask is rebuilt there instead
    # (the same mask, a few more ops); on the CPU reading it is free and the mask is rebuilt only when it changes
    on_host = flat.device.type == "cpu"
    for step in range(1, epochs + 1):
        loss = loss_fn(leaves)
        history[step - 1] = loss.detach()
        alive &= torch.isfinite(loss.detach())
        if loss.requires_grad:  # else loss_fn wrote the gradients itself (the fused raw stage)
            grad.zero_()
            torch.where(alive, loss, torch.zeros_like(loss)).sum().backward()
        bc1, bc2 = 1 - b1**step, (1 - b2**step) ** 0.5
        with torch.no_grad():
            if not on_host:
                keep = _mask(alive, sizes)
            elif int(alive.sum()) < n_alive:  # a trial diverged: freeze it (its gradient may be NaN)
                keep, n_alive = _mask(alive, sizes), int(alive.sum())
            # torch.optim.Adam's update, spelt in ops that round once each (mul, plain add, div, sqrt): the
            # fused lerp_/addcmul_/addcdiv_ take a fused multiply-add on some CPUs and not on others, and
            # results would then depend on the machine (README: Reproducibility)
            # (with every trial alive the masks change nothing: skipped, on the host where that is known)
            everyone = on_host and n_alive == T
            g = grad if everyone else torch.where(keep, grad, 0.0)
            m.mul_(b1).add_(g * (1 - b1))
            v.mul_(b2).add_(g * g * (1 - b2))
            flat.sub_((m if everyone else torch.where(keep, m, 0.0)) / (_sqrt(v) / bc2 + eps) * (lr / bc1))
        snap(step)
        if report is not None and (step % 25 == 0 or step == epochs):
            report(step, history[step - 1], alive)
    return _end(leaves, loss_fn, history, alive, epochs, snapshots)


def _sqrt(t: torch.Tensor) -> torch.Tensor:
    """The correctly rounded square root, on every machine: torch's CPU sqrt goes through MKL's vector math,
    within about an ulp (a fifth of float32 roots differ from the correctly rounded one, in a way that may depend
    on the CPU); numpy's is the hardware's IEEE instruction, as CUDA's sqrt is and kernel.c's Adam loop's."""
    return torch.from_numpy(np.sqrt(t.numpy())) if t.device.type == "cpu" else t.sqrt()


def _end(leaves, loss_fn, history: torch.Tensor, alive: torch.Tensor, epochs: int, snapshots: list[Snapshot]) -> Fit:
    """The loss after the last step, and the fit."""
    with torch.no_grad():
        history[epochs] = loss_fn(leaves)
    alive &= torch.isfinite(history[epochs])
    return Fit([leaf.detach() for leaf in leaves], history, ~alive, snapshots)

"""Independent references for the batched engine: what a researcher writes without compnet.

One trial at a time, an `nn.Sequential` and its own `torch.optim.Adam` (raw stage), or Adam on (θ, s_1)
through the closed form F(x) = x + σ Σ s_i W_i(x) (pretraining, docs/method.md §1–2): no batching, no
encoding, no hand-written optimiser. The tests hold the engine to these, and `make bench` times the first.
"""

from __future__ import annotations

from typing import Any

import torch

from compnet.methods import PEAK_CLAMP
from compnet.model import Shapes, closed_form, law_scales, to_sequential


def raw_loop(
    start: torch.Tensor,
    shapes: Shapes,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    lr: float,
    masks: list[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Final raw weights [T, P]: per trial an nn.Sequential from `start` [T, P] and its own Adam, full batch,
    on x [N] or [N, n]; `masks` (one per layer) zero the gradient of the weights a block network keeps at 0."""
    finals = []
    inputs = x[:, None] if x.dim() == 1 else x
    for t in range(start.shape[0]):
        net = to_sequential(shapes.split(start), t)
        linears = [m for m in net if isinstance(m, torch.nn.Linear)]
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        for _ in range(epochs):
            opt.zero_grad()
            loss = ((net(inputs)[:, 0] - y) ** 2).mean()
            loss.backward()
            for m, mask in zip(linears, masks or []):
                m.weight.grad.mul_(mask)
            opt.step()
        finals.append(torch.cat([p.detach().flatten() for m in linears for p in (m.weight, m.bias)]))
    return torch.stack(finals)


def pretrain_loop(
    peaks: torch.Tensor, sign: float, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, s1_free: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """One trial's pretraining on the manifold with clamped peaks: Adam on θ [d+1] (and s_1 unless tied)
    through the closed form. Returns θ and s_1."""
    theta = peaks.clone().requires_grad_(True)
    s1 = law_scales(peaks)[0].clone().requires_grad_(s1_free)
    opt = torch.optim.Adam([theta, s1] if s1_free else [theta], lr=lr)
    for _ in range(epochs):
        opt.zero_grad()
        a = theta.clamp(*PEAK_CLAMP)
        loss = ((closed_form(x, a, law_scales(a, s1 if s1_free else None), sign) - y) ** 2).mean()
        loss.backward()
        opt.step()
    return theta.detach(), s1.detach()


def free_pretrain_loop(
    peaks: torch.Tensor, sign: float, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """One trial of "differentiability not enforced": Adam on θ [d+1] and every scale s [d] as free
    parameters through the closed form, starting on the manifold. Returns θ and s."""
    theta = peaks.clone().requires_grad_(True)
    s = law_scales(peaks).clone().requires_grad_(True)
    opt = torch.optim.Adam([theta, s], lr=lr)
    for _ in range(epochs):
        opt.zero_grad()
        loss = ((closed_form(x, theta.clamp(*PEAK_CLAMP), s, sign) - y) ** 2).mean()
        loss.backward()
        opt.step()
    return theta.detach(), s.detach()


def blocks_pretrain_loop(
    design: Any, peaks: torch.Tensor, x: torch.Tensor, y: torch.Tensor, epochs: int, lr: float, free: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """One trial's pretraining of a block network with a fixed read-out (docs/method.md §8): Adam on θ [K, d+1]
    and s_1 [K] (law-tied scales), or every scale [K, d] (`free`), through the reading's closed form. Returns θ
    and the scales [K, d]."""
    theta = peaks.clone().requires_grad_(True)
    s = law_scales(peaks)
    s = (s if free else s[:, 0]).clone().requires_grad_(True)
    opt = torch.optim.Adam([theta, s], lr=lr)

    def scales() -> torch.Tensor:
        a = theta.clamp(*PEAK_CLAMP)
        return s if free else law_scales(a, s)

    for _ in range(epochs):
        opt.zero_grad()
        pred = design.closed_form(x, theta.clamp(*PEAK_CLAMP)[None], scales()[None], design.readout[None])[0]
        ((pred - y) ** 2).mean().backward()
        opt.step()
    return theta.detach(), scales().detach()

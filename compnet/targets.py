"""Target functions on [0, 1] and the sampling grids they are fitted on (docs/method.md §1, §4).

Every target f satisfies f(0) ≈ 0 and f(1) ≈ 1, like the compositional network F(x) = x + σ Σ s_i W_i(x).
The wave sign σ says on which side of the line y = x the target lies: σ = −1 (waves subtracted) for the
convex targets below it (x², x³, x¹¹), σ = +1 for the concave ones above it (sin(πx/2), tanh(3x)).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported late: `compnet --help` and config checks stay light
    import torch


@dataclass(frozen=True)
class Target:
    """A target f on [0, 1]. `fn` maps one float64 to one float64; a tensor is evaluated point by point and
    then rounded to its dtype, because torch's and numpy's vectorised pow, sin and tanh are chosen per CPU
    (AVX2, AVX-512, none) and differ in the last bit, and so would every trained number after them. Powers
    are repeated multiplications, each rounded once; sin and tanh are the C library's."""

    name: str
    label: str
    sign: float
    fn: Callable[[float], float]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.tensor([self.fn(v) for v in x.double().tolist()], dtype=torch.float64).to(x.dtype).view(x.shape)


def _power(n: int) -> Callable[[float], float]:
    def f(v: float) -> float:
        out = v
        for _ in range(n - 1):
            out *= v
        return out

    return f


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("x2", "x²", -1.0, _power(2)),
        Target("x3", "x³", -1.0, _power(3)),
        Target("x11", "x¹¹", -1.0, _power(11)),
        Target("sin", "sin(πx/2)", 1.0, lambda v: math.sin(math.pi * v / 2)),
        Target("tanh", "tanh(3x)", 1.0, lambda v: math.tanh(3 * v)),
    )
}


def target_order(name: str) -> int:
    """The paper's order: x³ and x¹¹ (Table 1), then sin and tanh (Table 2); unknown names last."""
    keys = list(TARGETS)
    return keys.index(name) if name in keys else len(keys)


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ValueError(f"unknown target {name!r}; valid targets: {', '.join(TARGETS)}") from None


def train_grid(points: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`points` evenly spaced points on [0, 1], ends included (the paper: 500): k / (points − 1), each a
    float64 division rounded once, then to `dtype` (torch.linspace's arithmetic is chosen per CPU)."""
    import torch

    return (torch.arange(points, dtype=torch.float64) / max(points - 1, 1)).to(dtype or torch.get_default_dtype())


def test_grid(points: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Held-out points for the sparse-data table: cell centres (k + ½)/n, k = 0 … n−1.

    The paper does not say where its 10 test points lie. Cell centres interleave with the evenly
    spaced training points, never coincide with them, and cover [0, 1] as evenly as they do.
    """
    import torch

    return ((torch.arange(points, dtype=torch.float64) + 0.5) / points).to(dtype or torch.get_default_dtype())

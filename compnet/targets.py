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
    name: str
    label: str
    sign: float
    fn: Callable[[torch.Tensor], torch.Tensor]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("x2", "x²", -1.0, lambda x: x**2),
        Target("x3", "x³", -1.0, lambda x: x**3),
        Target("x11", "x¹¹", -1.0, lambda x: x**11),
        Target("sin", "sin(πx/2)", 1.0, lambda x: (math.pi * x / 2).sin()),
        Target("tanh", "tanh(3x)", 1.0, lambda x: (3 * x).tanh()),
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
    """`points` evenly spaced points on [0, 1], ends included (the paper: 500)."""
    import torch

    return torch.linspace(0.0, 1.0, points, dtype=dtype)


def test_grid(points: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Held-out points for the sparse-data table: cell centres (k + ½)/n, k = 0 … n−1.

    The paper does not say where its 10 test points lie. Cell centres interleave with the evenly
    spaced training points, never coincide with them, and cover [0, 1] as evenly as they do.
    """
    import torch

    return (torch.arange(points, dtype=dtype) + 0.5) / points

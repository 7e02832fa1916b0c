"""Target functions and the sampling grids they are fitted on (docs/method.md §1, §4, §8).

The paper's targets live on [0, 1] and satisfy f(0) ≈ 0 and f(1) ≈ 1, like the compositional network
F(x) = x + σ Σ s_i W_i(x). The wave sign σ says on which side of the line y = x the target lies: σ = −1 (waves
subtracted) for the convex targets below it (x², x³, x¹¹), σ = +1 for the concave ones above it (sin(πx/2),
tanh(3x)). The extension's targets (docs/method.md §8) are neither: x³ − x on [−1, 1] changes convexity at 0
(σ = 0: it needs a network of blocks), r³ = (x² + y²)^{3/2} lives on [−1, 1]², a two-dimensional input.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # torch is imported late: `compnet --help` and config checks stay light
    import torch


@dataclass(frozen=True)
class Target:
    """A target f on the box domain^dim. `fn` maps `dim` float64s to one float64; a tensor (x [N], or [N, dim]
    for dim > 1) is evaluated point by point and then rounded to its dtype, because torch's and numpy's
    vectorised pow, sin and tanh are chosen per CPU (AVX2, AVX-512, none) and differ in the last bit, and so
    would every trained number after them. Powers are repeated multiplications, each rounded once; sin and
    tanh are the C library's. `sign` is the wave sign σ of a single block (0: neither convex nor concave)."""

    name: str
    label: str
    sign: float
    fn: Callable[..., float]
    dim: int = 1
    domain: tuple[float, float] = (0.0, 1.0)
    # a radial target f(x) = profile(|x|²) says so: the composed reading of blocks fits it (compnet/readings.py)
    profile: Callable[[float], float] | None = None
    mapped: bool = False  # a user's target (compnet/custom.py): its domain is mapped affinely onto [0, 1]

    @property
    def needs_blocks(self) -> bool:
        """Whether one 4-wide compositional network on [0, 1] cannot fit it: a network of blocks must."""
        return self.dim > 1 or self.sign == 0 or (self.domain != (0.0, 1.0) and not self.mapped)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        import torch

        return torch.from_numpy(self.values(x.detach().double().cpu().numpy())).to(device=x.device, dtype=x.dtype)

    def values(self, x: np.ndarray) -> np.ndarray:
        """f at the points x ([N], or [N, dim] for dim > 1) of a numpy array, each in float64, then rounded to
        x's dtype: `self(x)` for a tensor is this (the figures' helper processes do not import torch)."""
        points = np.asarray(x)
        rows = points.astype(np.float64).tolist()
        found = [self.fn(*v) for v in rows] if self.dim > 1 else [self.fn(v) for v in rows]
        return np.array(found, dtype=np.float64).astype(points.dtype)


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
        # the extension's (docs/method.md §8): fitted by networks of blocks (`experiment=extensions`)
        Target("x3_minus_x", "x³ − x", 0.0, lambda v: v * v * v - v, domain=(-1.0, 1.0)),
        Target(
            "r3", "r³", 0.0, lambda u, v: (u * u + v * v) ** 1.5, dim=2, domain=(-1.0, 1.0), profile=lambda s: s**1.5
        ),
    )
}


def target_order(name: str) -> int:
    """The paper's order: x³ and x¹¹ (Table 1), then sin and tanh (Table 2); unknown names last."""
    keys = list(TARGETS)
    return keys.index(name) if name in keys else len(keys)


# a user's own target (compnet/custom.py): a Python callable by import path, or the points of a CSV/NPZ file
USER_TARGETS = {"custom": "your callable: target.fn=module:function", "file": "your points: target.path=FILE.csv|.npz"}


def target_label(name: str) -> str:
    """A target's label for titles; a user's target by its kind (its summary names what it was)."""
    return TARGETS[name].label if name in TARGETS else name


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


def domain_grid(target: Target, points: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`points` evenly spaced points per axis on the target's domain, ends included: x [points] for a 1-D
    target, the tensor grid [points^dim, dim] (first coordinate slowest) otherwise. Each coordinate is
    lo + (hi − lo) k/(points − 1) in float64, rounded once."""
    import torch

    lo, hi = target.domain
    axis = lo + (hi - lo) * (torch.arange(points, dtype=torch.float64) / max(points - 1, 1))
    if target.dim == 1:
        return axis.to(dtype or torch.get_default_dtype())
    grid = torch.cartesian_prod(*[axis] * target.dim)
    return grid.to(dtype or torch.get_default_dtype())


# Second differences within this fraction of the largest one (or of float64 rounding on the grid) count as
# zero: x³'s near x = 0 and sin(πx/2)'s are below any sign, and a straight line is not "neither".
CONVEXITY_RTOL = 1e-6


def _second_differences(x: Any, y: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """(centres, second divided differences, tolerance) of 1-D points, sorted by x: the change of slope
    across each interior point, and what counts as zero (relative to the largest, or to rounding)."""
    x, y = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order]
    if len(x) < 3:
        return x[1:-1], np.zeros(0), 0.0
    h = np.diff(x)
    d = np.diff(np.diff(y) / h)
    rounding = 64 * np.finfo(np.float64).eps * float(np.abs(y).max()) / float(h.min())
    tol = max(CONVEXITY_RTOL * float(np.abs(d).max()), rounding)
    return x[1:-1], d, tol


def convexity(x: Any, y: Any) -> int:
    """+1 convex, −1 concave, 0 neither, from the second differences of the points (x, y) (1-D, any order,
    distinct x) with a tolerance (CONVEXITY_RTOL). A straight line counts as convex (+1). The single network's
    wave sign is −convexity for an increasing chord (docs/method.md §10; `custom.wave_sign`)."""
    _, d, tol = _second_differences(x, y)
    up, down = bool((d > tol).any()), bool((d < -tol).any())
    return 0 if up and down else -1 if down else 1


def inflections(x: Any, y: Any) -> list[float]:
    """Where the second difference changes sign (beyond the tolerance): between the centres of the last
    significant difference of one sign and the first of the other, linearly interpolated. [] for a convex or
    concave function; x³ − x on an even grid of [−1, 1] gives [0.0]."""
    centres, d, tol = _second_differences(x, y)
    signif = [(float(c), float(v)) for c, v in zip(centres, d) if abs(v) > tol]
    out = []
    for (c0, v0), (c1, v1) in zip(signif, signif[1:]):
        if (v0 > 0) != (v1 > 0):
            out.append(c0 + (c1 - c0) * v0 / (v0 - v1))
    return out


def target_of(name: str, cfg: Any) -> Target:
    """A built-in target, or the user's (target=custom, file: compnet/custom.py, on its check grid)."""
    if name in USER_TARGETS:
        from compnet import custom

        return custom.load(cfg).target
    return get_target(name)

"""How blocks join to fit a target that one block cannot (docs/method.md §8): the readings.

The paper says only that non-convex and multi-dimensional targets are fitted by several compositional blocks
(block-diagonal hidden layers) joined linearly. Three readings, measured against each other in `make ablations`:

- split (1-D, one inflection point c on [lo, hi]): a block on each side of c, each oriented so that its
  identity side (u < 0) faces the other, u_A = (c − x)/(c − lo), u_B = (x − c)/(hi − c):

      G(x) = f(c) + c_A F_A(u_A(x)) + c_B F_B(u_B(x)),

  with c_A = α(c − lo), c_B = f(hi) − f(c) + α(hi − c), α = |f'(c)| (F(0) = 0 and F(1) = 1 pin the rest;
  α is free, and |f'(c)| makes x³ − x's right block x³ itself).
  For x³ − x this is x³ − x = F_concave(−x) + F_convex(x). It exists when f(c) lies on the chord from lo to
  hi (odd symmetric targets); the read-out is fixed by construction (Adam cannot move it far at lr 1e-3).
- ridge (any dimension): K blocks on u_k = ½ + d_k · (x − centre)/(2R), directions d_k spread over the
  half circle (±1 alternately in 1-D; fixed random directions from seed 0 in 3+ D), R the domain's half
  diagonal, so every u_k stays in [0, 1]; the read-out c_0, c_1 … c_K is solved by least squares on the
  training points at every pretraining step (the loss is minimal in it, so its gradient in the peaks is the
  loss's: the envelope theorem) and once more before the raw-weight stage.
- composed (radial targets f(x) = φ(|x|²) on [−1, 1]^n): `blocks.composed_layers`, c_0 = φ(0),
  c_1 = φ(n) − φ(0).

A block's wave sign is the side of its chord its share of the target lies on (below: convex, σ = −1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import torch

from compnet import blocks
from compnet.model import Layer
from compnet.targets import Target


class ReadingError(ValueError):
    """A reading that cannot fit a target (the message names the one that can)."""


@dataclass(frozen=True)
class Design:
    """What a reading fixes for one target, for every trial: K trainable blocks (their signs [K]) and, for the
    sum readings, input maps proj [K, n], shift [K], margins [K] and the read-out [K+1] (None: least squares)."""

    reading: str
    n: int
    sign: torch.Tensor
    proj: torch.Tensor | None = None
    shift: torch.Tensor | None = None
    margin: torch.Tensor | None = None
    readout: torch.Tensor | None = None

    @property
    def K(self) -> int:
        return self.sign.shape[0]

    def to(self, dtype: torch.dtype, device: torch.device | str = "cpu") -> Design:
        def cast(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(dtype=dtype, device=device)

        return replace(self, **{k: cast(getattr(self, k)) for k in ("sign", "proj", "shift", "margin", "readout")})

    def widths(self, depth: int) -> list[int]:
        """[inputs, hidden widths …, 1]."""
        if self.reading == "composed":
            return [self.n] + [4 * self.n] * depth + [4] * depth + [1]
        return [self.n] + [4 * self.K] * depth + [1]

    def groups(self, depth: int) -> list[int]:
        """Diagonal blocks per layer (1: dense)."""
        if self.reading == "composed":
            return blocks.composed_groups(self.n, depth)
        return blocks.sum_groups(self.K, depth)

    def parameters(self, depth: int, masked: bool = True) -> int:
        """Weights and biases the raw-weight stage trains (off-block zeros not counted when `masked`)."""
        w, g = self.widths(depth), self.groups(depth) if masked else [1] * (len(self.widths(depth)) - 1)
        return sum(o * i // k + o for o, i, k in zip(w[1:], w[:-1], g))

    def layers(self, peaks: torch.Tensor, scales: torch.Tensor, readout: torch.Tensor) -> list[Layer]:
        """The network of every trial: peaks [T, K, d+1], scales [T, K, d], read-out [T, K+1]."""
        if self.reading == "composed":
            return blocks.composed_layers(peaks, scales, self.sign, readout, self.n)
        return blocks.sum_layers(peaks, scales, self.sign, self.proj, self.shift, readout, self.margin)

    def closed_form(self, x: torch.Tensor, peaks: torch.Tensor, scales: torch.Tensor, readout: torch.Tensor):
        x2 = x.unsqueeze(1) if x.dim() == 1 else x
        if self.reading == "composed":
            return blocks.composed_closed_form(x2, peaks, scales, self.sign, readout)
        return blocks.sum_closed_form(x2, peaks, scales, self.sign, self.proj, self.shift, readout)

    def readouts(self, x: torch.Tensor, y: torch.Tensor, peaks: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
        """The read-out [T, K+1] of every trial: the fixed one, or least squares on the points x against y [T, N]."""
        T = peaks.shape[0]
        if self.readout is not None:
            return self.readout.expand(T, -1)
        with torch.no_grad():
            x2 = x.unsqueeze(1) if x.dim() == 1 else x
            u = (x2 @ self.proj.T + self.shift).T  # [K, N]
            from compnet.model import closed_form

            F = closed_form(u, peaks, scales, self.sign.unsqueeze(0).expand(T, -1))  # [T, K, N]
            A = torch.cat([torch.ones_like(F[:, :1]), F], 1).double()  # [T, K+1, N]
            # normal equations in float64: [T, K+1, K+1] instead of a QR of [T, N, K+1] (10× faster); the
            # columns are near-collinear (every F_k is u_k plus small waves), so a relative 1e-12 ridge keeps
            # the solve defined without moving the optimum measurably
            G = A @ A.transpose(1, 2)
            G = G + 1e-12 * G.diagonal(dim1=1, dim2=2).sum(1)[:, None, None] * torch.eye(
                G.shape[1], dtype=G.dtype, device=G.device
            )
            sol = torch.linalg.solve(G, (A @ y.double().unsqueeze(2)))[..., 0]
            return sol.to(peaks.dtype)


def _second_differences(target: Target, points: int = 2001) -> tuple[torch.Tensor, torch.Tensor]:
    lo, hi = target.domain
    x = lo + (hi - lo) * torch.arange(points, dtype=torch.float64) / (points - 1)
    y = target(x)
    return x[1:-1], y[2:] - 2 * y[1:-1] + y[:-2]


def inflections(target: Target) -> list[float]:
    """Where a 1-D target's second difference changes sign (on a fine grid of its domain)."""
    x, d2 = _second_differences(target)
    scale = d2.abs().max().item()
    s = torch.where(d2.abs() <= 1e-9 * scale, 0.0, d2.sign())
    nz = s.nonzero()[:, 0]
    out = []
    for a, b in zip(nz[:-1].tolist(), nz[1:].tolist()):
        if s[a] != s[b]:
            out.append(round(0.5 * (x[a].item() + x[b].item()), 12))
    return out


def _sign_of(F) -> float:
    """σ of a block whose share of the target is F on [0, 1] (F(0) = 0, F(1) = 1): below its chord, convex, −1."""
    return -1.0 if F(0.5) < 0.5 else 1.0


def split(target: Target, margin: float) -> Design:
    if target.dim != 1:
        raise ReadingError(f"blocks.reading=split fits 1-D targets; {target.name} has {target.dim} inputs: use ridge")
    points = inflections(target)
    if len(points) != 1:
        raise ReadingError(
            f"blocks.reading=split needs one inflection point; {target.name} has {len(points)}: use blocks.reading=ridge"
        )
    (lo, hi), c, f = target.domain, points[0], target.fn
    chord = f(lo) + (f(hi) - f(lo)) * (c - lo) / (hi - lo)
    scale = max(abs(f(lo)), abs(f(hi)), abs(f(c)), 1e-300)
    if abs(f(c) - chord) > 1e-6 * scale:
        raise ReadingError(
            f"blocks.reading=split needs f at the inflection point {c:g} on the chord from {lo:g} to {hi:g} "
            f"({f(c):.4g} against {chord:.4g}): use blocks.reading=ridge"
        )
    h = 1e-4 * (hi - lo)  # a central difference, rounded to 6 digits: x³ − x gets α = 1 exactly
    alpha = float(f"{abs(f(c + h) - f(c - h)) / (2 * h):.6g}") or abs(f(hi) - f(lo)) / (hi - lo) or 1.0
    cA, cB = alpha * (c - lo), f(hi) - f(c) + alpha * (hi - c)
    if cB == 0:
        raise ReadingError(f"blocks.reading=split: the right block's read-out vanishes for {target.name}: use ridge")
    lA, lB = c - lo, hi - c

    def FA(u: float) -> float:  # x = c − u·lA, where block B sees u_B = −u·lA/lB (its identity side)
        return (f(c - u * lA) - f(c) + cB * u * lA / lB) / cA

    def FB(u: float) -> float:
        return (f(c + u * lB) - f(c) + cA * u * lB / lA) / cB

    t = torch.tensor
    return Design(
        "split",
        1,
        sign=t([_sign_of(FA), _sign_of(FB)], dtype=torch.float64),
        proj=t([[-1 / lA], [1 / lB]], dtype=torch.float64),
        shift=t([c / lA, -c / lB], dtype=torch.float64),
        margin=t([lB / lA + margin, lA / lB + margin], dtype=torch.float64),  # how far each u reaches below 0
        readout=t([f(c), cA, cB], dtype=torch.float64),
    )


def directions(n: int, K: int) -> torch.Tensor:
    """K unit directions [K, n]: ±1 alternately (1-D), evenly spread over the half circle (2-D), fixed random
    ones from seed 0 (3+ D)."""
    if n == 1:
        return torch.tensor([[1.0 if k % 2 == 0 else -1.0] for k in range(K)], dtype=torch.float64)
    if n == 2:
        angle = math.pi * torch.arange(K, dtype=torch.float64) / K
        return torch.stack([angle.cos(), angle.sin()], 1)
    d = torch.randn(K, n, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return d / d.norm(dim=1, keepdim=True)


def ridge(target: Target, K: int) -> Design:
    lo, hi = target.domain
    centre, R = (lo + hi) / 2, (hi - lo) / 2 * math.sqrt(target.dim)
    d = directions(target.dim, K)
    return Design(
        "ridge",
        target.dim,
        sign=torch.full((K,), -1.0, dtype=torch.float64),
        proj=d / (2 * R),
        shift=0.5 - centre * d.sum(1) / (2 * R),
        margin=torch.zeros(K, dtype=torch.float64),
    )


def composed(target: Target) -> Design:
    if target.profile is None or target.domain != (-1.0, 1.0):
        raise ReadingError(
            f"blocks.reading=composed fits radial targets f(|x|²) on [-1, 1]^n; {target.name} is not one: use ridge"
        )
    phi, n = target.profile, target.dim
    c0, c1 = phi(0.0), phi(float(n)) - phi(0.0)
    sign = _sign_of(lambda w: (phi(n * w) - c0) / c1)
    return Design(
        "composed",
        n,
        sign=torch.tensor([sign], dtype=torch.float64),
        readout=torch.tensor([c0, c1], dtype=torch.float64),
    )


def design(target: Target, reading: str, cfg: Any) -> Design:
    """The reading `reading` (auto: split for a 1-D target with one inflection point on its chord, composed for
    a radial one, else ridge) of `target`; settings `cfg` = the config's `blocks`."""
    if reading == "auto":
        if target.profile is not None:
            return composed(target)
        try:
            return split(target, cfg.margin)
        except ReadingError:
            return ridge(target, cfg.ridge_blocks)
    if reading == "split":
        return split(target, cfg.margin)
    if reading == "composed":
        return composed(target)
    return ridge(target, cfg.ridge_blocks)

"""Exact linear regions of a scalar ReLU network on an interval (METHOD.md §7, Hanin & Rolnick 2019).

Layer-wise breakpoint insertion in float64: keep the sorted knots of [lo, hi]; for each hidden layer evaluate
every pre-activation at the knots. Between two neighbouring knots all earlier layers are affine, so each
pre-activation is too, and a strict sign change between two knots is one root, found by linear
interpolation. Inserting the roots of layer k before looking at layer k+1 keeps this true.

- activation regions: intervals between the final knots (each knot is where some neuron changes sign);
- linear pieces: maximal intervals on which the output is affine, i.e. activation regions after merging
  neighbours with equal slope. Slopes are propagated exactly (forward-mode, at interval midpoints) rather
  than taken from differences of outputs, which lose all precision on the tiny pieces of deep networks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from compnet.model import Layer, Shapes

# Pre-activations within `rtol` of their largest magnitude at the knots count as zero: such a value is a
# knot already shared with an earlier neuron (t1 and t2 of the compositional network share breakpoints),
# not a new root. Weights stored in float32 carry rounding of ~1e-7 relative, which splits shared
# breakpoints into micro-pieces that float32 arithmetic cannot resolve; they are counted at 1e-5.
RTOL = {torch.float64: 1e-12, torch.float32: 1e-5}
SLOPE_TOL = 1e-9


def _rtol(dtype: torch.dtype) -> float:
    return RTOL.get(dtype, RTOL[torch.float32])


def _signs(z: np.ndarray, rtol: float) -> np.ndarray:
    scale = np.abs(z).max(0, keepdims=True)
    return np.where(np.abs(z) <= rtol * scale, 0.0, np.sign(z))


def _affine_layers(model: nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
    lins = [m for m in model if isinstance(m, nn.Linear)]
    others = [m for m in model if not isinstance(m, (nn.Linear, nn.ReLU))]
    if others or not lins or lins[0].in_features != 1 or lins[-1].out_features != 1:
        raise ValueError("expected an nn.Sequential of nn.Linear/nn.ReLU with scalar input and output")
    return [(m.weight.detach().double().numpy(), m.bias.detach().double().numpy()) for m in lins]


def _preactivations(layers, x: np.ndarray) -> list[np.ndarray]:
    """Pre-activations of every layer at points x: list of [N, width]."""
    h, out = x[:, None], []
    for i, (w, b) in enumerate(layers):
        z = h @ w.T + b
        out.append(z)
        h = np.maximum(z, 0.0)
    return out


def _knots(layers, lo: float, hi: float, rtol: float) -> np.ndarray:
    knots = np.array([lo, hi], dtype=np.float64)
    for k in range(len(layers) - 1):
        z = _preactivations(layers[: k + 1], knots)[-1]
        s = _signs(z, rtol)
        cross = s[:-1] * s[1:] < 0  # [intervals, neurons]
        i, j = np.nonzero(cross)
        z0, z1 = z[i, j], z[i + 1, j]
        roots = knots[i] + (knots[i + 1] - knots[i]) * z0 / (z0 - z1)
        knots = np.unique(np.concatenate([knots, roots]))
    return knots


def _slopes(layers, knots: np.ndarray) -> np.ndarray:
    """Exact output slope on each interval between knots, by forward-mode at the midpoints."""
    x = (knots[:-1] + knots[1:]) / 2
    h, dh = x[:, None], np.ones((x.size, 1))
    for i, (w, b) in enumerate(layers):
        h, dh = h @ w.T + b, dh @ w.T
        if i < len(layers) - 1:
            on = h > 0
            h, dh = h * on, dh * on
    return dh[:, 0]


@dataclass(frozen=True)
class Regions:
    knots: np.ndarray  # sorted breakpoints of the activation pattern, ends included
    slopes: np.ndarray  # output slope on each activation region
    wasted: int  # hidden neurons whose pre-activation never changes sign on the interval

    @property
    def activation_regions(self) -> int:
        return self.knots.size - 1

    @property
    def linear_pieces(self) -> int:
        s = self.slopes
        scale = np.maximum(np.abs(s[:-1]), np.abs(s[1:])) + np.abs(s).max() * 1e-6 + 1e-300
        return 1 + int((np.abs(np.diff(s)) > SLOPE_TOL * scale).sum())


def regions(model: nn.Sequential, lo: float = 0.0, hi: float = 1.0, rtol: float | None = None) -> Regions:
    """Activation regions and output slopes of a plain ReLU nn.Sequential with scalar input and output.

    `rtol` (default: 1e-12 for float64 weights, 1e-5 for float32) is the relative size below which a
    pre-activation at a knot counts as zero."""
    if not hi > lo:
        raise ValueError(f"need lo < hi, got [{lo}, {hi}]")
    rtol = _rtol(next(model.parameters()).dtype) if rtol is None else rtol
    return _regions(_affine_layers(model), float(lo), float(hi), rtol)


def _regions(layers, lo: float, hi: float, rtol: float) -> Regions:
    knots = _knots(layers, lo, hi, rtol)
    return Regions(knots, _slopes(layers, knots), _wasted(layers, knots, rtol))


def count_linear_pieces(model: nn.Sequential, lo: float = 0.0, hi: float = 1.0) -> int:
    """Exact number of maximal intervals of [lo, hi] on which `model` is affine."""
    return regions(model, lo, hi).linear_pieces


def count_activation_regions(model: nn.Sequential, lo: float = 0.0, hi: float = 1.0) -> int:
    """Exact number of intervals of [lo, hi] with a constant ReLU sign pattern."""
    return regions(model, lo, hi).activation_regions


def wasted_neurons(model: nn.Sequential, lo: float = 0.0, hi: float = 1.0) -> int:
    """Hidden neurons whose pre-activation never changes sign on [lo, hi] (dead or always on): they add
    no breakpoint, the paper's 'wasted' neurons."""
    return regions(model, lo, hi).wasted


def _wasted(layers, knots: np.ndarray, rtol: float) -> int:
    wasted = 0
    for z in _preactivations(layers, knots)[:-1]:
        s = _signs(z, rtol)
        wasted += int(((s >= 0).all(0) | (s <= 0).all(0)).sum())
    return wasted


def batch_regions(layers: list[Layer], lo: float = 0.0, hi: float = 1.0) -> list[Regions | None]:
    """Regions of every trial of a batched network; None for a trial with non-finite (diverged) weights.
    The zero tolerance follows the stored dtype (see RTOL)."""
    rtol = _rtol(layers[0][0].dtype)
    out: list[Regions | None] = []
    for trial in zip(*(zip(w.detach().double().numpy(), b.detach().double().numpy()) for w, b in layers)):
        net = list(trial)
        finite = all(np.isfinite(w).all() and np.isfinite(b).all() for w, b in net)
        out.append(_regions(net, lo, hi, rtol) if finite else None)
    return out


def trial_regions(shapes: Shapes, flat: torch.Tensor, lo: float = 0.0, hi: float = 1.0) -> tuple[list[int], list[int]]:
    """Linear pieces of the output and wasted neurons of every trial of a batched network ([T, P]);
    −1 for a diverged trial, which has no regions to count."""
    found = batch_regions(shapes.split(flat), lo, hi)
    return [r.linear_pieces if r else -1 for r in found], [r.wasted if r else -1 for r in found]

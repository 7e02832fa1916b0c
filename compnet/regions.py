"""Exact linear regions of a scalar ReLU network on an interval (docs/method.md §7, Hanin & Rolnick 2019).

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


def _signs(z: np.ndarray, valid: np.ndarray, rtol: float) -> np.ndarray:
    """Signs of pre-activations z [T, K, width] at the knots, 0 where within rtol of the neuron's largest
    magnitude (and at padding knots, valid [T, K] False)."""
    z = np.where(valid[..., None], z, 0.0)
    scale = np.abs(z).max(1, keepdims=True)
    return np.where(np.abs(z) <= rtol * scale, 0.0, np.sign(z))


def _affine_layers(model: nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
    lins = [m for m in model if isinstance(m, nn.Linear)]
    others = [m for m in model if not isinstance(m, (nn.Linear, nn.ReLU))]
    if others or not lins or lins[0].in_features != 1 or lins[-1].out_features != 1:
        raise ValueError("expected an nn.Sequential of nn.Linear/nn.ReLU with scalar input and output")
    return [(m.weight.detach().double().numpy(), m.bias.detach().double().numpy()) for m in lins]


# All networks of a batch are counted together (one numpy op per layer, not per network): weights
# [T, out, in], biases [T, out]. Each network has its own number of knots; the knot array [T, K] is
# sorted per row and padded with +inf, and padding is evaluated at a real knot and then ignored.


def _preactivations(layers, x: np.ndarray) -> list[np.ndarray]:
    """Pre-activations of every layer at points x [T, K]: list of [T, K, width]."""
    h, out = x[..., None], []
    for w, b in layers:
        z = h @ w.transpose(0, 2, 1) + b[:, None, :]
        out.append(z)
        h = np.maximum(z, 0.0)
    return out


def _knots(layers, lo: float, hi: float, rtol: float) -> np.ndarray:
    T = layers[0][0].shape[0]
    knots = np.tile([lo, hi], (T, 1))
    for k in range(len(layers) - 1):
        valid = np.isfinite(knots)
        z = _preactivations(layers[: k + 1], np.where(valid, knots, hi))[-1]
        s = _signs(z, valid, rtol)
        cross = s[:, :-1] * s[:, 1:] < 0  # [T, intervals, neurons]
        z0, z1, left, right = z[:, :-1], z[:, 1:], knots[:, :-1, None], knots[:, 1:, None]
        with np.errstate(invalid="ignore", divide="ignore"):  # padding and non-crossings are discarded
            roots = np.where(cross, left + (right - left) * z0 / (z0 - z1), np.inf)
        knots = np.sort(np.concatenate([knots, roots.reshape(T, -1)], 1), 1)
        knots[:, 1:][knots[:, 1:] == knots[:, :-1]] = np.inf  # a root at an existing knot is not new
        knots = np.sort(knots, 1)
        knots = knots[:, : np.isfinite(knots).sum(1).max()]
    return knots


def _slopes(layers, knots: np.ndarray) -> np.ndarray:
    """Exact output slope on each interval between knots [T, K − 1], by forward-mode at the midpoints
    (NaN on padding)."""
    mid = (knots[:, :-1] + knots[:, 1:]) / 2
    ok = np.isfinite(mid)
    h, dh = np.where(ok, mid, 0.0)[..., None], np.ones((*mid.shape, 1))
    for i, (w, b) in enumerate(layers):
        wt = w.transpose(0, 2, 1)
        h, dh = h @ wt + b[:, None, :], dh @ wt
        if i < len(layers) - 1:
            on = h > 0
            h, dh = h * on, dh * on
    return np.where(ok, dh[..., 0], np.nan)


def _wasted(layers, knots: np.ndarray, rtol: float) -> np.ndarray:
    """Per network, hidden neurons whose pre-activation never changes sign at the knots."""
    valid = np.isfinite(knots)
    wasted = np.zeros(knots.shape[0], dtype=int)
    for z in _preactivations(layers, np.where(valid, knots, knots[:, :1]))[:-1]:
        s = _signs(z, valid, rtol)
        wasted += ((s >= 0).all(1) | (s <= 0).all(1)).sum(1)
    return wasted


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
    layers = [(w[None], b[None]) for w, b in _affine_layers(model)]
    return _regions(layers, float(lo), float(hi), rtol)[0]


def _regions(layers, lo: float, hi: float, rtol: float) -> list[Regions]:
    """Regions of each of T networks given as batched numpy layers."""
    knots = _knots(layers, lo, hi, rtol)
    slopes, wasted = _slopes(layers, knots), _wasted(layers, knots, rtol)
    out = []
    for t in range(knots.shape[0]):
        n = int(np.isfinite(knots[t]).sum())
        out.append(Regions(knots[t, :n], slopes[t, : n - 1], int(wasted[t])))
    return out


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


def batch_regions(layers: list[Layer], lo: float = 0.0, hi: float = 1.0) -> list[Regions | None]:
    """Regions of every trial of a batched network, all trials counted together; None for a trial with
    non-finite (diverged) weights. The zero tolerance follows the stored dtype (see RTOL)."""
    rtol = _rtol(layers[0][0].dtype)
    arrays = [(w.detach().double().numpy(), b.detach().double().numpy()) for w, b in layers]
    finite = np.ones(arrays[0][0].shape[0], dtype=bool)
    for w, b in arrays:
        finite &= np.isfinite(w).all((1, 2)) & np.isfinite(b).all(1)
    counted = iter(_regions([(w[finite], b[finite]) for w, b in arrays], lo, hi, rtol) if finite.any() else [])
    return [next(counted) if ok else None for ok in finite]


def trial_regions(shapes: Shapes, flat: torch.Tensor, lo: float = 0.0, hi: float = 1.0) -> tuple[list[int], list[int]]:
    """Linear pieces of the output and wasted neurons of every trial of a batched network ([T, P]);
    −1 for a diverged trial, which has no regions to count."""
    found = batch_regions(shapes.split(flat), lo, hi)
    return [r.linear_pieces if r else -1 for r in found], [r.wasted if r else -1 for r in found]

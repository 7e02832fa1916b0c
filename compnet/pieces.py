"""Exact linear regions of a scalar ReLU network on an interval (docs/method.md §7, Hanin & Rolnick 2019).

Layer-wise breakpoint insertion: between two neighbouring knots all earlier layers are affine, so each
pre-activation of the next layer is too, and a strict sign change between two knots is one root, found by
linear interpolation; inserting the roots of layer k before looking at layer k+1 keeps this true. A knot is
carried as the pre-activations there (interpolated), not as its position x, which float64 cannot resolve:
the compositional network with peaks 0.01 has knots within 1e-18 of 1 from depth 9 on.

- activation regions: intervals between the knots;
- linear pieces: activation regions merged across the knots where the output's slope does not jump. The jump
  is propagated forward as the difference of the tangents on the knot's two sides: as a difference of the
  slopes themselves it is lost (in a deep compositional network it is down to 1e-32 of the slope).

What is exact, and under which assumption. A pre-activation within rtol (1e-9 for float64 weights, 1e-5 for
float32) of the magnitude of its terms at a knot, Σ_j |w_ij h_j| + |b_i|, is taken as exactly zero there (a
breakpoint shared with another neuron: t1 and t2 of the compositional network by design, or shared ones split
by the weights' rounding); two roots of one layer in one interval that are that close to zero at each other
are one knot; a slope jump is zero only if it is exactly zero in float64 (dead paths, zero weights, exact
cancellation). Both counts are exact for any network on which these rules are right: its intended
coincidences are exact, its other values at the knots are farther than rtol from zero, and its slope jumps
come out exactly zero where, and only where, they vanish. The compositional network (peaks in [0.01, 0.99],
law or explicit scales, any depth; measured to 20) is one: intended zeros come out below 1e-12 of their
terms, other values above 5e-5 (4e-8 with scales spread over 20 decades), so it counts 2^d pieces and regions.
Not covered: a slope jump that a design cancels exactly but float64 leaves as rounding noise (e.g. explicit
scales with s_2 = s_1 (1 − a_2), a_2 = 0.3: a 1e-15 jump where the closed form has none) counts as a kink.
`RegionCount.knots` are positions rounded to float64: neighbours may coincide.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from compnet.model import Layer, Shapes

# Zero tolerance relative to a pre-activation's terms at the knot. Float64: midway (in log) between what
# rounding leaves of the compositional network's intended zeros (≤ 8e-13 at peaks in [0.01, 0.99]) and its
# smallest genuine values (≥ 5e-5). Float32 weights (trained networks) split shared breakpoints by rounding
# into micro-pieces that float32 arithmetic cannot resolve (≤ 5e-6 measured); at 1e-5 they are one knot.
RTOL = {torch.float64: 1e-9, torch.float32: 1e-5}


def _rtol(dtype: torch.dtype) -> float:
    return RTOL.get(dtype, RTOL[torch.float32])


def _affine_layers(model: nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
    lins = [m for m in model if isinstance(m, nn.Linear)]
    others = [m for m in model if not isinstance(m, (nn.Linear, nn.ReLU))]
    if others or not lins or lins[0].in_features != 1 or lins[-1].out_features != 1:
        raise ValueError("expected an nn.Sequential of nn.Linear/nn.ReLU with scalar input and output")
    return [(m.weight.detach().double().numpy(), m.bias.detach().double().numpy()) for m in lins]


def _signs(z: np.ndarray, tol: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Signs of pre-activations z [T, K, width] at the knots: 0 within tol, and at padding (knot ≥ n)."""
    valid = np.arange(z.shape[1])[None, :, None] < n[:, None, None]
    return np.where(valid & (np.abs(z) > tol), np.sign(z), 0.0)


# All networks of a batch are counted together (one numpy op per layer, not per network): weights
# [T, out, in], biases [T, out]. Network t has n[t] knots; per-knot arrays are [T, K, ...] with K = max n,
# zero past n[t] (finite, so padding computes harmlessly and is never read).


@dataclass
class _Knots:
    n: np.ndarray  # [T] knots per network
    x: np.ndarray  # [T, K] positions, reported only: the count never reads them
    h: np.ndarray  # [T, K, width] post-activations of the last layer done
    tan: np.ndarray  # [T, K, width] dh/dx on the interval right of each knot (inherited where split)
    jump: np.ndarray  # [T, K, width] tan right of each interior knot minus tan left of it


def _insert(k: _Knots, z: np.ndarray, tol: np.ndarray, s: np.ndarray) -> tuple[_Knots, np.ndarray, np.ndarray]:
    """Knots with the roots of pre-activations z (zero tolerance tol, signs s; [T, K, out]) inserted, and z
    and tol at the new knots; h, tan and jump are left to the caller. z is affine between two knots, so
    interpolation gives it exactly; so it does tol wherever h ≥ 0 (after every ReLU)."""
    T, K, out = z.shape
    ti, ii, pi = np.nonzero(s[:, :-1] * s[:, 1:] < 0)  # root of neuron pi in interval ii of network ti
    r = np.arange(ti.size)
    zl, zr, tl, tr = z[ti, ii], z[ti, ii + 1], tol[ti, ii], tol[ti, ii + 1]
    theta = zl[r, pi] / (zl[r, pi] - zr[r, pi])  # in (0, 1]: the signs are opposite
    zn, tn = zl + theta[:, None] * (zr - zl), (1 - theta[:, None]) * tl + theta[:, None] * tr  # tn ≥ 0 too
    zn[r, pi] = 0.0
    xl, xr = k.x[ti, ii], k.x[ti, ii + 1]
    xn = np.clip(xl + theta * (xr - xl), xl, xr)

    # Roots of one interval in order. Two neurons of the layer sharing a breakpoint give two roots, each zero
    # (within tol) at the other: one knot, the lowest neuron's, or a sliver of an activation region between.
    order = np.lexsort((theta, ii, ti))
    ti, ii, pi, zn, tn, xn = ti[order], ii[order], pi[order], zn[order], tn[order], xn[order]
    group = ti * K + ii
    drop = np.zeros(r.size, dtype=bool)
    for d in range(1, out):
        a, b = r[:-d], r[d:]  # a before b; the groups are contiguous, so offset d needs groups larger than d
        same = group[a] == group[b]
        if not same.any():
            break
        a, b = a[same], b[same]
        drop[b] |= (pi[a] < pi[b]) & (np.abs(zn[a, pi[b]]) <= tn[a, pi[b]])
        drop[a] |= (pi[b] < pi[a]) & (np.abs(zn[b, pi[a]]) <= tn[b, pi[a]])
    keep = ~drop
    ti, ii, zn, tn, xn, group = ti[keep], ii[keep], zn[keep], tn[keep], xn[keep], group[keep]

    # Knot i moves right by the roots left of it; the roots of interval i follow knot i.
    count = np.bincount(group, minlength=T * K).reshape(T, K)
    before = np.cumsum(count, 1) - count
    rank = np.arange(group.size) - np.searchsorted(group, group)
    n = k.n + count.sum(1)
    vt, vi = np.nonzero(np.arange(K)[None] < k.n[:, None])
    K2 = int(n.max())
    old_from, old_to = vt * K + vi, vt * K2 + vi + before[vt, vi]  # flat indices: one gather, one scatter
    root_to = ti * K2 + ii + before[ti, ii] + 1 + rank

    def place(old: np.ndarray, root: np.ndarray | float) -> np.ndarray:
        rest = old.shape[2:]
        new = np.zeros((T * K2, *rest))
        new[old_to] = old.reshape(T * K, *rest)[old_from]
        new[root_to] = root
        return new.reshape(T, K2, *rest)

    new = _Knots(n, place(k.x, xn), k.h, place(k.tan, k.tan[ti, ii]), place(k.jump, 0.0))
    return new, place(z, zn), place(tol, tn)


def _count(layers, lo: float, hi: float, rtol: float):
    """Knot count, knots, slopes, slope jumps and wasted neurons of T networks given as batched numpy layers."""
    T = layers[0][0].shape[0]
    x = np.tile([lo, hi], (T, 1)).astype(float)
    k = _Knots(np.full(T, 2), x, x[..., None].copy(), np.ones((T, 2, 1)), np.zeros((T, 2, 1)))
    wasted = np.zeros(T, dtype=int)
    for w, b in layers[:-1]:
        wt = w.transpose(0, 2, 1)
        z = k.h @ wt + b[:, None, :]
        # What the weights' precision and the rounding of the layers before can move z by is relative to its
        # terms at this knot; the neuron's largest value elsewhere on the interval says nothing about it.
        tol = rtol * (np.abs(k.h) @ np.abs(wt) + np.abs(b)[:, None, :])
        s = _signs(z, tol, k.n)
        wasted += (~((s > 0).any(1) & (s < 0).any(1))).sum(1)
        k, z, tol = _insert(k, z, tol, s)
        on = z > tol  # tol ≥ 0: off at its own root (padding: never read)
        k.h = np.where(on, z, 0.0)  # a value within tol of zero is zero from here on: the knot is shared
        pat = (on[:, :-1] | on[:, 1:]).astype(float)  # on over an interval iff on at one end (no root inside)
        a = (k.tan @ wt)[:, :-1]  # pre-activation slope on each interval
        tan, jump = np.zeros((2, T, k.n.max(), w.shape[1]))
        tan[:, :-1] = pat * a
        jump[:, 1:-1] = pat[:, 1:] * (k.jump @ wt)[:, 1:-1] + (pat[:, 1:] - pat[:, :-1]) * a[:, :-1]
        k.tan, k.jump = tan, jump
    wo = layers[-1][0].transpose(0, 2, 1)
    return k.n, k.x, (k.tan @ wo)[..., 0], (k.jump @ wo)[..., 0], wasted


@dataclass(frozen=True)
class RegionCount:
    knots: np.ndarray  # breakpoints of the activation pattern in order, ends included (rounded to float64)
    slopes: np.ndarray  # output slope on each activation region
    wasted: int  # hidden neurons whose pre-activation never changes sign on the interval
    jumps: np.ndarray | None = None  # jump of the output slope at each interior knot (None: diff of slopes)

    @property
    def activation_regions(self) -> int:
        return self.knots.size - 1

    @property
    def linear_pieces(self) -> int:
        jumps = np.diff(self.slopes) if self.jumps is None else self.jumps
        return 1 + int(np.count_nonzero(jumps))


def count_regions(model: nn.Sequential, lo: float = 0.0, hi: float = 1.0, rtol: float | None = None) -> RegionCount:
    """Activation regions and output slopes of a plain ReLU nn.Sequential with scalar input and output.

    `rtol` (default: RTOL of the weights' dtype) is the size, relative to the magnitude of its terms at the
    knot, below which a pre-activation counts as zero there."""
    if not hi > lo:
        raise ValueError(f"need lo < hi, got [{lo}, {hi}]")
    rtol = _rtol(next(model.parameters()).dtype) if rtol is None else rtol
    layers = [(w[None], b[None]) for w, b in _affine_layers(model)]
    return _counts(layers, float(lo), float(hi), rtol)[0]


def _counts(layers, lo: float, hi: float, rtol: float) -> list[RegionCount]:
    """The counts of each of T networks given as batched numpy layers."""
    n, x, slopes, jumps, wasted = _count(layers, lo, hi, rtol)
    return [
        RegionCount(x[t, : n[t]], slopes[t, : n[t] - 1], int(wasted[t]), jumps[t, 1 : n[t] - 1]) for t in range(n.size)
    ]


def count_linear_pieces(model: nn.Sequential, lo: float = 0.0, hi: float = 1.0) -> int:
    """Exact number of maximal intervals of [lo, hi] on which `model` is affine."""
    return count_regions(model, lo, hi).linear_pieces


def count_activation_regions(model: nn.Sequential, lo: float = 0.0, hi: float = 1.0) -> int:
    """Exact number of intervals of [lo, hi] with a constant ReLU sign pattern."""
    return count_regions(model, lo, hi).activation_regions


def wasted_neurons(model: nn.Sequential, lo: float = 0.0, hi: float = 1.0) -> int:
    """Hidden neurons whose pre-activation never changes sign on [lo, hi] (dead or always on): they add
    no breakpoint, the paper's 'wasted' neurons."""
    return count_regions(model, lo, hi).wasted


def count_batch(layers: list[Layer], lo: float = 0.0, hi: float = 1.0) -> list[RegionCount | None]:
    """The counts of every trial of a batched network, all trials counted together; None for a trial with
    non-finite (diverged) weights. The weights' precision follows the stored dtype (see RTOL)."""
    rtol = _rtol(layers[0][0].dtype)
    arrays = [(w.detach().double().numpy(), b.detach().double().numpy()) for w, b in layers]
    finite = np.ones(arrays[0][0].shape[0], dtype=bool)
    for w, b in arrays:
        finite &= np.isfinite(w).all((1, 2)) & np.isfinite(b).all(1)
    counted = iter(_counts([(w[finite], b[finite]) for w, b in arrays], lo, hi, rtol) if finite.any() else [])
    return [next(counted) if ok else None for ok in finite]


def trial_pieces(shapes: Shapes, flat: torch.Tensor, lo: float = 0.0, hi: float = 1.0) -> tuple[list[int], list[int]]:
    """Linear pieces of the output and wasted neurons of every trial of a batched network ([T, P]);
    −1 for a diverged trial, which has no regions to count."""
    found = count_batch(shapes.split(flat), lo, hi)
    return [r.linear_pieces if r else -1 for r in found], [r.wasted if r else -1 for r in found]

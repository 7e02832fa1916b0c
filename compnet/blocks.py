"""Networks of compositional blocks (docs/method.md §8): the paper's extension to non-convex and
multi-dimensional targets, each a plain ReLU MLP.

A block is the 4-wide compositional encoding of `model.encode` with its own peaks a^k_1 … a^k_{d+1}, scales
s^k and wave sign σ_k, computing F_k(u) = u + σ_k Σ_i s^k_i W^k_i(u) (model.closed_form). Two ways to join
blocks, both batched over trials (leading axis T):

- the sum (`sum_layers`): block k reads u_k = p_k · x + q_k from the n-D input, the blocks' hidden layers sit
  side by side (block-diagonal 4K × 4K weights) and a linear read-out combines them,

      G(x) = c_0 + Σ_k c_k F_k(u_k(x));

  equal to this closed form wherever every u_k lies in [0, 1], and below 0 too down to −(margin_k): each
  block's accumulator carries the offset Σ|s^k| + margin_k, so that for u_k < 0 (every wave neuron off) the
  block is the identity, F_k(u) = u (docs/method.md §8). K = 1 on u = x with c = (0, 1) and no margin is
  `model.encode`'s network, weight for weight.
- the composition (`composed_layers`), for a radial target f(x) = φ(|x|²) on [−1, 1]^n: n fixed blocks with
  all peaks ½ (Yarotsky's x² interpolant: scales 4^{−i}, σ = −1) square the coordinates,
  Y(t) = 1 + 4(F(u) − u) ≈ t² with u = (t + 1)/2, and one trainable block h reads their mean w = Σ_i Y(x_i)/n
  ∈ [0, 1]:

      G(x) = c_0 + c_1 F_h(w(x)),    c_0 = φ(0), c_1 = φ(n) − φ(0),

  one MLP of 2d hidden layers: d layers of the n squaring blocks side by side (their accumulators carry only
  the waves, F − u, so no fifth neuron is needed for u), then h's d layers; h's first layer absorbs the
  squares' read-out, since w is linear in their last hidden layer.

`groups` gives, per layer, how many diagonal blocks the fused kernel reads (1: dense); the raw-weight stage
keeps that sparsity unless the mask is freed (the off-block weights get no gradient, so they stay 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from compnet.model import Layer, closed_form, encode, law_scales, to_sequential


def _block_diag(w: torch.Tensor) -> torch.Tensor:
    """[T, K, o, i] → [T, K·o, K·i], block k on the diagonal (differentiable; exact: products with 1 and 0)."""
    T, K, o, i = w.shape
    eye = torch.eye(K, dtype=w.dtype, device=w.device)
    return (w.unsqueeze(3) * eye[None, :, None, :, None]).reshape(T, K * o, K * i)


def _blocks(peaks: torch.Tensor, scales: torch.Tensor, sign: torch.Tensor) -> list[Layer]:
    """`encode` of every block of every trial: peaks [T, K, d+1], scales [T, K, d], sign [K] → layers
    [T, K, out, in] and biases [T, K, out]."""
    T, K, d1 = peaks.shape
    layers = encode(peaks.reshape(T * K, d1), scales.reshape(T * K, d1 - 1), sign.repeat(T))
    return [(w.view(T, K, *w.shape[1:]), b.view(T, K, -1)) for w, b in layers]


def sum_layers(
    peaks: torch.Tensor,
    scales: torch.Tensor,
    sign: torch.Tensor,
    proj: torch.Tensor,
    shift: torch.Tensor,
    readout: torch.Tensor,
    margin: torch.Tensor | None = None,
) -> list[Layer]:
    """The sum of K blocks for T trials: peaks [T, K, d+1], scales [T, K, d], sign [K], input map proj [K, n]
    and shift [K], read-out [T, K+1] (c_0, c_1 … c_K), extra accumulator offset `margin` [K] (default 0).
    Layers: [T, 4K, n], (d − 1) × [T, 4K, 4K] block-diagonal, [T, 1, 4K]."""
    T, K, _ = peaks.shape
    (w1, b1), *hidden, (wo, bo) = _blocks(peaks, scales, sign)
    if margin is not None:  # on the accumulator (neuron 0 of each block), taken off again at the read-out
        b1 = b1 + torch.nn.functional.pad(margin.unsqueeze(1), (0, 3))
        bo = bo - margin.unsqueeze(1)
    first = ((w1 * proj.unsqueeze(1)).reshape(T, 4 * K, -1), (w1[..., 0] * shift.unsqueeze(1) + b1).reshape(T, -1))
    middle = [(_block_diag(w), b.reshape(T, -1)) for w, b in hidden]
    c0, c = readout[:, :1], readout[:, 1:]
    last = ((c.unsqueeze(2) * wo[:, :, 0]).reshape(T, 1, -1), c0 + (c * bo[..., 0]).sum(1, keepdim=True))
    return [first, *middle, last]


def sum_groups(K: int, depth: int) -> list[int]:
    return [1] + [K] * (depth - 1) + [1]


def sum_closed_form(x, peaks, scales, sign, proj, shift, readout) -> torch.Tensor:
    """G at the points x [N, n] for every trial ([T, N]; valid where every u_k is at most 1, and below 0 as
    far as the block's margin reaches: there F_k(u) = u)."""
    u = (x @ proj.T + shift).T  # [K, N]
    F = closed_form(u.clamp_min(0), peaks, scales, sign.unsqueeze(0).expand(peaks.shape[0], -1))  # [T, K, N]
    F = torch.where(u < 0, u, F)
    return readout[:, :1] + (readout[:, 1:].unsqueeze(2) * F).sum(1)


def squares(n: int, depth: int, dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    """Peaks (all ½) and scales (4^{−i}) of Yarotsky's x² block, for each of n coordinates: [n, d+1], [n, d]."""
    peaks = torch.full((n, depth + 1), 0.5, dtype=dtype)
    return peaks, law_scales(peaks)


def squaring(
    T: int, n: int, depth: int, dtype: torch.dtype, device: torch.device | None = None
) -> tuple[list[Layer], Layer]:
    """The composition's fixed part for T trials on [−1, 1]^n: the n squaring blocks' first `depth` layers
    ([T, 4n, n], then (d − 1) × [T, 4n, 4n] block-diagonal) and the map of their last hidden layer z to the
    mean square w = w_row · z + w_bias (w_row [T, 1, 4n], w_bias [T]), which the trained block's first layer
    takes as its input."""
    sq_peaks, sq_scales = squares(n, depth, dtype)
    sq = _blocks(sq_peaks.to(device).expand(T, n, -1), sq_scales.to(device).expand(T, n, -1),
                 torch.full((n,), -1.0, dtype=dtype, device=device))  # fmt: skip
    (w1, b1), *hidden, (wo, bo) = sq
    carry = torch.tensor([0.0, 1.0, 1.0, 1.0], dtype=dtype, device=device)  # acc without u: F − u
    proj = 0.5 * torch.eye(n, dtype=dtype, device=device)  # u_i = (x_i + 1)/2
    w1 = w1 * carry[:, None]
    first = ((w1 * proj.unsqueeze(1)).reshape(T, 4 * n, n), (0.5 * w1[..., 0] + b1).reshape(T, -1))
    middle = [(_block_diag(w), b.reshape(T, -1)) for w, b in hidden]
    # w = 1 + (4/n) Σ_i (wo_i · z_i + bo_i): linear in the squares' last hidden layer z
    return [first, *middle], ((4 / n) * wo[:, :, 0].reshape(T, 1, 4 * n), 1 + (4 / n) * bo[..., 0].sum(1))


def composed_layers(
    peaks: torch.Tensor, scales: torch.Tensor, sign: torch.Tensor, readout: torch.Tensor, n: int
) -> list[Layer]:
    """The composition for T trials on [−1, 1]^n: h's peaks [T, 1, d+1], scales [T, 1, d], sign [1],
    read-out [T, 2] (c_0, c_1). Layers: [T, 4n, n], (d − 1) × [T, 4n, 4n] block-diagonal, [T, 4, 4n],
    (d − 1) × [T, 4, 4], [T, 1, 4]."""
    T, _, d1 = peaks.shape
    fixed, (w_row, w_bias) = squaring(T, n, d1 - 1, peaks.dtype, peaks.device)
    (h1, hb1), *h_hidden, (ho, hbo) = _blocks(peaks, scales, sign)
    h1, hb1 = h1[:, 0], hb1[:, 0]  # [T, 4, 1], [T, 4]
    joint = (h1 * w_row, hb1 + h1[..., 0] * w_bias.unsqueeze(1))
    h_mid = [(w[:, 0], b[:, 0]) for w, b in h_hidden]
    last = (readout[:, 1:].unsqueeze(2) * ho[:, 0], readout[:, :1] + readout[:, 1:] * hbo[:, 0])
    return [*fixed, joint, *h_mid, last]


def composed_groups(n: int, depth: int) -> list[int]:
    return [n] * depth + [1] * depth + [1]


def composed_closed_form(x, peaks, scales, sign, readout) -> torch.Tensor:
    """G at the points x [N, n] on [−1, 1]^n for every trial ([T, N])."""
    n = x.shape[1]
    sq_peaks, sq_scales = squares(n, peaks.shape[-1] - 1, x.dtype)
    u = (x.T + 1) / 2  # [n, N]
    Y = 1 + 4 * (closed_form(u, sq_peaks, sq_scales, torch.full((n,), -1.0, dtype=x.dtype)) - u)
    w = Y.mean(0)  # [N]
    F = closed_form(w, peaks[:, 0], scales[:, 0], sign.expand(peaks.shape[0]))  # [T, N]
    return readout[:, :1] + readout[:, 1:] * F


@dataclass
class BlockNet:
    """One sum-of-blocks network (no trial axis): peaks [K, d+1], signed scales [K, d], signs [K], input map
    proj [K, n] and shift [K], read-out [K + 1] (c_0, then one weight per block)."""

    peaks: torch.Tensor
    scales: torch.Tensor
    sign: torch.Tensor
    proj: torch.Tensor
    shift: torch.Tensor
    readout: torch.Tensor

    def layers(self) -> list[Layer]:
        """The network's layers with a leading trial axis of 1 (the shapes `model.forward` and
        `model.to_sequential` take)."""
        return sum_layers(self.peaks[None], self.scales[None], self.sign, self.proj, self.shift, self.readout[None])

    def closed_form(self, x: torch.Tensor) -> torch.Tensor:
        """G at the points x [N, n] (valid where every u_k is in [0, 1])."""
        args = (self.peaks[None], self.scales[None], self.sign, self.proj, self.shift, self.readout[None])
        return sum_closed_form(x, *args)[0]

    def to_sequential(self) -> nn.Sequential:
        return to_sequential(self.layers())


def block_network(peaks, sign, proj=None, shift=None, readout=None, scales=None) -> BlockNet:
    """A block network from peaks [K, d+1] and signs [K]; `proj` [K, n] (default: every block reads a 1-D
    input as it is), `shift` [K] (default 0), `readout` [K + 1] (default c_0 = 0, c_k = 1), `scales` [K, d]
    (default: each block on the differentiable manifold, `model.law_scales`). Float64 peaks give a float64
    network."""
    peaks = torch.as_tensor(peaks)
    peaks = peaks if peaks.is_floating_point() else peaks.double()
    if peaks.ndim != 2 or peaks.shape[1] < 2:
        raise ValueError(f"peaks must be [K, d+1] with d ≥ 1; got shape {tuple(peaks.shape)}")
    if not bool(((peaks > 0) & (peaks < 1)).all()):
        raise ValueError("peaks must lie in (0, 1)")
    K, dt = peaks.shape[0], peaks.dtype

    def given(value, default: torch.Tensor, shape: tuple[int, ...], name: str) -> torch.Tensor:
        t = default if value is None else torch.as_tensor(value, dtype=dt)
        if t.shape != shape:
            raise ValueError(f"{name} must have shape {shape}; got {tuple(t.shape)}")
        return t

    n = 1 if proj is None else torch.as_tensor(proj).shape[-1]
    proj = given(proj, torch.ones(K, 1, dtype=dt), (K, n), "proj")
    scales = given(scales, law_scales(peaks), (K, peaks.shape[1] - 1), "scales")
    if not bool((scales != 0).all()):
        raise ValueError("scales must be non-zero (the encoding divides by them)")
    return BlockNet(
        peaks=peaks,
        scales=scales,
        sign=given(sign, torch.ones(K, dtype=dt), (K,), "sign"),
        proj=proj,
        shift=given(shift, torch.zeros(K, dtype=dt), (K,), "shift"),
        readout=given(readout, torch.cat([torch.zeros(1, dtype=dt), torch.ones(K, dtype=dt)]), (K + 1,), "readout"),
    )

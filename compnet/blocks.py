"""Networks of compositional blocks (docs/method.md §8): the paper's extension to non-convex and
multi-dimensional targets, as one plain ReLU MLP. The model only, for now: issue 13's training, experiment and
readings build on it.

A block network has K blocks, each the 4-wide compositional encoding of `model.encode` with its own peaks
a^k_1 … a^k_{d+1}, scales s^k and wave sign σ_k. Block k reads one scalar of the n-D input through the input map
u_k = p_k · x + q_k; the blocks' hidden layers sit side by side (block-diagonal 4K × 4K weights); a linear
read-out combines their outputs:

    G(x) = c_0 + Σ_k c_k F_k(u_k(x)),    F_k(u) = u + σ_k Σ_i s^k_i W^k_i(u)    (model.closed_form).

The network equals this closed form wherever every u_k lies in [0, 1] (each block's accumulator offset keeps it
exact below 0 down to −m_k too). K = 1 with u = x and c = (0, 1) is `model.encode`'s network, weight for weight.
Not here yet: blocks fed by earlier blocks' outputs (the composed reading of r³).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from compnet.model import Layer, closed_form, encode, law_scales, to_sequential


@dataclass
class BlockNet:
    """K blocks of depth d on an n-D input: peaks [K, d+1], signed scales [K, d], signs [K], input map
    proj [K, n] and shift [K], read-out [K + 1] (c_0, then one weight per block)."""

    peaks: torch.Tensor
    scales: torch.Tensor
    sign: torch.Tensor
    proj: torch.Tensor
    shift: torch.Tensor
    readout: torch.Tensor
    offset: bool = True

    def layers(self) -> list[Layer]:
        """The network's layers with a leading trial axis of 1 (the shapes `model.forward` and
        `model.to_sequential` take): first layer [4K, n], block-diagonal hidden layers, read-out [1, 4K]."""
        blocks = encode(self.peaks, self.scales, self.sign, self.offset)  # the K blocks as K "trials"
        K = self.peaks.shape[0]
        (w1, b1), *hidden, (wo, bo) = blocks
        first = (
            (w1 @ self.proj.unsqueeze(1)).reshape(4 * K, -1),
            (w1[..., 0] * self.shift.unsqueeze(1) + b1).reshape(-1),
        )
        middle = [(torch.block_diag(*w), b.reshape(-1)) for w, b in hidden]
        c0, c = self.readout[0], self.readout[1:]
        last = (c.unsqueeze(1) * wo[:, 0]).reshape(1, -1), (c0 + (c * bo[:, 0]).sum()).reshape(1)
        return [(w.unsqueeze(0), b.unsqueeze(0)) for w, b in (first, *middle, last)]

    def closed_form(self, x: torch.Tensor) -> torch.Tensor:
        """G at the points x [N, n] (valid where every u_k is in [0, 1])."""
        u = (x @ self.proj.T + self.shift).T  # [K, N]
        return self.readout[0] + (
            self.readout[1:].unsqueeze(1) * closed_form(u, self.peaks, self.scales, self.sign)
        ).sum(0)

    def to_sequential(self) -> nn.Sequential:
        return to_sequential(self.layers())


def block_network(
    peaks,
    sign,
    proj=None,
    shift=None,
    readout=None,
    scales=None,
    offset: bool = True,
) -> BlockNet:
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
        offset=offset,
    )

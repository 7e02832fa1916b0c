"""The fused engine's pretraining encoding: `model.Reparam.layers` and `model.Reparam.vjp` outside torch.

A pretraining step on the fused engine is one kernel call (the layers' loss and gradients) between the encoding
of [θ, s_1, s] into layers and the map of the layer gradients back to [θ, s_1, s]. `Encoder` runs both in C
(compnet/encode.c, built with the kernel) into layer buffers allocated once, which the kernel reads; the 1-D
network's whole pretraining loop runs there too (`kernel.bind_adam` with an encoder). `SumEncoder` assembles a
sum of blocks from the blocks' layers in numpy, and takes the kernel's gradients back through the assembly;
`ComposedEncoder` the same for the composition (fixed squaring blocks feeding one trained block).

The same arithmetic as `model.encode`, `model.law_scales`, `model.encode_vjp` and `model.law_scales_vjp`, which
stay the reference (torch, any device, autograd-checked); tests/test_stages.py holds this module to them (the
offset m = Σ|s_k| and the law's sums run in index order here, so the two differ by rounding).
"""

from __future__ import annotations

import ctypes

import numpy as np
import torch

from compnet import blocks, kernel
from compnet.methods import PEAK_CLAMP
from compnet.model import Layer, Reparam


class Encoder:
    """Encoding and its backward for one slice of trials (fixed reparameterisation, `free` and `sign`)."""

    def __init__(self, reparam: Reparam, free: torch.Tensor, sign: torch.Tensor, depth: int, dtype: torch.dtype):
        T, d = len(free), depth
        self.d = d
        self.free = free.to(torch.int8).contiguous()
        self.sign = sign.to(dtype).contiguous()
        self.spec = kernel.Encoding(
            d, reparam.peaks == "sigmoid", reparam.s1 == "trainable", reparam.offset, *PEAK_CLAMP,
            self.free.data_ptr(), self.sign.data_ptr(),
        )  # fmt: skip
        # the layers (their fixed entries set here once), rewritten in place every step; the kernel reads them
        w1, b1 = torch.zeros(T, 4, 1, dtype=dtype), torch.zeros(T, 4, dtype=dtype)
        w1[:, :3], b1[:, 3] = 1, 1
        hidden = torch.zeros(T, d - 1, 4, 4, dtype=dtype)
        hidden[:, :, 0, 0] = 1
        self.hidden = hidden.numpy()
        zeros = torch.zeros(T, 4, dtype=dtype)
        wo, bo = torch.zeros(T, 1, 4, dtype=dtype), torch.zeros(T, 1, dtype=dtype)
        wo[:, 0, 0] = 1
        self.layers: list[Layer] = [(w1, b1), *[(hidden[:, k], zeros) for k in range(d - 1)], (wo, bo)]
        self.w1, self.b1, self.wo, self.bo = (t.numpy() for t in (w1, b1, wo, bo))  # SumEncoder's reading
        # the kernel's gradients of those layers, contiguous as it wants them
        self.grads = [torch.empty(t.shape, dtype=dtype) for layer in self.layers for t in layer]
        self._fn = kernel.encoding_functions(dtype)
        ptrs, i64 = ctypes.c_void_p, ctypes.c_int64
        arrays = [
            (ptrs, [w.data_ptr() for w, _ in self.layers]),
            (i64, [w.stride(0) for w, _ in self.layers]),
            (ptrs, [b.data_ptr() for _, b in self.layers]),
            (i64, [b.stride(0) for _, b in self.layers]),
            (ptrs, [g.data_ptr() for g in self.grads[::2]]),
            (ptrs, [g.data_ptr() for g in self.grads[1::2]]),
        ]
        self._w, self._ws, self._b, self._bs, self._gw, self._gb = ((c * len(v))(*v) for c, v in arrays)

    def encode(self, params: list[torch.Tensor]) -> list[Layer]:
        """Write the layers of `reparam.layers(params, free, sign)` into the buffers and return them."""
        theta, s1, s = (_c(p) for p in params)
        self._fn[0](len(self.free), ctypes.byref(self.spec), theta, s1, s, self._w, self._ws, self._b, self._bs)
        return self.layers

    def vjp(self, params: list[torch.Tensor]) -> None:
        """Write dL/d[θ, s_1, s] into the parameters' `.grad` from the kernel's gradients in `self.grads`,
        for the layers of the last `encode`."""
        theta, s1, s = (_c(p) for p in params)
        g = [_c(p.grad) for p in params]
        self._fn[1](len(self.free), ctypes.byref(self.spec), theta, s1, s, self._gw, self._gb, *g)


def _as_blocks(params: list[torch.Tensor], n: int) -> list[torch.Tensor]:
    """[θ, s_1, s] of a slice ([T, K, …]) as its n = T·K blocks' ([n, …]), each with `.grad` the view of the
    parameter's own: what `Encoder` reads and writes."""
    views = []
    for p in params:
        v = p.detach().view(n, *p.shape[2:])
        v.grad = p.grad.view(v.shape)
        views.append(v)
    return views


def _c(t: torch.Tensor) -> int:
    if not t.is_contiguous():
        raise ValueError("the encoding reads and writes contiguous parameters and gradients")
    return t.data_ptr()


class SumEncoder:
    """`blocks.sum_layers` (K blocks on input maps, block-diagonal hidden layers, a given read-out) in numpy,
    for a slice of T trials: `Encoder` on the T·K blocks as trials, their layers assembled into the block
    network's fixed buffers, and the kernel's gradients of those taken back to the blocks' (the assembly's
    transpose) before `Encoder.vjp`. The same arithmetic as `sum_layers` and autograd through it."""

    def __init__(self, reparam: Reparam, free: torch.Tensor, sign: torch.Tensor, depth: int, proj, shift, margin):
        T, K, n = len(free), len(sign), proj.shape[1]
        dtype = proj.dtype
        self.T, self.K, self.d = T, K, depth
        self.enc = Encoder(reparam, free.repeat_interleave(K), sign.repeat(T), depth, dtype)
        self.proj, self.shift, self.margin = (t.numpy() for t in (proj, shift, margin))
        np_dtype = self.proj.dtype
        self.w1, self.b1 = np.zeros((T, 4 * K, n), np_dtype), np.zeros((T, 4 * K), np_dtype)
        self.hidden = np.zeros((T, depth - 1, 4 * K, 4 * K), np_dtype)
        self.zeros = np.zeros((T, 4 * K), np_dtype)
        self.wo, self.bo = np.zeros((T, 1, 4 * K), np_dtype), np.zeros((T, 1), np_dtype)
        hidden, zeros = torch.from_numpy(self.hidden), torch.from_numpy(self.zeros)
        self.layers: list[Layer] = [(torch.from_numpy(self.w1), torch.from_numpy(self.b1))]
        self.layers += [(hidden[:, k], zeros) for k in range(depth - 1)]
        self.layers.append((torch.from_numpy(self.wo), torch.from_numpy(self.bo)))
        self.grads = [torch.empty(t.shape, dtype=dtype) for layer in self.layers for t in layer]
        self._views: list[torch.Tensor] = []

    def _blocks(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        if not self._views:  # Adam's parameters and gradients stay the same tensors from step to step
            self._views = _as_blocks(params, self.T * self.K)
        return self._views

    def encode(self, params: list[torch.Tensor], readout: np.ndarray) -> list[Layer]:
        """Write the layers of `sum_layers` for [θ [T, K, d+1], s_1 [T, K], s [T, K, d]] and read-out [T, K+1]."""
        T, K, d = self.T, self.K, self.d
        e = self.enc
        e.encode(self._blocks(params))
        w1 = e.w1.reshape(T, K, 4, 1)
        b1 = e.b1.reshape(T, K, 4).copy()
        b1[..., 0] += self.margin
        self.w1[:] = (w1 * self.proj[:, None, :]).reshape(T, 4 * K, -1)
        self.b1[:] = (w1[..., 0] * self.shift[:, None] + b1).reshape(T, 4 * K)
        if d > 1:  # block k on the diagonal of every hidden layer (advanced indices put K first)
            ar = np.arange(K)
            big = self.hidden.reshape(T, d - 1, K, 4, K, 4)
            big[:, :, ar, :, ar, :] = np.moveaxis(e.hidden.reshape(T, K, d - 1, 4, 4), 1, 0)
        c = readout[:, 1:]
        self.wo[:, 0] = (c[..., None] * e.wo.reshape(T, K, 4)).reshape(T, 4 * K)
        self.bo[:, 0] = readout[:, 0] + (c * (e.bo.reshape(T, K) - self.margin)).sum(1)
        self._readout = readout
        return self.layers

    def vjp(self, params: list[torch.Tensor]) -> None:
        """Write dL/d[θ, s_1, s] into the parameters' `.grad` from the kernel's gradients in `self.grads`."""
        T, K, d = self.T, self.K, self.d
        g, eg = [t.numpy() for t in self.grads], [t.numpy() for t in self.enc.grads]
        gw1, gb1 = g[0].reshape(T, K, 4, -1), g[1].reshape(T, K, 4)
        eg[0][:] = ((gw1 * self.proj[:, None, :]).sum(3) + gb1 * self.shift[:, None]).reshape(T * K, 4, 1)
        eg[1][:] = gb1.reshape(T * K, 4)
        ar = np.arange(K)
        for k in range(d - 1):
            blocks = g[2 + 2 * k].reshape(T, K, 4, K, 4)[:, ar, :, ar, :]  # [K, T, 4, 4]
            eg[2 + 2 * k][:] = np.moveaxis(blocks, 0, 1).reshape(T * K, 4, 4)
            eg[3 + 2 * k][:] = g[3 + 2 * k].reshape(T * K, 4)
        c = self._readout[:, 1:]
        eg[-2][:] = (c[..., None] * g[-2].reshape(T, K, 4)).reshape(T * K, 1, 4)
        eg[-1][:] = (c * g[-1]).reshape(T * K, 1)
        self.enc.vjp(self._blocks(params))


class ComposedEncoder:
    """`blocks.composed_layers` in numpy for a slice of T trials: the squaring part fixed (`blocks.squaring`,
    written once), the trained block encoded by `Encoder` (its hidden layers are the network's own, in
    place), its first layer joined to the squares' mean and its last scaled by the read-out; the kernel's
    gradients taken back through the join and the read-out (their transposes) before `Encoder.vjp`. The same
    arithmetic as `composed_layers` and autograd through it."""

    def __init__(self, reparam: Reparam, free: torch.Tensor, sign: torch.Tensor, depth: int, n: int):
        T, dtype = len(free), sign.dtype
        self.enc = Encoder(reparam, free, sign.repeat(T), depth, dtype)
        fixed, (w_row, w_bias) = blocks.squaring(T, n, depth, dtype)
        self.w_row, self.w_bias = w_row.numpy(), w_bias.numpy()
        joint = torch.zeros(T, 4, 4 * n, dtype=dtype), torch.zeros(T, 4, dtype=dtype)
        last = torch.zeros(T, 1, 4, dtype=dtype), torch.zeros(T, 1, dtype=dtype)
        self.joint, self.last = [t.numpy() for t in joint], [t.numpy() for t in last]
        self.layers: list[Layer] = [(w.contiguous(), b.contiguous()) for w, b in fixed]
        self.layers += [joint, *self.enc.layers[1:-1], last]
        self.grads = [torch.empty(t.shape, dtype=dtype) for layer in self.layers for t in layer]
        self.T, self.c1 = T, np.zeros((T, 1), dtype=self.w_bias.dtype)  # c_1: the last `encode`'s read-out
        self._views: list[torch.Tensor] = []

    def encode(self, params: list[torch.Tensor], readout: np.ndarray) -> list[Layer]:
        """Write the layers of `composed_layers` for [θ [T, 1, d+1], s_1 [T, 1], s [T, 1, d]] and read-out [T, 2]."""
        e = self.enc
        if not self._views:  # as SumEncoder's: the same tensors every step
            self._views = _as_blocks(params, self.T)
        e.encode(self._views)
        self.joint[0][:] = e.w1 * self.w_row
        self.joint[1][:] = e.b1 + e.w1[..., 0] * self.w_bias[:, None]
        self.c1[:] = readout[:, 1:]
        self.last[0][:] = self.c1[..., None] * e.wo
        self.last[1][:] = readout[:, :1] + self.c1 * e.bo
        return self.layers

    def vjp(self, params: list[torch.Tensor]) -> None:
        """Write dL/d[θ, s_1, s] into the parameters' `.grad` from the kernel's gradients in `self.grads`."""
        g, eg = [t.numpy() for t in self.grads], [t.numpy() for t in self.enc.grads]
        joint = 2 * (len(self.enc.layers) - 1)  # the fixed squaring layers' gradients come first
        gw, gb = g[joint], g[joint + 1]
        eg[0][:] = (gw * self.w_row).sum(2, keepdims=True) + gb[..., None] * self.w_bias[:, None, None]
        eg[1][:] = gb
        for mine, theirs in zip(eg[2:-2], g[joint + 2 : -2]):  # the hidden layers are the block's own
            mine[:] = theirs
        eg[-2][:] = self.c1[..., None] * g[-2]
        eg[-1][:] = self.c1 * g[-1]
        self.enc.vjp(self._views)

"""The fused engine's pretraining step outside torch: `model.Reparam.layers` and `model.Reparam.vjp` in numpy.

A pretraining step on the fused engine is one kernel call (the layers' loss and gradients) between the encoding
of [θ, s_1, s] into layers and the map of the layer gradients back to [θ, s_1, s]. Both are some fifty
elementwise operations on [T, d]-sized arrays: in torch each costs ~6 µs of dispatch, in numpy ~1 µs, and two
worker threads contend for the GIL through all of them. Here they run in numpy on views of the very tensors
Adam updates, into buffers allocated once: no autograd, no allocation of layer tensors per step.

The same arithmetic as `model.encode`, `model.law_scales`, `model.encode_vjp` and `model.law_scales_vjp`, which
stay the reference (torch, any device, autograd-checked); tests/test_stages.py holds this module to them.
"""

from __future__ import annotations

import numpy as np
import torch

from compnet.methods import PEAK_CLAMP
from compnet.model import Layer, Reparam


class Encoder:
    """Encoding and its backward for one slice of trials (fixed reparameterisation, `free` and `sign`)."""

    def __init__(self, reparam: Reparam, free: torch.Tensor, sign: torch.Tensor, depth: int, dtype: torch.dtype):
        self.reparam, self.d = reparam, depth
        self.free = free.numpy()[:, None]
        self.sign = sign.numpy()[:, None]
        T, d = len(self.free), depth
        np_dtype = torch.empty(0, dtype=dtype).numpy().dtype
        # the layers, written in place every step; the kernel reads them through torch views
        self.w1 = np.zeros((T, 4, 1), np_dtype)
        self.w1[:, :3] = 1
        self.b1 = np.zeros((T, 4), np_dtype)
        self.b1[:, 3] = 1
        self.hidden = np.zeros((T, d - 1, 4, 4), np_dtype)
        self.hidden[:, :, 0, 0] = 1
        self.zeros = np.zeros((T, 4), np_dtype)
        self.wo = np.zeros((T, 1, 4), np_dtype)
        self.wo[:, 0, 0] = 1
        self.bo = np.zeros((T, 1), np_dtype)
        hidden = torch.from_numpy(self.hidden)
        zeros = torch.from_numpy(self.zeros)
        self.layers: list[Layer] = [(torch.from_numpy(self.w1), torch.from_numpy(self.b1))]
        self.layers += [(hidden[:, k], zeros) for k in range(d - 1)]
        self.layers.append((torch.from_numpy(self.wo), torch.from_numpy(self.bo)))
        # the kernel's gradients of those layers, contiguous as it wants them
        self.grads = [torch.empty(t.shape, dtype=dtype) for layer in self.layers for t in layer]

    def encode(self, params: list[torch.Tensor]) -> list[Layer]:
        """Write the layers of `reparam.layers(params, free, sign)` into the buffers and return them."""
        theta, s1, s = (p.detach().numpy() for p in params)
        d = self.d
        if self.reparam.peaks == "clamp":
            a = np.clip(theta, *PEAK_CLAMP)
        else:
            a = 1 / (1 + np.exp(-theta))
        ratios = (1 - a[:, :-1]) * a[:, 1:]
        law = np.cumprod(ratios, 1, dtype=np.float64).astype(ratios.dtype)  # torch's cumprod: float32 via float64
        if self.reparam.s1 == "trainable":
            law = law * (s1 / ratios[:, 0])[:, None]
        scales = np.where(self.free, s, law)
        c = np.abs(scales)
        c_prev = np.concatenate([np.ones_like(c[:, :1]), c[:, :-1]], 1)
        ratio = c / c_prev
        gain = self.sign * scales / c_prev
        u = 1 / a[:, :d]
        v = -1 / (a[:, :d] * (1 - a[:, :d]))
        gu, gv = gain * u, gain * v
        if self.reparam.offset:
            m = torch.from_numpy(c).sum(1).numpy()  # torch's sum, as `model.encode` takes it
            self.b1[:, 0] = m
            self.bo[:, 0] = -m
        self.b1[:, 2] = -a[:, 0]
        if d > 1:
            H, S = self.hidden, ratio[:, :-1]
            su, sv = S * u[:, :-1], S * v[:, :-1]
            H[:, :, 0, 1], H[:, :, 0, 2] = gu[:, :-1], gv[:, :-1]
            H[:, :, 1, 1], H[:, :, 1, 2] = su, sv
            H[:, :, 2, 1], H[:, :, 2, 2] = su, sv
            H[:, :, 2, 3] = -S * a[:, 1:d]
            H[:, :, 3, 3] = S
        self.wo[:, 0, 1], self.wo[:, 0, 2] = gu[:, -1], gv[:, -1]
        self._saved = a, s1, scales, law, ratios, c_prev, ratio, gain, u, v
        return self.layers

    def vjp(self, params: list[torch.Tensor]) -> None:
        """Write dL/d[θ, s_1, s] into the parameters' `.grad` from the kernel's gradients in `self.grads`,
        for the layers of the last `encode`."""
        a, s1, scales, law, ratios, c_prev, ratio, gain, u, v = self._saved
        d = self.d
        g = [t.numpy() for t in self.grads]
        g_b1, g_out = g[1], g[-2][:, 0]
        d_peaks = np.zeros_like(a)
        d_ratio = np.zeros_like(scales)
        g0u, g0v = np.empty_like(scales), np.empty_like(scales)
        g0u[:, -1], g0v[:, -1] = g_out[:, 1], g_out[:, 2]
        if d > 1:
            G = np.stack(g[2:-2:2], 1)  # [T, d−1, 4, 4]
            g0u[:, :-1], g0v[:, :-1] = G[:, :, 0, 1], G[:, :, 0, 2]
        d_gain = g0u * u + g0v * v
        du, dv = gain * g0u, gain * g0v
        if d > 1:
            S = ratio[:, :-1]
            su = G[:, :, 1, 1] + G[:, :, 2, 1]
            sv = G[:, :, 1, 2] + G[:, :, 2, 2]
            g23 = G[:, :, 2, 3]
            d_ratio[:, :-1] = su * u[:, :-1] + sv * v[:, :-1] - g23 * a[:, 1:d] + G[:, :, 3, 3]
            du[:, :-1] += S * su
            dv[:, :-1] += S * sv
            d_peaks[:, 1:d] -= S * g23
        ad = a[:, :d]
        d_peaks[:, :d] += dv * (1 - 2 * ad) * v * v - du * u * u
        d_peaks[:, 0] -= g_b1[:, 2]
        d_c = d_ratio / c_prev
        d_c[:, :-1] -= (ratio[:, 1:] * d_ratio[:, 1:] + gain[:, 1:] * d_gain[:, 1:]) / c_prev[:, 1:]
        d_scales = self.sign * d_gain / c_prev + np.sign(scales) * d_c
        # the law: s_k = s_1 Π_{i=2..k} r_i (tied: Π_{i=1..k} r_i), r_i = (1 − a_i) a_{i+1}
        d_law = np.where(self.free, 0, d_scales)
        tail = np.cumsum((d_law * law)[:, ::-1], 1)[:, ::-1] / ratios
        theta_g, s1_g, s_g = (p.grad.numpy() for p in params)
        if self.reparam.s1 == "trainable":
            lead = np.concatenate([np.ones_like(ratios[:, :1]), ratios[:, 1:]], 1)
            s1_g[:] = (d_law * np.cumprod(lead, 1)).sum(1)
            tail[:, 0] = 0
        else:
            s1_g[:] = 0
        d_peaks[:, :-1] -= tail * a[:, 1:]
        d_peaks[:, 1:] += tail * (1 - a[:, :-1])
        theta = params[0].detach().numpy()
        if self.reparam.peaks == "clamp":
            theta_g[:] = np.where((theta >= PEAK_CLAMP[0]) & (theta <= PEAK_CLAMP[1]), d_peaks, 0)
        else:
            theta_g[:] = d_peaks * (1 - a) * a
        s_g[:] = np.where(self.free, d_scales, 0)


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
        """[θ, s_1, s] of the slice as the blocks' ([T·K, …]), their `.grad` views of the parameters' own."""
        if not self._views:
            for p in params:
                v = p.detach().view(self.T * self.K, *p.shape[2:])
                v.grad = p.grad.view(v.shape)
                self._views.append(v)
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

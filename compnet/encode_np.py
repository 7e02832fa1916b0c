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

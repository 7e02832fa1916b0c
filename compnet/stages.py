"""The two training stages of the paper (docs/method.md §4), on a batch of trials.

- pretraining: Adam on the reparameterisation (peaks θ, and s_1 or every scale), the network rebuilt from
  them by `model.Reparam.layers` at every step, so gradients reach the peaks: by autograd through the
  encoding (torch's ops), or, with the fused kernel, by its layer gradients mapped back in closed form
  (`model.Reparam.vjp`, run in C by `encoder.Encoder`: no autograd graph at all);
- raw: Adam on the plain weights and biases (a fresh Adam after pretraining).

The loss of trial t is its MSE on the training points, mean_n (f_t(x_n) − y_tn)², computed either by
torch's ops (`model.forward`, the reference) or by the fused C kernel (`kernel.py`), which does the
forward and backward pass in one call; torch keeps the rest (the encoding, Adam).
"""

from __future__ import annotations

import torch

from compnet import kernel
from compnet.batching import chunked
from compnet.encoder import Encoder
from compnet.model import Layer, Reparam, Shapes, forward, layer_pairs, layer_tensors
from compnet.optim import Buffers, Fit, Report, Snapshot, adam


def mse(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return ((pred - y) ** 2).mean(-1)


def batch_mse(layers: list[Layer], x: torch.Tensor, y: torch.Tensor, fused: bool) -> torch.Tensor:
    """Per-trial training loss [T]: by the fused kernel, or by torch's ops (the reference it is tested against)."""
    return kernel.mlp_mse(layers, x, y) if fused else mse(forward(layers, x), y)


def pretrain(
    reparam: Reparam,
    peaks: torch.Tensor,
    free: torch.Tensor,
    sign: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    lr: float,
    workers: int = 1,
    fused: bool = False,
    keep_every: int = 0,
) -> Fit:
    """Adam on (peaks, scales) through the encoding; returns Fit with params [θ, s_1, s] (and snapshots of
    them every `keep_every` epochs)."""

    def fit(sl: slice | torch.Tensor, report: Report | None) -> Fit:
        f, sg, ys = free[sl], sign[sl], y[sl]
        start = reparam.start(peaks[sl])
        if not fused:

            def loss(p: list[torch.Tensor]) -> torch.Tensor:
                return batch_mse(reparam.layers(p, f, sg), x, ys, fused=False)

            return adam(start, loss, epochs, lr, report=report, keep_every=keep_every)
        # the kernel's layer gradients mapped to [θ, s_1, s] in closed form, in C (encode.c): no autograd, and
        # the steps between two reports run in one C call (encoding, pass, its backward, Adam's update)
        enc = Encoder(reparam, f, sg, peaks.shape[1] - 1, peaks.dtype)
        step = kernel.bind(enc.layers, x, ys, enc.grads)  # the layers are rewritten in place

        def loss(p: list[torch.Tensor]) -> torch.Tensor:
            enc.encode(p)
            out = step()
            enc.vjp(p)
            return out

        def native(leaves: list[torch.Tensor], state: Buffers):
            return kernel.bind_adam(enc.layers, x, ys, state, encoder=enc)

        return adam(start, loss, epochs, lr, report=report, keep_every=keep_every, native=native)

    return chunked(fit, peaks.shape[0], workers, "pretrain", epochs, native=fused)


def train_raw(
    shapes: Shapes,
    flat: torch.Tensor,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    lr: float,
    workers: int = 1,
    fused: bool = False,
    keep_every: int = 0,
    groups: list[int] | None = None,
) -> Fit:
    """Adam on the raw weights, all packed in one [T, P] tensor (and snapshots of it every `keep_every`
    epochs). `groups[l]` = g keeps layer l block-diagonal (g blocks): its other weights get no gradient."""
    masks = None if groups is None else [_block_mask(o, i, g, flat.dtype) for (o, i), g in zip(shapes.dims, groups)]

    def fit(sl: slice | torch.Tensor, report: Report | None) -> Fit:
        steps: list = []  # the kernel bound to Adam's parameters and gradient buffers, which never move

        def loss(p: list[torch.Tensor]) -> torch.Tensor:
            if fused:  # no autograd: the kernel writes every gradient straight into Adam's buffer
                if not steps:
                    steps.append(kernel.bind(layer_pairs(p), x, y[sl], [t.grad for t in p], groups))
                return steps[0]()
            layers = layer_pairs(p)
            if masks is not None:  # w · mask: the same network (off-block weights are 0), no gradient off it
                layers = [(w * m.to(w.device), b) for (w, b), m in zip(layers, masks)]
            return batch_mse(layers, x, y[sl], fused=False)

        def native(leaves: list[torch.Tensor], state: Buffers):  # the whole loop in C: kernel and update
            return kernel.bind_adam(layer_pairs(leaves), x, y[sl], state, groups)

        start = layer_tensors(shapes.split(flat[sl]))
        fit = adam(start, loss, epochs, lr, report=report, keep_every=keep_every, native=native if fused else None)
        kept = [Snapshot(s.epoch, [Shapes.join(layer_pairs(s.params))]) for s in fit.snapshots]
        return Fit([Shapes.join(layer_pairs(fit.params))], fit.history, fit.diverged, kept)

    return chunked(fit, flat.shape[0], workers, "train", epochs, native=fused)


def _block_mask(out: int, inp: int, groups: int, dtype: torch.dtype) -> torch.Tensor:
    """1 on the `groups` diagonal blocks of an out × in weight, 0 elsewhere."""
    return torch.block_diag(*[torch.ones(out // groups, inp // groups, dtype=dtype)] * groups)

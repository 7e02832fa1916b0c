"""`CompositionalLayer`: the compositional encoding as a drop-in PyTorch layer (docs/method.md §8, §11).

    y = R F(u) + r,    u = φ(P x + p) ∈ [0, 1]^K,    F_k(u_k) = u_k + σ_k Σ_{i=1..d} s^k_i W^k_i(u_k)

A dense projection P x + p (in_features → K) gives each of the K blocks one scalar; the input map φ puts it
into [0, 1]. `affine` (the default) u = ½ + z keeps the layer a pure ReLU network (piecewise linear in x, as the
paper's networks are); z's spread comes from the projection's init (nn.Linear's U(±1/√in), so standardised
inputs give z a standard deviation of about 0.6 and most u land in [0, 1]); outside [0, 1] a block is affine
(method.md §8: the identity for −m < u < 0, a line of slope 1 − σ s_1/(1 − a_1) for u > 1), so it behaves like
a leaky activation there and its curvature sits where u ∈ [0, 1]. `sigmoid` u = 1/(1 + e^{−z}) lands every
input in (0, 1), where a block has all its pieces, at the price of a saturating map (gradient ≤ ¼).
Block k is the 4-wide encoding of
`model.encode` (§3): d hidden ReLU layers of width 4 built from its own peaks a^k_1 … a^k_{d+1}, sign σ_k and
scales on the differentiable manifold s^k = law_scales(a^k, s^k_1) (§2); side by side the K blocks' hidden
layers form one block-diagonal 4K × 4K layer, computed as K batched 4 × 4 products (no weight crosses between
blocks). A dense read-out R, r (K → out_features) gives the output. At construction every block has exactly
2^d linear pieces along its input u_k.

Two modes. *Reparameterised* (the default): the block parameters are the raw peaks θ [K, d+1] (used through a
clamp to [0.01, 0.99], zero gradient outside) and the first scales s_1 [K]; the blocks' weights are rebuilt by
`model.encode` at every forward pass, so the blocks stay on the manifold with 2^d pieces. *Free*: the blocks'
weights and biases themselves are the parameters (the block-diagonal mask is kept: only the within-block 4 × 4
weights exist). `release()` turns a reparameterised layer into a free one in place, computing the same
function. The projection and the read-out are ordinary dense parameters in both modes.

`torch.compile(layer, fullgraph=True)` captures either mode without a graph break (compile again after
`release()`: the parameters are new). `trials=T` stacks T independent layers (every parameter gets a leading
dimension T, the input is [T, …, in_features]): compnet trains its 30 trials this way, as batched products.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from compnet.methods import PEAK_CLAMP
from compnet.model import encode, law_scales, to_sequential

FREE = ("w_in", "b_in", "w_hidden", "b_hidden", "w_out", "b_out")  # the free mode's block parameters
INPUT_MAPS = ("affine", "sigmoid")
INITS = ("compositional", "random")


def _positive(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}")
    return value


def _uniform(shape: Sequence[int], bound: float, g: torch.Generator | None) -> torch.Tensor:
    """U(−bound, bound) drawn on the CPU (a CPU generator draws the same numbers whatever the device)."""
    return (2 * torch.rand(*shape, generator=g, dtype=torch.float64) - 1) * bound


class CompositionalLayer(nn.Module):
    """A dense projection to K scalars in [0, 1], K compositional blocks of depth d, a dense read-out.

    Args:
        in_features, out_features: sizes of the input's and the output's last dimension.
        depth: hidden layers d of every block (2^d linear pieces each).
        blocks: K (default out_features); the hidden layers are 4K wide, block-diagonal.
        sign: wave sign per block: "alternate" (−1, +1, −1, …: convex and concave blocks), −1, +1, or K values.
        input_map: "affine" (u = ½ + z, a pure ReLU layer) or "sigmoid" (u = sigmoid(z)): module docstring.
        init: "compositional" (reparameterised, on the manifold, peaks ~ U(peak_range)) or "random" (free from
            the start, block weights ~ nn.Linear's default U(±1/√fan_in): the same-parameter random control).
        trials: None, or T stacked independent layers (input [T, …, in_features]).
        peak_range: (low, high) of the starting peaks, inside [0.01, 0.99].
        generator: a CPU torch.Generator for the initial values (default: torch's global one).

    Example (the layer in a model, its pieces, and the switch to free weights):

    >>> import torch
    >>> from compnet.nn import CompositionalLayer
    >>> from compnet.pieces import count_linear_pieces
    >>> _ = torch.manual_seed(0)
    >>> layer = CompositionalLayer(64, 10, depth=4, blocks=16)
    >>> model = torch.nn.Sequential(torch.nn.Flatten(), layer)
    >>> x = torch.rand(32, 8, 8)
    >>> model(x).shape
    torch.Size([32, 10])
    >>> count_linear_pieces(layer.block_sequential(0))  # block 0 as a function of its input u_0 on [0, 1]
    16
    >>> y = model(x)
    >>> layer.release()  # the parameters change: build a new optimiser now (see `release`)
    >>> torch.equal(model(x), y), layer.mode
    (True, 'free')
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        depth: int = 4,
        blocks: int | None = None,
        *,
        sign: str | float | Sequence[float] = "alternate",
        input_map: str = "affine",
        init: str = "compositional",
        trials: int | None = None,
        peak_range: tuple[float, float] = (0.25, 0.75),
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _positive("in_features", in_features)
        self.out_features = _positive("out_features", out_features)
        self.depth = _positive("depth", depth)
        K = self.blocks = _positive("blocks", out_features if blocks is None else blocks)
        self.trials = None if trials is None else _positive("trials", trials)
        if input_map not in INPUT_MAPS:
            raise ValueError(f"input_map must be one of {INPUT_MAPS}; got {input_map!r}")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}; got {init!r}")
        lo, hi = peak_range
        if not PEAK_CLAMP[0] <= lo <= hi <= PEAK_CLAMP[1]:
            raise ValueError(
                f"peak_range must satisfy {PEAK_CLAMP[0]} <= low <= high <= {PEAK_CLAMP[1]}; got {peak_range}"
            )
        self.input_map = input_map
        dt = dtype or torch.get_default_dtype()
        lead = () if trials is None else (trials,)
        T = trials or 1

        def param(t: torch.Tensor) -> nn.Parameter:
            return nn.Parameter(t.to(device=device, dtype=dt).reshape(*lead, *t.shape[1:]).contiguous())

        g = generator
        b_in, b_k = 1 / math.sqrt(in_features), 1 / math.sqrt(K)  # nn.Linear's default bounds
        self.proj_weight = param(_uniform((T, K, in_features), b_in, g))
        self.proj_bias = param(_uniform((T, K), b_in, g))
        self.register_buffer("sign", self._signs(sign, K).to(device=device, dtype=dt))
        if init == "compositional":
            a = lo + (hi - lo) * torch.rand(T, K, depth + 1, generator=g, dtype=torch.float64)
            self.theta = param(a)  # the raw peaks; a = clamp(θ, 0.01, 0.99) in the forward pass
            self.s1 = param((1 - a[..., 0]) * a[..., 1])  # the tied first scale: the manifold's point
            self.mode = "reparameterised"
        else:
            d = depth - 1
            shapes = [(T, K, 4, 1), (T, K, 4), (T, d, K, 4, 4), (T, d, K, 4), (T, K, 1, 4), (T, K, 1)]
            bounds = [1.0, 1.0, 0.5, 0.5, 0.5, 0.5]  # 1/√fan_in: fan_in 1 into the first layer, 4 after
            for name, shape, bound in zip(FREE, shapes, bounds):
                setattr(self, name, param(_uniform(shape, bound, g)))
            self.mode = "free"
        self.readout_weight = param(_uniform((T, out_features, K), b_k, g))
        self.readout_bias = param(_uniform((T, out_features), b_k, g))

    @staticmethod
    def _signs(sign: str | float | Sequence[float], K: int) -> torch.Tensor:
        if isinstance(sign, str):
            if sign != "alternate":
                raise ValueError(f"sign must be 'alternate', -1, +1 or {K} values of ±1; got {sign!r}")
            return torch.tensor([-1.0 if k % 2 == 0 else 1.0 for k in range(K)])
        s = torch.as_tensor(sign, dtype=torch.float64).flatten()
        s = s.expand(K).clone() if s.numel() == 1 else s
        if s.numel() != K or not bool((s.abs() == 1).all()):
            raise ValueError(f"sign must be 'alternate', -1, +1 or {K} values of ±1; got {sign!r}")
        return s

    def _lead(self, t: torch.Tensor) -> torch.Tensor:
        return t if self.trials is not None else t.unsqueeze(0)

    def block_weights(self) -> tuple[torch.Tensor, ...]:
        """The blocks' weights and biases with a leading trial dimension T (1 without `trials`):
        w_in [T, K, 4, 1], b_in [T, K, 4], w_hidden [T, d−1, K, 4, 4], b_hidden [T, d−1, K, 4], w_out [T, K, 1, 4],
        b_out [T, K, 1]; rows are outputs (accumulator, t1, t2, bias), as in `model.encode`."""
        if self.mode == "free":
            return tuple(self._lead(getattr(self, n)) for n in FREE)
        theta, s1 = self._lead(self.theta), self._lead(self.s1)
        T, K, d = theta.shape[0], self.blocks, self.depth
        a = theta.clamp(*PEAK_CLAMP).reshape(T * K, d + 1)
        layers = encode(a, law_scales(a, s1.reshape(T * K)), self.sign.repeat(T))
        (w1, b1), *hidden, (wo, bo) = layers
        if hidden:
            # contiguous, as the free parameters are: the same products in both modes, bit for bit
            w_h = torch.stack([w for w, _ in hidden]).reshape(d - 1, T, K, 4, 4).transpose(0, 1).contiguous()
            b_h = torch.stack([b for _, b in hidden]).reshape(d - 1, T, K, 4).transpose(0, 1).contiguous()
        else:
            w_h, b_h = w1.new_zeros(T, 0, K, 4, 4), w1.new_zeros(T, 0, K, 4)
        return (
            w1.reshape(T, K, 4, 1),
            b1.reshape(T, K, 4),
            w_h,
            b_h,
            wo.reshape(T, K, 1, 4),
            bo.reshape(T, K, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, T = self.in_features, self.trials
        if x.ndim < 1 or x.shape[-1] != n:
            raise ValueError(f"CompositionalLayer expects input [..., {n}]; got {tuple(x.shape)}")
        if T is not None and (x.ndim < 2 or x.shape[0] != T):
            raise ValueError(f"with trials={T} the input must be [{T}, ..., {n}]; got {tuple(x.shape)}")
        lead = x.shape[:-1] if T is None else x.shape[1:-1]
        x2 = x.reshape(T or 1, -1, n)
        pw, pb = self._lead(self.proj_weight), self._lead(self.proj_bias)
        z = torch.baddbmm(pb.unsqueeze(2), pw, x2.transpose(1, 2))  # [T, K, M]: feature-major, points last
        u = torch.sigmoid(z) if self.input_map == "sigmoid" else z + 0.5
        w_in, b_in, w_h, b_h, w_out, b_out = self.block_weights()
        Tb, K, M = u.shape
        # the K blocks of the T trials as T·K batched products on [4, M] activations (the points contiguous):
        # this is the block-diagonal 4K × 4K layer without its zeros
        h = torch.relu(torch.baddbmm(b_in.reshape(-1, 4, 1), w_in.reshape(-1, 4, 1), u.reshape(-1, 1, M)))
        for layer in range(self.depth - 1):
            w, b = w_h[:, layer].reshape(-1, 4, 4), b_h[:, layer].reshape(-1, 4, 1)
            h = torch.relu(torch.baddbmm(b, w, h))
        f = torch.baddbmm(b_out.reshape(-1, 1, 1), w_out.reshape(-1, 1, 4), h).view(Tb, K, M)  # F_k(u_k)
        rw, rb = self._lead(self.readout_weight), self._lead(self.readout_bias)
        y = torch.baddbmm(rb.unsqueeze(2), rw, f).transpose(1, 2)  # [T, M, out]
        return y.reshape(*(() if T is None else (T,)), *lead, self.out_features)

    @torch.no_grad()
    def release(self) -> None:
        """Switch from the reparameterisation to free block weights, in place, keeping the function exactly.

        The peaks θ and first scales s_1 are removed and the blocks' current weights and biases become new
        parameters (`FREE`); the projection and read-out are kept as they are. An optimiser built before the
        switch holds the removed tensors and none of the new ones: build a new one from `parameters()` after
        calling this (its moment estimates start from zero; the paper saw the loss spike at this restart, so a
        smaller learning rate or a warm-up after the switch may help). Load a saved free layer's state_dict
        into a fresh layer the same way: loading switches it first (see `_load_from_state_dict`).
        """
        if self.mode == "free":
            raise RuntimeError("release(): the layer is already free (its block weights are the parameters)")
        weights = self.block_weights()
        del self.theta, self.s1
        for name, w in zip(FREE, weights):
            w = w if self.trials is not None else w.squeeze(0)
            setattr(self, name, nn.Parameter(w.detach().clone().contiguous()))
        self.mode = "free"

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        if self.mode == "reparameterised" and f"{prefix}w_in" in state_dict:
            self.release()  # a free layer's state: switch first, then load its weights over ours
        elif self.mode == "free" and f"{prefix}theta" in state_dict:
            raise RuntimeError(
                "cannot load a reparameterised CompositionalLayer's state into a free one (release() cannot be "
                "undone): load it into a new layer"
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def peaks(self) -> torch.Tensor:
        """The peaks in use, clamp(θ) ([K, d+1], [T, K, d+1] with trials); reparameterised mode only."""
        if self.mode == "free":
            raise RuntimeError("a free layer has no peaks (its block weights are the parameters)")
        return self.theta.clamp(*PEAK_CLAMP)

    def block_sequential(self, k: int, trial: int = 0) -> nn.Sequential:
        """Block k (of trial `trial`) as a plain nn.Sequential u_k → F_k(u_k), for `pieces.count_linear_pieces`."""
        if not 0 <= k < self.blocks:
            raise IndexError(f"block {k} out of range: the layer has {self.blocks}")
        w_in, b_in, w_h, b_h, w_out, b_out = (t[trial].detach() for t in self.block_weights())
        layers = [(w_in, b_in), *[(w_h[i], b_h[i]) for i in range(self.depth - 1)], (w_out, b_out)]
        return to_sequential(layers, trial=k)

    def extra_repr(self) -> str:
        t = f", trials={self.trials}" if self.trials is not None else ""
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, depth={self.depth}, "
            f"blocks={self.blocks}, input_map={self.input_map}, mode={self.mode}{t}"
        )

"""The compositional ReLU network: closed form, differentiable manifold and its 4-wide encoding.

Closed form (docs/method.md §1). Triangle with peak a: t_a(x) = x/a for x ≤ a, (1−x)/(1−a) otherwise.
Waves W_0 = x, W_i = t_{a_i} ∘ W_{i−1}; W_i has 2^i linear pieces. The depth-d network computes

    F(x) = x + σ Σ_{i=1..d} s_i W_i(x).

Differentiable manifold (the paper's Theorem 3.1 / Eq. 5): s_{i+1} = s_i (1 − a_{i+1}) a_{i+2}, so a depth-d
network needs the peaks a_1 … a_{d+1}; tied, s_1 = (1 − a_1) a_2 (all-½ peaks give Yarotsky's s_i = 4^{−i}).

Encoding (docs/method.md §3). Hidden neurons (accumulator, t1, t2, bias) hold, after hidden layer k,

    acc = m + x + σ Σ_{j<k} s_j W_j,  t1 = c_{k−1} W_{k−1},  t2 = relu(c_{k−1}(W_{k−1} − a_k)),  bias = c_{k−1},

with c_0 = 1, c_i = |s_i|, using c·t_a(W) = cW/a − c·relu(W − a)/(a(1 − a)). Weights carry the ratio
S_k = c_k / c_{k−1} rather than the tiny absolute s_k (the paper's conditioning trick). The offset m = Σ|s_i|
on the accumulator (first-layer bias m, output bias −m) keeps that ReLU neuron alive for any peaks and scales,
so the network equals the closed form exactly; m = 0 gives the paper's plain encoding, whose accumulator can clip.

Reparameterisation (docs/method.md §4). During pretraining the parameters are peaks θ and scales, and the
network is rebuilt from them at every step (`Reparam.layers`), so gradients reach the peaks. Peaks stay in
(0, 1) by a clamp to [0.01, 0.99] in the forward pass (zero gradient outside) or by a = sigmoid(θ).

Everything here is batched over a leading trial dimension T: peaks [T, d+1], scales [T, d], sign [T].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from compnet.methods import PEAK_CLAMP

Layer = tuple[torch.Tensor, torch.Tensor]  # weight [T, out, in], bias [T, out]


def layer_tensors(layers: list[Layer]) -> list[torch.Tensor]:
    """[(w_1, b_1), (w_2, b_2), …] → [w_1, b_1, w_2, …]: the order in which Adam and the fused kernel
    take a network's parameters and gradients."""
    return [t for layer in layers for t in layer]


def layer_pairs(tensors: list[torch.Tensor]) -> list[Layer]:
    """[w_1, b_1, w_2, …] → [(w_1, b_1), (w_2, b_2), …], the inverse of `layer_tensors`."""
    return list(zip(tensors[::2], tensors[1::2]))


def triangle(x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    return torch.where(x <= a, x / a, (1 - x) / (1 - a))


def waves(x: torch.Tensor, peaks: torch.Tensor) -> torch.Tensor:
    """W_1 … W_d at x for peaks a_1 … a_d: [..., d, N] for peaks [..., d] and x [N]."""
    w = x.expand(*peaks.shape[:-1], x.shape[-1])
    out = []
    for i in range(peaks.shape[-1]):
        w = triangle(w, peaks[..., i : i + 1])
        out.append(w)
    return torch.stack(out, -2)


def law_scales(peaks: torch.Tensor, s1: torch.Tensor | None = None) -> torch.Tensor:
    """Scales s_1 … s_d on the differentiable manifold for peaks a_1 … a_{d+1} ([..., d+1] → [..., d]).

    s_{i+1} = s_i (1 − a_{i+1}) a_{i+2}; `s1=None` ties s_1 = (1 − a_1) a_2, otherwise s_1 is given
    (the law fixes only ratios, so a free s_1 keeps the limit differentiable).
    """
    ratios = (1 - peaks[..., :-1]) * peaks[..., 1:]  # (1 − a_i) a_{i+1}, i = 1 … d
    s = torch.cumprod(ratios, -1)
    if s1 is not None:
        s = s * (s1 / ratios[..., 0]).unsqueeze(-1)
    return s


def closed_form(x: torch.Tensor, peaks: torch.Tensor, scales: torch.Tensor, sign: torch.Tensor | float) -> torch.Tensor:
    """F(x) = x + σ Σ s_i W_i(x) for peaks [..., d(+1)] (extra peaks unused) and scales [..., d]."""
    d = scales.shape[-1]
    w = waves(x, peaks[..., :d])
    sign = torch.as_tensor(sign, dtype=x.dtype)
    return x + sign.unsqueeze(-1) * (scales.unsqueeze(-1) * w).sum(-2)


def encode(peaks: torch.Tensor, scales: torch.Tensor, sign: torch.Tensor, offset: bool = True) -> list[Layer]:
    """The 4-wide ReLU network's layers for peaks [T, d+1], signed scales [T, d], sign [T] (differentiable)."""
    T, d = scales.shape
    a = peaks
    c = scales.abs()
    c_prev = torch.cat([torch.ones_like(c[:, :1]), c[:, :-1]], 1)  # c_{k−1}
    ratio = c / c_prev  # S_k
    gain = sign.unsqueeze(1) * scales / c_prev  # σ s_k / c_{k−1}: the accumulator's weight on the new wave
    m = c.sum(1).detach() if offset else torch.zeros_like(c[:, 0])
    zero, one = torch.zeros_like(m), torch.ones_like(m)

    w1 = torch.stack([one, one, one, zero], 1).unsqueeze(2)
    b1 = torch.stack([m, zero, -a[:, 0], one], 1)
    layers: list[Layer] = [(w1, b1)]
    if d > 1:  # hidden layer k+1 forms wave k from peak a_k and splits it at a_{k+1}; all built at once
        al, an = a[:, : d - 1], a[:, 1:d]
        u, v = 1 / al, -1 / (al * (1 - al))
        g, S = gain[:, : d - 1], ratio[:, : d - 1]
        z = torch.zeros_like(u)
        rows = [z + 1, g * u, g * v, z, z, S * u, S * v, z, z, S * u, S * v, -S * an, z, z, z, S]
        w = torch.stack(rows, 2).view(T, d - 1, 4, 4)
        zeros = torch.zeros_like(b1)
        layers += [(w[:, k], zeros) for k in range(d - 1)]
    u, v = 1 / a[:, d - 1], -1 / (a[:, d - 1] * (1 - a[:, d - 1]))
    g = gain[:, d - 1]
    layers.append((torch.stack([one, g * u, g * v, zero], 1).unsqueeze(1), -m.unsqueeze(1)))
    return layers


def encode_vjp(
    peaks: torch.Tensor, scales: torch.Tensor, sign: torch.Tensor, offset: bool, layer_grads: list[Layer]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The vector-Jacobian product of `encode`, in closed form: (dL/dpeaks [T, d+1], dL/dscales [T, d]) from
    the gradients dL/d(weight, bias) of its layers ([(dW_1, db_1), …], the shapes `encode` returns), as
    autograd through `encode` computes them (float64: to ~1e-13; the sums run in another order).

    No autograd and a fixed number of elementwise ops whatever the depth, so a pretraining step is one kernel
    call and a few fused ops. The offset m = Σ|s_i| is detached in `encode`, so `offset` changes no gradient
    (it is taken for symmetry with `encode`); a_{d+1} enters only the scales, so its entry here is 0. The block
    networks (`blocks.py`: K blocks encoded as K "trials") map their block-diagonal gradients to per-block
    layer gradients and call this."""
    del offset  # m is detached: no path from it to the peaks or scales
    d = scales.shape[1]
    g_b1, g_out = layer_grads[0][1], layer_grads[-1][0][:, 0]
    g_hidden = torch.stack([w for w, _ in layer_grads[1:-1]], 1) if d > 1 else None  # [T, d−1, 4, 4]
    # hidden layer k+1 holds u = 1/a_k, v = −1/(a_k(1 − a_k)) in row 0 times g_k = σ s_k/c_{k−1}, in rows 1–2
    # times S_k = c_k/c_{k−1}, and −S_k a_{k+1}, S_k in column 3; the output layer holds row 0 with k = d; the
    # first layer's bias holds −a_1 (docs/method.md §3)
    a = peaks[:, :d]
    c = scales.abs()
    c_prev = torch.cat([torch.ones_like(c[:, :1]), c[:, :-1]], 1)
    ratio = c / c_prev
    gain = sign.unsqueeze(1) * scales / c_prev
    u = 1 / a
    v = -1 / (a * (1 - a))
    # row 0 (the accumulator's weights on t1, t2) of hidden layers 2 … d and of the output layer, as [T, d]
    g0u, g0v = g_out[:, 1:2], g_out[:, 2:3]
    if g_hidden is not None:
        g0u, g0v = torch.cat([g_hidden[:, :, 0, 1], g0u], 1), torch.cat([g_hidden[:, :, 0, 2], g0v], 1)
    d_gain = g0u * u + g0v * v
    du, dv = gain * g0u, gain * g0v
    d_ratio = torch.zeros_like(scales)
    d_peaks = torch.zeros_like(peaks)
    if g_hidden is not None:
        S, an = ratio[:, :-1], peaks[:, 1:d]
        su = g_hidden[:, :, 1, 1] + g_hidden[:, :, 2, 1]  # S·u sits in rows 1 and 2
        sv = g_hidden[:, :, 1, 2] + g_hidden[:, :, 2, 2]
        g23 = g_hidden[:, :, 2, 3]
        d_ratio[:, :-1] = su * u[:, :-1] + sv * v[:, :-1] - g23 * an + g_hidden[:, :, 3, 3]
        du[:, :-1] += S * su
        dv[:, :-1] += S * sv
        d_peaks[:, 1:d] -= S * g23
    # du/da = −u², dv/da = (1 − 2a) v²
    d_peaks[:, :d] += dv * (1 - 2 * a) * v * v - du * u * u
    d_peaks[:, 0] -= g_b1[:, 2]
    # ratio = c/c_prev, gain = σ s/c_prev, c = |s|
    d_c = d_ratio / c_prev
    d_c[:, :-1] -= (ratio[:, 1:] * d_ratio[:, 1:] + gain[:, 1:] * d_gain[:, 1:]) / c_prev[:, 1:]
    d_scales = sign.unsqueeze(1) * d_gain / c_prev + torch.sign(scales) * d_c
    return d_peaks, d_scales


def law_scales_vjp(
    peaks: torch.Tensor, s1: torch.Tensor | None, grad: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The vector-Jacobian product of `law_scales(peaks, s1)`: (dL/dpeaks [T, d+1], dL/ds1 [T] or None when
    s_1 is tied) from dL/dscales [T, d]. s_k = s_1 Π_{i=2..k} r_i (tied: Π_{i=1..k} r_i), r_i = (1 − a_i) a_{i+1}."""
    r = (1 - peaks[:, :-1]) * peaks[:, 1:]
    s = law_scales(peaks, s1)
    # dL/dr_i = Σ_{k ≥ i} dL/ds_k · s_k / r_i (r_i > 0: the peaks lie in (0, 1))
    tail = (grad * s).flip(1).cumsum(1).flip(1) / r
    d_s1 = None
    if s1 is not None:  # s_1 takes r_1's place in the product: r_1 gets no gradient, s_1 gets Σ_k dL/ds_k s_k/s_1
        d_s1 = (grad * torch.cumprod(torch.cat([torch.ones_like(r[:, :1]), r[:, 1:]], 1), 1)).sum(1)
        tail[:, 0] = 0
    d_peaks = torch.zeros_like(peaks)
    d_peaks[:, :-1] -= tail * peaks[:, 1:]
    d_peaks[:, 1:] += tail * (1 - peaks[:, :-1])
    return d_peaks, d_s1


def forward(layers: list[Layer], x: torch.Tensor) -> torch.Tensor:
    """Batched plain MLP (ReLU after every layer but the last): x [N] (or [N, n]) → [T, N].

    Activations are kept as [T, width, N] so that each layer is one batched matrix product with the long
    axis (the points) contiguous. The ReLU works in place: autograd needs only its output, and a step is
    bound by memory traffic, so one [T, width, N] tensor less per layer is ~10% of a training step.
    """
    h = (x.unsqueeze(0) if x.dim() == 1 else x.T).expand(layers[0][0].shape[0], -1, x.shape[0])
    for i, (w, b) in enumerate(layers):
        h = torch.baddbmm(b.unsqueeze(2), w, h)
        if i < len(layers) - 1:
            h = torch.relu_(h)
    return h[:, 0, :]


class Shapes:
    """Layer shapes of a width-`width`, `depth`-hidden-layer MLP with scalar input and output (or of any
    widths, `Shapes.of`), and the packing of all its weights and biases into one flat vector per trial ([T, P])."""

    def __init__(self, depth: int, width: int = 4):
        self._set([1] + [width] * depth + [1])

    @classmethod
    def of(cls, widths: list[int]) -> Shapes:
        """The shapes of an MLP with layer widths [inputs, hidden …, 1]."""
        shapes = cls.__new__(cls)
        shapes._set(list(widths))
        return shapes

    def _set(self, widths: list[int]) -> None:
        self.widths = widths
        self.dims = list(zip(widths[1:], widths[:-1]))  # (out, in) per layer
        self.size = sum(o * i + o for o, i in self.dims)

    def split(self, flat: torch.Tensor) -> list[Layer]:
        layers, pos = [], 0
        for o, i in self.dims:
            w = flat[:, pos : pos + o * i].view(-1, o, i)
            b = flat[:, pos + o * i : pos + o * i + o]
            layers.append((w, b))
            pos += o * i + o
        return layers

    @staticmethod
    def join(layers: list[Layer]) -> torch.Tensor:
        return torch.cat([t for w, b in layers for t in (w.flatten(1), b)], 1)


@dataclass
class Reparam:
    """How peaks and scales become network weights during pretraining (one setting for the whole batch;
    `free` says per trial whether every scale is its own parameter or the law ties them)."""

    peaks: str = "clamp"  # clamp | sigmoid
    s1: str = "trainable"  # trainable | tied
    offset: bool = True

    def theta(self, a: torch.Tensor) -> torch.Tensor:
        return a.clone() if self.peaks == "clamp" else torch.logit(a)

    def peak_values(self, theta: torch.Tensor) -> torch.Tensor:
        return theta.clamp(*PEAK_CLAMP) if self.peaks == "clamp" else torch.sigmoid(theta)

    def scales(self, a: torch.Tensor, s1: torch.Tensor, s: torch.Tensor, free: torch.Tensor) -> torch.Tensor:
        law = law_scales(a, s1 if self.s1 == "trainable" else None)
        return torch.where(free.unsqueeze(1), s, law)

    def start(self, peaks: torch.Tensor) -> list[torch.Tensor]:
        """Parameters [θ, s_1, s] at the manifold point of the given starting peaks."""
        s = law_scales(peaks)
        return [self.theta(peaks), s[:, 0].clone(), s]

    def layers(self, params: list[torch.Tensor], free: torch.Tensor, sign: torch.Tensor) -> list[Layer]:
        theta, s1, s = params
        a = self.peak_values(theta)
        return encode(a, self.scales(a, s1, s, free), sign, self.offset)

    def vjp(
        self, params: list[torch.Tensor], free: torch.Tensor, sign: torch.Tensor, layer_grads: list[Layer]
    ) -> list[torch.Tensor]:
        """dL/d[θ, s_1, s] from dL/d(the layers of `layers(params, free, sign)`), in closed form (`encode_vjp`,
        `law_scales_vjp`), as autograd through `layers` computes them: the clamp passes the gradient where
        θ ∈ [0.01, 0.99] (torch's clamp: edges included), a free trial's scales take it directly, a law trial's
        reach the peaks and a trainable s_1; a tied s_1 (and s_1 of a free trial) gets 0."""
        theta, s1, s = params
        a = self.peak_values(theta)
        d_a, d_scales = encode_vjp(a, self.scales(a, s1, s, free), sign, self.offset, layer_grads)
        f = free.unsqueeze(1)
        law_a, d_s1 = law_scales_vjp(a, s1 if self.s1 == "trainable" else None, torch.where(f, 0.0, d_scales))
        d_a += law_a
        if self.peaks == "clamp":
            d_theta = torch.where((theta >= PEAK_CLAMP[0]) & (theta <= PEAK_CLAMP[1]), d_a, 0.0)
        else:
            d_theta = d_a * (1 - a) * a
        return [d_theta, torch.zeros_like(s1) if d_s1 is None else d_s1, torch.where(f, d_scales, 0.0)]


def to_sequential(layers: list[Layer], trial: int = 0) -> nn.Sequential:
    """Trial `trial` of a batched network as a plain nn.Sequential of nn.Linear / nn.ReLU."""
    mods: list[nn.Module] = []
    for w, b in layers:
        lin = nn.Linear(w.shape[2], w.shape[1], dtype=w.dtype)
        with torch.no_grad():
            lin.weight.copy_(w[trial])
            lin.bias.copy_(b[trial])
        mods += [lin, nn.ReLU()]
    return nn.Sequential(*mods[:-1])


def compositional_mlp(peaks, scales=None, sign: float = -1.0, offset: bool = True) -> nn.Sequential:
    """A plain nn.Sequential computing F(x) = x + sign · Σ s_i W_i(x) on [0, 1].

    `peaks` holds a_1 … a_{d+1} (a_{d+1} only enters the scales); `scales=None` takes the differentiable
    manifold's scales with s_1 = (1 − a_1) a_2, otherwise the d signed scales s_1 … s_d. The network's
    dtype is the peaks' (float64 peaks give a float64 network).
    """
    peaks = torch.as_tensor(peaks)
    if not peaks.is_floating_point():
        peaks = peaks.double()
    if peaks.ndim != 1 or peaks.numel() < 2:
        raise ValueError("peaks must be a vector a_1 … a_{d+1} with d ≥ 1")
    if not bool(((peaks > 0) & (peaks < 1)).all()):
        raise ValueError(f"peaks must lie in (0, 1); got {peaks.tolist()}")
    scales = law_scales(peaks) if scales is None else torch.as_tensor(scales, dtype=peaks.dtype)
    if scales.shape != (peaks.numel() - 1,):
        raise ValueError(f"need {peaks.numel() - 1} scales for {peaks.numel()} peaks, got {tuple(scales.shape)}")
    if not bool((scales != 0).all()):
        raise ValueError("scales must be non-zero (the encoding divides by them)")
    sign_t = torch.tensor([float(sign)], dtype=peaks.dtype)
    return to_sequential(encode(peaks[None], scales[None], sign_t, offset))

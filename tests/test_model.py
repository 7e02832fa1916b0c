"""The compositional network against its closed form (docs/method.md §1–3), in float64."""

import math

import pytest
import torch

import compnet
from compnet.model import closed_form, encode, encode_vjp, law_scales, law_scales_vjp, triangle

f64 = torch.float64


def _peaks(d: int, seed: int, lo: float = 0.05, hi: float = 0.95) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return lo + (hi - lo) * torch.rand(d + 1, generator=g, dtype=f64)


def _eval(net, x):
    with torch.no_grad():
        return net(x[:, None])[:, 0]


X = torch.linspace(0, 1, 4001, dtype=f64)


def test_triangle_by_hand():
    a = torch.tensor(0.25, dtype=f64)
    x = torch.tensor([0.0, 0.125, 0.25, 0.625, 1.0], dtype=f64)
    assert torch.allclose(triangle(x, a), torch.tensor([0.0, 0.5, 1.0, 0.5, 0.0], dtype=f64))


def test_manifold_scales_by_hand():
    a = torch.tensor([0.5, 0.4, 0.8, 0.3], dtype=f64)
    s = law_scales(a)
    s1 = 0.5 * 0.4
    assert torch.allclose(s, torch.tensor([s1, s1 * 0.6 * 0.8, s1 * 0.6 * 0.8 * 0.2 * 0.3], dtype=f64))
    # a free s_1 rescales every scale, keeping the law's ratios
    assert torch.allclose(law_scales(a, torch.tensor(1.0, dtype=f64)), s / s1)
    assert torch.allclose(law_scales(torch.full((7,), 0.5, dtype=f64)), 4.0 ** -torch.arange(1, 7, dtype=f64))


@pytest.mark.parametrize("d", [1, 2, 3, 5, 8, 12])
@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_network_equals_closed_form_tied(d, sign):
    a = _peaks(d, seed=d)
    net = compnet.compositional_mlp(a, sign=sign)
    assert next(net.parameters()).dtype == f64
    assert (_eval(net, X) - closed_form(X, a, law_scales(a), sign)).abs().max() < 1e-12


@pytest.mark.parametrize("d", [1, 4, 7, 12])
@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_network_equals_closed_form_explicit_scales(d, sign):
    a = _peaks(d, seed=100 + d)
    g = torch.Generator().manual_seed(d)
    # scales off the manifold: perturbed magnitudes and random signs
    s = law_scales(a) * torch.empty(d, dtype=f64).uniform_(0.5, 2.0, generator=g)
    s = s * torch.where(torch.rand(d, generator=g) < 0.3, -1.0, 1.0).to(f64)
    net = compnet.compositional_mlp(a, s, sign=sign)
    assert (_eval(net, X) - closed_form(X, a, s, sign)).abs().max() < 1e-12


@pytest.mark.parametrize("sign", [-1.0, 1.0])
def test_accumulator_never_dies(sign):
    """Any peaks in [0.05, 0.95] and any scales (large ones too): the offset keeps the accumulator alive."""
    for seed in range(20):
        a = _peaks(6, seed=seed)
        s = torch.randn(6, generator=torch.Generator().manual_seed(seed), dtype=f64) * 0.5
        net = compnet.compositional_mlp(a, s, sign=sign)
        assert (_eval(net, X) - closed_form(X, a, s, sign)).abs().max() < 1e-10


def test_plain_encoding_clips_where_offset_does_not():
    """Without the offset the accumulator ReLU can die (docs/method.md §3): big scales, sign −1."""
    a = torch.tensor([0.5, 0.5, 0.5], dtype=f64)
    s = torch.tensor([3.0, 1.0], dtype=f64)
    exact = closed_form(X, a, s, -1.0)
    assert exact.min() < 0  # the closed form dips below zero
    plain = _eval(compnet.compositional_mlp(a, s, sign=-1.0, offset=False), X)
    assert (plain - exact).abs().max() > 0.1
    offset = _eval(compnet.compositional_mlp(a, s, sign=-1.0, offset=True), X)
    assert (offset - exact).abs().max() < 1e-12


@pytest.mark.parametrize("d", [1, 2, 4, 6, 9, 12])
def test_yarotsky_anchor(d):
    """All peaks ½, sign −1: the interpolant of x² at k/2^d, max error 2^(−2d−2) at the cell midpoints."""
    net = compnet.compositional_mlp(torch.full((d + 1,), 0.5, dtype=f64))
    n = 2**d
    knots = torch.arange(n + 1, dtype=f64) / n
    mids = (knots[:-1] + knots[1:]) / 2
    assert (_eval(net, knots) - knots**2).abs().max() < 1e-14
    err = (_eval(net, mids) - mids**2).abs()
    assert torch.allclose(err, torch.full_like(err, 2.0 ** (-2 * d - 2)), rtol=1e-9, atol=0)
    dense = torch.linspace(0, 1, 20001, dtype=f64)
    assert (_eval(net, dense) - dense**2).abs().max() <= 2.0 ** (-2 * d - 2) * (1 + 1e-9)


@pytest.mark.parametrize("d", [1, 3, 5, 8, 12])
def test_exactly_2_to_the_d_pieces(d):
    for sign in (-1.0, 1.0):
        assert compnet.count_linear_pieces(compnet.compositional_mlp(_peaks(d, seed=7 * d), sign=sign)) == 2**d


def _derivative_jump_at_first_peak(a: torch.Tensor, s: torch.Tensor) -> float:
    h = 1e-7
    a1 = a[0].item()
    x = torch.tensor([a1 - 2 * h, a1 - h, a1 + h, a1 + 2 * h], dtype=f64)
    f = closed_form(x, a, s, -1.0)
    return abs(((f[3] - f[2]) - (f[1] - f[0])).item() / h)


def test_differentiability_law():
    """With scales from the law the jump in F' at a_1 shrinks toward 0 as depth grows; off the law it stays."""
    base = torch.tensor(
        [0.37, 0.62, 0.45, 0.55, 0.3, 0.7, 0.41, 0.58, 0.5, 0.44, 0.6, 0.52, 0.47, 0.53, 0.49], dtype=f64
    )
    law, off = [], []
    for d in (2, 4, 8, 12):
        a = base[: d + 1]
        s = law_scales(a)
        law.append(_derivative_jump_at_first_peak(a, s))
        off.append(_derivative_jump_at_first_peak(a, s * torch.where(torch.arange(d) % 2 == 0, 1.5, 1.0).to(f64)))
    assert all(b < a for a, b in zip(law, law[1:]))  # strictly shrinking
    assert law[-1] < 1e-2 * law[0]
    assert min(off) > 0.2 * off[0]  # perturbed scales: the kink does not go away


def test_bad_peaks_are_refused():
    with pytest.raises(ValueError, match=r"\(0, 1\)"):
        compnet.compositional_mlp([0.5, 1.2])
    with pytest.raises(ValueError, match="scales"):
        compnet.compositional_mlp([0.5, 0.5, 0.5], scales=[0.1])


def test_float32_peaks_give_float32_network():
    net = compnet.compositional_mlp(torch.tensor([0.5, 0.5], dtype=torch.float32))
    assert all(p.dtype == torch.float32 for p in net.parameters())
    assert math.isclose(_eval(net, torch.tensor([0.5]))[0].item(), 0.5 - 0.25, rel_tol=1e-6)


# The paper's appendix on depth (docs/method.md §9), on the construction itself.


@pytest.mark.parametrize("c", [0.01, 0.1, 0.3])
def test_two_steps_of_the_law_shrink_the_scale_fourfold(c):
    g = torch.Generator().manual_seed(3)
    peaks = c + (1 - 2 * c) * torch.rand(2000, 12, generator=g, dtype=f64)  # 2000 networks, depth 11
    s = law_scales(peaks)
    ratio = s[:, 2:] / s[:, :-2]
    assert ratio.max() <= 0.25
    # the bound's extreme within [c, 1 − c]: (1 − a_{i+1}) a_{i+2} (1 − a_{i+2}) a_{i+3} at a = (c, ½, 1 − c)
    extreme = law_scales(torch.tensor([0.5, c, 0.5, 1 - c], dtype=f64))
    assert (extreme[2] / extreme[0]).item() == pytest.approx((1 - c) ** 2 / 4, rel=1e-15)


def _peak_points(peaks: torch.Tensor, k: int) -> torch.Tensor:
    """The 2^k inputs where wave W_{k+1} peaks (W_k = a_{k+1}): W_k's level set, pulled back through the
    triangles t_{a_k}, …, t_{a_1} (each value w has the preimages a·w and 1 − (1 − a)·w)."""
    v = peaks[k : k + 1]
    for a in peaks[:k].flip(0):
        v = torch.cat([a * v, 1 - (1 - a) * v])
    return v


@pytest.mark.parametrize("k", [1, 2, 4, 7])
def test_a_depth_k_network_is_its_next_scale_from_the_deep_one(k):
    # Theorem A.7: sup |F_∞ − F_k| = |s_{k+1}| (the paper counts scales from s_0), attained where W_{k+1} peaks;
    # depth 40 stands in for the limit (its tail is below 4^−16 of s_{k+1})
    peaks = _peaks(41, seed=k, lo=0.1, hi=0.9)
    s = law_scales(peaks)
    x = torch.cat([torch.linspace(0, 1, 100_001, dtype=f64), _peak_points(peaks, k)])
    gap = (closed_form(x, peaks, s, -1.0) - closed_form(x, peaks, s[:k], -1.0)).abs()
    assert gap.max().item() == pytest.approx(s[k].item(), rel=1e-12)  # never more, on a grid of 1e5 points
    assert gap[-(2**k) :].min().item() == pytest.approx(s[k].item(), rel=1e-12)  # at every peak of W_{k+1}
    assert gap[: -(2**k)].max() > s[k] * 0.99  # the grid comes close: the peaks were not a lucky choice
    assert (gap[-(2**k) :] - gap[: -(2**k)].max() >= -1e-15).all()


def _autograd_vjp(fn, inputs, seed):
    """autograd's vector-Jacobian product of fn(*inputs) (a list of (weight, bias) or one tensor) against
    random cotangents: (the cotangents, the gradients of the inputs)."""
    inputs = [t.detach().requires_grad_() for t in inputs]
    out = fn(*inputs)
    flat = [t for pair in out for t in pair] if isinstance(out, list) else [out]
    g = torch.Generator().manual_seed(seed)
    cot = [torch.randn(t.shape, generator=g, dtype=t.dtype) for t in flat]
    grads = torch.autograd.grad(sum((t * c).sum() for t, c in zip(flat, cot)), inputs)
    return cot, grads


@pytest.mark.parametrize("d", [1, 2, 3, 5, 12])
@pytest.mark.parametrize("offset", [True, False])
def test_encode_vjp_equals_autograd(d, offset):
    """encode's backward in closed form equals autograd through encode (float64), for signed scales off the
    manifold and both wave signs; relative to the gradient's size, since 1/c_{k−1} makes it large."""
    T, g = 6, torch.Generator().manual_seed(d)
    peaks = 0.05 + 0.9 * torch.rand(T, d + 1, generator=g, dtype=f64)
    scales = law_scales(peaks) * torch.empty(T, d, dtype=f64).uniform_(0.5, 2.0, generator=g)
    scales = scales * torch.where(torch.rand(T, d, generator=g) < 0.3, -1.0, 1.0).to(f64)
    sign = torch.where(torch.rand(T, generator=g) < 0.5, -1.0, 1.0).to(f64)
    cot, (d_peaks, d_scales) = _autograd_vjp(lambda a, s: encode(a, s, sign, offset), [peaks, scales], d)
    h_peaks, h_scales = encode_vjp(peaks, scales, sign, offset, list(zip(cot[::2], cot[1::2])))
    assert (h_peaks - d_peaks).abs().max() <= 1e-13 * d_peaks.abs().max()
    assert (h_scales - d_scales).abs().max() <= 1e-13 * d_scales.abs().max()
    assert torch.equal(h_peaks[:, d], torch.zeros(T, dtype=f64))  # a_{d+1} only enters the scales


@pytest.mark.parametrize("d", [1, 2, 5, 12])
def test_law_scales_vjp_equals_autograd(d):
    T, g = 5, torch.Generator().manual_seed(10 + d)
    peaks = 0.05 + 0.9 * torch.rand(T, d + 1, generator=g, dtype=f64)
    s1 = torch.rand(T, generator=g, dtype=f64) - 0.5
    (cot,), (d_peaks,) = _autograd_vjp(law_scales, [peaks], d)
    h_peaks, none = law_scales_vjp(peaks, None, cot)
    assert none is None and (h_peaks - d_peaks).abs().max() < 1e-14
    (cot,), (d_peaks, d_s1) = _autograd_vjp(law_scales, [peaks, s1], d)
    h_peaks, h_s1 = law_scales_vjp(peaks, s1, cot)
    assert (h_peaks - d_peaks).abs().max() < 1e-14 and (h_s1 - d_s1).abs().max() < 1e-14

"""Exact linear-region counts (docs/method.md §7) against hand-built networks and dense sampling."""

import numpy as np
import pytest
import torch
from torch import nn

import compnet
from compnet.init import generators, random_weights
from compnet.model import Shapes, encode, law_scales, to_sequential
from compnet.pieces import count_activation_regions, count_batch, count_regions, trial_pieces, wasted_neurons

f64 = torch.float64


def _linear(w, b):
    lin = nn.Linear(len(w[0]), len(w), dtype=f64)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor(w, dtype=f64))
        lin.bias.copy_(torch.tensor(b, dtype=f64))
    return lin


def tent(k: int) -> nn.Sequential:
    """Telgarsky's g = 2 relu(x) − 4 relu(x − ½) composed k times: exactly 2^k pieces on [0, 1]."""
    mods: list[nn.Module] = [_linear([[1.0], [1.0]], [0.0, -0.5]), nn.ReLU()]
    for _ in range(k - 1):
        mods += [_linear([[2.0, -4.0], [2.0, -4.0]], [0.0, -0.5]), nn.ReLU()]
    mods.append(_linear([[2.0, -4.0]], [0.0]))
    return nn.Sequential(*mods)


@pytest.mark.parametrize("k", range(1, 13))
def test_telgarsky_tent(k):
    assert compnet.count_linear_pieces(tent(k)) == 2**k
    assert count_activation_regions(tent(k)) == 2**k


def _sampled_pieces(net: nn.Sequential, lo: float, hi: float, n: int = 400_001) -> int:
    """Independent reference: slopes on a dense grid, counting changes (valid when pieces are wider than
    a few grid cells, which the assertion on the minimum knot gap below checks)."""
    x = torch.linspace(lo, hi, n, dtype=f64)
    with torch.no_grad():
        y = net(x[:, None])[:, 0].numpy()
    slope = np.diff(y) / np.diff(x.numpy())
    change = np.abs(np.diff(slope)) > 1e-6 * (np.abs(slope).max() + 1)
    # a kink inside one cell shows up as two consecutive changes (its cell's slope is in between)
    idx = np.flatnonzero(change)
    kinks = 0 if idx.size == 0 else 1 + int((np.diff(idx) > 1).sum())
    return 1 + kinks


@pytest.mark.parametrize("seed", range(12))
def test_agrees_with_dense_sampling_on_random_default_networks(seed):
    torch.manual_seed(seed)
    width, depth = [(4, 5), (8, 3), (16, 2), (6, 6)][seed % 4]
    dims = [1] + [width] * depth
    mods: list[nn.Module] = []
    for i, o in zip(dims, dims[1:]):
        mods += [nn.Linear(i, o, dtype=f64), nn.ReLU()]
    net = nn.Sequential(*mods, nn.Linear(width, 1, dtype=f64))
    lo, hi = -1.0, 1.0
    r = count_regions(net, lo, hi)
    if r.knots.size > 2:
        assert np.diff(r.knots).min() > 20 * (hi - lo) / 400_000, "pieces too narrow for the sampled reference"
    assert r.linear_pieces == _sampled_pieces(net, lo, hi)
    assert r.activation_regions >= r.linear_pieces
    # the propagated jumps are the differences of the slopes (which are accurate here)
    assert np.allclose(r.jumps, np.diff(r.slopes), rtol=1e-9, atol=1e-12 * np.abs(r.slopes).max())


def test_dead_layer_gives_one_piece():
    """A collapsed network (a whole layer dead) is exactly one affine piece, and every neuron of that
    layer is wasted."""
    net = nn.Sequential(
        _linear([[1.0], [-1.0]], [0.0, 0.5]),
        nn.ReLU(),
        _linear([[-1.0, -1.0], [-2.0, 0.0]], [-0.1, -0.2]),
        nn.ReLU(),
        _linear([[3.0, 1.0]], [0.7]),
    )
    assert compnet.count_linear_pieces(net) == 1
    assert wasted_neurons(net) == 2 + 1  # the dead layer, and the first layer's always-on neuron x


def test_shared_breakpoints_are_one_knot():
    """Two neurons with the same breakpoint, and a neuron that only touches zero, add one knot."""
    net = nn.Sequential(
        _linear([[1.0], [2.0], [1.0]], [-0.5, -1.0, 0.0]),
        nn.ReLU(),
        _linear([[1.0, 1.0, 0.0]], [0.0]),
    )
    r = count_regions(net)
    assert r.knots.tolist() == [0.0, 0.5, 1.0]
    assert r.linear_pieces == 2


def test_collinear_neighbours_merge():
    """relu(x − ½) − relu(x − ½): a kink in each neuron, none in the output."""
    net = nn.Sequential(_linear([[1.0], [1.0]], [-0.5, -0.5]), nn.ReLU(), _linear([[1.0, -1.0]], [0.0]))
    assert count_activation_regions(net) == 2
    assert compnet.count_linear_pieces(net) == 1


def test_small_values_beside_a_wide_range_neuron():
    """z = x − 10¹² relu(x − ½) − ¼ reaches −5·10¹¹: its ∓¼ at x = 0 and ½ are still signs, not zero (the
    tolerance is local to the knot, not a share of the neuron's range). Roots ¼ and ½ + ¼/(10¹² − 1); the
    output relu(z) has slopes 0, 1, 1 − 10¹², 0."""
    net = nn.Sequential(
        _linear([[1.0], [1.0]], [0.0, -0.5]),
        nn.ReLU(),
        _linear([[1.0, -1e12]], [-0.25]),
        nn.ReLU(),
        _linear([[1.0]], [0.0]),
    )
    r = count_regions(net)
    assert np.allclose(r.knots, [0.0, 0.25, 0.5, 0.5 + 0.25 / (1e12 - 1), 1.0], rtol=0, atol=1e-16)
    assert (r.activation_regions, r.linear_pieces, r.wasted) == (4, 4, 1)  # x only touches zero, at 0


PEAK_FAMILIES = ["0.01", "0.99", "alternating", "alternating from 0.99", "random 0", "random 1", "random 2"]


def _peaks(family: str, d: int) -> torch.Tensor:
    """Peaks a_1 … a_{d+1} of a named family, all in [0.01, 0.99]."""
    if family.startswith("random"):
        g = torch.Generator().manual_seed(100 * int(family[-1]) + d)
        return 0.01 + 0.98 * torch.rand(d + 1, generator=g, dtype=f64)
    cycle = {"0.01": [0.01], "0.99": [0.99], "alternating": [0.01, 0.99], "alternating from 0.99": [0.99, 0.01]}[family]
    return torch.tensor((cycle * (d + 1))[: d + 1], dtype=f64)


@pytest.mark.parametrize("family", PEAK_FAMILIES)
def test_compositional_network_is_exact_at_extreme_peaks(family):
    """2^d pieces for every depth to 16 and both signs, at peaks where the knots crowd closer than float64
    resolves in x. Activation regions by hand: layer k adds the 2^(k−1) roots of W_{k−1} = a_k, so 2^d − 1
    knots; accumulator, t1 (it only touches zero, at knots) and bias never change sign: 3d wasted."""
    for d in range(1, 17):
        for sign in (-1.0, 1.0):
            r = count_regions(compnet.compositional_mlp(_peaks(family, d), sign=sign))
            assert (r.linear_pieces, r.activation_regions, r.wasted) == (2**d, 2**d, 3 * d), (d, sign)


@pytest.mark.parametrize("seed", range(3))
def test_compositional_network_with_explicit_scales(seed):
    """Scales off the law (any magnitudes and signs): still 2^d pieces."""
    d, g = 12, torch.Generator().manual_seed(seed)
    a = 0.01 + 0.98 * torch.rand(d + 1, generator=g, dtype=f64)
    signs = torch.where(torch.rand(d, generator=g) < 0.5, -1.0, 1.0).double()
    scales = signs * law_scales(a) * 10.0 ** (4 * torch.rand(d, generator=g, dtype=f64) - 2)
    r = count_regions(compnet.compositional_mlp(a, scales, sign=1.0))
    assert (r.linear_pieces, r.activation_regions) == (2**d, 2**d)


@pytest.mark.parametrize("d", [2, 3, 6])
def test_designed_cancellation_merges_pieces(d):
    """Peaks ½ and scales s_i = 2^(1−i): at each of the 2^(d−2) peaks of W_{d−1}, W_d turns with slope
    −2 W'_{d−1}, so s_{d−1} ΔW'_{d−1} + s_d ΔW'_d = 0, exactly in float64 (dyadic weights): 2^d activation
    regions, 2^d − 2^(d−2) pieces (at the other knots the sum telescopes to 1 − (d − j) ≠ 0 times a kink)."""
    net = compnet.compositional_mlp(torch.full((d + 1,), 0.5, dtype=f64), scales=[2.0**-i for i in range(d)])
    r = count_regions(net)
    assert (r.activation_regions, r.linear_pieces) == (2**d, 2**d - 2 ** (d - 2))


def test_batch_counts_each_network_as_alone():
    """All trials at once (knots padded to the longest row) count as each network alone; a diverged trial is
    None. Random and compositional networks interleaved, so short rows sit between long ones."""
    d, shapes = 8, Shapes(8)
    rnd = random_weights("kaiming", shapes, generators(0, len(PEAK_FAMILIES)), f64)
    a = torch.stack([_peaks(f, d) for f in PEAK_FAMILIES])
    sign = torch.tensor([(-1.0) ** i for i in range(len(a))], dtype=f64)
    comp = Shapes.join(encode(a, law_scales(a), sign))
    flat = torch.stack([rnd, comp], 1).flatten(0, 1)  # random, compositional, random, …
    flat = torch.cat([flat[:5], torch.full_like(flat[:1], float("nan")), flat[5:]])
    layers = shapes.split(flat)
    found = count_batch(layers)
    assert found[5] is None
    for t, r in enumerate(found):
        if t == 5:
            continue
        alone = count_regions(to_sequential(layers, t))
        assert (r.linear_pieces, r.activation_regions) == (alone.linear_pieces, alone.activation_regions)
        assert r.wasted == alone.wasted
        assert np.allclose(r.knots, alone.knots, rtol=0, atol=1e-15) and np.allclose(r.slopes, alone.slopes)
    assert [t for t, r in enumerate(found) if r and r.linear_pieces == 2**d] == [1, 3, 6, 8, 10, 12, 14]
    pieces, wasted = trial_pieces(shapes, flat)
    assert pieces == [r.linear_pieces if r else -1 for r in found] and wasted[5] == -1


@pytest.mark.parametrize("d", [13, 16])
def test_compositional_network_deep(d):
    g = torch.Generator().manual_seed(d)
    a = 0.3 + 0.4 * torch.rand(d + 1, generator=g, dtype=f64)
    for sign in (-1.0, 1.0):
        assert compnet.count_linear_pieces(compnet.compositional_mlp(a, sign=sign)) == 2**d


@pytest.mark.parametrize("lo, hi, d", [(0.25, 0.75, 5), (0.01, 0.99, 8)])
def test_trial_regions_float32_resolution(lo, hi, d):
    """Float32 weights split shared breakpoints by rounding; counted at float32 resolution they are 2^d."""
    T = 8
    g = torch.Generator().manual_seed(0)
    a = lo + (hi - lo) * torch.rand(T, d + 1, generator=g)
    flat = Shapes.join(encode(a, law_scales(a), torch.full((T,), -1.0), True))
    pieces, wasted = trial_pieces(Shapes(d), flat)
    assert pieces == [2**d] * T
    assert wasted == [3 * d] * T  # accumulator, t1 and bias never change sign


def test_bad_interval():
    with pytest.raises(ValueError, match="lo < hi"):
        count_regions(tent(2), 1.0, 0.0)

"""Block networks (compnet/blocks.py) against their closed form in float64, and against today's network."""

import pytest
import torch

from compnet.blocks import block_network, composed_closed_form, composed_groups, composed_layers, squares
from compnet.model import closed_form, encode, forward, law_scales
from compnet.pieces import count_linear_pieces

f64 = torch.float64


def _peaks(K: int, d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 0.1 + 0.8 * torch.rand(K, d + 1, generator=g, dtype=f64)


def test_one_block_on_the_identity_is_todays_network_weight_for_weight():
    peaks = _peaks(1, 5, seed=0)
    net = block_network(peaks, sign=[-1.0])
    mine = net.layers()
    theirs = encode(peaks, law_scales(peaks), torch.tensor([-1.0], dtype=f64))
    assert len(mine) == len(theirs) == 6
    for (w, b), (w2, b2) in zip(mine, theirs):
        assert torch.equal(w, w2) and torch.equal(b, b2)


@pytest.mark.parametrize("K, n", [(1, 1), (2, 1), (4, 2), (8, 2), (3, 3)])
@pytest.mark.parametrize("d", [1, 4])
def test_the_plain_mlp_equals_the_closed_form(K, n, d):
    g = torch.Generator().manual_seed(10 * K + n + d)
    proj = torch.randn(K, n, generator=g, dtype=f64)
    proj = proj / (2 * proj.abs().sum(1, keepdim=True))  # u_k = ½ + p_k·x stays in [0, 1] on [−1, 1]^n
    sign = torch.where(torch.rand(K, generator=g, dtype=f64) < 0.5, -1.0, 1.0)
    readout = torch.randn(K + 1, generator=g, dtype=f64)
    net = block_network(_peaks(K, d, seed=K), sign, proj, torch.full((K,), 0.5, dtype=f64), readout)
    x = 2 * torch.rand(2000, n, generator=g, dtype=f64) - 1
    x = torch.cat([x, torch.ones(1, n, dtype=f64), -torch.ones(1, n, dtype=f64)])  # corners: u_k at 0 or 1
    seq = net.to_sequential()
    with torch.no_grad():
        out = seq(x)[:, 0]
    assert (out - net.closed_form(x)).abs().max().item() < 1e-12
    hidden = [m.weight for m in seq if isinstance(m, torch.nn.Linear)][1:-1]
    for w in hidden:  # block-diagonal: nothing crosses from one block to another
        assert torch.equal(w, torch.block_diag(*[w[4 * k : 4 * k + 4, 4 * k : 4 * k + 4] for k in range(K)]))


def test_blocks_on_one_input_add_their_breakpoints():
    # three depth-4 blocks on u = x: each has 2^4 pieces (15 interior breakpoints); random peaks put them apart
    net = block_network(_peaks(3, 4, seed=7), sign=[-1.0, 1.0, -1.0], readout=[0.1, 1.0, -0.5, 2.0])
    assert count_linear_pieces(net.to_sequential()) == 3 * 15 + 1


def test_bad_shapes_are_refused_in_one_line():
    with pytest.raises(ValueError, match=r"peaks must be \[K, d\+1\]"):
        block_network([0.3, 0.5], sign=[1.0])
    with pytest.raises(ValueError, match="readout must have shape"):
        block_network(_peaks(2, 3, 0), sign=[1.0, 1.0], readout=[0.0, 1.0])
    with pytest.raises(ValueError, match="lie in"):
        block_network([[0.3, 1.2]], sign=[1.0])


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("d", [1, 3, 5])
def test_the_composition_equals_its_closed_form(n, d):
    """Squaring blocks (all peaks ½) feeding one block of random peaks, as one MLP of 2d hidden layers: equal
    to c_0 + c_1 F_h(Σ Y(x_i)/n) on [−1, 1]^n, and its squaring layers block-diagonal as `composed_groups` says."""
    T = 3
    g = torch.Generator().manual_seed(n + 10 * d)
    peaks = _peaks(T, d, seed=n + d).unsqueeze(1)  # [T, 1, d+1]
    sign = torch.tensor([-1.0 if n % 2 else 1.0], dtype=f64)
    readout = torch.randn(T, 2, generator=g, dtype=f64)
    layers = composed_layers(peaks, law_scales(peaks), sign, readout, n)
    assert [w.shape[1] for w, _ in layers] == [4 * n] * d + [4] * d + [1]
    x = torch.cat(
        [2 * torch.rand(3000, n, generator=g, dtype=f64) - 1, torch.ones(1, n, dtype=f64), torch.zeros(1, n, dtype=f64)]
    )
    assert (forward(layers, x) - composed_closed_form(x, peaks, law_scales(peaks), sign, readout)).abs().max() < 1e-12
    for (w, _), groups in zip(layers, composed_groups(n, d)):
        o, i = w.shape[1] // groups, w.shape[2] // groups
        mask = torch.block_diag(*[torch.ones(o, i, dtype=f64)] * groups)
        assert torch.equal(w * (1 - mask), torch.zeros_like(w))


def test_the_squares_are_yarotskys_interpolant():
    """Y(t) = 1 + 4(F(u) − u), u = (t + 1)/2, with all peaks ½: the piecewise-linear interpolant of t² at the
    2^d + 1 grid points of [−1, 1], at most 2^{−2d} above it (Yarotsky 2017)."""
    d = 4
    peaks, scales = squares(1, d)
    t = torch.linspace(-1, 1, 2**d + 1, dtype=f64)
    u = (t + 1) / 2
    Y = 1 + 4 * (closed_form(u[None], peaks, scales, torch.tensor([-1.0], dtype=f64))[0] - u)
    assert (Y - t**2).abs().max() < 1e-15
    tt = torch.linspace(-1, 1, 10001, dtype=f64)
    uu = (tt + 1) / 2
    YY = 1 + 4 * (closed_form(uu[None], peaks, scales, torch.tensor([-1.0], dtype=f64))[0] - uu)
    gap = YY - tt**2
    assert gap.min() >= -1e-15 and abs(gap.max().item() - 2 ** (-2 * d)) < 1e-6

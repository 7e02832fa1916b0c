"""Targets and grids: the values against hand computation, and the same bits whatever the CPU."""

import math

import torch

from compnet.targets import TARGETS, convexity, domain_grid, get_target, inflections, train_grid
from compnet.targets import test_grid as held_out_grid  # a test_* name would be collected


def test_grids():
    x = train_grid(500)
    assert x.dtype == torch.float32 and x[0] == 0 and x[-1] == 1
    assert torch.equal(x, (torch.arange(500, dtype=torch.float64) / 499).float())
    assert (torch.diff(train_grid(500, torch.float64)) - 1 / 499).abs().max() < 1e-15
    assert train_grid(1).tolist() == [0.0]
    assert held_out_grid(10, torch.float64).tolist() == [(k + 0.5) / 10 for k in range(10)]


def test_targets_are_their_formulas_rounded_once():
    x = train_grid(101, torch.float64)
    expected = {
        "x2": [v * v for v in x.tolist()],
        "x3": [v * v * v for v in x.tolist()],
        "x11": [math.prod([v] * 11) for v in x.tolist()],
        "sin": [math.sin(math.pi * v / 2) for v in x.tolist()],
        "tanh": [math.tanh(3 * v) for v in x.tolist()],
    }
    for name, values in expected.items():
        assert get_target(name)(x).tolist() == values, name
        xf = x.float()  # float32 points: evaluated in float64 at those points, then rounded once to float32
        assert torch.equal(get_target(name)(xf), get_target(name)(xf.double()).float()), name
    paper = [t for t in TARGETS.values() if not t.needs_blocks]
    assert [t.sign for t in paper] == [-1.0, -1.0, -1.0, 1.0, 1.0]  # below y = x: waves subtracted
    for t in paper:
        assert abs(t(torch.tensor([0.0])).item()) < 1e-12 and abs(t(torch.tensor([1.0])).item() - 1) < 0.01


def test_extension_targets_on_their_domains():
    """x³ − x on [−1, 1] and r³ on the 2-D grid [−1, 1]² (first coordinate slowest), each value rounded once."""
    t = get_target("x3_minus_x")
    x = domain_grid(t, 5, torch.float64)
    assert x.tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert t(x).tolist() == [0.0, 0.375, 0.0, -0.375, 0.0]
    r3 = get_target("r3")
    g = domain_grid(r3, 3, torch.float64)
    assert g.shape == (9, 2) and g[:3].tolist() == [[-1.0, -1.0], [-1.0, 0.0], [-1.0, 1.0]]
    assert r3(g).tolist() == [(a * a + b * b) ** 1.5 for a, b in g.tolist()]
    assert r3(g.float()).dtype == torch.float32 and r3(g).shape == (9,)
    assert r3.needs_blocks and t.needs_blocks and not get_target("x3").needs_blocks


def test_convexity_and_inflections():
    """Second differences with a tolerance: convex +1, concave −1, neither 0, in any order of the points;
    the inflection of x³ − x where its second difference changes sign."""
    x = train_grid(500, torch.float64)
    assert convexity(x, [v * v for v in x.tolist()]) == 1
    assert convexity(x, [math.sin(math.pi * v / 2) for v in x.tolist()]) == -1
    assert convexity(x, get_target("x3")(x)) == 1 and convexity(x, get_target("tanh")(x)) == -1  # f''(0) = 0
    assert convexity(x, 2 * x + 1) == 1 and inflections(x, 2 * x + 1) == []  # a straight line: convex
    z = domain_grid(get_target("x3_minus_x"), 501, torch.float64)
    y = get_target("x3_minus_x")(z)
    assert convexity(z, y) == 0 and inflections(z, y) == [0.0]
    perm = torch.randperm(501, generator=torch.Generator().manual_seed(0))
    assert convexity(z[perm], y[perm]) == 0 and inflections(z[perm], y[perm]) == [0.0]
    (at,) = inflections(z + 0.25, y)  # shifted: the sign change moves with it
    assert abs(at - 0.25) < 1e-12
    assert inflections(x, [v * v for v in x.tolist()]) == []
    s = [math.sin(9 * v) for v in x.tolist()]  # inflections at π/9 and 2π/9
    assert [round(v, 3) for v in inflections(x, s)] == [0.349, 0.698] and convexity(x, s) == 0

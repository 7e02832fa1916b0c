"""How blocks join (compnet/readings.py): the designs by hand, the networks against their closed forms on the
whole domain (identity sides included), and the refusals."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from compnet.model import forward, law_scales
from compnet.readings import ReadingError, design, directions, inflections
from compnet.targets import Target, domain_grid, get_target

f64 = torch.float64
CFG = OmegaConf.create({"margin": 0.5, "ridge_blocks": 4})


def test_the_split_of_x3_minus_x_is_the_hand_derived_one():
    """x³ − x = F_concave(−x) + F_convex(x): c = 0, α = |f'(0)| = 1, read-out (0, 1, 1), each block's input
    reaching 1 below 0 (margin 1 + 0.5); the right block's share is x³ (convex), the left one's 2u − u³."""
    t = get_target("x3_minus_x")
    assert inflections(t) == [0.0]
    d = design(t, "auto", CFG)
    assert d.reading == "split"
    assert d.readout.tolist() == [0.0, 1.0, 1.0]
    assert d.sign.tolist() == [1.0, -1.0]
    assert d.proj.tolist() == [[-1.0], [1.0]] and d.shift.abs().tolist() == [0.0, 0.0]
    assert d.margin.tolist() == [1.5, 1.5]


@pytest.mark.parametrize(
    "target,reading", [("x3_minus_x", "split"), ("x3_minus_x", "ridge"), ("r3", "composed"), ("r3", "ridge")]
)
def test_the_network_equals_its_closed_form_on_the_whole_domain(target, reading):
    t = get_target(target)
    d = design(t, reading, CFG).to(f64)
    g = torch.Generator().manual_seed(1)
    peaks = 0.05 + 0.9 * torch.rand(4, d.K, 6, generator=g, dtype=f64)
    x = domain_grid(t, 41 if t.dim == 2 else 2001, f64)
    y = t(x).expand(4, -1)
    scales = law_scales(peaks)
    readout = d.readouts(x, y, peaks, scales)
    assert (forward(d.layers(peaks, scales, readout), x) - d.closed_form(x, peaks, scales, readout)).abs().max() < 1e-12
    if d.readout is None:  # least squares: no read-out does better on the points
        best = ((d.closed_form(x, peaks, scales, readout) - y) ** 2).mean(1)
        worse = ((d.closed_form(x, peaks, scales, readout * 1.001) - y) ** 2).mean(1)
        assert (best <= worse).all()


def test_ridge_directions_and_inputs_stay_in_the_unit_interval():
    d2 = directions(2, 4)
    assert torch.allclose(d2.norm(dim=1), torch.ones(4, dtype=f64))
    assert directions(1, 3).tolist() == [[1.0], [-1.0], [1.0]]
    t = get_target("r3")
    d = design(t, "ridge", CFG)
    u = domain_grid(t, 11, f64) @ d.proj.T + d.shift
    assert u.min() >= 0 and u.max() <= 1


def test_readings_that_cannot_fit_are_refused_with_the_one_that_can():
    with pytest.raises(ReadingError, match="use ridge"):
        design(get_target("r3"), "split", CFG)
    with pytest.raises(ReadingError, match="radial"):
        design(get_target("x3_minus_x"), "composed", CFG)
    tilted = Target("tilted", "x³ − x + x²/4", 0.0, lambda v: v**3 - v + v * v / 4, domain=(-1.0, 1.0))
    with pytest.raises(ReadingError, match="on the chord"):
        design(tilted, "split", CFG)
    assert design(tilted, "auto", CFG).reading == "ridge"  # auto falls back
    wavy = Target("wavy", "sin(3πx)", 0.0, lambda v: math.sin(3 * math.pi * v), domain=(-1.0, 1.0))
    with pytest.raises(ReadingError, match="one inflection point"):
        design(wavy, "split", CFG)

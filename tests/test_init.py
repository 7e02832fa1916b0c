"""Initialisations: their distributions against the formulas (METHOD.md §6), per-trial seeding."""

import math

import pytest
import torch

from compnet.init import _asymmetric_step, _layer, anticorrelated, draw_peaks, generators, random_weights, raai_sigma_w2, trial_seed
from compnet.model import Shapes


def test_kaiming_matches_nn_linear_bounds():
    g = torch.Generator().manual_seed(0)
    w, b = _layer("kaiming", 4000, 4, g, 1.0, 2.0, 0.0)
    bound = 1 / math.sqrt(4)  # nn.Linear: kaiming_uniform_(a=√5) → U(±1/√fan_in), bias the same
    assert w.abs().max() <= bound and b.abs().max() <= bound
    assert w.abs().max() > 0.99 * bound
    assert abs(w.var().item() - bound**2 / 3) < 0.02 * bound**2 / 3
    ref = torch.nn.Linear(4, 4000)
    assert abs(ref.weight.var().item() - w.var().item()) < 0.05 * w.var().item()


def test_asymmetric_step_one_beta_entry_per_neuron():
    g = torch.Generator().manual_seed(1)
    rows, cols = 60000, 5
    wb = _asymmetric_step(torch.zeros(rows, cols, dtype=torch.float64), g)
    nonzero = wb != 0
    assert (nonzero.sum(1) == 1).all()  # exactly one entry per neuron overwritten
    v = wb[nonzero]
    assert ((v > 0) & (v < 1)).all()
    assert abs(v.mean().item() - 2 / 3) < 0.005  # Beta(2, 1): mean 2/3
    assert abs(v.var().item() - 1 / 18) < 0.002  # variance 1/18
    assert abs((v < 0.5).double().mean().item() - 0.25) < 0.01  # CDF x²
    freq = nonzero.double().mean(0)
    assert (freq - 1 / cols).abs().max() < 0.01  # position uniform, bias included


def test_rai_moments():
    """Each entry of [w, b] is Beta(2,1) with probability 1/(n+1), else N(0, 0.6007²/n)."""
    g = torch.Generator().manual_seed(2)
    n, rows = 4, 200000
    w, b = _layer("rai", rows, n, g, 1.0, 2.0, 0.0)
    wb = torch.cat([w, b[:, None]], 1)
    p = 1 / (n + 1)
    assert abs(wb.mean().item() - p * 2 / 3) < 0.003
    second = p * 0.5 + (1 - p) * 0.6007**2 / n  # E[Beta²] = 1/2
    assert abs((wb**2).mean().item() - second) / second < 0.01


@pytest.mark.parametrize("k", [0.0, 0.5, 1.0])
def test_raai_row_covariance(k):
    g = torch.Generator().manual_seed(3)
    n, rows, sw2 = 4, 200000, 2.5
    W = anticorrelated(rows, n, g, k, sw2)
    cov = W.T @ W / rows
    expected = sw2 / n * (torch.eye(n, dtype=torch.float64) - k * torch.ones(n, n, dtype=torch.float64) / n)
    assert (cov - expected).abs().max() < 0.02 * sw2 / n
    if k == 1.0:
        assert W.sum(1).abs().max() < 1e-12  # rows sum to zero


def test_raai_default_variance_is_zero_bias_critical_point():
    assert math.isclose(raai_sigma_w2(1.0), 2 * math.pi / (math.pi - 1))
    assert math.isclose(raai_sigma_w2(0.0), 2.0)


def test_per_trial_generators_do_not_depend_on_count():
    shapes = Shapes(5)
    three = random_weights("raai", shapes, generators(7, 3))
    ten = random_weights("raai", shapes, generators(7, 10))
    assert torch.equal(three, ten[:3])
    assert not torch.equal(ten[0], ten[1])
    assert trial_seed(7, 0) != trial_seed(8, 0)
    assert torch.equal(draw_peaks(generators(7, 2), 6, 0.25, 0.75), draw_peaks(generators(7, 5), 6, 0.25, 0.75)[:2])


def test_unknown_random_init():
    with pytest.raises(ValueError, match="kaiming"):
        random_weights("xavier", Shapes(2), generators(0, 1))

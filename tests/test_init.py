"""Initialisations: their distributions against hand-derived moments and a mean-field Monte Carlo (docs/method.md §6), per-trial seeding."""

import math

import pytest
import torch

from compnet.init import (
    _asymmetric_step,
    _layer,
    anticorrelated,
    draw_peaks,
    generators,
    raai_sigma_w2,
    random_weights,
    trial_seed,
)
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


# Row covariance σ_w²/n (I − k 11ᵀ/n) for n = 4, σ_w² = 2.5, written out by hand:
# diagonal 0.625 (1 − k/4), off the diagonal −0.625 k/4; a row's sum has variance 1ᵀC1 = σ_w² (1 − k).
ROW_COV = {0.0: (0.625, 0.0, 2.5), 0.5: (0.546875, -0.078125, 1.25), 1.0: (0.46875, -0.15625, 0.0)}


@pytest.mark.parametrize("k", sorted(ROW_COV))
def test_raai_row_covariance(k):
    g = torch.Generator().manual_seed(3)
    n, rows, sw2 = 4, 200000, 2.5
    W = anticorrelated(rows, n, g, k, sw2)
    diagonal, off, sum_var = ROW_COV[k]
    cov = W.T @ W / rows
    # standard error of a diagonal entry √2·0.625/√200000 ≈ 0.002, off the diagonal ≈ 0.0014; over 20 seeds
    # the largest of the 16 deviations was 0.0053: 0.01 is ≈5 standard errors
    assert (cov.diagonal() - diagonal).abs().max() < 0.01
    assert (cov[~torch.eye(n, dtype=torch.bool)] - off).abs().max() < 0.01
    assert W.mean().abs() < 0.01  # zero mean: standard error √(1ᵀC1)/n/√rows ≤ 0.0009
    if k == 1.0:
        assert W.mean(1).abs().max() < 1e-12  # every row sums to zero (up to rounding), not just on average
        assert W.std() > 0.6  # and is not zero: √0.46875 ≈ 0.68
    else:  # relative standard error of the row-sum variance √(2/200000) ≈ 0.3%
        assert abs(W.sum(1).var().item() - sum_var) < 0.02 * sum_var


def test_raai_default_variance_by_hand():
    """2π/(π − k) at k = 0 is He's σ_w² = 2; the others computed by hand (π = 3.14159265358979…)."""
    assert raai_sigma_w2(0.0) == 2.0
    assert raai_sigma_w2(0.5) == pytest.approx(2.378559502215851, rel=1e-12)  # 6.283185307/2.641592654
    assert raai_sigma_w2(1.0) == pytest.approx(2.933884413848520, rel=1e-12)  # 6.283185307/2.141592654


def _gain_per_layer(k: float, sigma_w2: float, width=256, depth=6, nets=16) -> float:
    """Geometric mean over layers and networks of q_{l+1}/q_l, q the mean squared pre-activation, through
    `nets` independent zero-bias ReLU stacks of `anticorrelated` width × width layers (one input each)."""
    g = torch.Generator().manual_seed(11)
    h = torch.randn(nets, width, 1, generator=g, dtype=torch.float64)
    q0 = (h**2).mean(1)
    for _ in range(depth):  # the rows of one [nets·width, width] draw are independent: nets layers at once
        h = anticorrelated(nets * width, width, g, k, sigma_w2).view(nets, width, width) @ torch.relu(h)
    return math.exp(((h**2).mean(1) / q0).log().mean().item() / depth)


@pytest.mark.parametrize("k", [0.0, 0.5, 1.0])
def test_raai_default_variance_preserves_the_norm(k):
    """The zero-bias critical point (docs/method.md §6) by Monte Carlo: with σ_w² = raai_sigma_w2(k) the
    squared pre-activations neither grow nor shrink with depth. A mean-field derivation independent of the
    code: for h ~ N(0, q) per neuron, x = relu(h) has E x² = q/2 and (E x)² = q/(2π), and a row with
    covariance σ_w²/n (I − k 11ᵀ/n) gives E (w·x)² = σ_w² (E x² − k (E x)²) = σ_w² q (1/2 − k/(2π)).
    So the gain per layer is σ_w² (1/2 − k/(2π)): 1 at the default, and e.g. 0.6817 at σ_w² = 2, k = 1.

    Tolerance: 16 networks × 6 layers × 256 rows; measured over 20 seeds the gain had standard deviation
    0.010–0.012 and mean 0.989–0.993 (finite width biases it by ≈ −1/width per layer and the log average by
    as much again), so ±0.04 is ≈3σ around the bias. A σ_w² 5% off moves the gain by 5%."""
    assert _gain_per_layer(k, raai_sigma_w2(k)) == pytest.approx(1.0, abs=0.04)
    if k > 0:  # He's σ_w² = 2 is too small once rows are anti-correlated: 0.8408 (k = ½), 0.6817 (k = 1)
        assert _gain_per_layer(k, 2.0) == pytest.approx(2.0 * (0.5 - k / (2 * math.pi)), abs=0.04)


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

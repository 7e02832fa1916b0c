"""Adam over trial-stacked parameters: the snapshots it keeps on request (keeping them changes nothing), and its
square root."""

import math

import pytest
import torch

from compnet.optim import adam

f64 = torch.float64


def _fit(epochs: int, keep_every: int = 0):
    """Two trials of a small non-convex problem (a different target each), so every step moves the parameters."""
    target = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]], dtype=f64)

    def loss(p: list[torch.Tensor]) -> torch.Tensor:
        return ((torch.tanh(p[0]) * p[1] - target) ** 2).sum(1)

    start = [torch.full((2, 3), 0.1, dtype=f64), torch.ones(2, 1, dtype=f64)]
    return adam(start, loss, epochs, lr=0.05, keep_every=keep_every)


@pytest.mark.parametrize(
    "epochs, every, kept", [(5, 2, [0, 2, 4, 5]), (6, 3, [0, 3, 6]), (5, 10, [0, 5]), (0, 2, [0]), (5, 0, [])]
)
def test_snapshots_at_epoch_0_every_n_and_the_last(epochs, every, kept):
    fit = _fit(epochs, every)
    assert [s.epoch for s in fit.snapshots] == kept


def test_a_snapshot_is_the_parameters_after_that_many_steps():
    """Each kept copy is what training for exactly that many epochs ends at, bit for bit (not a view that the
    later steps moved on), and keeping copies leaves the trajectory as it was."""
    fit = _fit(5, 2)
    for epoch, params in fit.snapshots:
        shorter = _fit(epoch)
        assert all(torch.equal(a, b) for a, b in zip(params, shorter.params)), epoch
    plain = _fit(5)
    assert all(torch.equal(a, b) for a, b in zip(fit.params, plain.params))
    assert torch.equal(fit.history, plain.history)
    assert not torch.equal(fit.snapshots[0].params[0], fit.snapshots[1].params[0])  # it did move


def test_adams_square_root_is_correctly_rounded():
    """Adam's √v is the correctly rounded root (the float64 root rounded once to float32 is exactly that), as the
    fused engine's C loop computes it; torch's CPU sqrt is not always (MKL's vector math, ~1 ulp), which would
    make the C and Python loops differ and tie the numbers to the machine's MKL path."""
    from compnet.optim import _sqrt

    v = torch.rand(200_000, generator=torch.Generator().manual_seed(0)) * torch.logspace(-30, 3, 200_000)
    assert torch.equal(_sqrt(v), v.double().sqrt().float())
    w = v[:5000].double()
    assert _sqrt(w).tolist() == [math.sqrt(a) for a in w.tolist()]  # C's sqrt: IEEE, correctly rounded

"""The batched trial engine against a plain per-trial loop (own nn.Sequential, own torch.optim.Adam)."""

import math

import pytest
import torch
from omegaconf import OmegaConf

from compnet.config import TrainConf
from compnet.experiment import reparam_of, run
from compnet.init import generators, random_weights
from compnet.model import Shapes, closed_form, encode, forward, law_scales, to_sequential
from compnet.regions import trial_regions
from compnet.targets import get_target, train_grid
from compnet import kernel
from compnet.config import PEAK_CLAMP
from compnet.train import Progress, Reparam, pretrain, train_raw

f64 = torch.float64
# every engine test runs on both engines: torch's ops, and the fused kernel where it builds
ENGINES = ["torch", pytest.param("fused", marks=pytest.mark.skipif(kernel.unavailable() is not None, reason="no fused kernel here"))]


def cfg_for(**kw):
    cfg = OmegaConf.structured(TrainConf)
    cfg.target.name, cfg.init.name, cfg.regime.name, cfg.experiment.name = "x3", "manifold", "auto", "none"
    cfg.plots = False
    for k, v in kw.items():
        OmegaConf.update(cfg, k, v)
    return cfg


def loop_raw(start: torch.Tensor, shapes: Shapes, x, y, epochs: int, lr: float) -> torch.Tensor:
    """What a researcher writes without compnet: per trial an nn.Sequential and its own Adam."""
    finals = []
    for t in range(start.shape[0]):
        net = to_sequential(shapes.split(start), t)
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        for _ in range(epochs):
            opt.zero_grad()
            loss = ((net(x[:, None])[:, 0] - y) ** 2).mean()
            loss.backward()
            opt.step()
        finals.append(torch.cat([t.detach().flatten() for m in net if isinstance(m, torch.nn.Linear) for t in (m.weight, m.bias)]))
    return torch.stack(finals)


def loop_pretrain(peaks: torch.Tensor, sign: float, x, y, epochs: int, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Independent reference for pretraining: Adam on (θ, s_1) through the closed form, one trial."""
    theta = peaks.clone().requires_grad_(True)
    s1 = law_scales(peaks)[0].clone().requires_grad_(True)
    opt = torch.optim.Adam([theta, s1], lr=lr)
    for _ in range(epochs):
        opt.zero_grad()
        a = theta.clamp(*PEAK_CLAMP)
        loss = ((closed_form(x, a, law_scales(a, s1), sign) - y) ** 2).mean()
        loss.backward()
        opt.step()
    return theta.detach(), s1.detach()


@pytest.mark.parametrize("engine", ENGINES)
def test_raw_stage_equals_plain_loop(engine):
    shapes, x = Shapes(5), train_grid(64, f64)
    y = get_target("x3")(x)
    start = random_weights("kaiming", shapes, generators(0, 3), f64)
    fit = train_raw(shapes, start, x, y.expand(3, -1), 50, 1e-3, fused=engine == "fused")
    ref = loop_raw(start, shapes, x, y, 50, 1e-3)
    assert (fit.params[0] - ref).abs().max() < 1e-10
    assert not fit.diverged.any()


@pytest.mark.parametrize("engine", ENGINES)
def test_pretraining_equals_closed_form_loop(engine):
    x = train_grid(64, f64)
    y = get_target("x11")(x)
    peaks = 0.25 + 0.5 * torch.rand(3, 6, generator=torch.Generator().manual_seed(1), dtype=f64)
    sign = torch.full((3,), -1.0, dtype=f64)
    free = torch.zeros(3, dtype=torch.bool)
    fit = pretrain(Reparam(), peaks, free, sign, x, y.expand(3, -1), 50, 1e-3, fused=engine == "fused")
    for t in range(3):
        theta, s1 = loop_pretrain(peaks[t], -1.0, x, y, 50, 1e-3)
        assert (fit.params[0][t] - theta).abs().max() < 1e-10
        assert abs(fit.params[1][t] - s1) < 1e-12
    assert not torch.equal(fit.params[0], peaks)  # the peaks did move


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("regime", ["direct", "pretrain"])
def test_run_equals_plain_loop_both_regimes(regime, engine):
    """End to end through `run`: the pretrained network, freed, then trained by the plain loop."""
    init = "kaiming" if regime == "direct" else "manifold"
    cfg = cfg_for(**{"init.name": init, "regime.name": regime, "trials": 3, "epochs": 50, "points": 64, "dtype": "float64", "engine": engine})
    (r,), _ = run(cfg)
    shapes, x = Shapes(5), train_grid(64, f64)
    y = get_target("x3")(x)
    start = r.start if regime == "direct" else r.pretrained
    if regime == "pretrain":
        for t in range(3):
            theta, s1 = loop_pretrain(r.peaks_start[t], -1.0, x, y, 50, 1e-3)
            a = theta.clamp(*PEAK_CLAMP)
            ref = Shapes.join(encode(a[None], law_scales(a, s1)[None], torch.tensor([-1.0], dtype=f64)))
            assert (r.pretrained[t] - ref[0]).abs().max() < 1e-9
    assert (r.final - loop_raw(start, shapes, x, y, 50, 1e-3)).abs().max() < 1e-9
    assert torch.allclose(r.loss_train[-1], ((forward(shapes.split(r.final), x) - y) ** 2).mean(-1))


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("init", ["kaiming", "manifold", "compositional"])
def test_trial_independent_of_batch_size(init, engine):
    """Trial 0 alone, beside 4 others, or beside 129 (two worker threads): the same numbers, bit for bit."""
    cfg = {"init.name": init, "epochs": 30, "points": 500, "workers": 2, "engine": engine}
    runs = [run(cfg_for(**cfg, trials=T))[0][0] for T in (1, 5, 130)]
    for other in runs[1:]:
        assert torch.equal(runs[0].final[0], other.final[0])
        assert torch.equal(runs[0].loss_train[:, 0], other.loss_train[:, 0])
        assert runs[0].seeds[0] == other.seeds[0]


@pytest.mark.parametrize("engine", ENGINES)
def test_worker_threads_change_nothing_but_speed(engine):
    """Trials split over worker threads come back in order, bit for bit equal to one batch."""
    shapes, x = Shapes(3), train_grid(40, f64)
    T = 2 * 64 + 3
    y = get_target("x3")(x).expand(T, -1)
    start = random_weights("kaiming", shapes, generators(4, T), f64)
    start[100] *= 1e300  # one diverged trial, in the second worker's slice
    one = train_raw(shapes, start, x, y, 20, 1e-3, workers=1, fused=engine == "fused")
    two = train_raw(shapes, start, x, y, 20, 1e-3, workers=2, fused=engine == "fused")
    assert two.diverged.nonzero().flatten().tolist() == [100] == one.diverged.nonzero().flatten().tolist()
    keep = torch.arange(T) != 100
    assert torch.equal(one.params[0][keep], two.params[0][keep])
    assert torch.equal(one.history[:, keep], two.history[:, keep])


def test_same_seed_same_numbers_other_seed_other_numbers():
    a, _ = run(cfg_for(**{"trials": 3, "epochs": 20, "points": 50}))
    b, _ = run(cfg_for(**{"trials": 3, "epochs": 20, "points": 50}))
    c, _ = run(cfg_for(**{"trials": 3, "epochs": 20, "points": 50, "seed": 1}))
    assert torch.equal(a[0].loss_train, b[0].loss_train)
    assert not torch.equal(a[0].peaks_start, c[0].peaks_start)


def test_peak_methods_share_starting_peaks():
    cfg = cfg_for(**{"trials": 4, "epochs": 5, "points": 20, "experiment.methods": ["no_pretraining", "not_enforced", "enforced"]})
    results, _ = run(cfg)
    for r in results[1:]:
        assert torch.equal(r.peaks_start, results[0].peaks_start)
    assert ((results[0].peaks_start > 0.25) & (results[0].peaks_start < 0.75)).all()


@pytest.mark.parametrize("engine", ENGINES)
def test_diverged_trial_is_frozen_and_others_unaffected(engine):
    shapes, x = Shapes(3), train_grid(50)
    y = get_target("x3")(x).expand(3, -1)
    start = random_weights("kaiming", shapes, generators(0, 3))
    bad = start.clone()
    bad[1] *= 1e30  # overflows float32: an infinite loss from the first step
    fit_ok = train_raw(shapes, start[[0, 2]], x, y[[0, 2]], 40, 1e-2, fused=engine == "fused")
    fit = train_raw(shapes, bad, x, y, 40, 1e-2, fused=engine == "fused")
    assert fit.diverged.tolist() == [False, True, False]
    assert torch.equal(fit.params[0][1], bad[1])  # frozen where it stood
    assert torch.allclose(fit.params[0][[0, 2]], fit_ok.params[0], atol=1e-6, rtol=0)
    assert not math.isfinite(fit.history[-1, 1].item())


@pytest.mark.parametrize("engine", ENGINES)
def test_nan_mid_training_is_caught(engine):
    """A loss that turns NaN half way (lr so large that the weights blow up) is marked, not propagated."""
    shapes, x = Shapes(2), train_grid(20)
    y = get_target("x3")(x).expand(2, -1)
    start = random_weights("kaiming", shapes, generators(3, 2))
    start[0] *= 1e18  # finite loss at first, overflow after a step
    fit = train_raw(shapes, start, x, y, 30, 1e18, fused=engine == "fused")
    assert fit.diverged[0]
    assert torch.isfinite(fit.params[0][1]).all()


@pytest.mark.parametrize("free", [False, True])
def test_pretraining_keeps_exactly_2_to_the_d_pieces(free):
    """The parameterisation cannot lose pieces: counted at checkpoints along one pretraining trajectory."""
    d, T = 5, 4
    x = train_grid(100, f64)
    y = get_target("x11")(x).expand(T, -1)
    peaks = 0.25 + 0.5 * torch.rand(T, d + 1, generator=torch.Generator().manual_seed(5), dtype=f64)
    sign = torch.full((T,), -1.0, dtype=f64)
    free_mask = torch.full((T,), free)
    reparam = Reparam()
    for epochs in (0, 50, 200, 600):
        fit = pretrain(reparam, peaks, free_mask, sign, x, y, epochs, 1e-2)
        flat = Shapes.join(reparam.layers(fit.params, free_mask, sign))
        pieces, _ = trial_regions(Shapes(d), flat)
        assert pieces == [2**d] * T, f"after {epochs} epochs"


def test_sigmoid_peaks_stay_inside_and_learn_slower():
    x = train_grid(100, f64)
    y = get_target("x11")(x).expand(2, -1)
    peaks = torch.tensor([[0.5] * 6, [0.4] * 6], dtype=f64)
    sign, free = torch.full((2,), -1.0, dtype=f64), torch.zeros(2, dtype=torch.bool)
    clamp = pretrain(Reparam(peaks="clamp"), peaks, free, sign, x, y, 100, 1e-2)
    sig = Reparam(peaks="sigmoid")
    sfit = pretrain(sig, peaks, free, sign, x, y, 100, 1e-2)
    a = sig.peak_values(sfit.params[0])
    assert ((a > 0) & (a < 1)).all()
    # sigmoid' <= 1/4: the same Adam steps in θ move the peaks less
    assert (a - peaks).abs().sum() < (clamp.params[0] - peaks).abs().sum()


@pytest.mark.parametrize(
    "setting", ["model.s1=tied", "model.peaks=sigmoid", "model.offset=false", "init.peak_low=0.1", "regime.direct_epochs=7"]
)
def test_every_open_setting_trains_all_peak_methods(setting):
    """Each ablation setting runs end to end for the three peak methods and lowers the loss."""
    key, value = setting.split("=")
    cfg = cfg_for(**{"trials": 2, "epochs": 20, "points": 50, "experiment.methods": ["no_pretraining", "not_enforced", "enforced"]})
    OmegaConf.update(cfg, key, value, force_add=False)
    results, _ = run(cfg)
    for r in results:
        assert not r.diverged.any()
        assert (r.mse < r.mse_init).all(), r.cell.name
    if setting == "model.s1=tied":  # tied: s_1 stays (1 − a_1) a_2 of the moving peaks
        enforced = results[2]
        a = enforced.peaks_pretrained
        w2 = Shapes(5).split(enforced.pretrained)[1][0]  # accumulator's weight on t1: σ s_1 / a_1
        s1 = -w2[:, 0, 1] * a[:, 0]
        assert torch.allclose(s1, (1 - a[:, 0]) * a[:, 1], rtol=1e-5)
        assert not torch.equal(a, enforced.peaks_start)
    if setting == "regime.direct_epochs=7":
        assert results[0].loss_train.shape[0] == 8 and results[2].loss_train.shape[0] == 21


def test_reparam_settings_are_read_from_config():
    r = reparam_of(cfg_for(**{"model.peaks": "sigmoid", "model.s1": "tied", "model.offset": False}))
    assert (r.peaks, r.s1, r.offset) == ("sigmoid", "tied", False)


class _FakeBar:
    def __init__(self) -> None:
        self.n, self.postfix, self.closed = 0, {}, False

    def set_postfix(self, refresh: bool = True, **kw) -> None:
        self.postfix = kw

    def update(self, k: int) -> None:
        self.n += k

    def close(self) -> None:
        self.closed = True


def test_progress_bar_reports_best_and_median_over_every_slice():
    """Two worker slices: the bar shows the slowest slice's epoch and best/median over all live trials."""
    progress = Progress("train", 100, 2)
    progress.bar = bar = _FakeBar()  # what a terminal would get
    first, second = progress.reporter(0), progress.reporter(1)
    first(50, torch.tensor([4.0, 1.0, float("nan")]), torch.tensor([True, True, False]))
    assert bar.n == 0  # the other slice has not reported yet
    second(25, torch.tensor([3.0, 2.0]), torch.tensor([True, True]))
    assert bar.n == 25
    assert bar.postfix == {"best": "1.00e+00", "median": "2.00e+00"}  # over 4, 1, 3, 2 (torch: the lower median)
    progress.close()
    assert bar.closed


def test_no_progress_bar_off_a_terminal():
    assert Progress("train", 100, 2).reporter(0) is None  # pytest's stderr is not a terminal

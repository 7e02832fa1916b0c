"""From a configuration to trained and analysed cells: end to end against the plain loop, trial and
cell independence, the settings, the held-out MSE."""

import os
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_cli import COMPNET

import compnet
from compnet import kernel
from compnet.experiment import reparam_of, run
from compnet.methods import PEAK_CLAMP
from compnet.model import Shapes, encode, forward, law_scales, to_sequential
from compnet.pieces import count_linear_pieces
from compnet.reference import pretrain_loop, raw_loop
from compnet.targets import get_target, train_grid
from compnet.targets import test_grid as held_out_grid  # a test_* name would be collected

f64 = torch.float64
PEAK_METHODS = "experiment.methods=[no_pretraining,not_enforced,enforced]"


def test_run_equals_plain_loop_both_regimes(compose, engine):
    """End to end through `run`: the pretrained network, freed, then trained by the plain loop."""
    for init, regime in (("kaiming", "direct"), ("manifold", "pretrain")):
        cfg = compose(
            f"init={init}",
            f"regime={regime}",
            "trials=3",
            "epochs=50",
            "points=64",
            "dtype=float64",
            f"engine={engine}",
        )
        (r,), _ = run(cfg)
        shapes, x = Shapes(5), train_grid(64, f64)
        y = get_target("x3")(x)
        start = r.start if regime == "direct" else r.pretrained
        if regime == "pretrain":
            for t in range(3):
                theta, s1 = pretrain_loop(r.peaks_start[t], -1.0, x, y, 50, 1e-3)
                a = theta.clamp(*PEAK_CLAMP)
                ref = Shapes.join(encode(a[None], law_scales(a, s1)[None], torch.tensor([-1.0], dtype=f64)))
                assert (r.pretrained[t] - ref[0]).abs().max() < 1e-9
        assert (r.final - raw_loop(start, shapes, x, y, 50, 1e-3)).abs().max() < 1e-9
        assert torch.allclose(r.loss_train[-1], ((forward(shapes.split(r.final), x) - y) ** 2).mean(-1))


def test_trial_independent_of_batch_size(compose, engine):
    """Trial 0 alone, beside 4 others, or beside 129 (two worker threads): the same numbers, bit for bit."""
    for init in ("kaiming", "manifold", "compositional"):
        runs = [
            run(compose(f"init={init}", "epochs=30", "workers=2", f"engine={engine}", f"trials={T}"))[0][0]
            for T in (1, 5, 130)
        ]
        for other in runs[1:]:
            assert torch.equal(runs[0].final[0], other.final[0])
            assert torch.equal(runs[0].loss_train[:, 0], other.loss_train[:, 0])
            assert runs[0].seeds[0] == other.seeds[0]


def test_cells_batched_equal_each_cell_alone(compose, engine):
    """An experiment trains its cells side by side in one batch; each cell is bit for bit what it is alone."""
    common = ["trials=3", "epochs=15", "points=40", f"engine={engine}"]
    together, _ = run(compose("experiment.targets=[x3,sin]", PEAK_METHODS, *common))
    for r in together:
        init, regime = r.cell.init, r.cell.regime
        (alone,), _ = run(compose(f"target={r.cell.target}", f"init={init}", f"regime={regime}", *common))
        assert alone.cell == r.cell
        assert torch.equal(alone.final, r.final) and torch.equal(alone.loss_train, r.loss_train), r.cell.name


def test_same_seed_same_numbers_other_seed_other_numbers(compose):
    a, _ = run(compose("trials=3", "epochs=20", "points=50"))
    b, _ = run(compose("trials=3", "epochs=20", "points=50"))
    c, _ = run(compose("trials=3", "epochs=20", "points=50", "seed=1"))
    assert torch.equal(a[0].loss_train, b[0].loss_train) and torch.equal(a[0].final, b[0].final)
    assert not torch.equal(a[0].peaks_start, c[0].peaks_start)


def test_peak_methods_share_starting_peaks(compose):
    results, _ = run(compose("trials=4", "epochs=5", "points=20", PEAK_METHODS))
    for r in results[1:]:
        assert torch.equal(r.peaks_start, results[0].peaks_start)
    assert ((results[0].peaks_start > 0.25) & (results[0].peaks_start < 0.75)).all()


def test_held_out_mse_of_the_sparse_table(compose):
    """Table 3: 10 training points, test MSE on the 10 cell centres, recomputed here with the saved
    network as a plain nn.Sequential."""
    (r,) = [
        c
        for c in run(compose("experiment=table3", "experiment.targets=[x11]", "trials=3", "epochs=30"))[0]
        if c.cell.method == "enforced"
    ]
    assert r.x.numel() == 10
    xt = held_out_grid(10, torch.float32)
    assert torch.allclose(xt, torch.arange(10) / 10 + 0.05)
    for t in range(3):
        net = to_sequential(Shapes(5).split(r.final), t)
        with torch.no_grad():
            expected = ((net(xt[:, None])[:, 0] - xt**11) ** 2).mean()
        assert torch.allclose(r.test_mse[t], expected, rtol=1e-6)
    assert not torch.allclose(r.test_mse, r.mse)  # held out: not the training MSE


def _results(compose, *overrides):
    return {r.cell.method: r for r in run(compose("trials=2", "epochs=20", "points=50", PEAK_METHODS, *overrides))[0]}


def test_every_open_setting_trains_and_takes_effect(compose):
    """Each ablation setting runs end to end for the three peak methods, lowers the loss, and changes
    what it says it changes."""
    base = _results(compose)
    for setting in (
        "model.s1=tied",
        "model.peaks=sigmoid",
        "model.offset=false",
        "init.peak_low=0.1",
        "regime.direct_epochs=7",
    ):
        results = _results(compose, setting)
        for r in results.values():
            assert not r.diverged.any() and (r.mse < r.mse_init).all(), (setting, r.cell.name)
        enforced = results["enforced"]
        if setting == "model.s1=tied":  # s_1 stays (1 − a_1) a_2 of the moving peaks
            a = enforced.peaks_pretrained
            w2 = Shapes(5).split(enforced.pretrained)[1][0]  # accumulator's weight on t1: σ s_1 / a_1
            assert torch.allclose(-w2[:, 0, 1] * a[:, 0], (1 - a[:, 0]) * a[:, 1], rtol=1e-5)
            assert not torch.equal(a, enforced.peaks_start)
        if setting == "model.peaks=sigmoid":  # same start, another path
            assert torch.equal(enforced.peaks_start, base["enforced"].peaks_start)
            assert not torch.allclose(enforced.peaks_pretrained, base["enforced"].peaks_pretrained)
        if setting == "model.offset=false":  # the accumulator's first-layer bias: 0 instead of m = Σ|s_i|
            b1 = Shapes(5).split(enforced.start)[0][1][:, 0]
            m = law_scales(enforced.peaks_start).abs().sum(1)
            assert torch.equal(b1, torch.zeros_like(b1))
            assert torch.allclose(Shapes(5).split(base["enforced"].start)[0][1][:, 0], m)
        if setting == "init.peak_low=0.1":
            p = enforced.peaks_start
            assert p.min() >= 0.1 and p.max() <= 0.75 and p.min() < 0.25
        if setting == "regime.direct_epochs=7":
            assert results["no_pretraining"].loss_train.shape[0] == 8 and enforced.loss_train.shape[0] == 21


def test_reparam_settings_are_read_from_config(compose):
    r = reparam_of(compose("model.peaks=sigmoid", "model.s1=tied", "model.offset=false"))
    assert (r.peaks, r.s1, r.offset) == ("sigmoid", "tied", False)


def test_pieces_are_counted_per_stage(compose):
    """The analysis a run records: 2^d pieces for the manifold at the start and after pretraining."""
    (r,), _ = run(compose("trials=3", "epochs=10", "points=50", "depth=4"))
    assert r.pieces["init"] == [16] * 3 and r.pieces["pretrain"] == [16] * 3
    assert len(r.pieces["final"]) == 3 and len(r.wasted_final) == 3


TINY_PIECES = ["experiment.methods=[default,enforced]", "trials=3", "points=30", "depth=3", "epochs=5"]


def _each_trial(weights: torch.Tensor, depth: int) -> list[int]:
    """The independent count: every trial exported as a plain nn.Sequential and counted on its own."""
    return [count_linear_pieces(to_sequential(Shapes(depth).split(weights), t)) for t in range(weights.shape[0])]


def test_counting_changes_no_trained_number(compose, engine):
    common = [*TINY_PIECES, "experiment.targets=[x11]", f"engine={engine}"]
    counted, _ = run(compose(*common, "regions_every=2"))
    plain, _ = run(compose(*common))
    for r, p in zip(counted, plain):
        assert torch.equal(r.loss_train, p.loss_train) and torch.equal(r.final, p.final)
        if r.cell.regime == "pretrain":
            assert torch.equal(r.loss_pretrain, p.loss_pretrain) and torch.equal(r.pretrained, p.pretrained)
        assert r.pieces_by_epoch and p.pieces_by_epoch == {}


def test_pieces_through_training_are_the_trained_networks_counted(compose):
    """regions_every=2 with 5 epochs per stage counts at epochs 0, 2, 4, 5 of each stage: each count is that of
    the network a run of exactly that many epochs ends with, counted trial by trial."""
    common = [*TINY_PIECES, "experiment.targets=[x11]"]
    counted, _ = run(compose(*common, "regions_every=2"))
    default, enforced = counted
    assert list(default.pieces_by_epoch) == ["train"] and list(enforced.pieces_by_epoch) == ["pretrain", "train"]
    assert list(enforced.pieces_by_epoch["pretrain"]) == [0, 2, 4, 5] == list(enforced.pieces_by_epoch["train"])
    for epoch in (0, 2, 4, 5):
        pre = run(compose(*common, f"regime.pretrain_epochs={epoch}"))[0][1]
        assert enforced.pieces_by_epoch["pretrain"][epoch] == _each_trial(pre.pretrained, 3), epoch
        raw = run(compose(*common, f"regime.finetune_epochs={epoch}", f"regime.direct_epochs={epoch}"))[0]
        assert default.pieces_by_epoch["train"][epoch] == _each_trial(raw[0].final, 3), epoch
        assert enforced.pieces_by_epoch["train"][epoch] == _each_trial(raw[1].final, 3), epoch
    assert enforced.pieces_by_epoch["pretrain"][0] == enforced.pieces["init"]
    assert enforced.pieces_by_epoch["train"][5] == enforced.pieces["final"]


def test_a_compositional_network_has_2_to_the_d_pieces_at_epoch_0(compose):
    (r,), _ = run(compose("init=manifold", "regime=direct", "epochs=0", "depth=6", "trials=3", "regions_every=1"))
    assert r.pieces_by_epoch == {"train": {0: [64] * 3}}


def test_a_diverged_trial_counts_minus_one_from_the_epoch_its_loss_blew_up(compose):
    (r,), _ = run(compose("init=kaiming", "lr=1e30", "trials=2", "epochs=3", "points=20", "regions_every=1"))
    counts, loss = r.pieces_by_epoch["train"], r.loss_train
    for epoch in range(4):
        gone = ~torch.isfinite(loss[: epoch + 1]).all(0)
        assert [n == -1 for n in counts[epoch]] == gone.tolist(), epoch
    assert min(counts[0]) >= 1 and counts[3] == [-1, -1]
    assert r.diverged.all() and r.pieces["final"] == [-1, -1] and r.wasted_final == [-1, -1]  # as trials.csv says


@pytest.mark.slow
@pytest.mark.skipif(kernel.unavailable() is not None, reason="the machine-independence claim is the fused engine's")
@pytest.mark.skipif("avx2" not in Path("/proc/cpuinfo").read_text(), reason="needs a CPU with AVX2 to compare against")
def test_same_bits_whatever_vector_instructions_torch_picks(tmp_path):
    """torch chooses its vectorised CPU kernels per machine (ATEN_CPU_CAPABILITY: none, AVX2, AVX-512); with the
    fused engine a run's numbers do not depend on that choice: every op compnet leaves to torch rounds once."""
    overrides = ["experiment=table1", "experiment.targets=[x11,sin]", "experiment.methods=[raai,not_enforced,enforced]"]
    overrides += ["trials=4", "epochs=150", "points=100", "plots=false"]
    for cap in ("default", "avx2"):
        env = {**os.environ, "ATEN_CPU_CAPABILITY": cap}
        p = subprocess.run(
            [COMPNET, "train", *overrides, f"hydra.run.dir={tmp_path / cap}"], env=env, capture_output=True, text=True
        )
        assert p.returncode == 0, p.stderr[-2000:]
    plain, avx2 = (compnet.load_run(tmp_path / cap).trials for cap in ("default", "avx2"))
    pd.testing.assert_frame_equal(plain, avx2, check_exact=True)
    assert plain.mse.nunique() == len(plain)  # 24 trained trials, not a degenerate comparison


def test_device_auto_without_a_gpu_is_the_cpu_bit_for_bit(compose, engine):
    """No CUDA here: device=auto trains on the CPU, with the engine auto would pick there, to the same bits."""
    common = ["init=kaiming", "trials=3", "epochs=15", "points=40", f"engine={engine}"]
    (cpu,), _ = run(compose(*common, "device=cpu"))
    (auto,), _ = run(compose(*common, "device=auto"))
    assert auto.device == cpu.device == "cpu" and auto.engine == cpu.engine == engine
    assert torch.equal(auto.final, cpu.final) and torch.equal(auto.loss_train, cpu.loss_train)

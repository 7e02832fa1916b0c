"""Networks of blocks end to end (compnet/extensions.py): against plain per-trial loops, trial independence,
the block mask, the exact pieces, the experiment's files."""

import json

import pytest
import torch

import compnet
from compnet.experiment import run
from compnet.extensions import dense_width, design_of, grid_of, line_pieces
from compnet.methods import PEAK_CLAMP
from compnet.model import Shapes, forward, law_scales
from compnet.pieces import trial_pieces
from compnet.reference import blocks_pretrain_loop, raw_loop
from compnet.stages import _block_mask
from compnet.targets import get_target

f64 = torch.float64
SMALL = ("trials=2", "epochs=25", "depth=3", "dtype=float64", "blocks.axis_points=9", "points=64")


@pytest.mark.parametrize("target", ["x3_minus_x", "r3"])
def test_enforced_equals_plain_loops_through_the_closed_form(compose, engine, target):
    """Pretraining against Adam on each trial's (θ, s_1) through the reading's closed form (no encoding, no
    batching), then the raw stage against an nn.Sequential with the block mask on its gradient."""
    cfg = compose(f"target={target}", "init=manifold", f"engine={engine}", *SMALL)
    (r,), _ = run(cfg)
    t = get_target(target)
    d, x = design_of(t, cfg).to(f64), grid_of(t, cfg, f64)
    y = t(x)
    K, widths = d.K, r.network["widths"]
    for i in range(2):
        theta, scales = blocks_pretrain_loop(d, r.peaks_start[i].view(K, -1), x, y, 25, 1e-3)
        ref = Shapes.join(d.layers(theta.clamp(*PEAK_CLAMP)[None], scales[None], d.readout[None]))
        assert (r.pretrained[i] - ref[0]).abs().max() < 1e-9
    shapes = Shapes.of(widths)
    masks = [_block_mask(o, i, g, f64) for (o, i), g in zip(shapes.dims, r.network["groups"])]
    assert (r.final - raw_loop(r.pretrained, shapes, x, y, 25, 1e-3, masks)).abs().max() < 1e-9
    for w, m in zip(shapes.split(r.final), masks):  # the off-block weights never moved from 0
        assert torch.equal(w[0] * (1 - m), torch.zeros_like(w[0]))


def test_trial_independent_of_batch_size_and_engines_agree(compose):
    """Trial 0 alone or beside two others: the same bits; the fused kernel (block-diagonal layers read as 4×4
    blocks) and torch's ops (dense, masked) agree to float64 rounding after training, every method."""
    args = ("experiment=extensions", "experiment.targets=[r3]", "epochs=15", "depth=2", "blocks.axis_points=8")
    runs = {
        (T, engine): {
            r.cell.method: r for r in run(compose(*args, f"trials={T}", f"engine={engine}", "dtype=float64"))[0]
        }
        for T, engine in ((1, "torch"), (3, "torch"), (3, "fused"))
    }
    for method, r in runs[(3, "torch")].items():
        assert torch.equal(r.final[:1], runs[(1, "torch")][method].final), method
        assert (r.final - runs[(3, "fused")][method].final).abs().max() < 1e-9, method


def test_pieces_at_init_are_exact():
    """The split reading of x³ − x: each block has 2^d pieces on its side of 0 (its other side is the identity),
    so 2^(d+1) in all. Along a line a 2-D network is counted as the 1-D network the line folds it into: a sum of
    blocks that reads only the first coordinate has the 1-D network's pieces along the x-axis, one along y."""
    cfg = compnet.compose("target=x3_minus_x", "init=manifold", "regime=direct", "trials=5", "depth=4", "epochs=0")
    (r,), _ = run(cfg)
    assert r.pieces["init"] == [2**5] * 5
    d = design_of(get_target("x3_minus_x"), cfg).to(torch.float64)
    peaks = r.peaks_start.view(5, 2, -1).double()
    one_d = Shapes.join(d.layers(peaks, law_scales(peaks), d.readout.expand(5, -1)))
    flat_proj = torch.cat([d.proj, torch.zeros_like(d.proj)], 1)  # the same blocks on (x, y), reading x only
    two_d = d.__class__(d.reading, 2, d.sign, flat_proj, d.shift, d.margin, d.readout)
    flat = Shapes.join(two_d.layers(peaks, law_scales(peaks), d.readout.expand(5, -1)))
    shapes = Shapes.of(two_d.widths(4))
    assert line_pieces(shapes, flat, (-1.0, 0.0), (1.0, 0.0)) == trial_pieces(Shapes.of(d.widths(4)), one_d, -1, 1)[0]
    assert line_pieces(shapes, flat, (0.3, -1.0), (0.3, 1.0)) == [1] * 5


def test_the_fair_control_has_the_block_networks_parameters():
    assert dense_width(185, 1, 5) == 6  # 4w² + 7w + 1 = 187 at w = 6: the nearest to the split reading's 185
    cfg = compnet.compose("experiment=extensions")
    for name in ("x3_minus_x", "r3"):
        d = design_of(get_target(name), cfg)
        w = dense_width(d.parameters(5), d.n, 5)
        dense = Shapes.of([d.n] + [w] * 5 + [1]).size
        assert abs(dense - d.parameters(5)) <= min(
            abs(Shapes.of([d.n] + [v] * 5 + [1]).size - d.parameters(5)) for v in (w - 1, w + 1)
        )


@pytest.mark.slow
def test_the_experiment_writes_its_table_figures_and_records(tmp_path):
    out = tmp_path / "ext"
    run_ = compnet.train("experiment=extensions", "trials=2", "epochs=10", "depth=2", "blocks.axis_points=8", out=out)
    assert {s["cell"] for s in run_.summaries} == {
        f"{t}-{m}"
        for t in ("x3_minus_x", "r3")
        for m in ("default", "raai", "dense_same", "no_pretraining", "not_enforced", "enforced")
    }
    for name in (
        "table.md",
        "fits-x3_minus_x.png",
        "fits-r3.png",
        "trials.png",
        "r3-enforced/fit.png",
        "r3-enforced/loss.png",
    ):
        assert (out / name).is_file(), name
    s = json.loads((out / "r3-enforced" / "summary.json").read_text())
    assert s["network"]["reading"] == "composed" and s["network"]["widths"] == [2, 8, 8, 4, 4, 1]
    assert s["settings"]["blocks.reading"] == "auto"
    again = compnet.load_run(out)
    assert again.trials.equals(run_.trials)
    with torch.no_grad():  # the saved network reproduces the recorded final MSE
        import numpy as np

        w = torch.from_numpy(np.load(out / "r3-enforced" / "weights.npz")["final"]).double()
        t = get_target("r3")
        x = grid_of(t, compnet.compose("blocks.axis_points=8"), f64)
        mse = ((forward(Shapes.of(s["network"]["widths"]).split(w), x) - t(x)) ** 2).mean(1)
        assert torch.allclose(
            mse.float(), torch.tensor(run_.trials.query("cell == 'r3-enforced'").mse.to_numpy()).float(), rtol=1e-4
        )


def test_lines_through_a_radial_network_agree_by_symmetry():
    """The composed reading squares both coordinates alike, so at the start the network is symmetric in
    x ↔ y and x ↔ −x: both axes, and both diagonals, cross the same number of pieces; along an axis the squares
    alone put 2^d pieces (w = Y(x)/2), so there are at least that many."""
    cfg = compnet.compose("target=r3", "init=manifold", "regime=direct", "trials=4", "depth=3", "epochs=0")
    (r,), _ = run(cfg)
    init = r.lines["init"]
    assert init["x-axis"] == init["y-axis"] == r.pieces["init"]
    assert init["diagonal"] == init["antidiagonal"]
    assert min(init["x-axis"]) >= 2**3


@pytest.mark.parametrize(
    "fn,dim,builtin,reading",
    [("userfuncs:r_cubed", 2, "r3", "ridge"), ("userfuncs:cubic_minus_x", 1, "x3_minus_x", "split")],
)
def test_a_users_target_that_needs_blocks_trains_as_the_builtin_one(fn, dim, builtin, reading):
    """A callable computing r³ (2-D) or x³ − x (1-D, no inflection given) goes to the block engine by itself and,
    on the same grid and reading, trains to the built-in target's numbers bit for bit."""
    common = ("init=manifold", "trials=2", "epochs=10", "depth=2", "blocks.axis_points=8", "points=50")
    mine = compnet.train("target=custom", f"target.fn={fn}", f"target.dim={dim}", "target.domain=[-1,1]",
                         f"blocks.reading={reading}", *common)  # fmt: skip
    theirs = compnet.train(f"target={builtin}", f"blocks.reading={reading}", *common)
    assert mine.summaries[0]["network"]["reading"] == reading
    assert mine.trials.mse.tolist() == theirs.trials.mse.tolist()


@pytest.mark.parametrize("reading", ["split", "ridge", "composed"])
def test_pretraining_without_autograd_equals_autograd(compose, reading):
    """The fused engine pretrains a network of blocks in numpy (encoder.SumEncoder, encoder.ComposedEncoder:
    the layers written in place, the kernel's gradients taken back through the assembly by hand; least-squares
    read-out every step for ridge); torch's ops differentiate the same network by autograd: the same
    pretraining in float64, to rounding. (Not the raw stage after it: ridge inputs reach exactly 0 at the
    domain's ends, where the two engines may take either side of a ReLU.)"""
    target = "r3" if reading == "composed" else "x3_minus_x"
    args = (f"target={target}", "init=manifold", f"blocks.reading={reading}", "blocks.ridge_blocks=3", *SMALL)
    (fused,), _ = run(compose(*args, "engine=fused"))
    (ops,), _ = run(compose(*args, "engine=torch"))
    assert (fused.pretrained - ops.pretrained).abs().max() < 1e-9
    assert torch.allclose(fused.loss_pretrain, ops.loss_pretrain, rtol=1e-9, atol=0)


def test_lines_follow_a_users_domain():
    """The four lines run through the target's own square domain: on [0, 2]² the x-axis line is y = 1."""
    from compnet.extensions import lines_of
    from compnet.targets import Target

    t = Target("box", "box", 0.0, lambda u, v: u * v, dim=2, domain=(0.0, 2.0))
    assert lines_of(t)["x-axis"] == ((0.0, 1.0), (2.0, 1.0))
    assert lines_of(t)["antidiagonal"] == ((0.0, 2.0), (2.0, 0.0))
    assert lines_of(get_target("r3"))["diagonal"] == ((-1.0, -1.0), (1.0, 1.0))

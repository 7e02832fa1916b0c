"""experiment=depth: cells at several depths, each bit for bit the cell trained alone at that depth; the depth
table's statistics and decay against hand-computed values; the reference curve against its closed form."""

import math

import pandas as pd
import pytest
from omegaconf import OmegaConf

import compnet
from compnet import depth
from compnet.methods import plan

TINY = ["trials=2", "epochs=4", "points=20", "plots=false"]


def _summary(target: str, method: str, d: int, median: float) -> dict:
    return {
        "target": target,
        "method": method,
        "n_trials": 3,
        "n_collapsed": 0,
        "min_mse": median / 2,
        "median_mse": median,
        "mean_mse": median,
        "settings": {"depth": d, "points": 20, "seed": 0},
    }


def test_plan_runs_every_depth_target_and_method(compose):
    cfg = compose("experiment=depth", "experiment.depths=[2,5]")
    cells = plan(cfg)
    assert len(cells) == 2 * 3 * 4 and [c.depth for c in cells[:12]] == [2] * 12
    assert cells[0].name == "x2-default-d02" and cells[-1].name == "x11-enforced-d05"
    assert all(c.depth is None for c in plan(compose("experiment=table1", "depth=7")))  # depth= stays usable


def test_a_cell_at_depth_d_is_the_cell_trained_alone_at_depth_d(tmp_path, compose):
    overrides = ["experiment=depth", "experiment.targets=[x3]", "experiment.methods=[default,enforced]"]
    overrides += ["experiment.depths=[1,3]", *TINY]
    run = compnet.train(*overrides, out=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "x3-default-d01", "x3-default-d03", "x3-enforced-d01", "x3-enforced-d03",
    ]  # fmt: skip
    assert {s["settings"]["depth"] for s in run.summaries} == {1, 3}
    alone = compnet.train("target=x3", "init=manifold", "depth=3", *TINY)
    mine = pd.read_csv(tmp_path / "x3-enforced-d03" / "trials.csv")
    pd.testing.assert_series_equal(mine.mse, alone.trials.mse)
    assert (mine.pieces_init == 8).all()  # 2^3: the network really is 3 deep
    table = pd.read_csv(tmp_path / "depth.csv")
    assert len(table) == 4 and (tmp_path / "depth.md").read_text().startswith("# Error against depth")
    (tmp_path / ".hydra").mkdir()  # as the command line leaves it: what the experiment planned
    OmegaConf.save(compose(*overrides), tmp_path / ".hydra" / "config.yaml")
    assert compnet.load_run(tmp_path).missing == []
    (tmp_path / "x3-default-d03" / "summary.json").unlink()
    assert compnet.load_run(tmp_path).missing == [
        f"{tmp_path / 'x3-default-d03'} (planned by the experiment, not written)"
    ]


def test_decay_per_layer_is_the_ratio_of_medians():
    summaries = [_summary("x3", "enforced", d, 1e-2 * 4.0**-d) for d in (1, 2, 3, 5)]
    summaries += [_summary("x3", "default", d, 1e-2) for d in (1, 2, 3, 5)]
    df = depth.frame(summaries[::-1])  # any order in, the paper's order and by depth out
    assert df.method.tolist()[:4] == ["default"] * 4 and df.depth.tolist()[:4] == [1, 2, 3, 5]
    rate = depth.decay(df)
    assert rate.loc[("x3", "Differentiability enforced"), "1→2"] == pytest.approx(0.25)
    assert rate.loc[("x3", "Differentiability enforced"), "3→5"] == pytest.approx(1 / 16)  # two layers at once
    assert rate.loc[("x3", "Default network")].tolist() == pytest.approx([1, 1, 1])
    per = depth.per_layer(df, 1, 5)
    assert per[("x3", "Differentiability enforced")] == pytest.approx(0.25)
    md = depth.to_markdown(df, 20, "Produced by a test.")
    assert "3→5" in md and " 0.06 " in md and "mean 1–3" in md and "mean 3–5" in md


@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_yarotsky_reference_is_its_closed_form(d):
    # the interpolant's error on a piece of width h is t(h − t): mean square h^4/30, h = 2^−d (continuous);
    # 2000 grid points resolve it to a few parts in a thousand
    assert depth.yarotsky_mse(d, 2000) == pytest.approx(2.0 ** (-4 * d) / 30, rel=1e-2)
    assert depth.yarotsky_mse(d, 2000) / depth.yarotsky_mse(d + 1, 2000) == pytest.approx(16, rel=0.05)
    assert not math.isclose(depth.yarotsky_mse(d, 20), 2.0 ** (-4 * d) / 30, rel_tol=1e-6)  # it is the grid's


def test_pieces_through_training_are_kept_apart_per_depth(tmp_path):
    run = compnet.train(
        "experiment=depth", "experiment.targets=[x3]", "experiment.methods=[enforced]", "experiment.depths=[1,3]",
        "regions_every=2", *TINY, out=tmp_path,
    )  # fmt: skip
    assert set(run.pieces.cell) == {"x3-enforced-d01", "x3-enforced-d03"}
    first = run.pieces[(run.pieces.stage == "pretrain") & (run.pieces.epoch == 0)]
    assert first.groupby("cell").pieces.max().to_dict() == {"x3-enforced-d01": 2, "x3-enforced-d03": 8}
    rows = [line for line in (tmp_path / "pieces.md").read_text().splitlines() if "enforced" in line]
    assert len(rows) == 2 and "8 [8, 8]" in rows[1] and "| 3 " in rows[1]

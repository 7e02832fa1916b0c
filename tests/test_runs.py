"""The run folder both ways: what a cell writes, and what reading it back gives."""

import json
import math

import pandas as pd
import pytest

import compnet
from compnet import runs, shards
from compnet.config import setting_keys


def _strict_json(text: str) -> dict:
    def refuse(token: str):
        raise ValueError(f"not standard JSON: {token}")

    return json.loads(text, parse_constant=refuse)


def test_summary_records_every_setting_of_the_schema(tmp_path):
    res = compnet.train("trials=2", "epochs=3", "points=20", "plots=false", "model.s1=tied", out=tmp_path)
    s = _strict_json((tmp_path / "summary.json").read_text())
    assert list(s["settings"]) == setting_keys()
    assert s["settings"]["model.s1"] == "tied" and s["settings"]["regime.finetune_epochs"] == 3
    assert "plots" not in s["settings"] and "workers" not in s["settings"]  # inert: they change no number
    assert s["settings"]["engine"] in ("fused", "torch")  # the engine that ran, not `auto`
    assert s["settings"]["device"] == "cpu" and s["settings"]["trial_start"] == 0
    assert s["produced_by"]["torch"] == __import__("torch").__version__
    assert s["produced_by"]["cpu"] == __import__("compnet.kernel").kernel.cpu_model()
    assert res.summaries[0]["settings"] == s["settings"]


def test_diverged_trials_leave_standard_json_and_are_left_out_of_the_means(tmp_path):
    """All trials diverged: the statistics are null (standard JSON), read back as NaN."""
    compnet.train("init=kaiming", "lr=1e30", "trials=2", "epochs=3", "points=20", "plots=false", out=tmp_path / "all")
    s = _strict_json((tmp_path / "all" / "summary.json").read_text())
    assert s["n_diverged"] == 2 and s["min_mse"] is None and s["mean_pieces_final"] is None
    assert math.isnan(runs.read_summary(tmp_path / "all")["mean_mse"])


def test_region_means_cover_the_finite_trials_only():
    from compnet.experiment import run

    cfg = compnet.compose("init=kaiming", "trials=3", "epochs=3", "points=20", "plots=false")
    (r,), wall = run(cfg)
    r.diverged[1] = True  # as if trial 1 had diverged: its counts are the −1 placeholder
    r.pieces = {k: [v[0], -1, v[2]] for k, v in r.pieces.items()}
    r.wasted_final = [r.wasted_final[0], -1, r.wasted_final[2]]
    trials = runs.trials_frame(r)
    s = runs.summary_of(r, trials, cfg, wall, 1)
    for col in ("pieces_init", "pieces_final", "wasted_final"):
        assert s[f"mean_{col}"] == pytest.approx((trials[col][0] + trials[col][2]) / 2)
    assert s["n_diverged"] == 1


def test_summary_is_written_last_and_atomically(tmp_path, monkeypatch):
    """Interrupted while drawing: the folder holds no summary.json, so no table counts it as finished."""
    from compnet import plots

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(plots, "draw_cells", interrupted)
    with pytest.raises(KeyboardInterrupt):
        compnet.train("trials=2", "epochs=3", "points=20", "plots=true", out=tmp_path)
    assert (tmp_path / "trials.csv").is_file() and not (tmp_path / "summary.json").exists()
    assert runs.find_runs([tmp_path])[0] == []
    monkeypatch.undo()
    compnet.train("trials=2", "epochs=3", "points=20", "plots=false", out=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary file left


def test_load_run_reads_back_what_train_returned(tmp_path):
    res = compnet.train(
        "experiment=table1", "experiment.methods=[default,enforced]", "trials=2", "epochs=3", "points=20", out=tmp_path
    )
    back = compnet.load_run(tmp_path)
    assert sorted(back.trials.cell.unique()) == ["x11-default", "x11-enforced", "x3-default", "x3-enforced"]
    key = ["cell", "trial"]
    pd.testing.assert_frame_equal(
        res.trials.sort_values(key).reset_index(drop=True), back.trials.sort_values(key).reset_index(drop=True)
    )
    by_cell = {(s["target"], s["method"]): s for s in back.summaries}
    for s in res.summaries:
        assert by_cell[(s["target"], s["method"])] == s  # floats survive JSON exactly
    one = compnet.load_run(tmp_path / "x3-enforced" / "trials.csv")  # a file names its run folder
    assert list(one.trials.cell.unique()) == ["x3-enforced"]
    with pytest.raises(FileNotFoundError, match="no finished run"):
        compnet.load_run(tmp_path / "nowhere")


def test_the_same_cell_in_several_jobs_is_told_apart(tmp_path):
    """A sweep over a setting: the same cell twice, each row says which job it came from."""
    for lr in ("0.001", "0.01"):
        compnet.train("trials=2", "epochs=3", "points=20", "plots=false", f"lr={lr}", out=tmp_path / f"lr={lr}")
    back = compnet.load_run(tmp_path)
    assert set(back.trials.run) == {"lr=0.001", "lr=0.01"} and set(back.trials.cell) == {"x3-enforced"}
    assert len(back.trials) == 4


def test_nothing_is_written_without_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = compnet.train("trials=2", "epochs=3", "points=20", out=None)
    assert list(tmp_path.iterdir()) == [] and res.folder is None
    assert len(res.trials) == 2 and list(res.trials.cell) == ["x3-enforced"] * 2
    assert "folder" not in res.summaries[0]


def test_pieces_csv_holds_every_trial_at_every_counted_epoch(tmp_path):
    """One row per trial and counted epoch of each stage (2 trials × epochs 0, 2, 4, 5 of two stages); read back
    by load_run; without regions_every no file and no table."""
    compnet.train("trials=2", "epochs=5", "points=20", "plots=false", "regions_every=2", out=tmp_path / "on")
    pieces = pd.read_csv(tmp_path / "on" / "pieces.csv")
    assert list(pieces.columns) == ["trial", "stage", "epoch", "pieces"] and len(pieces) == 2 * 4 * 2
    assert set(pieces.groupby(["stage", "epoch"]).trial.apply(tuple)) == {(0, 1)}
    assert sorted(set(pieces.epoch)) == [0, 2, 4, 5] and list(dict.fromkeys(pieces.stage)) == ["pretrain", "train"]
    back = compnet.load_run(tmp_path / "on")
    assert back.pieces.drop(columns="cell").equals(pieces) and set(back.pieces.cell) == {"x3-enforced"}
    off = compnet.train("trials=2", "epochs=5", "points=20", "plots=false", out=tmp_path / "off")
    assert not (tmp_path / "off" / "pieces.csv").exists() and off.pieces is None
    assert compnet.load_run(tmp_path / "off").pieces is None


def test_an_experiment_tabulates_and_draws_its_pieces(tmp_path):
    """pieces.md (title, provenance, a row per cell) and pieces.png at the experiment folder, pieces.png per cell."""
    from compnet import plots

    res = compnet.train(
        "experiment=table1", "experiment.methods=[default,enforced]", "trials=2", "epochs=4", "points=20",
        "plots=false", "regions_every=2", out=tmp_path,
    )  # fmt: skip
    title, _, provenance, _, _, _, *table = (tmp_path / "pieces.md").read_text().splitlines()
    assert title.startswith("# ") and provenance.startswith("Produced on")
    assert "pieces counted every 2 epochs" in provenance
    rows = {tuple(cols[:2]): cols[2:] for cols in ([c.strip() for c in line.split("|")[1:-1]] for line in table)}
    cells = [(t, m) for t in ("x3", "x11") for m in ("Default network", "Differentiability enforced")]
    assert list(rows) == cells
    assert rows[("x3", "Differentiability enforced")][:2] == ["32 [32, 32]"] * 2  # init, end of pretraining
    assert rows[("x3", "Default network")][1] == "—" and rows[("x3", "Default network")][3:] == ["5", "32"]  # d, 2^d
    assert len(res.pieces) == 4 * 2 * 3 + 2 * 2 * 3  # trials × epochs 0, 2, 4: both stages, or the raw one
    assert plots.draw_pieces_experiment(tmp_path, res.summaries, res.pieces).is_file()
    assert tmp_path / "x3-enforced" / "pieces.png" in plots.draw_cells([tmp_path / "x3-enforced"])


SHARD = ["init=kaiming", "epochs=20", "points=40", "plots=false"]


def test_shards_merge_bit_for_bit_into_the_whole_run(tmp_path, engine, capsys):
    """Trials 0–1 and 2–5 trained apart are trials 0–5 of one run: every trial's MSE, the statistics and the
    table, bit for bit; `compnet table` over both shards' folders shows one row of 6 trials."""
    from compnet import commands

    whole = compnet.train("trials=6", f"engine={engine}", *SHARD, out=tmp_path / "whole")
    compnet.train("trials=2", f"engine={engine}", *SHARD, out=tmp_path / "a")
    compnet.train("trial_start=2", "trials=4", f"engine={engine}", *SHARD, out=tmp_path / "b")
    assert list(pd.read_csv(tmp_path / "b" / "trials.csv").trial) == [2, 3, 4, 5]  # global indices

    merged = compnet.load_run(tmp_path / "a").trials  # one shard alone: its own trials
    assert list(merged.trial) == [0, 1]
    summaries, missing = runs.find_runs([tmp_path / "a", tmp_path / "b"])
    assert missing == [] and len(summaries) == 1
    (s,), w = summaries, whole.summaries[0]
    for key in ("n_trials", "min_mse", "mean_mse", "median_mse", "max_mse", "n_collapsed", "n_diverged"):
        assert s[key] == w[key], key
    assert s["settings"] == w["settings"]  # trial_start 0, 6 trials: what the whole run records
    pd.testing.assert_frame_equal(shards.read_trials(s), whole.trials.drop(columns="cell"))

    assert commands.table([tmp_path / "a", tmp_path / "b"], out=tmp_path, plot=False) == 0
    row = pd.read_csv(tmp_path / "table.csv", index_col=0).loc["Default network"]
    assert row["x3 Collapsed"] == f"{w['n_collapsed']}/6" and float(row["x3 Mean"]) == w["mean_mse"]
    assert "missing" not in capsys.readouterr().err


def test_overlapping_and_missing_trials_of_shards_are_named(tmp_path, capsys):
    """Shards 0–3 and 2–5: trials 2–3 counted once, and said so; shards 0–1 and 4–5: trials 2–3 named as
    missing, in table.md too; the same trials twice are repeats (numbered rows), not shards."""
    from compnet import commands

    compnet.train("trials=4", *SHARD, out=tmp_path / "over" / "a")
    compnet.train("trial_start=2", "trials=4", *SHARD, out=tmp_path / "over" / "b")
    (s,), missing = runs.find_runs([tmp_path / "over"])
    assert s["n_trials"] == 6 and list(shards.read_trials(s).trial) == list(range(6))
    assert missing == [f"{tmp_path / 'over' / 'b'} (trials 2–3 also in an earlier shard: counted once)"]

    compnet.train("trials=2", *SHARD, out=tmp_path / "gap" / "a")
    compnet.train("trial_start=4", "trials=2", *SHARD, out=tmp_path / "gap" / "b")
    assert commands.table([tmp_path / "gap"], plot=False) == 0
    err = capsys.readouterr().err
    assert "compnet table: missing: x3-default: trials 2–3 not found (runs of this configuration:" in err
    assert "trials 2–3 not found" in (tmp_path / "gap" / "table.md").read_text()
    assert "x3 Collapsed" in pd.read_csv(tmp_path / "gap" / "table.csv").columns
    assert commands.table([tmp_path / "gap"], plot=False, strict=True) == 1

    compnet.train("trials=2", *SHARD, out=tmp_path / "repeat" / "a")
    compnet.train("trials=2", *SHARD, out=tmp_path / "repeat" / "b")
    summaries, missing = runs.find_runs([tmp_path / "repeat"])
    assert len(summaries) == 2 and missing == []

"""compnet.tables: the paper's layout from summaries; nothing dropped, nothing silently overwritten."""

import json
import math
from pathlib import Path

from compnet.runs import find_runs
from compnet.tables import table, to_markdown


# in the schema's order, as runs.settings_of records them
SETTINGS = {"regime.pretrain_epochs": 1000, "regime.finetune_epochs": 1000, "regime.direct_epochs": 1000, "model.s1": "trainable"}
SETTINGS |= {"depth": 5, "seed": 0, "lr": 0.001, "points": 500, "test_points": 0, "dtype": "float32"}


def summary(method: str, target: str, mean: float, **settings) -> dict:
    """What runs.summary_of writes, cut to what tables read."""
    return {
        "method": method,
        "target": target,
        "min_mse": mean / 10,
        "mean_mse": mean,
        "n_collapsed": 1,
        "n_trials": 30,
        "test_points": 0,
        "settings": SETTINGS | {k.replace("__", "."): v for k, v in settings.items()},
    }


def legacy(s: dict) -> dict:
    """The same summary as written before `settings` held every setting."""
    top = {k: s["settings"][k] for k in ("depth", "seed", "lr", "points", "test_points")}
    epochs = {k.split(".")[1]: v for k, v in s["settings"].items() if k.startswith("regime.")}
    rest = {k: v for k, v in s["settings"].items() if k not in top and k not in SETTINGS or k in ("dtype", "model.s1")}
    return {k: v for k, v in s.items() if k != "settings"} | top | {"epochs": epochs, "settings": rest}


def test_paper_order_of_rows_and_columns():
    df = table([summary("enforced", "x11", 1e-5), summary("default", "x3", 3e-2), summary("enforced", "x3", 4e-7), summary("default", "x11", 2e-2)])
    assert list(df.index) == ["Default network", "Differentiability enforced"]
    assert [t for t, _ in df.columns[::3]] == ["x3", "x11"]
    assert df.loc["Differentiability enforced", ("x11", "Mean")] == 1e-5
    assert df.loc["Default network", ("x3", "Collapsed")] == "1/30"


def test_runs_differing_in_a_setting_get_a_row_each():
    """A sweep over lr: both runs of (enforced, x3) stay, labelled by the setting that differs."""
    df = table([summary("enforced", "x3", 1.75e-3, lr=0.001), summary("enforced", "x3", 5.55e-2, lr=0.1)])
    assert list(df.index) == ["Differentiability enforced (lr=0.001)", "Differentiability enforced (lr=0.1)"]
    assert df[("x3", "Mean")].tolist() == [1.75e-3, 5.55e-2]


def test_a_repeated_cell_is_numbered_not_overwritten():
    df = table([summary("default", "x3", 1e-2), summary("default", "x3", 2e-2), summary("default", "x11", 3e-2)])
    assert list(df.index) == ["Default network", "Default network #2"]
    assert df[("x3", "Mean")].tolist() == [1e-2, 2e-2]
    assert df.loc["Default network", ("x11", "Mean")] == 3e-2
    assert math.isnan(df.loc["Default network #2", ("x11", "Mean")])


def test_every_setting_tells_runs_apart():
    tied = summary("enforced", "x3", 2e-6, model__s1="tied")
    longer = summary("enforced", "x3", 1e-6, regime__finetune_epochs=2000)
    labels = list(table([summary("enforced", "x3", 4e-7), tied, longer]).index)
    assert labels == [  # variants of one method in alphabetical order
        "Differentiability enforced (finetune_epochs=1000, s1=tied)",
        "Differentiability enforced (finetune_epochs=1000, s1=trainable)",
        "Differentiability enforced (finetune_epochs=2000, s1=trainable)",
    ]


def test_runs_written_before_settings_existed_compare_by_what_they_hold():
    """Older summaries kept some settings at the top level and the epochs apart, or had no `settings`:
    they are read under today's names, and only what both runs record is compared."""
    new = summary("default", "x3", 1e-2)
    old = legacy(summary("default", "x3", 2e-2))
    assert list(table([new, old]).index) == ["Default network", "Default network #2"]
    older = legacy(summary("default", "x3", 2e-2, lr=0.1, regime__direct_epochs=2000))
    assert list(table([new, older]).index) == ["Default network (direct_epochs=1000, lr=0.001)", "Default network (direct_epochs=2000, lr=0.1)"]
    oldest = {k: v for k, v in older.items() if k not in ("settings", "epochs")}
    assert list(table([new, oldest]).index) == ["Default network (lr=0.001)", "Default network (lr=0.1)"]


def test_a_missing_cell_shows_a_dash():
    df = table([summary("default", "x3", 1e-2), summary("enforced", "x11", 1e-5)])
    md = to_markdown(df)
    row = next(line for line in md.splitlines() if line.startswith("| Default network"))
    assert row.count("—") == 3 and "nan" not in md


def test_a_summary_file_names_its_run(tmp_path: Path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(summary("default", "x3", 1e-2)))
    found, missing = find_runs([run / "summary.json"])
    assert [s["folder"] for s in found] == [str(run)] and missing == []

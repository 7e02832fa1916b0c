"""compnet.tables: the paper's layout from summaries; nothing dropped, nothing silently overwritten."""

import json
import math
from pathlib import Path

from compnet.tables import find_runs, table, to_markdown


def summary(method: str, target: str, mean: float, **settings) -> dict:
    base = {"depth": 5, "seed": 0, "lr": 0.001, "points": 500, "test_points": 0}
    return {
        "method": method,
        "target": target,
        "min_mse": mean / 10,
        "mean_mse": mean,
        "n_collapsed": 1,
        "n_trials": 30,
        "settings": base | settings,
    }


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


def test_runs_written_before_settings_existed_compare_by_what_they_hold():
    """Old summaries keep depth/seed/lr/points/test_points at the top level and no `settings`."""
    new = summary("default", "x3", 1e-2)
    old = {k: v for k, v in summary("default", "x3", 2e-2).items() if k != "settings"} | new["settings"]
    assert list(table([new, old]).index) == ["Default network", "Default network #2"]
    old_lr = old | {"lr": 0.1}
    assert list(table([new, old_lr]).index) == ["Default network (lr=0.001)", "Default network (lr=0.1)"]


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

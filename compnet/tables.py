"""Paper-style tables from run folders: one row per method (the paper's names and order), Min and Mean
MSE per target in scientific notation, the collapse count beside them; and every cell against the paper.

The summaries come from `runs.find_runs`: a single run, a Hydra sweep, an experiment's cell folders, or
several of those.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pandas as pd

from compnet.methods import method_label, method_order
from compnet.paper import paper_value
from compnet.runs import cell_of, settings_recorded
from compnet.targets import target_order


def metric_of(summaries: list[dict[str, Any]]) -> str:
    """Test MSE where every run has held-out points (the sparse table), else the final training MSE."""
    return "test_mse" if summaries and all(settings_recorded(s).get("test_points") for s in summaries) else "mse"


def variants(summaries: list[dict[str, Any]]) -> list[str]:
    """Per summary, the settings in which the runs differ ("lr=0.1, s1=tied"; "" where none do), so that
    two runs of one method and target (a sweep over lr, a folder holding Tables 1 and 3) get a row each.
    A setting some run does not record is not compared."""
    settings = [settings_recorded(s) for s in summaries]
    shared = [k for k in settings[0] if all(k in st for st in settings)] if settings else []
    varying = [k for k in shared if len({json.dumps(st[k]) for st in settings}) > 1]
    return [", ".join(f"{k.split('.')[-1]}={st[k]}" for k in varying) for st in settings]


def row_labels(summaries: list[dict[str, Any]]) -> list[str]:
    """Per summary, its table row: the method's paper name, the settings in which the runs differ, and
    #2, #3 … for repeats of a cell (the same run found twice, a rerun) so that none overwrites another."""
    labels: list[str] = []
    placed: set[tuple[str, str]] = set()
    for s, variant in zip(summaries, variants(summaries)):
        base = method_label(s["method"]) + (f" ({variant})" if variant else "")
        label, n = base, 1
        while (label, s["target"]) in placed:
            n += 1
            label = f"{base} #{n}"
        placed.add((label, s["target"]))
        labels.append(label)
    return labels


def row_order(summaries: list[dict[str, Any]], labels: list[str]) -> list[str]:
    """The rows in the paper's method order, variants of one method together."""
    first = {}
    for s, label in zip(summaries, labels):
        first.setdefault(label, method_order(s["method"]))
    return sorted(first, key=lambda label: (first[label], label))


def failed(summary: dict[str, Any]) -> str:
    """ "12/30" collapsed trials, and the diverged ones where there are any ("3/10, 7 diverged"): Min and
    Mean cover the trials that did not diverge."""
    text = f"{summary['n_collapsed']}/{summary['n_trials']}"
    return text + (f", {summary['n_diverged']} diverged" if summary.get("n_diverged") else "")


def table(summaries: list[dict[str, Any]], metric: str = "mse") -> pd.DataFrame:
    """Rows: `row_labels` in `row_order`; columns: (target, Min | Mean | Collapsed)."""
    labels = row_labels(summaries)
    rows: dict[str, dict[tuple[str, str], Any]] = {label: {} for label in row_order(summaries, labels)}
    for s, label in zip(summaries, labels):
        rows[label][(s["target"], "Min")] = s[f"min_{metric}"]
        rows[label][(s["target"], "Mean")] = s[f"mean_{metric}"]
        rows[label][(s["target"], "Collapsed")] = failed(s)
    targets = sorted({s["target"] for s in summaries}, key=lambda t: (target_order(t), t))
    cols = pd.MultiIndex.from_tuples([(t, k) for t in targets for k in ("Min", "Mean", "Collapsed")])
    return pd.DataFrame.from_dict(rows, orient="index").reindex(columns=cols)


def _sci(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "—"
    return f"{v:.2e}" if isinstance(v, float) else str(v)


def to_markdown(df: pd.DataFrame) -> str:
    flat = df.map(_sci)
    flat.columns = [f"{t} {k}" for t, k in df.columns]
    return flat.to_markdown(disable_numparse=True)


_TEX = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}"}
_TEX |= {"~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def tex(text: str) -> str:
    """`text` as LaTeX source for its characters (row labels hold `_`, `#`, `=`); an empty group before a
    leading `[` or `*`, which the previous row's `\\\\` would otherwise take as its argument."""
    out = "".join(_TEX.get(c, c) for c in str(text))
    return "{}" + out if out[:1] in ("[", "*") else out


def to_latex(df: pd.DataFrame) -> str:
    targets = list(dict.fromkeys(t for t, _ in df.columns))
    spec = "l" + "c" * len(df.columns)
    head1 = " & ".join(f"\\multicolumn{{3}}{{c}}{{{tex(t)}}}" for t in targets)
    head2 = " & ".join(tex(k) for _, k in df.columns)
    cells = [[tex(_sci(v)).replace("—", "--") for v in row] for row in df.values]
    body = [f"{tex(m)} & " + " & ".join(row) + r" \\" for m, row in zip(df.index, cells)]
    return "\n".join(
        [
            f"\\begin{{tabular}}{{{spec}}}",
            r"\hline",
            f"Method & {head1} \\\\",
            f" & {head2} \\\\",
            r"\hline",
            *body,
            r"\hline",
            r"\end{tabular}",
            "",
        ]
    )


def _provenances(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """What produced each run behind a row (every shard of a merged one): machine, CPU model, the kernel's
    SIMD width and the engine."""
    out = []
    for run in summary.get("shards", [summary]):
        produced = run.get("produced_by") or {}
        kernel = produced.get("kernel") or {}
        lanes = kernel.get("lanes_f32") and f"{kernel['lanes_f32']}/{kernel['lanes_f64']} lanes (float32/float64)"
        out.append(produced | kernel | {"simd": lanes, "engine": settings_recorded(run).get("engine")})
    return out


def mixed_provenance(summaries: list[dict[str, Any]]) -> list[str]:
    """Warnings for a table that puts side by side, or merges from shards, runs from different machines,
    CPU models, kernel builds or engines, whose float32 numbers can differ in their last digits (README:
    Reproducibility)."""
    runs = [p for s in summaries for p in _provenances(s)]
    warnings = []
    for key, what in (("host", "machines"), ("cpu", "CPU models"), ("simd", "kernel SIMD widths")):
        seen = sorted({str(v) for p in runs if (v := p.get(key))})
        if len(seen) > 1:
            warnings.append(f"runs from {len(seen)} {what} side by side: {', '.join(seen)}")
    engines = sorted({str(e) for p in runs if (e := p.get("engine"))})
    if len(engines) > 1:
        warnings.append(f"runs of {len(engines)} engines side by side: {', '.join(engines)}")
    return warnings


def write_tables(folder: Path, df: pd.DataFrame, missing: list[str] = ()) -> str:
    md = to_markdown(df)
    if df.map(lambda v: "diverged" in str(v)).any().any():
        md += "\n\nMin and Mean cover the trials that did not diverge."
    if missing:
        md += "\n\nMissing (not in the table):\n" + "\n".join(f"- {m}" for m in missing)
    (folder / "table.md").write_text(md + "\n")
    (folder / "table.tex").write_text(to_latex(df))
    flat = df.copy()
    flat.columns = [f"{t} {k}" for t, k in df.columns]
    flat.to_csv(folder / "table.csv", index_label="method")
    return md


def _spread(counts: pd.Series | None) -> str:
    """median [min, max] of the trials that did not diverge (−1), and how many did."""
    if counts is None:
        return "—"
    ok, lost = counts[counts >= 0], int((counts < 0).sum())
    text = f"{ok.median():g} [{ok.min()}, {ok.max()}]" if len(ok) else "—"
    return text + (f" ({lost} diverged)" if lost else "")


def _pieces_at(cell: pd.DataFrame, stage: str, first: bool) -> pd.Series | None:
    """Every trial's count at a stage's first or last counted epoch; None for a stage the cell did not train."""
    rows = cell[cell.stage == stage]
    if rows.empty:
        return None
    return rows.pieces[rows.epoch == (rows.epoch.min() if first else rows.epoch.max())]


def pieces_table(summaries: list[dict[str, Any]], pieces: pd.DataFrame) -> pd.DataFrame:
    """Per cell (target × method, in the summaries' order): the linear pieces of its trials at initialisation,
    at the end of pretraining and at the end of training, median [min, max], beside 2^d."""
    rows = []
    for s in summaries:
        cell = pieces[pieces.cell == cell_of(s)]
        pretrained = _pieces_at(cell, "pretrain", first=False)
        rows.append(
            {
                "target": s["target"],
                "method": method_label(s["method"]),
                "init": _spread(_pieces_at(cell, "pretrain" if pretrained is not None else "train", first=True)),
                "end of pretraining": _spread(pretrained),
                "end of training": _spread(_pieces_at(cell, "train", first=False)),
                "depth": str(settings_recorded(s)["depth"]),
                "2^d": str(2 ** settings_recorded(s)["depth"]),
            }
        )
    return pd.DataFrame(rows)


def write_pieces(folder: Path, summaries: list[dict[str, Any]], pieces: pd.DataFrame, provenance: str) -> str:
    """pieces.md: a title, the provenance line, and `pieces_table`."""
    table_md = pieces_table(summaries, pieces).to_markdown(index=False, disable_numparse=True)
    md = f"# Linear pieces through training\n\n{provenance}\n\n{table_md}\n"
    (folder / "pieces.md").write_text(md)
    return md


def paper_comparison(summaries: list[dict[str, Any]], table_name: str, metric: str) -> pd.DataFrame:
    """Every cell: the paper's number (where it has one), ours, and ours / paper."""
    rows = []
    for s in sorted(summaries, key=lambda s: (method_order(s["method"]), target_order(s["target"]))):
        for stat in ("min", "mean"):
            ours = s[f"{stat}_{metric}"]
            theirs = paper_value(table_name, s["method"], s["target"], stat)
            rows.append(
                {
                    "table": table_name,
                    "method": method_label(s["method"]),
                    "target": s["target"],
                    "statistic": f"{stat} {metric.replace('_', ' ')}",
                    "paper": theirs,
                    "ours": ours,
                    "ours / paper": ours / theirs if theirs else None,
                    "collapsed": failed(s),
                    "n_collapsed": s["n_collapsed"],  # the count as a number, for seed_spread
                }
            )
    return pd.DataFrame(rows)


def comparisons(summaries: list[dict[str, Any]]) -> dict[str, pd.DataFrame]:
    """`paper_comparison` per experiment (the cells of one `experiment=tableN` run), by its name; Table 3,
    whose runs hold out test points, is compared in test MSE with the paper's Table 3, the others with its
    Table 1 (which has no sin or tanh numbers: Table 2's cells get none)."""
    out = {}
    for name in dict.fromkeys(s.get("experiment", "none") for s in summaries):
        group = [s for s in summaries if s.get("experiment", "none") == name]
        metric = metric_of(group)
        out[name] = paper_comparison(group, "table3" if metric == "test_mse" else "table1", metric)
    return out


def write_comparison(folder: Path, summaries: list[dict[str, Any]]) -> str:
    """paper_vs_ours.md: every cell against the paper, per experiment (table 3 compares test MSE)."""
    parts = []
    for name, df in comparisons(summaries).items():
        shown = df.assign(
            paper=df["paper"].map(lambda v: "—" if v is None or v != v else f"{v:.2e}"),
            ours=df["ours"].map(_sci),
            **{"ours / paper": df["ours / paper"].map(lambda v: "—" if v is None or v != v else f"{v:.2g}")},
        )
        shown = shown.drop(columns=["table", "n_collapsed"])
        parts.append(f"## {name}\n\n" + shown.to_markdown(index=False, disable_numparse=True))
    md = "# compnet against the paper (ICML 2025)\n\n" + "\n\n".join(parts)
    (folder / "paper_vs_ours.md").write_text(md + "\n")
    return md


SPREAD = ("lo", "median", "hi")  # over seeds; lo/hi rather than min/max, which would read "min min"


def seed_spread(summaries_by_seed: dict[int, list[dict[str, Any]]]) -> pd.DataFrame:
    """One row per cell (table, method, target), in the paper's order, over the seeds: lo/median/hi of our
    min and mean (test MSE for Table 3, as in `comparisons`), of the collapsed count, and of ours / paper
    for min and mean (NaN where the paper has no number); `paper min`/`paper mean` are the paper's numbers.
    `summaries_by_seed`: per seed, the summaries of every table trained with it."""
    long = []
    for seed, summaries in summaries_by_seed.items():
        for name, df in comparisons(summaries).items():
            # "min mse", "mean test mse": the statistic's first word says which of the two it is
            stat = df["statistic"].str.split().str[0]
            long.append(df.assign(table=name, stat=stat, metric=df["statistic"].str.split(n=1).str[1], seed=seed))
    df = pd.concat(long, ignore_index=True)
    rows = []
    for (name, method, target), cell in df.groupby(["table", "method", "target"], sort=False):
        by_stat = {stat: cell[cell["stat"] == stat] for stat in ("min", "mean")}
        values = {
            "min": by_stat["min"]["ours"],
            "mean": by_stat["mean"]["ours"],
            "collapsed": by_stat["min"]["n_collapsed"],
            "min / paper": by_stat["min"]["ours / paper"],
            "mean / paper": by_stat["mean"]["ours / paper"],
        }
        row: dict[str, Any] = {"table": name, "method": method, "target": target, "metric": cell["metric"].iloc[0]}
        row["seeds"] = by_stat["min"]["seed"].nunique()
        for quantity, v in values.items():
            v = pd.to_numeric(v, errors="coerce").dropna()  # None (no paper number) -> NaN -> left out
            spread = (v.min(), v.median(), v.max()) if len(v) else (math.nan,) * 3
            row |= {f"{quantity} {agg}": x for agg, x in zip(SPREAD, spread)}
        row |= {f"paper {stat}": by_stat[stat]["paper"].iloc[0] for stat in ("min", "mean")}
        rows.append(row)
    return pd.DataFrame(rows)


def _spread_cell(df: pd.DataFrame, quantity: str, fmt: str) -> pd.Series:
    """ "median [lo, hi]" per row; "—" where there is no value (the paper has no number)."""

    def one(row: pd.Series) -> str:
        lo, mid, hi = (row[f"{quantity} {agg}"] for agg in SPREAD)
        return "—" if mid != mid else f"{mid:{fmt}} [{lo:{fmt}}, {hi:{fmt}}]"

    return df.apply(one, axis=1)


def spread_markdown(spread: pd.DataFrame) -> str:
    """One section per table: per cell median [lo, hi] over the seeds; ratio columns only where the paper
    has a number in that table."""
    parts = []
    for name, df in spread.groupby("table", sort=False):
        shown = df[["method", "target"]].copy()
        for quantity, fmt in (("min", ".1e"), ("mean", ".1e"), ("collapsed", "g")):
            shown[quantity] = _spread_cell(df, quantity, fmt)
        for quantity in ("min / paper", "mean / paper"):
            if df[f"{quantity} median"].notna().any():
                shown[quantity] = _spread_cell(df, quantity, ".2g")
        metric = "test MSE" if df["metric"].iloc[0] == "test mse" else "final MSE"
        parts.append(f"## {name} ({metric})\n\n" + shown.to_markdown(index=False, disable_numparse=True))
    return "\n\n".join(parts)

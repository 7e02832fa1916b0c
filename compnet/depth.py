"""Error against depth (`experiment=depth`, docs/method.md §9): the cells of an experiment over depths as
curves of MSE against depth, their decay per layer, and the reference the construction itself gives.

What the theory says (the paper's appendix). On the differentiable manifold two steps of the law shrink the
scale at least fourfold, s_{i+2}/s_i ≤ ¼, and the depth-d network lies exactly |s_{d+1}| (sup norm) from its own
infinite-depth limit. An error that falls 2× per layer in sup norm falls 4× per layer in MSE: the reference
slope drawn is 4^−d. Yarotsky's interpolant of x² with 2^d pieces (every peak ½, s_i = 4^−i, the compositional
network itself) is 2^{−2d−2} from x² in sup norm and 2^{−4d}/30 in continuous MSE; `yarotsky_mse` evaluates it
on the training grid in float64, where a depth beyond log2(points) is no longer resolved by the points.

Every number here is read from the cells' summary.json, so `compnet table`-style re-reading works on any run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from compnet.methods import method_label, method_order
from compnet.runs import DEPTH_FILES, produced_line, settings_recorded
from compnet.targets import target_order

STATS = ("min", "median", "mean")


def frame(summaries: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per cell: target, method, depth, min/median/mean final MSE (trials that did not diverge),
    collapsed and diverged counts; in the paper's target and method order, then by depth."""
    rows = [
        {
            "target": s["target"],
            "method": s["method"],
            "depth": int(settings_recorded(s)["depth"]),
            **{k: s.get(f"{k}_mse", math.nan) for k in STATS},
            "n_collapsed": s["n_collapsed"],
            "n_diverged": s.get("n_diverged", 0),
            "n_trials": s["n_trials"],
        }
        for s in summaries
    ]
    df = pd.DataFrame(rows)
    order = df.target.map(target_order), df.method.map(method_order)
    return df.assign(_t=order[0], _m=order[1]).sort_values(["_t", "_m", "depth"]).drop(columns=["_t", "_m"])


def decay(df: pd.DataFrame) -> pd.DataFrame:
    """Median MSE at depth d over median MSE at the previous depth run, per (target, method) and d: below 1
    the extra layer helped, ¼ is the 4^−d slope. Rows (target, method label), columns `d−1→d`."""
    out: dict[tuple[str, str], dict[str, float]] = {}
    for (target, method), g in df.groupby(["target", "method"], sort=False):
        g = g.sort_values("depth")
        d, m = g.depth.to_list(), g["median"].to_numpy()
        out[(target, method_label(method))] = {f"{a}→{b}": m[i + 1] / m[i] for i, (a, b) in enumerate(zip(d, d[1:]))}
    return pd.DataFrame.from_dict(out, orient="index")


def per_layer(df: pd.DataFrame, lo: int, hi: int) -> pd.Series:
    """The geometric mean over depths lo … hi of the per-layer decay of the median MSE, per (target, method):
    (median(hi) / median(lo))^(1/(hi − lo))."""
    out = {}
    for (target, method), g in df.groupby(["target", "method"], sort=False):
        med = g.set_index("depth")["median"]
        if lo in med and hi in med:
            out[(target, method_label(method))] = (med[hi] / med[lo]) ** (1 / (hi - lo))
    return pd.Series(out, dtype=float)


def yarotsky_mse(depth: int, points: int) -> float:
    """MSE against x² of the compositional network with every peak ½ and s_i = 4^−i (Yarotsky's interpolant,
    2^depth pieces) on the `points`-point training grid, in float64."""
    import torch

    from compnet.model import closed_form
    from compnet.targets import get_target, train_grid

    x = train_grid(points, torch.float64)
    peaks = torch.full((depth,), 0.5, dtype=torch.float64)
    scales = 0.25 ** torch.arange(1, depth + 1, dtype=torch.float64)
    err = closed_form(x, peaks, scales, -1.0) - get_target("x2")(x)
    return float((err**2).mean())


def _cell(v: float) -> str:
    return "—" if not np.isfinite(v) else f"{v:.1e}"


def to_markdown(df: pd.DataFrame, points: int, provenance: str) -> str:
    """depth.md: per target, median (min) MSE per method against depth; then the decay per layer."""
    parts = ["# Error against depth", "", provenance, ""]
    for target in sorted(df.target.unique(), key=target_order):
        g = df[df.target == target]
        table = g.pivot(index="depth", columns="method", values="median")
        lows = g.pivot(index="depth", columns="method", values="min")
        methods = sorted(table.columns, key=method_order)
        shown = pd.DataFrame(
            {method_label(m): [f"{_cell(a)} ({_cell(b)})" for a, b in zip(table[m], lows[m])] for m in methods},
            index=table.index,
        )
        if target == "x2":
            shown["Yarotsky x² interpolant"] = [_cell(yarotsky_mse(int(d), points)) for d in shown.index]
        parts += [
            f"## {target}: median (min) final MSE over the trials",
            "",
            shown.to_markdown(disable_numparse=True),
            "",
        ]
    rate = decay(df)
    depths = sorted(df.depth.unique())
    mid = depths[len(depths) // 2]
    spans = [(depths[0], mid), (mid, depths[-1])] if len(depths) > 3 else [(depths[0], depths[-1])]
    for lo, hi in spans[: len(depths) - 1]:  # one depth: nothing to decay
        rate[f"mean {lo}–{hi}"] = per_layer(df, lo, hi)
    rate = rate.map(lambda v: "—" if not np.isfinite(v) else f"{v:.2f}")
    rate.index = [f"{t} · {m}" for t, m in rate.index]
    parts += ["## Decay per layer (¼ = the 4^−d slope)", ""]
    parts += ["`a→b`: median MSE at depth b ÷ at depth a; `mean a–b`: the geometric mean per layer from a to b.", ""]
    parts += [rate.to_markdown(disable_numparse=True), ""]
    return "\n".join(parts)


def provenance(summaries: list[dict[str, Any]]) -> str:
    s, st = summaries[0], settings_recorded(summaries[0])
    depths = sorted({int(settings_recorded(x)["depth"]) for x in summaries})
    return (
        f"{produced_line(s, 'compnet train experiment=depth')}: {s['n_trials']} trials per cell, depths "
        f"{depths[0]}–{depths[-1]}, seed {st.get('seed')}, {st.get('dtype', 'float32')}, {st.get('points')} points."
    )


def write(folder: Path, summaries: list[dict[str, Any]], draw: bool = True) -> list[Path]:
    """depth.md, depth.csv (and depth.png) of an experiment over depths."""
    df, md, csv, png = frame(summaries), *(folder / f for f in DEPTH_FILES)
    points = int(settings_recorded(summaries[0])["points"])
    df.to_csv(csv, index=False)
    md.write_text(to_markdown(df, points, provenance(summaries)))
    if draw:
        from compnet import studyplots

        studyplots.draw_depth(df, png, points)
    return [md, csv] + [png] * draw

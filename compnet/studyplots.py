"""The figures of studies, drawn from their tables: regions.png (`compnet regions`: pieces versus depth and per
neuron versus width, or of saved networks) and depth.png (`experiment=depth`: final MSE against depth)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from compnet.methods import method_label, method_order
from compnet.runs import STAGES
from compnet.targets import target_label, target_order


def draw_region_study(frame: pd.DataFrame, path: Path, lo: float, hi: float) -> None:
    """Panel 1: mean pieces versus depth with the min–max band and 2^d (log y). Panel 2: pieces per
    neuron versus width, one line per init and depth, the fitted constant dashed."""
    from compnet.study import per_neuron

    studies = [s for s in ("depth", "width") if (frame.study == s).any()]
    fig = Figure(figsize=(6.5 * len(studies), 4.5), layout="tight")
    axes = fig.subplots(1, len(studies), squeeze=False)
    colors = {init: f"C{i}" for i, init in enumerate(dict.fromkeys(frame.init))}
    for ax, study in zip(axes[0], studies):
        rows = frame[frame.study == study]
        if study == "depth":
            for init, g in rows.groupby("init", sort=False):
                s = g.groupby("depth").pieces.agg(["mean", "min", "max"])
                ax.plot(s.index, s["mean"], "o-", color=colors[init], label=init, ms=3)
                ax.fill_between(s.index, s["min"], s["max"], color=colors[init], alpha=0.2)
            d = np.array(sorted(rows.depth.unique()))
            ax.plot(d, 2.0**d, "k--", lw=1, label="$2^d$")
            ax.set_yscale("log", base=2)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set(xlabel="depth (width 4)", ylabel="linear pieces", title="pieces versus depth (mean, min–max)")
        else:
            markers = dict(zip(sorted(rows.depth.unique()), "osD^v<>p*hx+"))
            for (init, depth), g in rows.groupby(["init", "depth"], sort=False):
                s = (g.pieces / g.neurons).groupby(g.width).mean()
                ax.plot(
                    s.index,
                    s.values,
                    marker=markers[depth],
                    color=colors[init],
                    lw=0.8,
                    ms=4,
                    label=f"{init}, depth {depth}",
                )
            for init, c in per_neuron(frame).items():
                ax.axhline(c, color=colors[init], ls="--", lw=1)
            ax.set_xscale("log", base=2)
            ax.set(
                xlabel="width",
                ylabel="pieces / hidden neurons",
                title="Hanin–Rolnick: pieces per neuron (dashed: mean)",
            )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, **({"loc": "center left", "bbox_to_anchor": (1, 0.5)} if study == "width" else {}))
    fig.suptitle(f"linear pieces on [{lo:g}, {hi:g}] at initialisation")
    fig.savefig(path, dpi=120)


def draw_region_runs(frame: pd.DataFrame, path: Path, lo: float, hi: float) -> None:
    """Pieces of every trial per run (rows) and stage (colours), log x; a black bar marks 2^depth."""
    runs = list(dict.fromkeys(frame.run))
    label_width = 0.07 * max(map(len, runs))  # inches: Hydra's sweep folders have long names
    fig = Figure(figsize=(6.5 + label_width, 0.6 * len(runs) + 1.8), layout="tight")
    ax = fig.subplots()
    for k, stage in enumerate(STAGES):
        rows = frame[frame.stage == stage]
        ax.scatter(rows.pieces, rows.run.map(runs.index) + (k - 1) * 0.2, s=10, color=f"C{k}", label=stage)
    depth = frame.groupby("run", sort=False).depth.first()
    ax.scatter(2.0**depth.values, [runs.index(r) for r in depth.index], marker="|", s=300, color="k", label="$2^d$")
    ax.set_xscale("log", base=2)
    ax.set_yticks(range(len(runs)), runs)
    ax.invert_yaxis()
    ax.set(xlabel="linear pieces")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.suptitle(f"linear pieces of saved networks on [{lo:g}, {hi:g}], every trial")
    fig.savefig(path, dpi=120)


def draw_depth(df: pd.DataFrame, path: Path, points: int) -> Path:
    """Median (solid) and min (dashed) final MSE against depth per method, one panel per target (log y), with
    the 4^−d slope through the first median of the lowest curve, and on x² Yarotsky's interpolant (depth.py)."""
    from compnet.depth import yarotsky_mse

    targets = sorted(df.target.unique(), key=target_order)
    fig = Figure(figsize=(4.2 * len(targets), 3.8), layout="constrained")
    axes = fig.subplots(1, len(targets), squeeze=False, sharey=True)[0]
    depths = np.array(sorted(df.depth.unique()))
    for ax, target in zip(axes, targets):
        g = df[df.target == target]
        for i, (method, m) in enumerate(sorted(g.groupby("method"), key=lambda kv: method_order(kv[0]))):
            color = f"C{i}"
            ax.plot(m.depth, m["median"], "o-", color=color, ms=3, label=method_label(method))
            ax.plot(m.depth, m["min"], "--", color=color, lw=0.9)
        anchor = g[g.depth == depths[0]]["median"].min()
        ax.plot(depths, anchor * 4.0 ** -(depths - depths[0]), ":", color="grey", label="$4^{-d}$ slope")
        if target == "x2":
            ax.plot(
                depths, [yarotsky_mse(int(d), points) for d in depths], "k-", lw=1.4, label="Yarotsky x² ($2^d$ pieces)"
            )
        ax.set_yscale("log")
        ax.set_title(target_label(target))
        ax.set_xlabel("depth (hidden layers of width 4)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel("final MSE: median (solid), min (dashed)")
    fig.savefig(path, dpi=120)
    return path

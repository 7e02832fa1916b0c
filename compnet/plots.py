"""Figures, drawn only from what a run folder holds on disk (so `compnet plot` can redraw them).

- fit.png     the target with the best, median and worst trial, and their pointwise error (log axis);
- loss.png    every trial's loss per epoch (log axis), the pretraining / raw-weight boundary marked;
- layers.png  each hidden layer's pre-activations of the best trial over [0, 1], at the start and at the
              end (the paper's Figures 5–6): does the triangle structure survive, which layers are wasted;
- trials.png  (tables) final MSE of every trial per method and target, one dot per trial.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from compnet.config import method_label  # noqa: E402
from compnet.model import Shapes, forward  # noqa: E402
from compnet.tables import row_labels, row_order, target_order  # noqa: E402
from compnet.targets import get_target  # noqa: E402


def _load(folder: Path) -> tuple[dict[str, Any], pd.DataFrame, Any, Any]:
    summary = json.loads((folder / "summary.json").read_text())
    return summary, pd.read_csv(folder / "trials.csv"), np.load(folder / "losses.npz"), np.load(folder / "weights.npz")


def _ranked(trials: pd.DataFrame) -> dict[str, int]:
    """Best, median and worst trial by final MSE among the finite ones."""
    ok = trials[np.isfinite(trials["mse"])].sort_values("mse")
    if ok.empty:
        return {}
    return {"best": int(ok.iloc[0].trial), "median": int(ok.iloc[len(ok) // 2].trial), "worst": int(ok.iloc[-1].trial)}


def draw_fit(folder: Path, summary, trials, weights) -> None:
    shapes = Shapes(summary["depth"])
    target = get_target(summary["target"])
    x = torch.linspace(0, 1, 1001, dtype=torch.float64)
    final = torch.from_numpy(weights["final"]).double()
    with torch.no_grad():
        pred = forward(shapes.split(final), x)
    y = target(x)
    fig, (ax, ax_err) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    ax.plot(x, y, "k", lw=2.5, alpha=0.35, label=f"target {target.label}")
    for (name, t), color in zip(_ranked(trials).items(), ("tab:green", "tab:blue", "tab:red")):
        mse = trials.loc[t, "mse"]
        ax.plot(x, pred[t], color=color, lw=1, label=f"{name} (trial {t}, MSE {mse:.2e})")
        ax_err.semilogy(x, (pred[t] - y).abs().clamp_min(1e-16), color=color, lw=0.8)
    xs = weights["x"]
    ax.plot(xs, target(torch.from_numpy(xs)), ".", color="gray", ms=2, label=f"{len(xs)} training points")
    ax.set_ylabel("y")
    ax.legend(fontsize=8)
    ax.set_title(f"{method_label(summary['method'])} on {target.label}, {summary['n_trials']} trials")
    ax_err.set_xlabel("x")
    ax_err.set_ylabel("|network − target|")
    fig.tight_layout()
    fig.savefig(folder / "fit.png", dpi=120)
    plt.close(fig)


def draw_loss(folder: Path, summary, losses) -> None:
    parts = [losses["loss_pretrain"]] if "loss_pretrain" in losses else []
    parts.append(losses["loss_train"])
    hist = np.concatenate(parts)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.semilogy(hist, color="tab:blue", lw=0.6, alpha=0.5)
    if len(parts) == 2:
        ax.axvline(len(parts[0]) - 0.5, color="k", ls="--", lw=1)
        ax.text(len(parts[0]), ax.get_ylim()[1], " raw weights freed", va="top", fontsize=8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("MSE")
    ax.set_title(f"{method_label(summary['method'])} on {summary['target']}: loss of every trial")
    fig.tight_layout()
    fig.savefig(folder / "loss.png", dpi=120)
    plt.close(fig)


def draw_layers(folder: Path, summary, trials, weights) -> None:
    ranked = _ranked(trials)
    if not ranked:
        return
    t, shapes = ranked["best"], Shapes(summary["depth"])
    x = torch.linspace(0, 1, 2001, dtype=torch.float64)
    depth = summary["depth"]
    fig, axes = plt.subplots(2, depth, figsize=(2.6 * depth, 5), squeeze=False, sharex=True)
    for row, key in enumerate(("start", "final")):
        layers = shapes.split(torch.from_numpy(weights[key][t : t + 1]).double())
        with torch.no_grad():
            h = x.expand(1, 1, -1)
            for k, (w, b) in enumerate(layers[:-1]):
                z = torch.baddbmm(b.unsqueeze(2), w, h)
                ax = axes[row, k]
                # each neuron scaled to its own peak: deep waves are tiny (c_k ~ 4^-k) beside the accumulator,
                # and what matters is their shape and where they cross zero
                scale = z[0].abs().amax(1, keepdim=True).clamp_min(1e-300)
                ax.plot(x, (z[0] / scale).T, lw=0.9, label=[f"neuron {i + 1}" for i in range(z.shape[1])])
                ax.axhline(0, color="k", lw=0.6)
                ax.set_title(f"{'start' if row == 0 else 'trained'}: layer {k + 1}", fontsize=9)
                h = torch.relu(z)
    axes[0, 0].legend(fontsize=7)
    axes[0, 0].set_ylabel("pre-activation / its max")
    fig.suptitle(f"Pre-activations of the best trial ({t}), {method_label(summary['method'])} on {summary['target']}")
    fig.tight_layout()
    fig.savefig(folder / "layers.png", dpi=110)
    plt.close(fig)


def draw_run(folder: Path) -> list[Path]:
    summary, trials, losses, weights = _load(folder)
    draw_fit(folder, summary, trials, weights)
    draw_loss(folder, summary, losses)
    draw_layers(folder, summary, trials, weights)
    return [folder / n for n in ("fit.png", "loss.png", "layers.png")]


def draw_trials(folder: Path, summaries: list[dict[str, Any]], metric: str = "mse") -> Path:
    """Final MSE of every trial, per method (rows of the table) and target (panels); collapsed trials red."""
    targets = sorted({s["target"] for s in summaries}, key=target_order)
    labels = row_labels(summaries)
    rows = row_order(summaries, labels)
    fig, axes = plt.subplots(1, len(targets), figsize=(4.5 * len(targets), 0.6 * len(rows) + 1.8), squeeze=False, sharey=True)
    for ax, target in zip(axes[0], targets):
        for s, label in zip(summaries, labels):
            if s["target"] != target:
                continue
            tr = pd.read_csv(Path(s["folder"]) / "trials.csv")
            yrow = rows.index(label) + np.linspace(-0.15, 0.15, len(tr))
            col = np.where(tr["collapsed"], "tab:red", "tab:blue")
            ax.scatter(tr[metric].clip(lower=1e-12), yrow, c=col, s=9)
        ax.set_xscale("log")
        ax.set_title(target)
        ax.set_xlabel(metric.replace("_", " ").replace("mse", "MSE"))
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(rows)), rows)
    axes[0][0].invert_yaxis()
    fig.suptitle("every trial (red: collapsed)")
    fig.tight_layout()
    path = folder / "trials.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

"""Figures of networks of blocks (docs/method.md §8), drawn from what their run folders hold.

- fit.png (a cell): a 1-D target with the best, median and worst trial and their error on a fine grid of its
  domain (log axis); a 2-D target as heatmaps of the target, the best trial and its |error|;
- loss.png (a cell): the plain network's (`plots._draw_loss`);
- fits-<target>.png (an experiment): the best trial of every method side by side: 1-D, one curve each and
  their errors; 2-D, a row per method with its fit and |error| on one colour scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure

from compnet.canvas import decades, fixed_margins
from compnet.methods import method_label, method_order
from compnet.model import Shapes, forward
from compnet.plots import _draw_loss, _losses, _ranked
from compnet.targets import domain_grid, get_target

FINE = {1: 1001, 2: 101}  # points per axis of the figures' grids


def _predict(summary: dict[str, Any], weights: Any, rows: list[int], x: torch.Tensor) -> torch.Tensor:
    """The saved final networks of the given trials at x: [len(rows), N], in float64."""
    shapes = Shapes.of(summary["network"]["widths"])
    flat = torch.from_numpy(weights["final"][rows]).double()
    with torch.no_grad():
        return forward(shapes.split(flat), x)


@dataclass
class _Truth:
    """What a figure compares against: a built-in target on a fine grid, or a user's target at its own points."""

    x: torch.Tensor  # [N] or [N, 2]
    y: torch.Tensor
    label: str
    grid: bool  # a fine square grid (imshow) or scattered points (tripcolor)

    @property
    def dim(self) -> int:
        return 1 if self.x.dim() == 1 else self.x.shape[1]


def _truth(summary: dict[str, Any], weights: Any) -> _Truth:
    if "y" in weights:  # a user's target: its training points, in its own units (extensions.data_of)
        x, y = (torch.from_numpy(weights[k]).double() for k in ("x", "y"))
        if x.dim() == 1:
            order = x.argsort()
            x, y = x[order], y[order]
        return _Truth(x, y, summary.get("target_source", {}).get("label", summary["target"]), grid=False)
    target = get_target(summary["target"])
    x = domain_grid(target, FINE[min(target.dim, 2)], torch.float64)
    return _Truth(x, target(x), target.label, grid=True)


def draw_cell(folder: Path, summary: dict[str, Any]) -> list[Path]:
    trials = pd.read_csv(folder / "trials.csv")
    with np.load(folder / "losses.npz") as losses, np.load(folder / "weights.npz") as weights:
        loss, switch = _losses(losses)
        _draw_loss(folder / "loss.png", summary, loss, switch, decades([loss]))
        ranked, truth = _ranked(trials), _truth(summary, weights)
        if ranked:
            pred = _predict(summary, weights, list(ranked.values()), truth.x)
            title = f"{method_label(summary['method'])} on {truth.label}, {summary['n_trials']} trials"
            if truth.dim == 1:
                labels = [f"{k} (MSE {trials.loc[t, 'mse']:.2e})" for k, t in ranked.items()]
                _curves(folder / "fit.png", truth, pred, labels, title)
            else:
                _heatmaps(folder / "fit.png", truth, {f"best (MSE {trials.mse.min():.2e})": pred[0]}, title)
    return [folder / "loss.png", folder / "fit.png"]


def _curves(path: Path, truth: _Truth, pred: torch.Tensor, labels: list[str], title: str) -> None:
    x, y = truth.x, truth.y
    fig = Figure(figsize=(7, 7))
    ax, ax_err = fig.subplots(2, 1, sharex=True, gridspec_kw=fixed_margins(7, 7, left=0.8, top=0.4, hspace=0.1))
    ax.plot(x, y, "k", lw=2.5, alpha=0.35, label=f"target {truth.label}")
    colors = [f"C{i}" for i in range(len(labels))]
    for p, label, color in zip(pred, labels, colors):
        ax.plot(x, p, color=color, lw=1, label=label)
        ax_err.semilogy(x, (p - y).abs().clamp_min(1e-16), color=color, lw=0.8)
    ax.set_ylabel("y")
    ax.legend(fontsize=8)
    ax.set_title(title)
    ax_err.set(xlabel="x", ylabel="|network − target|")
    fig.savefig(path, dpi=110)


def _heatmaps(path: Path, truth: _Truth, fits: dict[str, torch.Tensor], title: str) -> None:
    """The target, then per fit a row: the fit and its |error|, fits on the target's colour scale and errors on
    one log scale. Two colour bars for the whole figure and fixed margins: per-panel bars and a constrained
    layout cost ~10 s a figure (log ticks are laid out again and again)."""
    x, y = truth.x, truth.y
    errors = {k: (v - y).abs().clamp_min(1e-12) for k, v in fits.items()}
    top = max(float(e.max()) for e in errors.values())
    norm = LogNorm(vmin=max(top * 1e-5, 1e-12), vmax=top)
    rows = len(fits) + 1
    fig = Figure(figsize=(6, 2.6 * rows + 0.4))
    axes = fig.subplots(
        rows, 2, squeeze=False, gridspec_kw=fixed_margins(6, 2.6 * rows + 0.4, left=0.4, top=0.8, hspace=0.35)
    )

    def image(ax, values: torch.Tensor, **kw) -> Any:
        if not truth.grid:  # scattered points: a triangulation of them
            return ax.tripcolor(x[:, 0].numpy(), x[:, 1].numpy(), values.numpy(), shading="gouraud", **kw)
        n = round(len(values) ** 0.5)  # x's first coordinate is the slow one: the image's columns
        lo, hi = float(x.min()), float(x.max())
        ax.set_xticks([lo, hi]), ax.set_yticks([lo, hi])
        extent = (lo, hi, lo, hi)
        return ax.imshow(values.view(n, n).T.numpy(), origin="lower", extent=extent, interpolation="nearest", **kw)

    scale = {"cmap": "viridis", "vmin": float(y.min()), "vmax": float(y.max())}
    fig.colorbar(image(axes[0][0], y, **scale), cax=axes[0][1].inset_axes([0.0, 0.0, 0.06, 1.0]), label="y")
    axes[0][0].set_title(f"target {truth.label}", fontsize=9)
    errors_bar = None
    for row, (label, v) in zip(axes[1:], fits.items()):
        image(row[0], v, **scale)
        row[0].set_title(label, fontsize=8)
        errors_bar = image(row[1], errors[label], cmap="magma", norm=norm)
        row[1].set_title("|error|", fontsize=8)
    fig.colorbar(errors_bar, cax=axes[0][1].inset_axes([0.55, 0.0, 0.06, 1.0]), label="|error| (all rows)")
    axes[0][1].axis("off")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=90)


def draw_experiment(folder: Path, summaries: list[dict[str, Any]]) -> list[Path]:
    """fits-<target>.png for every target of networks of blocks: the best trial of each method."""
    drawn = []
    by_target: dict[str, list[dict[str, Any]]] = {}
    for s in summaries:
        if "network" in s:
            by_target.setdefault(s["target"], []).append(s)
    for name, cells in by_target.items():
        fits, truth = {}, None
        for s in sorted(cells, key=lambda s: method_order(s["method"])):
            trials = pd.read_csv(Path(s["folder"]) / "trials.csv")
            ranked = _ranked(trials)
            if not ranked:
                continue
            with np.load(Path(s["folder"]) / "weights.npz") as weights:
                truth = truth or _truth(s, weights)
                pred = _predict(s, weights, [ranked["best"]], truth.x)[0]
            fits[f"{method_label(s['method'])} (min {trials.mse.min():.2e})"] = pred
        if not fits:
            continue
        path = folder / f"fits-{name}.png"
        title = f"best trial of each method on {truth.label}"
        if truth.dim == 1:
            _curves(path, truth, torch.stack(list(fits.values())), list(fits), title)
        else:
            _heatmaps(path, truth, fits, title)
        drawn.append(path)
    return drawn

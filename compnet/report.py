"""What a run leaves on disk, and the paper-style tables built from it.

A run folder (one cell) holds:
- trials.csv   one row per trial: trial, seed, mse (final), mse_init, [mse_pretrain], [test_mse], diverged,
               collapsed, pieces_init, [pieces_pretrain], pieces_final, wasted_final;
- summary.json target, method, init, regime, n_trials, min/mean/median/max MSE over the finite trials,
               n_collapsed, n_diverged, wall_seconds (training only), region means, the run's settings;
- losses.npz   per-epoch loss of every trial: loss_train [E+1, T] and, after pretraining, loss_pretrain;
- weights.npz  raw weights [T, P] at start, after pretraining and at the end (what `compnet plot` redraws from).
"""

from __future__ import annotations

import json
import math
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from compnet import kernel
from compnet.config import method_label
from compnet.experiment import CellResult
from compnet.model import Shapes
from compnet.regions import trial_regions

def trials_frame(r: CellResult, depth: int) -> pd.DataFrame:
    shapes = Shapes(depth)
    cols: dict[str, Any] = {"trial": range(len(r.seeds)), "seed": r.seeds, "mse": r.mse.tolist()}
    cols["mse_init"] = r.mse_init.tolist()
    if r.mse_pretrain is not None:
        cols["mse_pretrain"] = r.mse_pretrain.tolist()
    if r.test_mse is not None:
        cols["test_mse"] = r.test_mse.tolist()
    cols["diverged"] = r.diverged.tolist()
    cols["collapsed"] = r.collapsed.tolist()
    cols["pieces_init"], _ = trial_regions(shapes, r.start)
    if r.pretrained is not None:
        cols["pieces_pretrain"], _ = trial_regions(shapes, r.pretrained)
    cols["pieces_final"], cols["wasted_final"] = trial_regions(shapes, r.final)
    return pd.DataFrame(cols)


def _stats(values: pd.Series, name: str) -> dict[str, float]:
    """min/mean/median/max over the finite values (diverged trials are counted apart)."""
    v = values[np.isfinite(values)]
    stats = ("min", "mean", "median", "max")
    return {f"{k}_{name}": (getattr(v, k)() if len(v) else math.nan) for k in stats}


def settings_of(cfg: Any) -> dict[str, Any]:
    """The settings that can change a cell's numbers beyond those at the summary's top level (depth, seed,
    lr, points, test_points, epochs), flat: `compnet table` tells runs apart by all of them."""
    keys = ["dtype", "model.peaks", "model.s1", "model.offset"]
    keys += [f"init.{k}" for k in ("peak_low", "peak_high", "raai_k", "raai_sigma_w2", "raai_sigma_b2")]
    # the engine that ran (not `auto`): the two round differently, so their numbers differ in the last digits
    return {k: _plain(OmegaConf.select(cfg, k)) for k in keys} | {"engine": kernel.resolve(_plain(cfg.engine))}


def _plain(v: Any) -> Any:
    return v.value if isinstance(v, Enum) else v


def summary_of(r: CellResult, trials: pd.DataFrame, cfg: Any, wall: float, n_cells: int) -> dict[str, Any]:
    s: dict[str, Any] = {
        "experiment": cfg.experiment.name,
        "target": r.cell.target,
        "method": r.cell.method,
        "method_label": method_label(r.cell.method),
        "init": r.cell.init,
        "regime": r.cell.regime,
        "n_trials": len(trials),
        **_stats(trials["mse"], "mse"),
        "n_collapsed": int(trials["collapsed"].sum()),
        "n_diverged": int(trials["diverged"].sum()),
        "var_target": r.var_target,
        "wall_seconds": wall,
        "cells_in_batch": n_cells,
    }
    if "test_mse" in trials:
        s |= _stats(trials["test_mse"], "test_mse")
    if "mse_pretrain" in trials:
        s["mean_mse_pretrain"] = float(trials["mse_pretrain"][np.isfinite(trials["mse_pretrain"])].mean())
    for col in ("pieces_init", "pieces_pretrain", "pieces_final", "wasted_final"):
        if col in trials:
            s[f"mean_{col}"] = float(trials[col].mean())
    s |= {
        "depth": cfg.depth,
        "seed": cfg.seed,
        "lr": cfg.lr,
        "points": cfg.points,
        "test_points": cfg.test_points,
        "epochs": {k: cfg.regime[k] for k in ("pretrain_epochs", "finetune_epochs", "direct_epochs")},
        "settings": settings_of(cfg),
    }
    return {k: (float(v) if isinstance(v, (np.floating, np.integer)) else v) for k, v in s.items()}


def write_cell(folder: Path, r: CellResult, cfg: Any, wall: float, n_cells: int) -> dict[str, Any]:
    folder.mkdir(parents=True, exist_ok=True)
    trials = trials_frame(r, cfg.depth)
    summary = summary_of(r, trials, cfg, wall, n_cells)
    losses = {"loss_train": r.loss_train.numpy()}
    weights = {"start": r.start.numpy(), "final": r.final.numpy(), "x": r.x.numpy()}
    if r.loss_pretrain is not None:
        losses["loss_pretrain"] = r.loss_pretrain.numpy()
        weights["pretrained"] = r.pretrained.numpy()
    np.savez_compressed(folder / "losses.npz", **losses)
    np.savez_compressed(folder / "weights.npz", **weights)
    trials.to_csv(folder / "trials.csv", index=False)
    # summary.json last: its presence marks a complete run folder
    (folder / "summary.json").write_text(json.dumps(summary, indent=2, allow_nan=True) + "\n")
    return summary

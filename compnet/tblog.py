"""TensorBoard event files of a trained cell (`logger=tensorboard`), written from what training recorded
anyway (the per-epoch loss of every trial, the region counts, the summary): no cost during training.

Steps are epochs counted across both stages (pretraining 0 … E1, then the raw-weight stage E1 … E1+E2), so
the two stages' curves line up in time. Per epoch: the best and the median loss over the trials whose loss is
finite (`pretrain/best`, `train/median`, …); mean linear pieces at each stage where they are counted
(`pieces/init`, `pieces/pretrain`, `pieces/final`); the final statistics (`final/mean_mse`, …); the settings as
hparams.
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from compnet.experiment import CellResult

FINAL = ("min_mse", "mean_mse", "median_mse", "max_mse", "n_collapsed", "n_diverged", "min_test_mse", "mean_test_mse")


def unavailable() -> str | None:
    """Why logger=tensorboard cannot run here (one line), or None when it can."""
    if importlib.util.find_spec("tensorboard") is None:
        return "logger=tensorboard: the tensorboard package is not installed; pip install compnet[tensorboard]"
    return None


def _best_and_median(loss: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per epoch of a history [E+1, T]: which epochs have a finite trial, and their best and median loss."""
    h = np.where(np.isfinite(loss), loss.astype(np.float64), np.nan)
    live = ~np.isnan(h).all(1)
    return live, np.nanmin(h[live], 1), np.nanmedian(h[live], 1)


def write_events(folder: Path, r: CellResult, summary: dict[str, Any]) -> None:
    """A cell's event files in its run folder."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(folder)) as w:
        start, counted = 0, {"init": 0}
        for stage, loss in (("pretrain", r.loss_pretrain), ("train", r.loss_train)):
            if loss is None:
                continue
            live, best, median = _best_and_median(loss.numpy())
            for epoch, b, m in zip(np.flatnonzero(live), best, median):
                w.add_scalar(f"{stage}/best", b, start + int(epoch))
                w.add_scalar(f"{stage}/median", m, start + int(epoch))
            start += len(loss) - 1
            counted["pretrain" if stage == "pretrain" else "final"] = start
        for stage, step in counted.items():
            if (mean := summary.get(f"mean_pieces_{stage}")) is not None and math.isfinite(mean):
                w.add_scalar(f"pieces/{stage}", mean, step)
        final = {k: summary[k] for k in FINAL if summary.get(k) is not None and math.isfinite(summary[k])}
        for key, value in final.items():
            w.add_scalar(f"final/{key}", value, start)
        hparams = {k: v if isinstance(v, int | float | str | bool) else str(v) for k, v in summary["settings"].items()}
        w.add_hparams(hparams, {f"hparam/{k}": v for k, v in final.items()}, run_name=".")

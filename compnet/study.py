"""The linear-region study behind `compnet regions`: exact counts of networks that need no training (docs/method.md §7).

Along a 1-D input line [lo, hi] a ReLU network with scalar input and output has two counts:
- activation regions: intervals on which every neuron's sign is constant (knots of the sign pattern);
- linear pieces: maximal intervals on which the output is affine, i.e. activation regions merged where
  neighbours share a slope, so pieces ≤ activation regions.

Hanin & Rolnick (2019): at random initialisation the expected number of regions along a line grows linearly in
the number of hidden neurons N, pieces ≈ c · N, whatever the depth (c ≈ 0.4 for PyTorch's default init on
[−1, 1]). The compositional network of depth d (peaks a_1 … a_{d+1}, scales from the law, sign −1) computes
x − Σ s_i W_i(x), whose wave W_d has 2^d pieces: exactly 2^d pieces on [0, 1] for any peaks (outside [0, 1]
the accumulator clips at x = −m and the
waves at 0, two more bends on [−1, 1]). The constant c depends on the line: about 0.24 on the default
[0, 1], a line half as long as [−1, 1].

Three studies, one row of regions.csv per counted network:
- depth:   every init in `inits` at width 4 and each depth in `depths`;
- width:   the random inits at each width in `widths` and depth in `width_depths`; the per-neuron constant c of
           each init is the mean over these rows of pieces / N;
- trained: (`from=PATH`) every run folder under PATH and each stage its weights.npz holds (start, pretrained,
           final), one row per trial; only this study runs then.
Draw i of every setting uses generator (seed, i), as trial i of `compnet train` does, so draw i here is trial
i's starting network there. Untrained networks are built in float64, so that their counts are exact; saved
runs hold float32 weights, counted at the float32 tolerance (`pieces.RTOL`). The figures are in
`studyplots.py`, the command in `commands.py`.
"""

from __future__ import annotations

import logging
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from compnet.init import generators, start_weights
from compnet.methods import RANDOM_INITS
from compnet.model import Layer, Shapes
from compnet.pieces import count_batch
from compnet.runs import STAGES

log = logging.getLogger("compnet")

COLUMNS = ["study", "init", "run", "stage", "depth", "width", "neurons", "draw", "pieces", "activation_regions"]
f64 = torch.float64


def start_layers(init: str, depth: int, width: int, cfg: Any) -> list[Layer]:
    """The `cfg.draws` starting networks of an init, in float64."""
    if init not in RANDOM_INITS and width != 4:
        raise ValueError(f"init {init!r} is the 4-wide compositional network; width {width} is not defined")
    gens, shapes = generators(cfg.seed, cfg.draws), Shapes(depth, width)
    flat, _ = start_weights(init, shapes, gens, cfg.init, torch.full((cfg.draws,), -1.0, dtype=f64), f64)
    return shapes.split(flat)


def settings(cfg: Any) -> list[tuple[str, str, int, int]]:
    """(study, init, depth, width) of every setting of the depth and width studies."""
    depth = [("depth", i, d, 4) for i in cfg.inits for d in cfg.depths]
    width = [("width", i, d, w) for i in cfg.inits if i in RANDOM_INITS for w in cfg.widths for d in cfg.width_depths]
    return depth + width


def init_rows(cfg: Any) -> pd.DataFrame:
    """Counts of the depth and width studies, one row per draw."""
    rows = []
    for study, init, depth, width in tqdm(settings(cfg), desc="regions", disable=not sys.stderr.isatty()):
        for draw, r in enumerate(count_batch(start_layers(init, depth, width, cfg), cfg.lo, cfg.hi)):
            rows.append(
                (study, init, "", "init", depth, width, depth * width, draw, r.linear_pieces, r.activation_regions)
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def run_rows(path: Path, lo: float, hi: float) -> pd.DataFrame:
    """Counts of every trial and stored stage of every run folder under `path` (the run's name is its
    folder relative to `path`). Trials with non-finite weights (diverged) are left out."""
    from compnet.runs import find_runs, settings_recorded
    from compnet.shards import trial_range

    rows = []
    for summary in find_runs([path], merge=False)[0]:  # one entry per folder: its weights.npz
        folder = Path(summary["folder"])
        name = str(folder.relative_to(path)) if folder != path else folder.name
        if not (folder / "weights.npz").is_file():
            log.warning("%s: no weights.npz, skipped", folder)
            continue
        init, depth = summary.get("init", ""), settings_recorded(summary)["depth"]
        try:
            with np.load(folder / "weights.npz") as npz:
                weights = {stage: npz[stage] for stage in STAGES if stage in npz}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:  # truncated or not an .npz
            log.warning("%s: weights.npz unreadable (%s), skipped", folder, type(e).__name__)
            continue
        shapes = Shapes(depth)  # runs are 4 wide
        for stage, flat in weights.items():
            found = count_batch(shapes.split(torch.from_numpy(flat)), lo, hi)
            for trial, r in enumerate(found, start=trial_range(summary)[0]):  # a shard's global indices
                if r is not None:
                    rows.append(
                        (
                            "trained",
                            init,
                            name,
                            stage,
                            depth,
                            4,
                            4 * depth,
                            trial,
                            r.linear_pieces,
                            r.activation_regions,
                        )
                    )
            if None in found:
                log.warning("%s %s: %d trials with non-finite weights left out", name, stage, found.count(None))
    return pd.DataFrame(rows, columns=COLUMNS)


def per_neuron(frame: pd.DataFrame) -> pd.Series:
    """Hanin–Rolnick's constant c per init: the mean of pieces / hidden neurons over the width study."""
    w = frame[frame.study == "width"]
    return (w.pieces / w.neurons).groupby(w.init, sort=False).mean().rename("pieces per neuron")


def depth_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean pieces per depth (rows) and init (columns), beside 2^d."""
    d = frame[frame.study == "depth"]
    table = d.pivot_table(index="depth", columns="init", values="pieces", aggfunc="mean", sort=False)
    table.insert(0, "2^d", 2**table.index)
    return table


def run_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean pieces and activation regions per run and stage, beside 2^depth."""
    g = frame.groupby(["run", "stage", "depth"], sort=False)
    table = g.agg(trials=("draw", "size"), pieces=("pieces", "mean"), activation_regions=("activation_regions", "mean"))
    table["2^depth"] = 2 ** table.index.get_level_values("depth")
    return table.reset_index()


def report(frame: pd.DataFrame, trained: bool) -> str:
    """The tables printed to stdout."""
    if trained:
        table = run_table(frame)
        return "Linear pieces of saved networks (means over trials)\n\n" + table.to_markdown(
            index=False, floatfmt=".1f"
        )
    parts = []
    if (frame.study == "depth").any():
        table = depth_table(frame)  # all-numeric rows reach tabulate as floats: depth and 2^d formatted as integers
        parts.append(
            "Mean linear pieces versus depth (width 4)\n\n"
            + table.to_markdown(floatfmt=["g", "g"] + [".1f"] * (table.shape[1] - 1))
        )
    if (frame.study == "width").any():
        parts.append(
            "Hanin–Rolnick constant: mean pieces per hidden neuron\n\n"
            + per_neuron(frame).to_frame().to_markdown(floatfmt=".3f")
        )
    return "\n\n".join(parts)

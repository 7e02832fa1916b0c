"""The run folder, in both directions: what a trained cell leaves on disk, and reading it back.

A run folder (one cell) holds:
- trials.csv   one row per trial: trial (its global index, from `trial_start`), seed, mse (final), mse_init, [mse_pretrain], [test_mse], diverged,
               collapsed, pieces_init, [pieces_pretrain], pieces_final, wasted_final (−1: diverged);
- summary.json target, method, init, regime, n_trials, min/mean/median/max MSE over the finite trials,
               n_collapsed, n_diverged, wall_seconds (training only), region means over the finite trials,
               every setting that can change the numbers (`settings`, from the schema), and what
               produced it (`produced_by`: versions, CPU, engine); written last, its presence marks a
               finished cell;
- losses.npz   per-epoch loss of every trial: loss_train [E+1, T] and, after pretraining, loss_pretrain;
- weights.npz  raw weights [T, P] at start, after pretraining and at the end, and the training points x;
- pieces.csv   (regions_every=N only) one row per trial and counted epoch: trial, stage (pretrain | train),
               epoch (within the stage), pieces (−1: diverged by then).

An experiment's run folder holds one such folder per cell; a Hydra sweep folder one run folder per job.
`load_run` reads any of them back into the `Run` that `compnet.train` returns; shards of one configuration
(runs that differ only in `trial_start` and `trials`) come back merged into one cell (`shards.merge_shards`).
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import platform
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from compnet.config import ConfigError, setting_keys
from compnet.methods import cell_name, method_label, method_order
from compnet.targets import target_order

if TYPE_CHECKING:  # reading a run folder needs no torch
    from compnet.experiment import CellResult

SUMMARY = "summary.json"
PIECES = "pieces.csv"
LINES = "lines.csv"  # a 2-D network's exact pieces along lines (compnet/extensions.py)
STAGES = ("start", "pretrained", "final")  # the weights.npz arrays that hold networks, in training order
FIGURES = ("fit.png", "loss.png", "layers.png")  # a cell's figures (plots.draw_cells)
TABLE_FILES = ("table.md", "table.tex", "table.csv")  # a table of several cells (tables.write_tables)
DEPTH_FILES = ("depth.md", "depth.csv", "depth.png")  # an experiment over depths (depth.write)
EVENT_FILES = "events.out.tfevents.*"  # TensorBoard's (logger=tensorboard, tblog.write_events)


def figures_of(folder: Path) -> tuple[str, ...]:
    """The figures `plots.draw_cells` draws in a (plain network's) cell folder: pieces.png where it has pieces.csv."""
    return FIGURES + ("pieces.png",) * (folder / PIECES).is_file()


TRIAL_COLUMNS = ["trial", "seed", "mse", "mse_init", "mse_pretrain", "test_mse", "diverged", "collapsed"]
TRIAL_COLUMNS += ["pieces_init", "pieces_pretrain", "pieces_final", "wasted_final", "cell", "run"]
PIECES_COLUMNS = ["trial", "stage", "epoch", "pieces", "cell", "run"]
STATS = ("min", "mean", "median", "max")
REQUIRED = ("target", "method", "n_trials", "n_collapsed", "min_mse", "mean_mse")  # what a table reads


@dataclass
class Run:
    """What `compnet.train` returns and `load_run` reads back."""

    trials: pd.DataFrame  # one row per trial: the columns of trials.csv, then `cell` (and `run` in a sweep)
    summaries: list[dict[str, Any]]  # one per cell, as in summary.json (plus `folder` where one was written)
    folder: Path | None  # where it was written, or None
    missing: list[str] = field(default_factory=list)  # jobs or cells that did not finish
    pieces: pd.DataFrame | None = None  # regions_every=N: the rows of every cell's pieces.csv, then `cell` (`run`)

    @classmethod
    def of(
        cls,
        cells: list[tuple[dict[str, Any], pd.DataFrame, pd.DataFrame | None]],
        folder: Path | None,
        missing: list[str] = (),
    ) -> Run:
        """Cells (summary, trials, pieces or None) in the paper's order (targets, then methods, then folders),
        the rows of their tables in the columns' canonical order."""
        cells = sorted(
            cells, key=lambda c: (target_order(c[0]["target"]), method_order(c[0]["method"]), c[0].get("folder", ""))
        )
        names = [cell_of(s) for s, _, _ in cells]
        tags = [{"cell": name} for name in names]
        if len(set(names)) < len(names):  # a sweep over a setting: the same cell in several jobs
            tags = [t | {"run": str(Path(s["folder"]).relative_to(folder))} for t, (s, _, _) in zip(tags, cells)]
        trials = _rows([c[1] for c in cells], tags, TRIAL_COLUMNS)
        pieces = _rows([c[2] for c in cells], tags, PIECES_COLUMNS)
        return cls(pd.DataFrame() if trials is None else trials, [c[0] for c in cells], folder, list(missing), pieces)


def cell_of(summary: dict[str, Any]) -> str:
    """A summary's cell name (its folder in an experiment; summaries before experiment.depths lack it)."""
    return summary.get("cell") or cell_name(summary["target"], summary["method"])


def _rows(frames: list[pd.DataFrame | None], tags: list[dict[str, str]], columns: list[str]) -> pd.DataFrame | None:
    """The cells' tables (those that have one) as one, each row tagged with its cell (and job), in `columns`' order."""
    tagged = [f.assign(**tag) for f, tag in zip(frames, tags) if f is not None]
    if not tagged:
        return None
    both = pd.concat(tagged, ignore_index=True)
    return both[[c for c in columns if c in both]]


def trials_frame(r: CellResult) -> pd.DataFrame:
    trial = range(r.trial_start, r.trial_start + len(r.seeds))  # global indices: shards merge by them
    cols: dict[str, Any] = {"trial": trial, "seed": r.seeds, "mse": r.mse.tolist()}
    cols["mse_init"] = r.mse_init.tolist()
    if r.mse_pretrain is not None:
        cols["mse_pretrain"] = r.mse_pretrain.tolist()
    if r.test_mse is not None:
        cols["test_mse"] = r.test_mse.tolist()
    cols["diverged"] = r.diverged.tolist()
    cols["collapsed"] = r.collapsed.tolist()
    cols |= {f"pieces_{stage}": counts for stage, counts in r.pieces.items()}
    cols["wasted_final"] = r.wasted_final
    return pd.DataFrame(cols)


def pieces_frame(r: CellResult) -> pd.DataFrame | None:
    """pieces.csv of a cell counted every N epochs (regions_every=N): one row per trial and counted epoch of
    each stage, in training order; None when nothing was counted."""
    rows = [
        (trial, stage, epoch, n)
        for stage, counts in r.pieces_by_epoch.items()
        for epoch, per_trial in counts.items()
        for trial, n in enumerate(per_trial)
    ]
    return pd.DataFrame(rows, columns=PIECES_COLUMNS[:4]) if rows else None


def _stats(values: pd.Series, name: str) -> dict[str, float]:
    """min/mean/median/max over the given values (the caller passes the trials that did not diverge)."""
    v = values[np.isfinite(values)]
    return {f"{k}_{name}": (float(getattr(v, k)()) if len(v) else math.nan) for k in STATS}


def settings_of(cfg: Any, engine: str, device: str = "cpu") -> dict[str, Any]:
    """Every setting that can change a cell's numbers (the schema's non-inert keys), flat; the engine and
    the device as they ran (`auto` resolved): each rounds differently."""
    settings = {k: OmegaConf.select(cfg, k) for k in setting_keys()}
    settings = {k: OmegaConf.to_container(v) if OmegaConf.is_config(v) else v for k, v in settings.items()}  # lists
    return {k: getattr(v, "value", v) for k, v in settings.items()} | {"engine": engine, "device": device}


def settings_recorded(summary: dict[str, Any]) -> dict[str, Any]:
    """A summary's settings, flat: what readers use (`settings_recorded(s)["depth"]`). Summaries written
    before `settings` held every setting (before 0.2) kept depth, seed, lr, points and test_points at the top
    level and the epochs apart: read them under today's names, so that old and new runs compare by what both
    record."""
    settings = dict(summary.get("settings", {}))
    if "lr" not in settings:
        settings |= {k: summary[k] for k in ("depth", "seed", "lr", "points", "test_points") if k in summary}
        settings |= {f"regime.{k}": v for k, v in summary.get("epochs", {}).items()}
    return settings


@functools.cache  # once per process: the source does not change under a running job
def source_commit() -> str | None:
    """The git commit compnet runs from (`+dirty` with uncommitted changes to tracked files), or None
    when it is not run from a git checkout (an installed wheel)."""
    import subprocess

    here = Path(__file__).parent
    try:
        head = subprocess.run(["git", "-C", str(here), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True
        )
    except OSError:  # no git
        return None
    if head.returncode:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def produced_by() -> dict[str, Any]:
    """What produced a result: versions, source commit, machine and CPU model, the fused kernel's build
    (lanes, flags). The engine and device that ran are settings (`settings_of`)."""
    import torch

    from compnet import __version__, kernel

    return {
        "compnet": __version__,
        "commit": source_commit(),
        "torch": str(torch.__version__),  # a plain str: a TorchVersion would import torch where it is unpickled
        "python": platform.python_version(),
        "host": platform.node(),
        "cpu": kernel.cpu_model(),
        "date": datetime.now().astimezone().isoformat(timespec="seconds"),
        "kernel": kernel.describe(),
    }


def produced_line(summary: dict[str, Any], command: str) -> str:
    """The first line of a generated table: when, from which commit and by what a result was produced, read
    from its summary (not from the moment the table is written)."""
    by = summary.get("produced_by", {})
    return f"Produced on {str(by.get('date', '?'))[:10]} at commit {by.get('commit') or 'unknown'} by `{command}`"


def trial_statistics(trials: pd.DataFrame) -> dict[str, Any]:
    """What a summary says about a cell's trials (trials.csv's rows): their number, min/mean/median/max MSE
    and the region means over those that did not diverge, the collapsed and diverged counts."""
    finite = ~trials["diverged"].astype(bool)
    s: dict[str, Any] = {
        "n_trials": len(trials),
        **_stats(trials["mse"][finite], "mse"),
        "n_collapsed": int(trials["collapsed"].sum()),
        "n_diverged": int(trials["diverged"].sum()),
    }
    if "test_mse" in trials:
        s |= _stats(trials["test_mse"][finite], "test_mse")
    if "mse_pretrain" in trials:
        s["mean_mse_pretrain"] = _stats(trials["mse_pretrain"][finite], "mse_pretrain")["mean_mse_pretrain"]
    for col in [c for c in trials if c.startswith("pieces_")] + ["wasted_final"]:
        s[f"mean_{col}"] = float(trials[col][finite].mean()) if finite.any() else math.nan  # −1: diverged
    return s


def summary_of(r: CellResult, trials: pd.DataFrame, cfg: Any, wall: float, n_cells: int) -> dict[str, Any]:
    s: dict[str, Any] = {
        "experiment": cfg.experiment.name,
        "cell": r.cell.name,
        "target": r.cell.target,
        "method": r.cell.method,
        "method_label": method_label(r.cell.method),
        "init": r.cell.init,
        "regime": r.cell.regime,
        **trial_statistics(trials),
        "var_target": r.var_target,
        "wall_seconds": wall,
        "cells_in_batch": n_cells,
    }
    settings = settings_of(cfg, r.engine, r.device) | ({} if r.cell.depth is None else {"depth": r.cell.depth})
    if r.network:
        s["network"] = r.network
    if r.lines:  # the median count along each line after training (lines.csv has every trial and stage)
        final = {line: [n for n in v if n >= 0] for line, v in r.lines["final"].items()}
        s["median_pieces_final_along"] = {line: float(np.median(v)) if v else math.nan for line, v in final.items()}
    if r.target_source is not None:  # a user's target: what it was; a file's content tells runs apart too
        s["target_source"] = r.target_source
        if r.target_source.get("kind") == "file":
            settings["target.sha256"] = r.target_source["sha256"]
    return s | {"settings": settings, "produced_by": produced_by()}


def write_data(folder: Path, r: CellResult, trials: pd.DataFrame, pieces: pd.DataFrame | None = None) -> None:
    """A cell's files but its figures and summary.json (written last: `write_summary`)."""
    folder.mkdir(parents=True, exist_ok=True)
    losses = {"loss_train": r.loss_train.numpy()}
    weights = {"start": r.start.numpy(), "final": r.final.numpy(), "x": r.x.numpy()}
    if r.y is not None:  # a user's target: the values the network fitted at x (network units)
        weights["y"] = r.y.numpy()
    if r.loss_pretrain is not None:
        losses["loss_pretrain"] = r.loss_pretrain.numpy()
        weights["pretrained"] = r.pretrained.numpy()
    # uncompressed: zlib took 0.21 of the 0.24 s that Tables 1+2's 20 cells spend here, for files 15% smaller
    np.savez(folder / "losses.npz", **losses)
    np.savez(folder / "weights.npz", **weights)
    trials.to_csv(folder / "trials.csv", index=False)
    if pieces is not None:
        pieces.to_csv(folder / PIECES, index=False)
    if r.lines:
        rows = [(t, stage, line, n) for stage, by in r.lines.items() for line, v in by.items() for t, n in enumerate(v)]
        pd.DataFrame(rows, columns=["trial", "stage", "line", "pieces"]).to_csv(folder / LINES, index=False)


def write_summary(folder: Path, summary: dict[str, Any]) -> None:
    """summary.json, last and atomically: its presence marks a finished cell. NaN (no finite trial) is
    written as null, which standard JSON readers accept."""
    clean = {k: v for k, v in summary.items() if k != "folder"}
    text = json.dumps(_nulls(clean), indent=2, allow_nan=False) + "\n"
    tmp = folder / f".{SUMMARY}.tmp"
    tmp.write_text(text)
    tmp.replace(folder / SUMMARY)


def _nulls(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {k: _nulls(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_nulls(x) for x in v]
    return v


RESULT_FILES = (
    SUMMARY,
    "trials.csv",
    "losses.npz",
    "weights.npz",
    *FIGURES,
    *TABLE_FILES,
    "trials.png",
    "paper_vs_ours.md",
    *DEPTH_FILES,
    PIECES,
    LINES,
    "extensions.md",
    "pieces.png",
    "pieces.md",
    "timings.json",  # compnet/timings.py
)


def _cells(folder: Path) -> list[Path]:
    """An experiment's cell folders directly in `folder` (a run writes no deeper)."""
    return [d for d in folder.iterdir() if (d / SUMMARY).is_file()] if folder.is_dir() else []


def finished(folder: Path) -> bool:
    """Whether `folder` holds a finished run: its own summary.json, or an experiment's cells."""
    return (folder / SUMMARY).is_file() or bool(_cells(folder))


def check_writable(folder: Path) -> None:
    """Refuse a run folder that cannot be made, before any work: try a scratch folder in its nearest
    existing ancestor (permission bits do not tell, for root, or on /proc)."""
    import os
    import tempfile

    existing = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(20, "a file is in the way")
        os.rmdir(tempfile.mkdtemp(dir=existing))
    except OSError as e:
        raise ConfigError(f"{folder}: cannot create a folder in {existing} ({e.strerror})") from None


def check_reusable(folder: Path, overwrite: bool) -> None:
    """Refuse to write a run into a folder that holds a finished one: its figures and cells would mix with
    the new results (overwrite=true clears them first)."""
    if finished(folder) and not overwrite:
        raise ConfigError(f"{folder} already holds a finished run; choose another folder or pass overwrite=true")


def clear(folder: Path) -> None:
    """Remove the results of an earlier run from `folder` (overwrite=true), so that none of its files or
    cells mixes with the new run's: its result files and its cell folders (one level down, as a run writes
    them). Hydra's own files, deeper folders and anything else are left alone."""
    import shutil

    for cell in _cells(folder):
        shutil.rmtree(cell)
    for name in RESULT_FILES:
        (folder / name).unlink(missing_ok=True)
    for events in [*folder.glob(EVENT_FILES), *folder.glob("fits-*.png")]:  # blockplots.draw_experiment's
        events.unlink()


def read_summary(folder: Path) -> dict[str, Any]:
    """A cell's summary, statistics without a finite trial as NaN (null on disk), and its folder."""
    s = json.loads((folder / SUMMARY).read_text())
    if lacking := [k for k in REQUIRED if k not in s]:
        raise ValueError(f"lacks {', '.join(lacking)}")
    for k, v in s.items():
        if v is None and k.split("_", 1)[0] in STATS:
            s[k] = math.nan
    return s | {"folder": str(folder)}


def find_runs(paths: list[Path], merge: bool = True) -> tuple[list[dict[str, Any]], list[str]]:
    """Summaries of every finished cell under `paths`, and what did not finish, one line each: jobs Hydra
    started (.hydra/) that hold no summary.json (failed, interrupted or still running), jobs a sweep planned
    (multirun.yaml) that never started, cells an experiment planned but did not write, and unreadable files
    (skipped, so that one bad job does not sink the table). With `merge`, shards of one configuration come
    back as one summary of all their trials (`merge_shards`), their overlaps and gaps named."""
    summaries, missing = [], []
    for path in paths:
        if not path.exists():
            missing.append(f"{path} (no such file or folder)")
            continue
        for f in sorted(path.rglob(SUMMARY)):
            try:
                summaries.append(read_summary(f.parent))
            except (OSError, ValueError, AttributeError) as e:  # truncated, not JSON, not an object
                missing.append(f"{f} (unreadable: {type(e).__name__}: {e})")
        for h in sorted(path.rglob(".hydra")):
            job = h.parent
            if _app_of(job) not in ("train", None):  # a `compnet regions` folder writes no summary
                continue
            if not any(job.rglob(SUMMARY)):
                missing.append(f"{job} (no summary.json: failed or interrupted)")
            else:
                missing += _missing_cells(job)
        for plan_file in sorted(path.rglob("multirun.yaml")):
            if _app_of(plan_file.parent, plan_file) in ("train", None):
                missing += _unstarted_jobs(plan_file)
    if merge:
        from compnet.shards import merge_shards  # shards.py reads its summaries' statistics from here

        summaries, notes = merge_shards(summaries)
        missing += notes
    return summaries, missing


def _app_of(job: Path, hydra_file: Path | None = None) -> str | None:
    """The compnet app that made a Hydra folder (hydra.job.name), None when it cannot be told."""
    try:
        return str(OmegaConf.load(hydra_file or job / ".hydra" / "hydra.yaml").hydra.job.name)
    except Exception:  # missing or damaged: count the folder as a training job
        return None


def _unstarted_jobs(plan_file: Path) -> list[str]:
    """Jobs of a sweep that never got a folder: Hydra's basic sweeper numbers the cartesian product of the
    sweep's overrides in order, and job n's folder starts with `n-`."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        task = OmegaConf.load(plan_file).hydra.overrides.task
        parsed = OverridesParser.create().parse_overrides(list(task))
        if len({o.get_key_element() for o in parsed}) < len(parsed):
            raise ValueError("a key given twice")  # Hydra merges those; its job count is not the product
        choices = [
            [f"{o.get_key_element()}={v}" for v in o.sweep_string_iterator()]
            if o.is_sweep_override()
            else [o.input_line]
            for o in parsed
        ]
    except Exception as e:  # glob(), a repeated key, a damaged multirun.yaml: say so, do not guess
        return [f"{plan_file} (cannot enumerate the sweep's planned jobs: {type(e).__name__}: {e})"]
    started = {d.name.split("-", 1)[0] for d in plan_file.parent.iterdir() if d.is_dir()}
    return [
        f"{plan_file.parent} job {n} ({', '.join(c for c, o in zip(job, parsed) if o.is_sweep_override())}): never started"
        for n, job in enumerate(itertools.product(*choices))
        if str(n) not in started
    ]


def _missing_cells(job: Path) -> list[str]:
    """Cells an experiment run planned (its .hydra/config.yaml) but did not write."""
    try:
        cfg = OmegaConf.load(job / ".hydra" / "config.yaml")
    except Exception as e:  # damaged: the cells it holds are tabulated, what it planned is unknown
        return [f"{job / '.hydra' / 'config.yaml'} (unreadable: {type(e).__name__})"]
    exp = cfg.get("experiment", {})
    if not exp.get("methods"):
        return []
    names = [
        cell_name(t, m, d)
        for d in exp.get("depths") or [None]
        for t in exp.get("targets") or [cfg.target.name]
        for m in exp.methods
    ]
    return [f"{job / n} (planned by the experiment, not written)" for n in names if not (job / n / SUMMARY).exists()]


def load_run(path: str | Path) -> Run:
    """Any run, experiment or sweep folder (or a file in a run folder) as a `Run`."""
    path = Path(path)
    root = path.parent if path.is_file() else path
    summaries, missing = find_runs([root])
    if not summaries:
        raise FileNotFoundError(f"no finished run (summary.json) under {path}")
    from compnet.shards import read_pieces, read_trials

    return Run.of([(s, read_trials(s), read_pieces(s)) for s in summaries], root, missing)

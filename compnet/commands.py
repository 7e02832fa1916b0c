"""What each command does once configured: the plain functions the command line, the Python API, the
scripts and the tests all call.

- `train(cfg, out)`: train every cell of a configuration, write each cell's run folder under `out` (nothing
  when `out` is None), and return the `Run`;
- `regions(cfg, out)`: the linear-region study (or the counts of saved runs), regions.csv and regions.png;
- `classify(cfg, out)`: dense vs compositional layers vs a random control on digits or a user's .npz;
- `table(paths, ...)`, `plot(paths)`: tables and figures from finished run folders; they return exit codes.
- `train_job`, `regions_job`, `classify_job`: the Hydra tasks, which take the run folder from Hydra and print tables.

Bad values raise `config.ConfigError` before any work; nothing here calls sys.exit, so one bad job of a
sweep fails that job, not the sweep.
"""

from __future__ import annotations

import collections
import logging
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

from compnet import config
from compnet.methods import is_experiment, plan

log = logging.getLogger("compnet")


def check(cfg: Any, app: str) -> None:
    """Everything that can refuse `compnet APP` before any work: the configuration's own checks (`validate`),
    then whether this machine can run it (`runnable`)."""
    validate(cfg, app)
    runnable(cfg, app)


def validate(cfg: Any, app: str) -> None:
    """The configuration's own checks: they import nothing heavy (the command line makes them before it starts
    anything)."""
    if app == "regions":
        config.validate_regions(cfg)
    elif app == "classify":
        from compnet import config_classify

        config_classify.validate(cfg)
    else:
        config.validate(cfg)


def runnable(cfg: Any, app: str) -> None:
    """Whether this machine can run a valid `cfg`: the engine it insists on, TensorBoard, CUDA; a classifier's
    data file, read and checked before any folder is made."""
    if app == "regions":
        return
    if app == "classify":
        from compnet import datasets

        datasets.load(cfg.data.path)
        _check_cuda(cfg)
        return
    if cfg.engine == "fused":  # a str enum: equal to its value
        from compnet import kernel

        if why := kernel.unavailable():
            raise config.ConfigError(
                f"engine=fused: the kernel does not build here ({why}); use engine=auto or engine=torch"
            )
    if cfg.logger == "tensorboard":
        from compnet import tblog

        if why := tblog.unavailable():
            raise config.ConfigError(why)
    _check_cuda(cfg)


def _check_cuda(cfg: Any) -> None:
    if cfg.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise config.ConfigError(
                f"device=cuda: torch {torch.__version__} sees no CUDA device here; use device=cpu or device=auto"
            )


def train(cfg: Any, out: Path | None, painter: Any = None) -> Any:
    """Train the cells of `cfg`; write them under `out` (a run folder, or one folder per cell of an
    experiment) unless it is None, with timings.json (compnet/timings.py). Returns a `runs.Run`. `painter`: a
    `painter.Painter` whose helper processes draw the figures (the command line starts one before torch is
    imported); without one they are drawn in this process."""
    check(cfg, "train")
    from compnet import experiment, kernel, runs, tables
    from compnet.timings import Phases

    phases = Phases()
    if out is not None:  # refused before any work, as the command line's pre-check does
        runs.check_writable(out)
        runs.check_reusable(out, cfg.overwrite)
        if cfg.overwrite:
            runs.clear(out)
    if cfg.engine == "auto" and experiment.device_of(cfg).type == "cpu" and (why := kernel.unavailable()):
        log.warning("the fused engine is unavailable, training with torch's ops (Tables 1+2 2.3–3× slower): %s", why)
    if painter is not None and not (cfg.plots and out is not None and painter.ready()):
        painter = None  # its helpers are ready before the training clock starts, or it is not used
    phases.add("startup", time.perf_counter() - phases.start)
    t0 = time.perf_counter()
    results, wall = experiment.run(cfg)
    phases.add("training", wall)
    phases.add("analysis", time.perf_counter() - t0 - wall)
    single = not is_experiment(cfg)
    cells, drawing = [], []  # drawing: (folder, summary, the painter's jobs) of cells whose summary waits
    # a target's plain cells are drawn together once all are written (plots.draw_cells: shared limits)
    sizes = collections.Counter(r.cell.target for r in results if not r.network)
    written: dict[str, list[tuple[Path, dict]]] = {}
    for r in results:
        with phases("writing"):
            trials, pieces = runs.trials_frame(r), runs.pieces_frame(r)
            summary = runs.summary_of(r, trials, cfg, wall, len(results))
        if out is not None:
            folder = out if single else out / r.cell.name
            with phases("writing"):
                if cfg.logger == "tensorboard":  # before summary.json, which marks the cell finished
                    from compnet import tblog

                    tblog.write_events(folder, r, summary)
                runs.write_data(folder, r, trials, pieces)
            if cfg.plots and not r.network:
                group = written.setdefault(r.cell.target, [])
                group.append((folder, summary))
                if len(group) == sizes[r.cell.target]:
                    drawing += _draw(group, painter, len(sizes), phases)
            else:
                if cfg.plots:  # a network of blocks: blockplots evaluates it with torch, so here
                    from compnet import plots  # matplotlib costs ~0.6 s of start-up: only when drawing

                    with phases("figures"):
                        plots.draw_cells([folder], [summary])
                with phases("writing"):
                    runs.write_summary(folder, summary)  # last: it marks the cell finished
            summary["folder"] = str(folder)
        cells.append((summary, trials, pieces))
        metric = tables.metric_of([summary])  # what a table shows: held-out MSE where there is one
        log.info(
            "%-22s %s min %.2e  mean %.2e  collapsed %d/%d  diverged %d",
            r.cell.name,
            metric.replace("_", " "),
            summary[f"min_{metric}"],
            summary[f"mean_{metric}"],
            summary["n_collapsed"],
            summary["n_trials"],
            summary["n_diverged"],
        )
    log.info("trained %d networks in %.1f s%s", len(results) * cfg.trials, wall, f" -> {out}" if out else "")
    run = runs.Run.of(cells, out)
    if out is not None and not single:
        metric = tables.metric_of(run.summaries)
        with phases("writing"):
            tables.write_tables(out, tables.table(run.summaries, metric))
        if cfg.plots:
            if painter is not None:  # the longest figure: first in the helpers' queue
                painter.submit("compnet.plots", "draw_trials", out, run.summaries, metric, first=True)
            else:
                from compnet import plots

                with phases("figures"):
                    plots.draw_trials(out, run.summaries, metric)
            if any("network" in s for s in run.summaries):
                from compnet import blockplots

                with phases("figures"):
                    blockplots.draw_experiment(out, run.summaries)
        with phases("writing"):  # the figures of these two (depth.png, pieces.png) are drawn here too
            if cfg.experiment.depths:
                from compnet import depth

                depth.write(out, run.summaries, cfg.plots)
            if run.pieces is not None:
                write_pieces(out, run, cfg)
            from compnet import blocks_report  # networks of blocks beside the paper's claim (extensions.md)

            blocks_report.write(out, run.summaries, f"compnet train experiment={cfg.experiment.name}")
    if painter is not None:  # each cell's summary.json (it marks the cell finished) once its own figures are
        # drawn, so that a failed figure of the run (trials.png) or of another cell leaves the others finished
        from compnet.painter import DrawingError

        for folder, summary, jobs in drawing:
            with phases("figures"):
                try:
                    painter.wait(jobs)
                except DrawingError:  # this cell stays unfinished; the wait below raises the failure
                    continue
            with phases("writing"):
                runs.write_summary(folder, summary)
        with phases("figures"):
            painter.wait()  # the run's own figures; raises if any figure failed
    if out is not None:
        timings = phases.write(out, {"figure_helpers": painter.stats()} if painter is not None else {})
        log.info("timings (s): %s", ", ".join(f"{k} {v:.2f}" for k, v in timings.items() if isinstance(v, float)))
    return run


def _draw(group: list[tuple[Path, dict]], painter: Any, groups: int, phases: Any) -> list[tuple[Path, dict, list]]:
    """The figures of a target's cells (`plots.draw_cells`). Without a painter: drawn here, then each cell's
    summary.json written; returns []. With one: a job per figure and share of the cells, about two per helper
    in all (`groups` targets), the limits from all of them; returns (folder, summary, the jobs drawing its
    figures) per cell, whose summary waits for those jobs."""
    from compnet import runs

    folders, summaries = [f for f, _ in group], [s for _, s in group]
    if painter is None:
        from compnet import plots  # matplotlib costs ~0.6 s of start-up: only when drawing

        with phases("figures"):
            plots.draw_cells(folders, summaries)
        with phases("writing"):
            for folder, summary in group:
                runs.write_summary(folder, summary)  # last: it marks the cell finished
        return []
    shares = max(1, min(len(group), round(2 * painter.n / groups)))
    names = tuple(dict.fromkeys(name for folder in folders for name in runs.figures_of(folder)))
    jobs: list[list] = [[] for _ in group]
    for share in range(shares):
        only = list(range(share, len(group), shares))
        for name in names:
            job = painter.submit("compnet.plots", "draw_cells", folders, summaries, (name,), only)
            for i in only:
                jobs[i].append(job)
    return [(folder, summary, cell_jobs) for (folder, summary), cell_jobs in zip(group, jobs)]


def classify(cfg: Any, out: Path | None) -> Any:
    """`compnet classify`: train every model's trials on the configured data; write the run folder `out` (nothing
    when None). Returns a `classifier.Classification`."""
    validate(cfg, "classify")  # the data file is read below, before any folder is made (not twice: `runnable`)
    _check_cuda(cfg)
    import torch

    from compnet import classifier as clf
    from compnet import datasets, runs

    if out is not None:
        runs.check_writable(out)
        runs.check_reusable(out, overwrite=False)
    X, y, source = datasets.load(cfg.data.path)
    data = datasets.split(X, y, cfg.data.test_fraction, cfg.seed, source)
    cuda = cfg.device == "cuda" or (cfg.device == "auto" and torch.cuda.is_available())
    threads = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        result = clf.run(cfg, data, torch.device("cuda" if cuda else "cpu"))
    finally:
        torch.set_num_threads(threads)
    summary = clf.summary_of(cfg, data, result, torch.device("cuda" if cuda else "cpu"))
    if out is not None:
        clf.write(out, result, summary, cfg.plots)
    log.info(
        "trained %d models × %d trials in %.1f s%s",
        len(cfg.models),
        cfg.trials,
        result.wall_seconds,
        f" -> {out}" if out else "",
    )
    return clf.Classification(result.curves, summary, out)


def write_pieces(out: Path, run: Any, cfg: Any) -> None:
    """An experiment's pieces.md (and pieces.png): every cell's linear pieces through training."""
    from compnet import runs, tables

    r, depths = cfg.regime, ", ".join(map(str, cfg.experiment.depths or [cfg.depth]))
    provenance = (
        f"{runs.produced_line(run.summaries[0], f'compnet train experiment={cfg.experiment.name}')}: "
        f"{cfg.trials} trials per cell, depth {depths}, {r.pretrain_epochs} pretraining + "
        f"{r.finetune_epochs} raw epochs ({r.direct_epochs} without pretraining), pieces counted every "
        f"{cfg.regions_every} epochs."
    )
    tables.write_pieces(out, run.summaries, run.pieces, provenance)
    if cfg.plots and not cfg.experiment.depths:  # one line per method: depths would be pooled (each cell draws its own)
        from compnet import plots

        plots.draw_pieces_experiment(out, run.summaries, run.pieces)


def regions(cfg: Any, out: Path | None) -> Any:
    """Count the networks `cfg` asks for; write regions.csv (and regions.png) into `out`. Returns the
    counts (pandas, one row per network) and the report printed by `regions_job`."""
    check(cfg, "regions")
    from compnet import study

    clock = time.perf_counter()
    trained = cfg.from_run is not None
    if trained:
        path = Path(cfg.from_run)  # a folder: check() refused anything else
        frame = study.run_rows(path, cfg.lo, cfg.hi)
        if frame.empty:
            raise FileNotFoundError(f"no run with weights (summary.json, weights.npz) under {path}")
    else:
        frame = study.init_rows(cfg)
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out / "regions.csv", index=False)
        if cfg.plots:
            from compnet import studyplots

            (studyplots.draw_region_runs if trained else studyplots.draw_region_study)(
                frame, out / "regions.png", cfg.lo, cfg.hi
            )
    log.info(
        "counted %d networks on [%g, %g] in %.1f s -> %s", len(frame), cfg.lo, cfg.hi, time.perf_counter() - clock, out
    )
    return frame, study.report(frame, trained)


def table(
    paths: list[Path], out: Path | None = None, paper: bool = False, plot: bool = True, strict: bool = False
) -> int:
    """`compnet table`: the paper's table of every finished run under `paths`, written to `out` (default:
    the folder holding them). What did not finish is named on stderr and in table.md; with `strict` it
    makes the exit code 1."""
    from compnet import runs, tables

    for p in paths:  # a typo must not make the table land in the folders' common ancestor
        if not p.is_dir():
            why = "is a file; give run, experiment or sweep folders" if p.exists() else "does not exist"
            print(f"compnet table: error: {p} {why}", file=sys.stderr)
            return 2
    summaries, missing = runs.find_runs(paths)
    for m in missing:
        print(f"compnet table: missing: {m}", file=sys.stderr)
    if not summaries:
        print(
            f"compnet table: error: no finished runs (summary.json) under {', '.join(map(str, paths))}", file=sys.stderr
        )
        return 1
    out = out or Path(os.path.commonpath([str(p.resolve()) for p in paths]))
    metric = tables.metric_of(summaries)
    try:
        out.mkdir(parents=True, exist_ok=True)
        print(tables.write_tables(out, tables.table(summaries, metric), missing))
        if paper:
            print("\n" + tables.write_comparison(out, summaries))
        if plot:
            from compnet import plots

            plots.draw_trials(out, summaries, metric)
    except OSError as e:
        print(f"compnet table: error: cannot write to {out}: {e.strerror or e}", file=sys.stderr)
        return 1
    for warning in tables.mixed_provenance(summaries):
        print(f"compnet table: warning: {warning}", file=sys.stderr)
    print(f"\nwrote {', '.join(str(out / f) for f in runs.TABLE_FILES)}", file=sys.stderr)
    return 1 if strict and missing else 0


def plot(paths: list[Path]) -> int:
    """`compnet plot`: redraw every run folder's figures from what it holds on disk; a folder whose files
    cannot be read is named and skipped."""
    from compnet import plots, runs

    folders = sorted({f.parent for path in paths for f in path.rglob("summary.json")})
    if not folders:
        print(f"compnet plot: error: no run (summary.json) under {', '.join(map(str, paths))}", file=sys.stderr)
        return 1
    unreadable = (OSError, ValueError, KeyError, AttributeError, EOFError, zipfile.BadZipFile)  # corrupt files
    failed, readable = [], []
    for folder in folders:
        try:
            readable.append((folder, runs.read_summary(folder)))
        except unreadable as e:
            failed.append((folder, e))
    by_run: dict[Path, list] = {}  # a target's cells in one experiment are drawn together, as the run drew them
    for folder, summary in readable:
        run = folder.parent if summary.get("cells_in_batch", 1) > 1 else folder  # an experiment's cell, or a run
        by_run.setdefault(run, []).append((folder, summary))
    for cells in by_run.values():
        for group in plots.groups([s for _, s in cells]):
            try:
                drawn = plots.draw_cells([cells[i][0] for i in group], [cells[i][1] for i in group])
            except unreadable:  # one of them: each on its own, to name it; then the others together again
                ok = []
                for i in group:
                    try:
                        plots.draw_cells([cells[i][0]], [cells[i][1]])
                        ok.append(i)
                    except unreadable as e:
                        failed.append((cells[i][0], e))
                drawn = plots.draw_cells([cells[i][0] for i in ok], [cells[i][1] for i in ok]) if ok else []
            for f in drawn:
                print(f)
    for folder, e in failed:
        print(f"compnet plot: skipped {folder}: unreadable ({type(e).__name__}: {e})", file=sys.stderr)
    return 1 if len(failed) == len(folders) else 0


def _output_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def _resumed(cfg: Any, out: Path) -> bool:
    """A sweep run again into its folder (the same hydra.sweep.dir) resumes: a job whose folder holds all
    its cells from an earlier try is skipped, with one line; one holding only some (interrupted while
    writing an experiment's cells) is cleared and trained again. Not with overwrite=true, which trains all."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from compnet import runs

    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN or cfg.overwrite:
        return False
    job = f"job {hydra_cfg.job.num} ({','.join(hydra_cfg.overrides.task)})"
    cells = [out / c.name for c in plan(cfg)] if is_experiment(cfg) else [out]
    if all((c / runs.SUMMARY).is_file() for c in cells):
        log.info("%s: finished in an earlier try, skipped (%s)", job, out)
        return True
    if runs.finished(out):
        log.info("%s: part of an earlier try's cells in %s, trained again", job, out)
        runs.clear(out)
    return False


def train_job(cfg: Any, painter: Any = None) -> None:
    """The Hydra task of `compnet train`: train into Hydra's run folder (a sweep's finished jobs are
    skipped, see `_resumed`), print an experiment's table."""
    from compnet import tables

    out = _output_dir()
    if _resumed(cfg, out):
        return
    run = train(cfg, out, painter)
    if is_experiment(cfg):
        print(tables.to_markdown(tables.table(run.summaries, tables.metric_of(run.summaries))))


def classify_job(cfg: Any) -> None:
    """The Hydra task of `compnet classify`: train into Hydra's run folder, print the report."""
    from compnet import classifier as clf

    res = classify(cfg, _output_dir())
    print(clf.report(res.summary["test"], res.summary["parameters_per_trial"]))


def regions_job(cfg: Any) -> None:
    """The Hydra task of `compnet regions`."""
    _, report = regions(cfg, _output_dir())
    print(report)

"""compnet's command line: argv to `commands`, and nothing else.

    compnet train  [OVERRIDES]    train `trials` trials of a configuration (a Hydra app)
    compnet regions [OVERRIDES]   linear-region studies without training (a Hydra app)
    compnet classify [OVERRIDES]  dense vs compositional layers on digits or your .npz (a Hydra app)
    compnet table PATH...         the paper's table layout from run or sweep folders
    compnet plot PATH...          redraw a run's figures from its saved results

Heavy modules (torch, matplotlib, pandas) are imported only once a command needs them, so `compnet --help`
and Hydra's own `--help`, `--cfg job` and tab completion answer at once. A bad value ends a single run with
one line on stderr and exit code 2; in a sweep (`-m`) it fails that job in one line, and the sweep exits 1.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

USAGE = """usage: compnet COMMAND [ARGS]

Compositional ReLU networks (Milkert, Hyde & Laine, ICML 2025): train, tabulate, plot.

commands:
  train [OVERRIDES]   train `trials` trials of one configuration, e.g.
                        compnet train target=x3 init=manifold
                        compnet train -m target=x3,x11 init=kaiming,manifold
                        compnet train experiment=table1
  regions [OVERRIDES] count linear regions versus depth and width, no training
  classify [OVERRIDES] a dense MLP vs compositional layers vs a random control on digits
                      (or data.path=FILE.npz), 30 trials each: curves.csv, curves.png
  table PATH...       the paper's table (table.md/.tex/.csv) from run or sweep folders
  plot PATH...        redraw fit.png, loss.png, layers.png from saved results

`compnet train --help` lists the config groups and options (Hydra)."""

HYDRA_APPS = ("train", "regions", "classify")  # command = primary config name = `commands.<command>_job`
COMMANDS = (*HYDRA_APPS, "table", "plot")


def main(argv: list[str] | None = None) -> int:
    code = _main(argv)
    if argv is None and _is_the_program() and not os.environ.get("COMPNET_FULL_EXIT"):
        _exit(code)
    return code


def _is_the_program() -> bool:
    """Whether this process is the `compnet` command itself (its console script, or `python -m compnet.cli`),
    not a Python program that calls `main`."""
    entry = sys.modules.get("__main__")
    spec = getattr(entry, "__spec__", None)
    return Path(getattr(entry, "__file__", "") or "").name == "compnet" or getattr(spec, "name", "") == "compnet.cli"


def _exit(code: int) -> None:
    """End the command now that its work is done: what exits with it runs (atexit: logging's flush, …), the
    streams are flushed, and the interpreter's teardown, ~1 s of freeing torch's, pandas' and Hydra's modules on
    this machine, is skipped (the system reclaims the memory at once). COMPNET_FULL_EXIT=1 exits the usual way."""
    import atexit

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(code)


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] == "-sc":
        return _completion(argv)
    cmd, rest = argv[0], argv[1:]
    if cmd == "regions":  # `from` is a Python keyword, so the schema's field is from_run
        rest = [f"from_run={a[5:]}" if a.startswith("from=") else a for a in rest]
    if cmd in HYDRA_APPS:
        return _hydra(cmd, rest)
    if cmd == "table":
        return _table(rest)
    if cmd == "plot":
        return _plot(rest)
    print(f"compnet: unknown command {cmd!r}; valid commands: {', '.join(COMMANDS)}", file=sys.stderr)
    return 2


def _completion(argv: list[str]) -> int:
    """Shell completion: `eval "$(compnet -sc install=bash)"` installs Hydra's completion for `compnet`;
    the shell then calls `compnet -sc query=bash` with the line typed so far in COMP_LINE."""
    line = os.environ.get("COMP_LINE", "")
    words = line.split()
    if not any(a.startswith("query=") for a in argv):  # install=SHELL: Hydra writes the script
        return _hydra("train", argv, prog="compnet")
    if len(words) < 2 or (len(words) == 2 and not line.endswith(" ")):  # completing the command itself
        prefix = words[1] if len(words) == 2 else ""
        print(" ".join(c for c in COMMANDS if c.startswith(prefix)))
        return 0
    cmd = words[1]
    if cmd not in HYDRA_APPS:
        return 0
    # Hydra completes its own command line: drop the subcommand from it
    start = line.index(cmd, len(words[0]))  # not inside the program's path
    os.environ["COMP_LINE"] = line[:start] + line[start + len(cmd) + 1 :]
    os.environ["COMP_POINT"] = str(int(os.environ.get("COMP_POINT", len(line))) - len(cmd) - 1)
    return _hydra(cmd, argv, prog="compnet")


def _hydra(cmd: str, rest: list[str], prog: str | None = None) -> int:
    _ROOT.clear()
    _FAILED.clear()
    _PAINTER.clear()
    try:  # from the first import on: Ctrl-C at any point is one line
        import hydra

        from compnet.config import register

        register(cmd)
        if prog is None and not _hydras_own(rest):  # a single run
            cfg = _precheck(cmd, rest)
            if cfg is None:
                return 2
            if not cfg.hydra.verbose:  # hydra.verbose: Hydra's own run, which prints its debug report
                code = _run(cmd, cfg)
                if code == 130:  # interrupted (the task said so): not waiting for figures nobody will see
                    for painter in _PAINTER:
                        painter.close(now=True)
                return code
        sys.argv = [prog or f"compnet {cmd}", *rest]
        hydra.main(config_path="conf", config_name=cmd, version_base="1.3")(_task(cmd))()
        if _FAILED:
            print(f"compnet {cmd}: {len(_FAILED)} job(s) failed: {'; '.join(_FAILED)}", file=sys.stderr)
            return 1
    except KeyboardInterrupt:  # between a sweep's jobs, or before the first: Hydra's own code was running
        for painter in _PAINTER:  # not waiting for figures nobody will see
            painter.close(now=True)
        done = _finished(_ROOT[0]) if _ROOT else "no job had started"
        print(f"\ncompnet {cmd}: interrupted; {done}", file=sys.stderr)
        return 130
    finally:
        for painter in _PAINTER:  # its helpers end with the command, whatever happened
            painter.close()
    return 0


_ROOT: list[Path] = []  # the run or sweep folder of the running app, for the interruption message
_FAILED: list[str] = []  # the sweep's jobs that were refused (Hydra's local launcher runs them in this process)
_PAINTER: list[Any] = []  # a single run's figure helpers (compnet/painter.py), started by _precheck


def _hydras_own(args: list[str]) -> bool:
    """Whether Hydra runs `args` itself: its flags (`-m`, `--help`, `--cfg`, …) and a sweep asked for as an
    override (`hydra.mode=MULTIRUN`). Each job of a sweep checks itself."""
    return any(a.startswith("-") or re.fullmatch(r"\+{0,2}hydra\.mode=MULTIRUN", a) for a in args)


def _precheck(cmd: str, overrides: list[str]) -> Any:
    """A single run's configuration (Hydra's node included), composed and checked before its run folder is
    made; None when refused: a refused configuration leaves nothing behind and says why in one line."""
    from compnet import api, commands, config, runs

    try:
        cfg = api.compose(*overrides, command=cmd, with_hydra=True)
        job = _job(cfg)
        run_dir = _run_dir(cfg)
        commands.validate(job, cmd)  # the checks that import nothing heavy first: a refusal there starts nothing
        runs.check_writable(run_dir)
        if cmd == "train":
            runs.check_reusable(run_dir, job.overwrite)  # before Hydra writes its .hydra/ over a finished run's
            if job.plots:  # the figures' helpers import matplotlib while this process imports torch (the
                # engine's check below may already: engine=fused asks the kernel, measured 1.3–1.8 s later)
                with contextlib.suppress(OSError):  # none could start: the figures are drawn here
                    _PAINTER[:] = [_painter(job)]
        commands.runnable(job, cmd)
    except Exception as e:  # Hydra's, OmegaConf's and compnet's refusals alike: one line
        for painter in _PAINTER:  # refused after all: its helpers end now
            painter.close(now=True)
        _PAINTER.clear()
        message = str(e) if isinstance(e, config.ConfigError) else config.error_line(e, cmd)
        print(f"compnet {cmd}: error: {message}", file=sys.stderr)
        return None
    return cfg


def _run_dir(cfg: Any) -> Path:
    """The run folder `cfg` asks for. ${now:…} resolves once per configuration, so it is the folder `_run` makes;
    ${hydra:…} needs Hydra's configuration set, as `run_job` sets it (and restores what was there after)."""
    from hydra.core.hydra_config import HydraConfig

    hydra_config = HydraConfig.instance()
    before = hydra_config.cfg
    hydra_config.set_config(cfg)
    try:
        return Path(cfg.hydra.run.dir)
    finally:
        hydra_config.cfg = before


def _job(cfg: Any) -> Any:
    """The job's configuration: `cfg` without Hydra's node (what the task receives)."""
    import copy

    from omegaconf import open_dict

    job = copy.deepcopy(cfg)
    with open_dict(job):
        del job["hydra"]
    return job


def _run(cmd: str, cfg: Any) -> int:
    """The single run of `cfg` (composed by `_precheck`), as Hydra's run mode does it: `run_job`, the API that
    Hydra's launchers call, makes the run folder, writes .hydra/, sets up logging and calls the task. Hydra's
    `hydra.main` would compose the configuration twice more (≈0.25 s a command, measured here), and its run
    folder's time would not be the one checked. A failure that is not a refusal is reported as Hydra does.
    Returns the exit code (the task's refusal 2, an interruption 130, a failure 1)."""
    from hydra._internal.callbacks import Callbacks
    from hydra._internal.utils import run_and_report
    from hydra.core.utils import configure_log, run_job
    from hydra.types import HydraContext, RunMode
    from omegaconf import open_dict, read_write

    with read_write(cfg.hydra), open_dict(cfg.hydra):
        if cfg.hydra.mode is None:  # as Hydra's run mode records it
            cfg.hydra.overrides.hydra.append("hydra.mode=RUN")
        cfg.hydra.mode = RunMode.RUN

    def job() -> None:
        configure_log(cfg.hydra.hydra_logging, cfg.hydra.verbose)
        callbacks = Callbacks(cfg)
        callbacks.on_run_start(config=cfg, config_name=cmd)
        context = HydraContext(config_loader=None, callbacks=callbacks)  # the loader serves sweeps only
        done = run_job(_task(cmd), cfg, job_dir_key="hydra.run.dir", job_subdir_key=None, hydra_context=context)
        callbacks.on_run_end(config=cfg, config_name=cmd, job_return=done)
        _ = done.return_value  # raises the task's failure

    try:
        run_and_report(job)
    except SystemExit as e:  # returned, not raised: the command then ends without the interpreter's teardown
        return e.code if isinstance(e.code, int) else 1
    return 0


def _painter(cfg: Any) -> Any:
    """Helper processes for the figures of the run `cfg` plans (compnet/painter.py): one per core, at most one
    per figure, each warming up the layer figures of the run's depths."""
    from compnet import painter
    from compnet.methods import plan

    cells = plan(cfg)
    depths = tuple(sorted({c.depth or cfg.depth for c in cells}))
    return painter.Painter(painter.helpers_for(3 * len(cells) + (len(cells) > 1)), warm={"depths": depths})


def _task(cmd: str) -> Callable[[Any], None]:
    """The Hydra task of `cmd`: a bad value ends a single run in one line (exit 2); in a sweep it fails
    that job only (one line, in its train.log too) and the sweep's exit code (`_FAILED`)."""

    def task(cfg: Any) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from compnet import commands
        from compnet.config import ConfigError, check_overrides

        hydra_cfg = HydraConfig.get()
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        root = Path(hydra_cfg.sweep.dir if multirun else hydra_cfg.runtime.output_dir)
        _ROOT[:] = [root]
        try:
            check_overrides(list(hydra_cfg.overrides.task))  # a sweep's job: its own overrides
            getattr(commands, f"{cmd}_job")(cfg, *_PAINTER[:1] if cmd == "train" else ())
        except (ConfigError, OSError) as e:  # a bad value; a missing, unwritable or wrong kind of path
            if not multirun:
                print(f"compnet {cmd}: error: {e}", file=sys.stderr)
                sys.exit(2)
            # one bad job of a sweep fails that job, not the sweep: said in one line and in its train.log
            job = f"job {hydra_cfg.job.num} ({','.join(hydra_cfg.overrides.task)})"
            logging.getLogger("compnet").error("%s: error: %s", job, e)
            print(f"compnet {cmd}: {job}: error: {e}", file=sys.stderr)
            if os.environ.get("SUBMITIT_EXECUTOR"):  # a job in a process of its own: only an error reaches the sweep
                raise
            _FAILED.append(job)
        except KeyboardInterrupt:
            print(f"\ncompnet {cmd}: interrupted; {_finished(root)}", file=sys.stderr)
            sys.exit(130)

    return task


def _finished(root: Path) -> str:
    """What an interrupted run or sweep leaves: how many cells finished, where, and how to see the rest."""
    from compnet.runs import find_runs

    done = len(find_runs([root])[0]) if root.exists() else 0
    return f"{done} finished cell(s) kept in {root}" + (
        f"; `compnet table {root}` names the unfinished" if done else ""
    )


def _table(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="compnet table", description="The paper's table from run or sweep folders.")
    p.add_argument("paths", nargs="+", type=Path, help="run, sweep or experiment folders")
    p.add_argument("--out", type=Path, help="where to write table.md/.tex/.csv (default: the folder holding the runs)")
    p.add_argument("--paper", action="store_true", help="also write paper_vs_ours.md: every cell against the paper")
    p.add_argument("--no-plot", action="store_true", help="skip trials.png")
    p.add_argument("--strict", action="store_true", help="exit 1 when a job or cell is missing or unfinished")
    args = p.parse_args(argv)
    from compnet import commands

    return commands.table(args.paths, args.out, args.paper, not args.no_plot, args.strict)


def _plot(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="compnet plot", description="Redraw a run's figures from its saved results.")
    p.add_argument("paths", nargs="+", type=Path, help="run folders (or folders holding them)")
    args = p.parse_args(argv)
    from compnet import commands

    return commands.plot(args.paths)


if __name__ == "__main__":
    sys.exit(main())

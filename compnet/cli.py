"""compnet's command line.

    compnet train  [OVERRIDES]    train `trials` trials of a configuration (a Hydra app)
    compnet regions [OVERRIDES]   linear-region studies without training (a Hydra app)
    compnet table PATH...         the paper's table layout from run or sweep folders
    compnet plot PATH...          redraw a run's figures from its saved results

Heavy modules (torch, matplotlib, pandas) are imported only once a command needs them, so `compnet --help`
and Hydra's own `--help`, `--cfg job` and tab completion answer at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Callable

log = logging.getLogger("compnet")

USAGE = """usage: compnet COMMAND [ARGS]

Compositional ReLU networks (Milkert, Hyde & Laine, ICML 2025): train, tabulate, plot.

commands:
  train [OVERRIDES]   train `trials` trials of one configuration, e.g.
                        compnet train target=x3 init=manifold
                        compnet train -m target=x3,x11 init=kaiming,manifold
                        compnet train experiment=table1
  regions [OVERRIDES] count linear regions versus depth and width, no training
  table PATH...       the paper's table (table.md/.tex/.csv) from run or sweep folders
  plot PATH...        redraw fit.png, loss.png, layers.png from saved results

`compnet train --help` lists the config groups and options (Hydra)."""

COMMANDS = ("train", "regions", "table", "plot")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv[0] == "-sc":
        return _completion(argv)
    cmd, rest = argv[0], argv[1:]
    if cmd == "train":
        return _hydra("train", "train", _train, rest)
    if cmd == "regions":  # `from` is a Python keyword, so the schema's field is from_run
        rest = [f"from_run={a[5:]}" if a.startswith("from=") else a for a in rest]
        return _hydra("regions", "regions", _regions, rest)
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
        return _hydra("train", "train", _train, argv, prog="compnet")
    if len(words) < 2 or (len(words) == 2 and not line.endswith(" ")):  # completing the command itself
        prefix = words[1] if len(words) == 2 else ""
        print(" ".join(c for c in COMMANDS if c.startswith(prefix)))
        return 0
    cmd = words[1]
    if cmd not in ("train", "regions"):
        return 0
    # Hydra completes its own command line: drop the subcommand from it
    start = line.index(cmd)
    os.environ["COMP_LINE"] = line[:start] + line[start + len(cmd) + 1 :]
    os.environ["COMP_POINT"] = str(int(os.environ.get("COMP_POINT", len(line))) - len(cmd) - 1)
    return _hydra(cmd, cmd, _train if cmd == "train" else _regions, argv, prog="compnet")


def _hydra(cmd: str, config_name: str, task: Callable, rest: list[str], prog: str | None = None) -> int:
    import hydra

    from compnet.config import register

    register()
    sys.argv = [prog or f"compnet {cmd}", *rest]
    hydra.main(config_path="conf", config_name=config_name, version_base="1.3")(task)()
    return 0


def _checked(cfg, cmd: str) -> None:
    from compnet import config

    try:
        (config.validate if cmd == "train" else config.validate_regions)(cfg)
    except config.ConfigError as e:
        print(f"compnet {cmd}: error: {e}", file=sys.stderr)
        sys.exit(2)


def _output_dir() -> Path:
    from hydra.core.hydra_config import HydraConfig

    return Path(HydraConfig.get().runtime.output_dir)


def _train(cfg) -> None:
    _checked(cfg, "train")
    from compnet import kernel, report, tables
    from compnet.experiment import run

    if cfg.plots:  # pyplot costs ~0.6 s of start-up: only when drawing
        from compnet import plots

    out = _output_dir()
    if cfg.engine == "auto" and (why := kernel.unavailable()):
        log.warning("the fused engine is unavailable, training with torch's ops (Tables 1+2 ≈2.8× slower): %s", why)
    results, wall = run(cfg)
    single = len(results) == 1 and not cfg.experiment.methods and not cfg.experiment.targets
    metric = "test_mse" if cfg.test_points else "mse"  # what the table shows: held-out MSE where there is one
    summaries = []
    for r in results:
        folder = out if single else out / r.cell.name
        s = report.write_cell(folder, r, cfg, wall, len(results))
        s["folder"] = str(folder)
        summaries.append(s)
        if cfg.plots:
            plots.draw_run(folder)
        log.info(
            "%-22s %s min %.2e  mean %.2e  collapsed %d/%d  diverged %d",
            r.cell.name, metric.replace("_", " "), s[f"min_{metric}"], s[f"mean_{metric}"], s["n_collapsed"], s["n_trials"], s["n_diverged"],
        )
    log.info("trained %d networks in %.1f s -> %s", len(results) * cfg.trials, wall, out)
    if not single:
        print(tables.write_tables(out, tables.table(summaries, metric)))
        if cfg.plots:
            plots.draw_trials(out, summaries, metric)


def _regions(cfg) -> None:
    _checked(cfg, "regions")
    from compnet import study

    study.main(cfg, _output_dir())


def _table(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="compnet table", description="The paper's table from run or sweep folders.")
    p.add_argument("paths", nargs="+", type=Path, help="run, sweep or experiment folders")
    p.add_argument("--out", type=Path, help="where to write table.md/.tex/.csv (default: the folder holding the runs)")
    p.add_argument("--paper", action="store_true", help="also write paper_vs_ours.md: every cell against the paper")
    p.add_argument("--no-plot", action="store_true", help="skip trials.png")
    args = p.parse_args(argv)
    from compnet import tables

    summaries, missing = tables.find_runs(args.paths)
    for m in missing:
        print(f"compnet table: missing: {m}", file=sys.stderr)
    if not summaries:
        print(f"compnet table: error: no finished runs (summary.json) under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 1
    out = args.out or Path(os.path.commonpath([str(p.resolve()) for p in args.paths]))
    if out.is_file():
        out = out.parent
    out.mkdir(parents=True, exist_ok=True)
    metric = tables.metric_of(summaries)
    md = tables.write_tables(out, tables.table(summaries, metric), missing)
    print(md)
    if args.paper:
        print("\n" + tables.write_comparison(out, summaries))
    if not args.no_plot:
        from compnet import plots

        plots.draw_trials(out, summaries, metric)
    print(f"\nwrote {', '.join(str(out / f) for f in tables.TABLE_FILES)}", file=sys.stderr)
    return 0


def _plot(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="compnet plot", description="Redraw a run's figures from its saved results.")
    p.add_argument("paths", nargs="+", type=Path, help="run folders (or folders holding them)")
    args = p.parse_args(argv)
    from compnet import plots

    folders = sorted({f.parent for path in args.paths for f in path.rglob("summary.json")})
    if not folders:
        print(f"compnet plot: error: no run (summary.json) under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 1
    for folder in folders:
        for f in plots.draw_run(folder):
            print(f)
    return 0


if __name__ == "__main__":
    sys.exit(main())

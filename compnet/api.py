"""The Python API: the pipeline `compnet train` runs, in-process (a notebook, a script, a test).

    import compnet
    res = compnet.train("target=x3", "init=manifold", "trials=5", out="runs/a")
    res.trials          # pandas, one row per trial (the columns of trials.csv, and `cell`)
    res.summaries       # one dict per cell, as in summary.json
    compnet.load_run("runs/a")   # the same object, read back from disk
    compnet.classify("trials=5", out=None).curves   # `compnet classify`, in-process

The overrides are those of the command line, composed by Hydra's compose API against the packaged configs
and checked the same way, so a result here is bit for bit the CLI's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from compnet import commands
from compnet.runs import Run


def compose(*overrides: str, command: str = "train", with_hydra: bool = False) -> Any:
    """The configuration `compnet COMMAND OVERRIDES` would run (unknown keys, bad types and overrides that
    contradict each other raise here); `with_hydra` keeps Hydra's own node (the run folder)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from compnet.config import check_overrides, register

    register(command)
    check_overrides(list(overrides))
    with initialize_config_module(config_module="compnet.conf", version_base="1.3"):
        return hydra_compose(command, overrides=list(overrides), return_hydra_config=with_hydra)


def train(*overrides: str, out: str | Path | None = None) -> Run:
    """Train as `compnet train OVERRIDES` does; write the run folder at `out` (nothing when None)."""
    return commands.train(compose(*overrides), None if out is None else Path(out))


def classify(*overrides: str, out: str | Path | None = None) -> Any:
    """Run `compnet classify OVERRIDES` in-process; write the run folder at `out` (nothing when None). Returns a
    `classifier.Classification` (curves, summary, folder)."""
    return commands.classify(compose(*overrides, command="classify"), None if out is None else Path(out))

"""Shared by the scripts: train into a chosen folder (in-process, through the Python API) and provenance."""

from __future__ import annotations

import logging
import shlex
import sys
import time
from datetime import date, datetime
from pathlib import Path

import compnet
from compnet.runs import source_commit

# the console script of this interpreter's environment: `make bench` times the command a user runs
COMPNET = str(Path(sys.executable).with_name("compnet"))
logging.basicConfig(level=logging.INFO, format="[%(asctime)s] %(message)s")


def stamp_dir(kind: str) -> Path:
    now = datetime.now()
    return Path("outputs") / now.strftime("%Y-%m-%d") / f"{now.strftime('%H-%M-%S-%f')}-{kind}"


def train(folder: Path, *overrides: str) -> list[dict]:
    """`compnet train OVERRIDES` with its run folder at `folder`; returns the summaries it wrote."""
    t0 = time.perf_counter()
    print("$ compnet train", " ".join(overrides), f"  # -> {folder}", flush=True)
    run = compnet.train(*overrides, out=folder)
    print(f"  ({time.perf_counter() - t0:.1f} s)\n", flush=True)
    return run.summaries


def provenance(target: str, extra: list[str], **make_vars: str) -> str:
    """One line naming the date, the commit and the exact command (`make paper SEEDS=0,1 ARGS='trials=10'`),
    for the top of a generated table."""
    given = "".join(f" {k}={shlex.quote(v)}" for k, v in make_vars.items())
    cmd = f"make {target}{given}" + (f" ARGS={shlex.quote(' '.join(extra))}" if extra else "")
    return f"Produced on {date.today()} at commit {source_commit() or 'unknown'} by `{cmd}`."

"""Shared by the scripts: run `compnet train` into a chosen folder and read back what it wrote."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path

from compnet.tables import find_runs

# the console script of this interpreter's environment: `make paper` runs .venv/bin/python without activating it
COMPNET = str(Path(sys.executable).with_name("compnet"))


def stamp_dir(kind: str) -> Path:
    now = datetime.now()
    return Path("outputs") / now.strftime("%Y-%m-%d") / f"{now.strftime('%H-%M-%S-%f')}-{kind}"


def train(folder: Path, *overrides: str) -> list[dict]:
    """`compnet train OVERRIDES` with its run folder at `folder`; returns the summaries it wrote."""
    t0 = time.perf_counter()
    cmd = [COMPNET, "train", *overrides, f"hydra.run.dir={folder}"]
    print("$ compnet", " ".join(cmd[1:]), flush=True)
    p = subprocess.run(cmd)
    if p.returncode:
        sys.exit(f"{' '.join(cmd)} failed with exit code {p.returncode}")
    summaries, missing = find_runs([folder])
    if missing:
        sys.exit(f"incomplete run: {missing}")
    print(f"  ({time.perf_counter() - t0:.1f} s)\n", flush=True)
    return summaries


def commit() -> str:
    p = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout
    return (p.stdout.strip() or "unknown") + ("+dirty" if dirty.strip() else "")


def provenance(target: str, extra: list[str]) -> str:
    """One line naming the date, the commit and the exact command, for the top of a generated table."""
    cmd = f"make {target}" + (f" ARGS={shlex.quote(' '.join(extra))}" if extra else "")
    return f"Produced on {date.today()} at commit {commit()} by `{cmd}`."

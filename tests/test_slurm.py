"""Sweeps beyond one process, through Hydra's submitit launcher (the `slurm` extra): as jobs of a real one-node
Slurm cluster that scripts/slurm.sh installs and starts on this machine, as local processes, and compnet unchanged
where the extra is not installed. The extra is installed into the running environment when missing."""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from test_cli import COMPNET

ROOT = Path(__file__).resolve().parents[1]
SLURM_SH = str(ROOT / "scripts" / "slurm.sh")
# README's "Running on a cluster" runs these
SWEEP = ["-m", "target=x3,x11", "trials=2", "epochs=5", "plots=false"]
SLURM = [
    "hydra/launcher=slurm",
    "hydra.launcher.partition=debug",
    "hydra.launcher.timeout_min=5",
    "hydra.launcher.mem_gb=1",
]
# a hung launcher fails the test instead of CI; a 2-job sweep takes 15-30 s on 2 busy cores
TIMEOUT_S = 240


def run(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)


def ok(p: subprocess.CompletedProcess[str]) -> str:
    assert p.returncode == 0, f"{' '.join(p.args)}: exit {p.returncode}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p.stdout


@pytest.fixture(scope="session")
def submitit_extra() -> None:
    """The `slurm` extra in this environment, installed from constraints.txt when missing."""
    try:
        importlib.metadata.version("hydra-submitit-launcher")
    except importlib.metadata.PackageNotFoundError:
        pip = [sys.executable, "-m", "pip", "install", "--quiet", "-c", "constraints.txt", "-e", ".[slurm]"]
        ok(subprocess.run(pip, cwd=ROOT, capture_output=True, text=True, timeout=600))


def _why_no_slurm() -> str | None:
    """Why scripts/slurm.sh cannot work here at all; any other failure of it fails the test."""
    if os.geteuid() != 0:
        return "not root: scripts/slurm.sh installs Debian packages, writes /etc/slurm and starts daemons as root"
    if shutil.which("apt-get") is None and shutil.which("slurmctld") is None:
        return "neither apt-get nor slurmctld: scripts/slurm.sh installs Debian's Slurm packages"
    return None


@pytest.fixture(scope="session")
def slurm_cluster(submitit_extra: None) -> Iterator[None]:
    """A running one-node Slurm cluster (partition `debug`); stopped at the end unless it ran before."""
    if why := _why_no_slurm():
        pytest.skip(f"no Slurm cluster: {why}")
    ran_before = run(SLURM_SH, "status").returncode == 0
    ok(subprocess.run([SLURM_SH, "up"], capture_output=True, text=True, timeout=600))  # a first install: ~1 min
    yield
    if not ran_before:
        ok(run(SLURM_SH, "down"))


def sweep_jobs(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The sweep folder under `tmp_path` and its finished jobs: target -> the job's id in Hydra's record."""
    (sweep,) = (tmp_path / "outputs").glob("*/*-multirun")
    jobs = {}
    for summary in sweep.glob("*/summary.json"):
        job = OmegaConf.load(summary.parent / ".hydra" / "hydra.yaml").hydra.job
        jobs[json.loads(summary.read_text())["target"]] = str(job.id)
    return sweep, jobs


def sacct_states(job_ids: list[str]) -> dict[str, str]:
    """Slurm's accounting of the jobs: job id -> state (RUNNING until slurmctld has reported the end)."""
    out = ok(run("sacct", "-n", "-X", "-P", "-o", "JobID,State,Partition", "-j", ",".join(job_ids)))
    return {i: f"{state} {partition}" for i, state, partition in (line.split("|") for line in out.splitlines())}


@pytest.mark.slow
def test_a_sweep_runs_as_slurm_jobs_and_tabulates(slurm_cluster: None, tmp_path: Path) -> None:
    ok(run(COMPNET, "train", *SWEEP, *SLURM, cwd=tmp_path))
    sweep, jobs = sweep_jobs(tmp_path)
    assert sorted(jobs) == ["x11", "x3"]
    # each job was a task of one Slurm job array (`<array>_<task>`), and submitit started it as that Slurm job
    assert len({j.split("_")[0] for j in jobs.values()}) == 1, jobs
    for job_id in jobs.values():
        assert f"JobEnvironment(job_id={job_id}," in (sweep / ".submitit" / f"{job_id}_0_log.out").read_text()
    assert not [p for p in (sweep / ".submitit").iterdir() if p.is_dir()]  # one log folder, no per-job ones
    deadline = time.monotonic() + 30
    while (states := sacct_states(list(jobs.values()))) != dict.fromkeys(jobs.values(), "COMPLETED debug"):
        assert time.monotonic() < deadline, states
        time.sleep(0.5)
    table = ok(run(COMPNET, "table", str(sweep), cwd=tmp_path))
    assert "x3 Min" in table and "x11 Min" in table, table
    assert (sweep / "table.md").is_file()


@pytest.mark.slow
def test_a_sweep_runs_as_local_processes_and_a_refused_job_fails_it(submitit_extra: None, tmp_path: Path) -> None:
    sweep_args = ["-m", "lr=0.001,-1", "trials=2", "epochs=5", "points=20", "plots=false", "hydra/launcher=local"]
    p = run(COMPNET, "train", *sweep_args, cwd=tmp_path)
    # the refusal happens in the job's own process: it reaches the sweep as an error, not through compnet's list
    assert p.returncode == 1 and "lr=-1.0: the learning rate must be finite" in p.stderr, p.stderr
    sweep, jobs = sweep_jobs(tmp_path)
    (job_id,) = jobs.values()  # the other job ran on: it finished
    assert f"JobEnvironment(job_id={job_id}," in (sweep / ".submitit" / f"{job_id}_0_log.out").read_text()


@pytest.mark.slow
def test_without_the_extra_compnet_is_unchanged(tmp_path: Path) -> None:
    """A regular `hydra_plugins` package first on the path hides every installed Hydra plugin, as if the extra
    were not installed: help and runs work, and the launcher presets say what is missing."""
    (tmp_path / "hidden" / "hydra_plugins").mkdir(parents=True)
    (tmp_path / "hidden" / "hydra_plugins" / "__init__.py").touch()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "hidden")}
    assert "trials" in ok(run(COMPNET, "train", "--help", cwd=tmp_path, env=env))
    ok(run(COMPNET, "train", "trials=1", "epochs=1", "points=10", "plots=false", cwd=tmp_path, env=env))
    assert list((tmp_path / "outputs").glob("*/*-train/summary.json"))
    p = run(COMPNET, "train", "-m", "trials=1", "hydra/launcher=slurm", cwd=tmp_path, env=env)
    assert p.returncode == 1 and "submitit_slurm" in p.stderr, p.stderr

"""The installed `compnet` command end to end, in a scratch folder: the files a run leaves and the tables."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from compnet import kernel
from compnet.cli import main


def _installed() -> str:
    """The console script beside this interpreter (`make test` runs the venv's pytest without activating
    it), else on PATH. Not installed, every end-to-end test fails: none is skipped."""
    beside = Path(sys.executable).with_name("compnet")
    return str(beside) if beside.is_file() else (shutil.which("compnet") or "compnet-is-not-installed")


COMPNET = _installed()

TINY = ["trials=3", "epochs=4", "points=30"]
TRIAL_COLUMNS = {
    "trial",
    "seed",
    "mse",
    "mse_init",
    "diverged",
    "collapsed",
    "pieces_init",
    "pieces_final",
    "wasted_final",
}
SUMMARY_KEYS = {
    "target",
    "init",
    "regime",
    "n_trials",
    "min_mse",
    "mean_mse",
    "median_mse",
    "max_mse",
    "n_collapsed",
    "n_diverged",
    "wall_seconds",
    "mean_pieces_init",
    "mean_pieces_final",
    "mean_wasted_final",
}


def compnet(tmp_path, *args, ok=True, env=None):
    p = subprocess.run([COMPNET, *args], cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env)
    if ok:
        assert p.returncode == 0, p.stderr[-3000:]
    return p


def run_dirs(tmp_path):
    return sorted(d for d in (tmp_path / "outputs").glob("*/*") if d.is_dir())


def test_top_level_help_and_unknown_command(capsys):
    assert main(["--help"]) == 0
    assert "compnet train" in capsys.readouterr().out
    assert main(["trian"]) == 2
    assert "valid commands: train, regions, classify, table, plot" in capsys.readouterr().err


@pytest.mark.slow
def test_train_leaves_a_complete_run_folder(tmp_path):
    compnet(tmp_path, "train", "target=x3", "init=manifold", *TINY)
    (run,) = run_dirs(tmp_path)
    assert run.name.endswith("-train")
    assert len(run.name.split("-")[-2]) == 6  # microseconds: two runs in one second never share a folder
    for f in (
        "trials.csv",
        "summary.json",
        "losses.npz",
        "weights.npz",
        "fit.png",
        "loss.png",
        "layers.png",
        "train.log",
        "timings.json",
    ):
        assert (run / f).is_file(), f
    assert (run / ".hydra" / "config.yaml").is_file()
    timings = json.loads((run / "timings.json").read_text())  # the figures were drawn by helper processes
    phases = ("startup", "training", "analysis", "writing", "figures")
    assert all(timings[k] >= 0 for k in phases) and sum(timings[k] for k in phases) <= timings["total"] + 0.01
    assert timings["figure_helpers"]["jobs"] == 3  # a run is one cell: a job per figure
    assert "timings (s): startup" in (run / "train.log").read_text()  # its last line: flushed at the quick exit
    trials = pd.read_csv(run / "trials.csv")
    assert TRIAL_COLUMNS | {"mse_pretrain", "pieces_pretrain"} <= set(trials.columns)
    assert list(trials.trial) == [0, 1, 2]
    assert (trials.pieces_init == 32).all() and (trials.pieces_pretrain == 32).all()
    s = json.loads((run / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(s)
    assert s["settings"]["engine"] == ("torch" if kernel.unavailable() else "fused")  # engine=auto resolved
    assert (s["target"], s["init"], s["regime"], s["n_trials"]) == ("x3", "manifold", "pretrain", 3)
    assert s["min_mse"] == pytest.approx(trials.mse.min()) and s["mean_mse"] == pytest.approx(trials.mse.mean())
    losses = np.load(run / "losses.npz")
    assert losses["loss_pretrain"].shape == (5, 3) and losses["loss_train"].shape == (5, 3)
    assert np.allclose(losses["loss_train"][-1], trials.mse)
    # same config and seed: identical numbers
    compnet(tmp_path, "train", "target=x3", "init=manifold", *TINY, "plots=false")
    again = pd.read_csv(run_dirs(tmp_path)[-1] / "trials.csv")
    pd.testing.assert_frame_equal(trials, again)
    # the figures are redrawn from the saved results (in this process: the pixels the helpers drew)
    drawn = {f: np.asarray(Image.open(run / f)) for f in ("fit.png", "loss.png")}
    for f in drawn:
        (run / f).unlink()
    out = compnet(tmp_path, "plot", str(run)).stdout
    assert (run / "fit.png").is_file() and "loss.png" in out
    assert all(np.array_equal(np.asarray(Image.open(run / f)), pixels) for f, pixels in drawn.items())


@pytest.mark.slow
def test_sweep_and_table(tmp_path):
    compnet(tmp_path, "train", "-m", "target=x3,x11", "init=kaiming,manifold", *TINY, "plots=false")
    (sweep,) = run_dirs(tmp_path)
    assert sweep.name.endswith("-train-multirun")
    jobs = sorted(d for d in sweep.iterdir() if d.is_dir())
    assert len(jobs) == 4 and all((j / "summary.json").is_file() for j in jobs)
    p = compnet(tmp_path, "table", str(sweep))
    for f in ("table.md", "table.tex", "table.csv", "trials.png"):
        assert (sweep / f).is_file(), f
    assert "Differentiability enforced" in p.stdout and "Default network" in p.stdout
    csv = pd.read_csv(sweep / "table.csv", index_col=0)
    assert list(csv.index) == ["Default network", "Differentiability enforced"]  # the paper's order
    assert {"x3 Min", "x3 Mean", "x11 Min", "x11 Mean"} <= set(csv.columns)
    s = json.loads((jobs[0] / "summary.json").read_text())
    assert csv.loc[
        "Default network" if s["init"] == "kaiming" else "Differentiability enforced", f"{s['target']} Min"
    ] == pytest.approx(s["min_mse"], rel=1e-2)
    assert "e-0" in (sweep / "table.md").read_text()  # scientific notation
    assert "\\begin{tabular}" in (sweep / "table.tex").read_text()

    # against the paper: every cell with the paper's number and the ratio
    compnet(tmp_path, "table", str(sweep), "--paper", "--no-plot")
    comparison = (sweep / "paper_vs_ours.md").read_text()
    enforced_x3 = next(
        line
        for line in comparison.splitlines()
        if "Differentiability enforced" in line and "| x3 " in line and "min mse" in line
    )
    ours = next(
        s["min_mse"]
        for s in map(lambda j: json.loads((j / "summary.json").read_text()), jobs)
        if s["init"] == "manifold" and s["target"] == "x3"
    )
    assert "7.86e-08" in enforced_x3 and f"{ours:.2e}" in enforced_x3 and f"{ours / 7.86e-8:.2g}" in enforced_x3

    # an interrupted sweep: a job Hydra started but that never finished is named, the rest tabulated
    (jobs[-1] / "summary.json").unlink()
    p = compnet(tmp_path, "table", str(sweep))
    assert str(jobs[-1]) in p.stderr and "failed or interrupted" in p.stderr
    assert "Missing" in (sweep / "table.md").read_text()


@pytest.mark.slow
def test_experiment_runs_all_cells_in_one_job(tmp_path):
    p = compnet(tmp_path, "train", "experiment=table3", "trials=2", "epochs=3", "plots=false")
    (run,) = run_dirs(tmp_path)
    cells = sorted(d.name for d in run.iterdir() if (d / "summary.json").is_file())
    assert cells == sorted(f"{t}-{m}" for t in ("x3", "x11", "sin", "tanh") for m in ("default", "enforced"))
    s = json.loads((run / "x3-enforced" / "summary.json").read_text())
    assert s["settings"]["test_points"] == 10 and "min_test_mse" in s
    assert "tanh Min" in p.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    "override, needle", [("depth=0", "depth=0"), ("init.peak_high=1.5", "init.peak_high=1.5"), ("lr=-1", "lr=-1.0")]
)
def test_bad_value_is_refused_before_any_work(tmp_path, override, needle):
    p = compnet(tmp_path, "train", override, ok=False)
    assert p.returncode != 0
    assert needle in p.stderr and "Traceback" not in p.stderr and len(p.stderr.splitlines()) == 1
    assert not (tmp_path / "outputs").exists()  # refused before Hydra made a run folder


@pytest.mark.slow
def test_engine_without_a_compiler(tmp_path):
    """No C compiler: `engine=auto` warns and trains with torch (and says so in summary.json);
    `engine=fused` is refused before any work, naming the reason."""
    env = os.environ | {"CC": "no-such-cc", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    p = compnet(tmp_path, "train", "target=x3", "init=kaiming", *TINY, "plots=false", env=env)
    assert "fused engine is unavailable" in p.stdout and "no-such-cc" in p.stdout  # the log goes to stdout
    (run,) = run_dirs(tmp_path)
    assert json.loads((run / "summary.json").read_text())["settings"]["engine"] == "torch"
    p = compnet(tmp_path, "train", "target=x3", "engine=fused", *TINY, env=env, ok=False)
    assert (
        p.returncode == 2 and "engine=fused: the kernel does not build here" in p.stderr and "Traceback" not in p.stderr
    )
    assert len(run_dirs(tmp_path)) == 1  # the refused run made no folder


@pytest.mark.slow
def test_unknown_target_names_the_valid_ones(tmp_path):
    p = compnet(tmp_path, "train", "target=x4", ok=False)
    assert p.returncode != 0
    assert all(t in p.stderr for t in ("x2", "x3", "x11", "sin", "tanh"))


@pytest.mark.slow
def test_hydra_features(tmp_path):
    p = compnet(tmp_path, "train", "epochs=7", "--cfg", "job", "--resolve")
    assert "finetune_epochs: 7" in p.stdout
    assert "target" in compnet(tmp_path, "train", "--help").stdout
    assert not (tmp_path / "outputs").exists()


@pytest.mark.slow
@pytest.mark.parametrize(
    "line, expected",
    [
        ("compnet tr", ["train"]),
        ("compnet train init=ra", ["init=raai", "init=rai"]),
        ("compnet train target=x1", ["target=x11"]),
    ],
)
def test_tab_completion(tmp_path, line, expected):
    env = {**os.environ, "COMP_LINE": line, "COMP_POINT": str(len(line))}
    p = subprocess.run(
        [COMPNET, "-sc", "query=bash"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert p.stdout.split() == expected
    install = subprocess.run(
        [COMPNET, "-sc", "install=bash"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert install.stdout.rstrip().endswith("hydra_bash_completion compnet")


def test_a_single_run_composes_its_configuration_once(tmp_path, monkeypatch):
    """The pre-check's configuration is the one the run gets (Hydra's `hydra.main` composed it twice more, ≈0.25 s
    of every command): one composition, into the folder it checked, with Hydra's .hydra/ files as Hydra writes
    them."""
    from hydra._internal.hydra import Hydra
    from omegaconf import OmegaConf

    composed = []
    real = Hydra.compose_config
    monkeypatch.setattr(Hydra, "compose_config", lambda self, *a, **k: composed.append(k) or real(self, *a, **k))
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "plots=false", "hydra.run.dir=here"]) == 0
    assert len(composed) == 1
    saved = OmegaConf.load(tmp_path / "here" / ".hydra" / "hydra.yaml").hydra
    assert (saved.mode, saved.job.name, list(saved.overrides.task)) == ("RUN", "train", [*TINY, "plots=false"])
    assert list(saved.overrides.hydra) == ["hydra.run.dir=here", "hydra.mode=RUN"]
    assert saved.runtime.output_dir == str(tmp_path / "here")
    assert (
        OmegaConf.load(tmp_path / "here" / ".hydra" / "config.yaml").trials == 3
        and (tmp_path / "here" / "summary.json").is_file()
    )


def test_the_folder_the_pre_check_checks_is_the_one_the_run_makes(tmp_path, monkeypatch):
    """The default run folder is named by the time (${now:…}, to the microsecond): the pre-check's check that it
    holds no finished run must be of the folder the run then writes, not of one named a moment earlier."""
    from compnet import runs

    checked = []
    real = runs.check_reusable
    monkeypatch.setattr(
        runs, "check_reusable", lambda folder, overwrite: checked.append(folder) or real(folder, overwrite)
    )
    monkeypatch.chdir(tmp_path)
    assert main(["train", *TINY, "plots=false"]) == 0
    (made,) = run_dirs(tmp_path)
    assert checked and checked[0].resolve() == made.resolve()


def test_single_run_edges_as_hydra_runs_them(tmp_path, monkeypatch, capsys):
    """What a single run's own path (`cli._run`) must do as `hydra.main` did: a sweep asked for as an override
    sweeps, a run folder may use the ${hydra:…} resolver, and a refusal inside the task is an exit code (not a
    SystemExit out of `main`, which skipped the quick exit)."""
    from compnet import commands, config

    monkeypatch.chdir(tmp_path)
    assert main(["train", "hydra.mode=MULTIRUN", "target=x3,x11", *TINY, "plots=false"]) == 0
    (sweep,) = tmp_path.glob("outputs/*/*-multirun")
    assert sorted(json.loads(p.read_text())["target"] for p in sweep.glob("*/summary.json")) == ["x11", "x3"]
    assert main(["train", *TINY, "plots=false", "hydra.run.dir=runs/${hydra:job.name}"]) == 0
    assert (tmp_path / "runs" / "train" / "summary.json").is_file()

    def refuse(cfg, painter=None):
        raise config.ConfigError("refused inside the task")

    monkeypatch.setattr(commands, "train_job", refuse)
    assert main(["train", *TINY, "plots=false"]) == 2
    assert "refused inside the task" in capsys.readouterr().err


def test_table_without_runs(tmp_path, capsys):
    assert main(["table", str(tmp_path)]) == 1
    assert "no finished runs" in capsys.readouterr().err


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))

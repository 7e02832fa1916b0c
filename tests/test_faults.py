"""When things go wrong: bad values and paths refused in one line before any folder is made, interrupted
runs and sweeps that keep what finished and name what did not, corrupt files skipped and named."""

import functools
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from test_cli import COMPNET, compnet

import compnet as compnet_api
from compnet import commands
from compnet.config import ConfigError

TINY = ["trials=2", "epochs=3", "points=20", "plots=false"]
cli = functools.partial(compnet, ok=False)  # the installed command in a folder; these runs may fail


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, needle",
    [
        (["lr=inf"], "lr=inf: the learning rate must be finite"),
        (["lr=nan"], "lr=nan: the learning rate must be finite"),
        (["+gpus=1"], "unknown key 'gpus'"),
        (["device=cuda"], "device=cuda: torch"),  # no CUDA here (CI has none either)
        (["engine=fused", "device=cuda"], "engine=fused runs on the CPU only"),
        (["trial_start=-1"], "trial_start=-1: need trial_start >= 0"),
        (["+model.width=8"], "unknown key 'model.width'"),
        (["trails=5"], "unknown key 'trails'"),
        (["lr=abc"], "lr=abc: Value 'abc'"),
        (["target=x4"], "unknown target 'x4'; valid: custom, file, r3, sin, tanh, x11, x2, x3, x3_minus_x"),
        (
            ["experiment=table1", "target=sin"],
            "experiment=table1 sets the targets itself, so target=sin would be ignored",
        ),
        (["experiment=table3", "init=kaiming"], "so init=kaiming would be ignored"),
        (["experiment.methods=[enforced]", "init=kaiming"], "experiment.methods sets the methods itself"),
        (["experiment=depth", "depth=7"], "experiment=depth sets the depths itself, so depth=7 would be ignored"),
        (["experiment.depths=[3,0]"], "experiment.depths=[3, 0]: every depth must be >= 1"),
        (["experiment.depths=[3,3]"], "a depth is listed twice"),
        (["hydra.run.dir=/proc/compnet-x"], "cannot create a folder in /proc"),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_folder(tmp_path, args, needle):
    p = cli(tmp_path, "train", *args)
    assert p.returncode == 2, p.stderr
    assert p.stderr.splitlines() == [p.stderr.strip()] and needle in p.stderr, p.stderr
    assert "+gpus" not in p.stderr and "To append" not in p.stderr  # no advice to add unknown keys
    assert list(tmp_path.iterdir()) == []


def test_a_run_refused_after_its_figure_helpers_started_ends_them(tmp_path, monkeypatch, capsys):
    """The engine's checks (here: no CUDA) run after the figure helpers start, so that they warm up while
    torch is imported: a refusal there ends them (none left running) and still leaves no folder."""
    from compnet import cli, config

    started = []  # the helper processes of each painter the pre-check starts

    def recording(cfg):
        painter = real(cfg)
        started.append([h.process for h in painter._helpers])
        return painter

    real = cli._painter
    monkeypatch.setattr(cli, "_painter", recording)
    monkeypatch.chdir(tmp_path)
    config.register("train")
    assert cli._precheck("train", ["device=cuda"]) is None
    assert "device=cuda: torch" in capsys.readouterr().err
    assert len(started) == 1 and started[0] and cli._PAINTER == []  # started before the refusal, then let go
    assert all(process.poll() is not None for process in started[0])  # ended, and reaped
    assert list(tmp_path.iterdir()) == []


def test_a_finished_run_folder_is_not_reused_unless_asked(tmp_path):
    compnet_api.train("experiment=table1", "experiment.methods=[default]", *TINY, "regions_every=1", out=tmp_path)
    assert (tmp_path / "pieces.md").is_file()
    with pytest.raises(ConfigError, match="already holds a finished run"):
        compnet_api.train(*TINY, out=tmp_path)
    (tmp_path / "notes.txt").write_text("mine")
    compnet_api.train(*TINY, "overwrite=true", out=tmp_path)  # a single run where an experiment was
    assert not (tmp_path / "x3-default").exists() and not (tmp_path / "table.md").exists()
    assert not (tmp_path / "pieces.md").exists()
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "notes.txt").read_text() == "mine"
    assert len(compnet_api.load_run(tmp_path).summaries) == 1
    (tmp_path / "afile").write_text("")
    with pytest.raises(ConfigError, match="cannot create a folder"):  # refused before training, not after
        compnet_api.train(*TINY, out=tmp_path / "afile" / "run")


def _interrupt(cmd: list[str], cwd: Path, after: float, finished: int = 0) -> subprocess.CompletedProcess:
    """Start `compnet ...`, wait until its run folder exists and `finished` cells are written, let it work
    `after` seconds more, then Ctrl-C it."""
    # a suite started in the background (`make test &`) inherits an ignored SIGINT from the shell: undo that
    default_sigint = functools.partial(signal.signal, signal.SIGINT, signal.SIG_DFL)
    proc = subprocess.Popen(
        [COMPNET, *cmd], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint
    )
    deadline = time.time() + 120
    while time.time() < deadline and not (
        list(cwd.glob("outputs/*/*/")) and len(list(cwd.glob("outputs/**/summary.json"))) >= finished
    ):
        time.sleep(0.2)
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    t0 = time.time()
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(
        cmd, proc.returncode, out, err + f"\n[ended {time.time() - t0:.1f} s after Ctrl-C]"
    )


@pytest.mark.slow
def test_ctrl_c_during_training_says_what_finished_in_one_line(tmp_path):
    """An experiment on two worker threads, interrupted mid-training: it ends within seconds (the workers stop
    at their next report), exit 130, one line, no traceback."""
    p = _interrupt(
        ["train", "experiment=table1", "trials=130", "epochs=100000", "plots=false", "workers=2"], tmp_path, 4
    )
    assert p.returncode == 130, p.stderr[-2000:]
    assert "Traceback" not in p.stderr and "KeyboardInterrupt" not in p.stderr
    assert "compnet train: interrupted; 0 finished cell(s) kept in" in p.stderr
    assert float(p.stderr.rsplit("[ended ", 1)[1].split(" s")[0]) < 20


@pytest.mark.slow
def test_interrupted_sweep_keeps_what_finished_and_table_names_the_rest(tmp_path):
    """Jobs 0 and 1 of a four-job sweep finish, job 2 is interrupted, job 3 never starts: the table shows
    the finished ones and names both others; --strict makes that an error."""
    # job 2 must outlast the wait: 64 trials × 500 points × 100,000 steps take ~40 s on the fused engine
    sweep_args = ["train", "-m", "epochs=3,100000", "target=x3,x11", "trials=64", "points=500", "plots=false"]
    p = _interrupt(sweep_args, tmp_path, 3, finished=2)
    assert p.returncode == 130 and "Traceback" not in p.stderr, p.stderr[-2000:]
    (sweep,) = tmp_path.glob("outputs/*/*-multirun")
    assert "compnet train: interrupted; 2 finished cell(s) kept in" in p.stderr and sweep.name in p.stderr
    t = cli(tmp_path, "table", str(sweep), "--no-plot")
    assert t.returncode == 0
    assert "job 3 (epochs=100000, target=x11): never started" in t.stderr
    assert "no summary.json: failed or interrupted" in t.stderr
    assert "never started" in (sweep / "table.md").read_text()
    assert cli(tmp_path, "table", str(sweep), "--no-plot", "--strict").returncode == 1


def _two_runs(root: Path) -> tuple[Path, Path]:
    good, bad = root / "0-good", root / "1-bad"
    compnet_api.train(*TINY[:-1], "plots=true", out=good)
    compnet_api.train("target=x11", *TINY, out=bad)
    return good, bad


def test_corrupt_files_are_skipped_and_named(tmp_path, capsys):
    good, bad = _two_runs(tmp_path)
    (bad / "summary.json").write_text('{"target": "x11", "meth')  # truncated mid-write by a crash
    assert commands.table([tmp_path], plot=False) == 0
    out, err = capsys.readouterr()
    assert "Differentiability enforced" in out and "x11" not in out.split("Missing")[0]
    assert f"{bad / 'summary.json'} (unreadable: JSONDecodeError" in err

    (bad / "summary.json").write_text(json.dumps(compnet_api.load_run(good).summaries[0]))
    with open(bad / "weights.npz", "r+b") as f:  # truncated
        f.truncate(100)
    (bad / "losses.npz").write_bytes(b"not a zip")
    assert commands.plot([tmp_path]) == 0
    out, err = capsys.readouterr()
    assert str(good / "fit.png") in out and f"skipped {bad}: unreadable" in err
    frame, _ = commands.regions(compnet_api.compose(f"from_run={tmp_path}", "plots=false", command="regions"), None)
    assert set(frame.run) == {"0-good"}


def test_plot_draws_a_targets_readable_cells_together_when_one_is_corrupt(tmp_path, capsys):
    """An experiment's cells of one target share their axes; with one cell unreadable, `compnet plot` names it
    and still draws the others together (their shared axes), not each on its own."""
    import numpy as np

    from compnet import plots

    run = tmp_path / "run"
    methods = "experiment.methods=[default,enforced,no_pretraining]"
    compnet_api.train("experiment=table1", "experiment.targets=[x3]", methods, *TINY[:-1], out=run)
    a, b, bad = run / "x3-default", run / "x3-enforced", run / "x3-no_pretraining"
    with np.load(a / "losses.npz") as f:  # a's losses six decades lower: b's loss axis alone differs from shared
        np.savez_compressed(a / "losses.npz", **{k: v * 1e-6 for k, v in f.items()})
    (bad / "losses.npz").write_bytes(b"not a zip")
    assert commands.plot([run]) == 0
    assert f"skipped {bad}: unreadable" in capsys.readouterr().err
    drawn = (b / "loss.png").read_bytes()
    plots.draw_cells([b])
    alone = (b / "loss.png").read_bytes()
    plots.draw_cells([a, b])
    assert drawn == (b / "loss.png").read_bytes() != alone


@pytest.mark.slow
def test_unwritable_and_wrong_paths_are_one_line(tmp_path):
    good, _ = _two_runs(tmp_path / "runs")
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, code, needle in (
        (["table", str(tmp_path / "runs"), "--out", "/proc/compnet-x"], 1, "cannot write to /proc/compnet-x"),
        (["table", str(good / "summary.json")], 2, "is a file; give run, experiment or sweep folders"),
        (["regions", f"from={good / 'trials.csv'}"], 2, "is a file; give a run, experiment or sweep folder"),
        (["regions", f"from={tmp_path / 'nowhere'}"], 2, "no such folder"),
        (["regions", f"from={empty}"], 2, "no run with weights"),
        (["regions", "inits=[]"], 2, "name at least one init"),
        (["regions", "foo=1"], 2, "`compnet regions --help` lists the keys"),
    ):
        p = cli(tmp_path, *args)
        assert p.returncode == code and needle in p.stderr and "Traceback" not in p.stderr, (args, p.stderr[-1500:])
        assert len([line for line in p.stderr.splitlines() if "error" in line]) == 1
    assert len(list(tmp_path.glob("outputs/*/*"))) == 1  # only the job that passed the pre-check made a folder


def test_diverged_trials_show_in_the_table(tmp_path, capsys):
    compnet_api.train("init=kaiming", "lr=1e30", *TINY, out=tmp_path / "blown")
    compnet_api.train(*TINY, out=tmp_path / "fine")
    assert commands.table([tmp_path], plot=False) == 0
    md = (tmp_path / "table.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| Default network"))
    assert "0/2, 2 diverged" in row and row.count("—") == 2  # no finite trial: no Min, no Mean
    assert "Min and Mean cover the trials that did not diverge." in md


@pytest.mark.slow
def test_regions_help_and_completion_offer_only_its_own_keys(tmp_path):
    help_text = cli(tmp_path, "regions", "--help").stdout
    assert "draws=50" in help_text and "target=" not in help_text and "experiment" not in help_text
    for typed, train_only in (("ta", "target="), ("ex", "experiment="), ("in", "init=")):
        line = f"compnet regions {typed}"
        env = {**os.environ, "COMP_LINE": line, "COMP_POINT": str(len(line))}
        query = [COMPNET, "-sc", "query=bash"]
        p = subprocess.run(query, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
        assert train_only not in p.stdout.split(), (typed, p.stdout)
    assert "inits." in p.stdout.split()  # its own key is offered (a list: Hydra completes `inits.`)


@pytest.mark.slow
def test_one_bad_job_fails_that_job_not_the_sweep(tmp_path):
    p = cli(tmp_path, "train", "-m", "lr=-1,0.001", *TINY)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "job 0 (lr=-1," in p.stderr and "the learning rate must be finite and > 0" in p.stderr
    assert "1 job(s) failed" in p.stderr.splitlines()[-1]
    (sweep,) = tmp_path.glob("outputs/*/*-multirun")
    (good,) = sweep.glob("1-*")
    (bad,) = sweep.glob("0-*")
    assert (good / "summary.json").is_file() and not (bad / "summary.json").exists()
    assert "the learning rate must be finite" in (bad / "train.log").read_text()  # the job's own record
    t = cli(tmp_path, "table", str(sweep), "--no-plot")
    assert f"{bad} (no summary.json: failed or interrupted)" in t.stderr


@pytest.mark.slow
def test_a_sweep_run_again_into_its_folder_resumes(tmp_path):
    """The same sweep into the same hydra.sweep.dir: finished jobs are skipped (one line each, their results
    untouched), an interrupted one (no summary.json) is trained; a single run into a finished folder is still
    refused."""
    sweep = ["train", "-m", "target=x3,x11", *TINY, "hydra.sweep.dir=sweep"]
    compnet(tmp_path, *sweep)
    jobs = sorted(d for d in (tmp_path / "sweep").iterdir() if d.is_dir())
    assert [j.name.split("-", 1)[0] for j in jobs] == ["0", "1"] and "target=x11" in jobs[1].name
    kept = (jobs[0] / "summary.json").stat().st_mtime_ns
    (jobs[1] / "summary.json").unlink()  # as if interrupted while training job 1

    p = compnet(tmp_path, *sweep)
    skipped = [line for line in p.stdout.splitlines() if "skipped" in line]
    assert len(skipped) == 1 and "job 0 (target=x3," in skipped[0] and "finished in an earlier try" in skipped[0]
    assert (jobs[0] / "summary.json").stat().st_mtime_ns == kept
    assert (jobs[1] / "summary.json").is_file()
    assert "skipped" in (jobs[0] / "train.log").read_text()

    single = ["train", *TINY, "hydra.run.dir=run"]
    compnet(tmp_path, *single)
    p = cli(tmp_path, *single)
    assert p.returncode == 2 and "already holds a finished run" in p.stderr

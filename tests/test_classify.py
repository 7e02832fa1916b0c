"""`compnet classify`: the shipped digits, the split, a user's .npz refused or used, and the run end to end."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compnet import api, datasets
from compnet.cli import main
from compnet.config import ConfigError

SMALL = ["trials=4", "epochs=3", "hidden=8", "depth=2", "release_epoch=1", "early_epoch=1", "plots=false"]


def test_the_shipped_digits():
    X, y = datasets.load_digits()
    assert X.shape == (1797, 64) and y.shape == (1797,)
    assert X[0, :8].tolist() == [0, 0, 5, 13, 9, 1, 0, 0] and y[0] == 0  # sklearn's first image, a zero
    assert X.min() == 0 and X.max() == 16 and (X == X.round()).all()
    assert np.bincount(y).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_the_split_is_fixed_by_the_seed_and_standardised_by_the_training_part():
    X, y = datasets.load_digits()
    a, b, c = (datasets.split(X, y, 0.25, s) for s in (0, 0, 1))
    assert len(a.y_test) == 449 and len(a.y_train) == 1348 and a.n_classes == 10
    assert np.array_equal(a.X_test, b.X_test) and not np.array_equal(a.X_test, c.X_test)
    assert np.abs(a.X_train.mean(0)).max() < 1e-5
    assert np.allclose(a.X_train.std(0)[X.std(0) > 0], 1, atol=1e-4)
    with pytest.raises(ConfigError, match="test_fraction"):
        datasets.split(X[:4], y[:4], 0.01, 0)


def _npz(path: Path, **arrays) -> Path:
    np.savez(path, **arrays)
    return path


GOOD_X = np.random.default_rng(0).normal(size=(40, 5))
GOOD_Y = np.arange(40) % 3


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"X": GOOD_X}, "no array 'y'"),
        ({"X": GOOD_X[:, 0], "y": GOOD_Y}, r"need X \[N, features\] and y \[N\]"),
        ({"X": GOOD_X, "y": GOOD_Y[:39]}, "X has 40 samples but y has 39"),
        ({"X": np.where(np.eye(40, 5) > 0, np.nan, GOOD_X), "y": GOOD_Y}, "NaN or inf .first at sample 0, feature 0"),
        ({"X": GOOD_X, "y": GOOD_Y - 1}, "negative label"),
        ({"X": GOOD_X, "y": GOOD_Y + 0.5}, "integer class labels"),
        ({"X": GOOD_X, "y": GOOD_Y * 2}, r"every class 0 … 4; absent: \[1, 3\]"),
        ({"X": GOOD_X, "y": np.zeros(40)}, "one class only"),
        ({"X": GOOD_X.astype(str), "y": GOOD_Y}, "must be numbers"),
    ],
)
def test_bad_data_files_are_refused_in_one_line(tmp_path, arrays, match):
    with pytest.raises(ConfigError, match=match):
        datasets.load_npz(_npz(tmp_path / "d.npz", **arrays))


def test_files_that_are_not_an_npz_are_refused(tmp_path):
    (tmp_path / "t.npz").write_text("not a zip")
    with pytest.raises(ConfigError, match="not a readable .npz"):
        datasets.load_npz(tmp_path / "t.npz")
    with pytest.raises(ConfigError, match="no such file"):
        datasets.load_npz(tmp_path / "absent.npz")
    np.save(tmp_path / "a.npy", GOOD_X)
    with pytest.raises(ConfigError, match="a single array"):
        datasets.load_npz(tmp_path / "a.npy")


def test_a_good_file_is_flattened_and_kept(tmp_path):
    X, y = datasets.load_npz(_npz(tmp_path / "d.npz", X=GOOD_X.reshape(40, 5, 1), y=GOOD_Y.astype(float)))
    assert X.shape == (40, 5) and y.dtype == np.int64 and y.tolist() == GOOD_Y.tolist()


@pytest.mark.parametrize(
    "override, match",
    [
        ("data.path=absent.npz", "data.path=absent.npz: no such file"),
        ("release_epoch=-1", "release_epoch=-1"),
        ("models=[dense,mlp]", "unknown model 'mlp'"),
        ("early_epoch=50", "early_epoch=50"),
        ("data=npz", "data=npz needs data.path"),
        ("width=3", "unknown key 'width'"),
    ],
)
def test_the_command_refuses_before_making_any_folder(tmp_path, monkeypatch, capsys, override, match):
    monkeypatch.chdir(tmp_path)
    assert main(["classify", override]) == 2
    err = capsys.readouterr().err.strip()
    assert match in err and len(err.splitlines()) == 1
    assert not (tmp_path / "outputs").exists()


def test_bad_data_is_refused_through_the_python_api_too(tmp_path):
    path = _npz(tmp_path / "d.npz", X=GOOD_X, y=GOOD_Y - 1)
    with pytest.raises(ConfigError, match="negative label"):
        api.classify(*SMALL, f"data.path={path}", out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_small_run_end_to_end(tmp_path):
    res = api.classify(*SMALL, out=tmp_path / "run")
    c, s = res.curves, res.summary
    assert len(c) == 3 * 4 * 4 and set(c.model) == {"dense", "compositional", "control"}
    assert c.test_accuracy.between(0, 1).all() and np.isfinite(c[["train_loss", "test_loss"]].to_numpy()).all()
    free = 64 * 8 + 8 + 8 * (4 + 4 + 16 + 4 + 4 + 1) + 8 * 10 + 10  # projection, blocks (depth 2), read-out
    assert s["parameters_per_trial"] == {"dense": 64 * 8 + 8 + 8 * 10 + 10, "compositional": free, "control": free}
    assert s["epochs_reported"] == [1, 3] and s["config"]["trials"] == 4 and s["produced_by"]["torch"]
    dense = c[(c.model == "dense") & (c.epoch == 3)].test_accuracy
    assert s["test"]["dense"]["3"]["mean_test_accuracy"] == pytest.approx(dense.mean())
    assert dense.mean() > 0.3  # it learns: chance is 0.1
    assert (tmp_path / "run" / "curves.csv").is_file() and (tmp_path / "run" / "report.md").is_file()
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["test"] == s["test"]
    again = api.classify(*SMALL, out=None)  # the same seed: the same numbers
    assert again.curves.equals(c) and again.folder is None
    with pytest.raises(ConfigError, match="already holds a finished run"):
        api.classify(*SMALL, out=tmp_path / "run")


def test_never_released_keeps_the_reparameterised_parameters(tmp_path):
    s = api.classify(*SMALL, "release_epoch=3", "models=[compositional,control]").summary
    assert s["parameters_per_trial"]["compositional"] == 8 * 64 + 8 + 8 * 3 + 8 + 8 * 10 + 10  # θ [K, d+1], s_1 [K]
    assert s["epochs_reported"] == [1, 3]


def test_a_users_file_is_used(tmp_path):
    rng = np.random.default_rng(1)
    y = np.arange(90) % 3
    X = rng.normal(size=(90, 4)) + 4 * np.eye(3, 4)[y]  # three well separated clusters
    path = _npz(tmp_path / "mine.npz", X=X, y=y)
    res = api.classify(*SMALL, "epochs=10", "lr=0.02", "batch_size=8", "models=[dense]", f"data.path={path}")
    assert res.summary["data"]["n_classes"] == 3 and res.summary["data"]["n_features"] == 4
    assert res.summary["data"]["source"] == str(path.resolve())
    assert res.summary["test"]["dense"]["10"]["mean_test_accuracy"] > 0.8


@pytest.mark.slow
def test_the_installed_command_writes_a_run_folder(tmp_path):
    exe = str(Path(sys.executable).with_name("compnet"))
    args = [exe, "classify", "trials=2", "epochs=2", "hidden=4", "early_epoch=1", "release_epoch=1"]
    p = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    (run,) = (tmp_path / "outputs").glob("*/*-classify")
    assert {f.name for f in run.iterdir()} >= {"curves.csv", "curves.png", "summary.json", "report.md", ".hydra"}
    assert "| dense MLP |" in p.stdout and "compositional layer" in p.stdout

"""A user's own targets (compnet/custom.py): a callable by import path and the points of a CSV/NPZ file train
alike, through the maps onto the paper's [0, 1] and F(0) = 0, F(1) = 1, with the MSE in the target's own units;
everything wrong is refused in one line before any folder is made. `userfuncs` is tests/userfuncs.py."""

import json
import math

import numpy as np
import pytest
import torch

import compnet
from compnet import custom
from compnet.cli import main
from compnet.config import ConfigError
from compnet.model import Shapes, forward

TINY = ("trials=3", "epochs=6", "plots=false")
EXPO = ("target=custom", "target.fn=userfuncs:expo", "target.domain=[-1,2]", "points=40")


def _write_csv(path, x, y, header="x,y"):
    rows = [f"{a!r},{b!r}" for a, b in zip(np.asarray(x).tolist(), np.asarray(y).tolist())]
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_custom_callable_is_the_builtin_target_bit_for_bit(compose):
    """x³ as a user's callable on [0, 1] trains to the built-in x3's numbers: no map, no normalisation."""
    ours = compnet.train("target=custom", "target.fn=userfuncs:cube", "points=30", *TINY)
    paper = compnet.train("target=x3", "points=30", *TINY)
    assert ours.trials.mse.tolist() == paper.trials.mse.tolist()
    assert ours.trials.mse_pretrain.tolist() == paper.trials.mse_pretrain.tolist()
    (s,) = ours.summaries
    assert s["target"] == "custom" and s["settings"]["target.fn"] == "userfuncs:cube"
    src = s["target_source"]
    assert (src["offset"], src["scale"], src["wave_sign"], src["domain"]) == (0.0, 1.0, -1, [0.0, 1.0])
    assert src["module_file"].endswith("userfuncs.py") and len(src["sha256"]) == 64


@pytest.mark.slow
def test_callable_and_file_train_alike_in_the_targets_units(tmp_path, compose):
    """exp on [−1, 2] as a callable and as its points in a CSV and an NPZ file: the same numbers (an independent
    path to the same training set), and the reported MSE is the network's, mapped back, against exp itself."""
    user = custom.load(compose(*EXPO))
    csv = _write_csv(tmp_path / "p.csv", user.x, user.y)
    np.savez(tmp_path / "p.npz", x=user.x, y=user.y)
    fn = compnet.train(*EXPO, *TINY, out=tmp_path / "fn")
    for path in (csv, tmp_path / "p.npz"):
        got = compnet.train("target=file", f"target.path={path}", *TINY)
        assert got.trials.mse.tolist() == fn.trials.mse.tolist(), path
        src = got.summaries[0]["target_source"]
        assert src["sha256"] == custom.sha256(path) == got.summaries[0]["settings"]["target.sha256"]
        assert src["path"] == str(path) and src["n_points"] == 40 and src["domain"] == [-1.0, 2.0]
    s = json.loads((tmp_path / "fn" / "summary.json").read_text())
    lo, hi = s["target_source"]["domain"]
    assert (s["target_source"]["offset"], s["target_source"]["scale"]) == (math.exp(-1), math.exp(2) - math.exp(-1))
    w = np.load(tmp_path / "fn" / "weights.npz")
    u = torch.from_numpy(w["x"]).double()
    with torch.no_grad():
        net = forward(Shapes(5).split(torch.from_numpy(w["final"]).double()), u)
    y_hat = s["target_source"]["offset"] + s["target_source"]["scale"] * net
    y = torch.tensor([math.exp(lo + (hi - lo) * v) for v in u.tolist()], dtype=torch.float64)
    own = ((y_hat - y) ** 2).mean(1)
    assert torch.allclose(own, torch.tensor(fn.trials.mse.tolist(), dtype=torch.float64), rtol=1e-4)
    assert s["var_target"] == pytest.approx(float(y.var(unbiased=False)), rel=1e-5)


def test_wave_sign_found_set_and_flipped(compose):
    """auto: convex → −1 (below its chord), concave → +1; a decreasing chord flips the network's σ under the
    endpoint normalisation; neither, equal end values and 2-D inputs need blocks; a given sign is obeyed."""
    load = lambda *o: custom.load(compose("target=custom", *o))  # noqa: E731
    assert load("target.fn=userfuncs:expo").target.sign == -1
    assert load("target.fn=math:sqrt", "target.domain=[1,4]").target.sign == 1
    fall = load("target.fn=userfuncs:falling", "target.domain=[0,3]")
    assert (fall.chord_side, fall.target.sign, fall.scale < 0) == (-1, 1, True)
    assert load("target.fn=userfuncs:falling", "target.normalise=false").target.sign == -1
    wiggle = load("target.fn=userfuncs:wiggle", "target.domain=[-1,1]")
    assert wiggle.target.needs_blocks and wiggle.source["inflections"] == pytest.approx([0.0], abs=1e-3)
    forced = load("target.fn=userfuncs:wiggle", "target.domain=[-1,2]", "target.sign=1")
    assert not forced.target.needs_blocks and forced.target.sign == 1
    assert "equal end values" in load("target.fn=userfuncs:bowl", "target.domain=[-1,1]").why_blocks
    assert not load("target.fn=userfuncs:bowl", "target.domain=[-1,1]", "target.normalise=false").target.needs_blocks
    ridge = load("target.fn=userfuncs:ridge", "target.dim=2", "target.domain=[-1,1]")
    assert ridge.target.needs_blocks and ridge.x.shape == (25, 2) and ridge.why_blocks == "2-D input"


def test_every_method_on_one_callable_evaluated_once_per_point(tmp_path, compose):
    """experiment.methods with a user's target: a cell per method, one batch, the table; the callable runs
    once per training point although the configuration is checked before training."""
    import userfuncs

    userfuncs.CALLS[0] = 0
    run = compnet.train(
        "target=custom", "target.fn=userfuncs:counted", "experiment.methods=[default,enforced]", "points=25",
        "trials=2", "epochs=3", out=tmp_path / "run",
    )  # fmt: skip
    assert userfuncs.CALLS[0] == 25
    assert [s["cell"] for s in run.summaries] == ["custom-default", "custom-enforced"]
    assert all(s["target_source"]["fn"] == "userfuncs:counted" for s in run.summaries)
    assert "custom" in (tmp_path / "run" / "table.md").read_text() and (tmp_path / "run" / "trials.png").is_file()
    two = custom.load(compose("target=custom", "target.fn=userfuncs:ridge", "target.dim=2"), points=4)
    assert two.x.shape == (16, 2) and two.y[:2].tolist() == pytest.approx([0, 1 / 9])  # the block engine's grid


def test_resolution():
    assert custom.resolve("userfuncs:cube")(2.0) == 8.0
    assert custom.resolve("userfuncs.cube")(2.0) == 8.0
    assert custom.resolve("os.path:join")("a", "b") == "a/b"  # a dotted attribute after the colon
    with pytest.raises(ConfigError, match="tried module 'no_such_pkg.mod' .*; module 'no_such_pkg'"):
        custom.resolve("no_such_pkg.mod.f")


def test_file_points_read_and_refused(tmp_path):
    x1 = _write_csv(tmp_path / "a.csv", [0.0, 0.5, 1.0], [0.0, 0.25, 1.0], header="y,x")  # columns in any order
    assert custom.read_points(x1)[0].tolist() == [0.0, 0.25, 1.0]
    two = tmp_path / "b.csv"
    two.write_text("x1,x2,y\n0,0,0\n1,0,1\n0,1,1\n")
    x, y = custom.read_points(two)
    assert x.shape == (3, 2) and y.tolist() == [0, 1, 1]


def _files(tmp_path):
    (tmp_path / "nan.csv").write_text("x,y\n0,0\n0.5,nan\n1,1\n")
    (tmp_path / "word.csv").write_text("x,y\n0,0\n0.5,abc\n1,1\n")
    (tmp_path / "one.csv").write_text("x,y\n0,0\n")
    (tmp_path / "head.csv").write_text("t,y\n0,0\n1,1\n")
    (tmp_path / "ragged.csv").write_text("x,y\n0,0\n1\n")
    (tmp_path / "twice.csv").write_text("x,y\n0,0\n0,1\n1,1\n")
    (tmp_path / "plane.csv").write_text("x1,x2,y\n0,0,0\n1,0,1\n0,1,1\n1,1,2\n")
    (tmp_path / "pts.txt").write_text("0 0\n1 1\n")
    (tmp_path / "bad.npz").write_text("not a zip")
    np.savez(tmp_path / "inf.npz", x=np.array([0.0, 0.5, 1.0]), y=np.array([0.0, np.inf, 1.0]))
    np.savez(tmp_path / "short.npz", x=np.array([0.0, 0.5, 1.0]), y=np.array([0.0, 1.0]))
    np.savez(tmp_path / "nox.npz", t=np.array([0.0, 1.0]), y=np.array([0.0, 1.0]))
    _write_csv(tmp_path / "ok.csv", [0.0, 0.5, 1.0], [0.0, 0.25, 1.0])


REFUSED = [
    ("target=custom target.fn=no_such_pkg.mod:f", "target.fn=no_such_pkg.mod:f does not resolve: tried module"),
    ("target=custom target.fn=userfuncs:nope", "'userfuncs' has no 'nope'"),
    ("target=custom target.fn=userfuncs:NOT_CALLABLE", "is a float, not a callable"),
    ("target=custom target.fn=userfuncs:log", "raised ValueError at x=0.0"),
    ("target=custom target.fn=userfuncs:infinite", "returned inf at x="),
    ("target=custom target.fn=userfuncs:vector", "returned a tuple at x=0.0, not a number"),
    ("target=custom target.fn=userfuncs:ridge", "does not take 1 argument(s)"),
    ("target=custom target.fn=userfuncs:cube target.dim=2", "does not take 2 argument(s)"),
    ("target=custom", "target=custom needs target.fn=module:function"),
    ("target.fn=userfuncs:cube", "target.fn=userfuncs:cube is read only with target=custom (here: x3)"),
    ("target=file target.fn=userfuncs:cube", "is read only with target=custom (here: target=file)"),
    ("target=custom target.fn=userfuncs:cube target.path=ok.csv", "is read only with target=file"),
    ("target=x3 target.sign=-1", "target.sign=-1 is read only with target=custom or target=file"),
    ("experiment=table1 target.domain=[0,2]", "target.domain=[0.0, 2.0] is read only with target=custom"),
    ("target=custom target.fn=userfuncs:cube target.domain=[1,0]", "target.domain=[1.0, 0.0]: need lo < hi"),
    ("target=custom target.fn=userfuncs:cube target.domain=[0,1,2]", "give [lo, hi]"),
    ("target=custom target.fn=userfuncs:cube target.sign=2", "target.sign=2: give -1"),
    ("experiment.targets=[custom]", "a user's target is one: use target=custom"),
    ("target=file", "target=file needs target.path=FILE"),
    ("target=file target.path=missing.csv", "target.path=missing.csv: no such file"),
    ("target=file target.path=nan.csv", "y holds nan at point 1"),
    ("target=file target.path=word.csv", "line 3: 'abc' is not a number"),
    ("target=file target.path=one.csv", "1 point(s); need at least 2"),
    ("target=file target.path=head.csv", "need the columns x, y"),
    ("target=file target.path=ragged.csv", "line 3 has 1 fields, the header 2"),
    ("target=file target.path=twice.csv", "x repeats a value (0.0)"),
    ("target=file target.path=pts.txt", "unknown format '.txt'"),
    ("target=file target.path=bad.npz", "not a readable .npz"),
    ("target=file target.path=inf.npz", "y holds inf at point 1"),
    ("target=file target.path=short.npz", "mismatched lengths, 3 x against 2 y"),
    ("target=file target.path=nox.npz", "no array 'x'"),
    ("target=file target.path=ok.csv target.dim=2", "target.dim=2, but ok.csv holds 1-D points"),
    ("target=file target.path=ok.csv target.domain=[0.2,1]", "its x spans [0, 1], outside target.domain"),
    ("target=file target.path=ok.csv points=100", "points=100 would be ignored"),
    ("target=file target.path=ok.csv test_points=10", "test_points=10 must be 0"),
    ("target.fnn=userfuncs:cube", "unknown key 'target.fnn'"),
]


@pytest.mark.parametrize("overrides, needle", REFUSED, ids=[r[1][:40] for r in REFUSED])
def test_refused_in_one_line_before_any_folder(tmp_path, monkeypatch, capsys, overrides, needle):
    """`compnet train` refuses with exit code 2, one line naming the value, and no outputs/ folder."""
    _files(tmp_path)
    monkeypatch.chdir(tmp_path)
    assert main(["train", *overrides.split()]) == 2
    err = capsys.readouterr().err
    assert needle in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "outputs").exists()


def test_refused_by_the_api_before_the_folder(tmp_path):
    with pytest.raises(ConfigError, match="raised ValueError"):
        compnet.train("target=custom", "target.fn=userfuncs:log", out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_command_line_with_a_module_in_the_current_folder(tmp_path):
    """The documented command line: a module beside the user (not installed) trains and is named in summary.json."""
    import subprocess

    from test_cli import COMPNET

    (tmp_path / "mine.py").write_text("import math\n\ndef f(x):\n    return math.cosh(x)\n")
    args = ["train", "target=custom", "target.fn=mine:f", "target.domain=[0,2]", "trials=2", "epochs=3"]
    p = subprocess.run([COMPNET, *args], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    (summary,) = (tmp_path / "outputs").glob("*/*/summary.json")
    src = json.loads(summary.read_text())["target_source"]
    assert src["fn"] == "mine:f" and src["module_file"] == str(tmp_path / "mine.py") and src["wave_sign"] == -1
    assert (summary.parent / "fit.png").is_file()

"""The Python API runs the command line's pipeline: the same numbers, bit for bit, and bad input refused."""

import subprocess

import numpy as np
import pandas as pd
import pytest
from hydra.errors import ConfigCompositionException
from test_cli import COMPNET

import compnet
from compnet.config import ConfigError

OVERRIDES = [
    "experiment=table1",
    "experiment.methods=[raai,not_enforced]",
    "trials=3",
    "epochs=25",
    "points=40",
    "plots=false",
]


@pytest.mark.slow
def test_api_equals_cli_bit_for_bit(tmp_path):
    p = subprocess.run(
        [COMPNET, "train", *OVERRIDES, f"hydra.run.dir={tmp_path / 'cli'}"], capture_output=True, text=True, timeout=600
    )
    assert p.returncode == 0, p.stderr[-2000:]
    res = compnet.train(*OVERRIDES, out=tmp_path / "api")
    cli = compnet.load_run(tmp_path / "cli")
    assert len(res.summaries) == len(cli.summaries) == 4
    pd.testing.assert_frame_equal(res.trials, cli.trials, check_exact=True)
    for cell in res.trials.cell.unique():
        for name in ("losses.npz", "weights.npz"):
            a, b = np.load(tmp_path / "api" / cell / name), np.load(tmp_path / "cli" / cell / name)
            assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a), (cell, name)


def test_bad_input_raises_before_any_work(tmp_path):
    with pytest.raises(ConfigError, match="depth=0"):
        compnet.train("depth=0", out=tmp_path / "a")
    with pytest.raises(ConfigCompositionException):
        compnet.train("trails=5", out=tmp_path / "b")  # a typo'd key, as on the command line
    assert list(tmp_path.iterdir()) == []

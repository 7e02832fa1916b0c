"""logger=tensorboard: the event files read back (tensorboard is in the dev extra), and the refusal without it."""

import numpy as np
import pytest

import compnet
from compnet import commands, tblog
from compnet.config import ConfigError


def test_event_files_hold_the_loss_history_pieces_statistics_and_settings(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    res = compnet.train("trials=3", "epochs=6", "points=20", "plots=false", "logger=tensorboard", out=tmp_path)
    assert list(tmp_path.glob("events.out.tfevents.*")) and (tmp_path / "summary.json").is_file()
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"pretrain/best", "pretrain/median", "train/best", "train/median", "pieces/init", "pieces/final"} <= scalars
    with np.load(tmp_path / "losses.npz") as losses:
        pre, train = losses["loss_pretrain"], losses["loss_train"]
    best = events.Scalars("train/best")
    assert [e.step for e in best] == list(range(6, 13))  # epochs counted across both stages
    assert np.allclose([e.value for e in best], train.min(1), rtol=1e-6)
    assert np.allclose([e.value for e in events.Scalars("pretrain/median")], np.median(pre, 1), rtol=1e-6)
    s = res.summaries[0]
    (final,) = events.Scalars("final/mean_mse")
    assert final.step == 12 and final.value == pytest.approx(s["mean_mse"], rel=1e-6)
    assert events.Scalars("pieces/final")[0].value == pytest.approx(s["mean_pieces_final"])
    content = events.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["lr"].number_value == 1e-3 and hparams["engine"].string_value == s["settings"]["engine"]


def test_logger_without_tensorboard_is_refused_in_one_line(compose, monkeypatch):
    monkeypatch.setattr(tblog.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install compnet\[tensorboard\]") as e:
        commands.check(compose("logger=tensorboard"), "train")
    assert "\n" not in str(e.value)
    commands.check(compose(), "train")  # logger=none needs nothing

"""The structured-config schema of `compnet classify`, its config group `data`, its help and its checks.

Registered by `config.register("classify")` like `compnet train`'s: the schema is named first in
compnet/conf/classify.yaml's defaults list, so an unknown key or a wrong type fails at the command line with
Hydra's message; impossible values are refused by `validate` (one line) before any work or run folder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Any

from compnet.config import Device, _check, _check_keys, _keys_help, _line, opt

MODEL_NAMES = ("dense", "compositional", "control")


class InputMap(str, Enum):
    affine = "affine"  # u = ½ + Px + p: a pure ReLU network
    sigmoid = "sigmoid"  # u = sigmoid(Px + p): every input in (0, 1)


@dataclass
class DataConf:
    name: str = opt("digits", "digits (shipped) | npz (a file: data.path)", inert=True)
    path: str | None = opt(None, "an .npz of X [N, ...] and y [N] (labels 0..C-1); replaces digits")
    test_fraction: float = opt(0.25, "held-out share of the samples, drawn from `seed`")


@dataclass
class ClassifyConf:
    data: DataConf = opt(factory=DataConf)
    models: list[str] = opt(help="which of dense, compositional, control", factory=lambda: list(MODEL_NAMES))
    trials: int = opt(30, "trials per model, trained at once")
    seed: int = opt(0, "the split, every trial's init and its shuffles")
    epochs: int = opt(40, "passes over the training set")
    early_epoch: int = opt(2, "the early epoch summary.json and the report state")
    release_epoch: int = opt(5, "epochs on peaks and scales before the free weights (fresh Adam); >= epochs: never")
    hidden: int = opt(32, "hidden neurons of the MLP = blocks of the compositional layer")
    depth: int = opt(3, "hidden layers of each compositional block (2^depth pieces)")
    input_map: InputMap = opt(InputMap.affine, "affine (u = 1/2 + Px + p) | sigmoid: each block's input")
    batch_size: int = opt(64, "samples per Adam step")
    lr: float = opt(1e-3, "Adam's learning rate (every model, both stages)")
    threads: int = opt(1, "torch's CPU threads (1: fastest on a shared 2-core machine); 0 = torch's default")
    device: Device = opt(Device.cpu, "cpu | cuda | auto")
    plots: bool = opt(True, "draw curves.png", inert=True)


HELP_HEADER = """compnet classify: a dense MLP, the same MLP with its hidden ReLUs replaced by compositional blocks, and a
block-diagonal random control of the same size, `trials` trials each, on scikit-learn's digits (or data.path=FILE.npz).
  compnet classify                                   the default: 30 trials, 40 epochs, switch to free weights at 5
  compnet classify release_epoch=0 epochs=40         free weights from the start, longer
  compnet classify data.path=mine.npz hidden=64      your own X and y
"""


def register() -> None:
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="classify_schema", node=ClassifyConf)
    cs.store(group="data", name="digits", node={"name": "digits"})
    cs.store(group="data", name="npz", node={"name": "npz"})
    footer = [
        "Groups (group=option):",
        _line("data=digits", "scikit-learn's digits, 1,797 8x8 images (shipped, no download)"),
        _line("data=npz", "your own file: data.path=FILE.npz with X and y"),
        "",
        *_keys_help(ClassifyConf),
        "",
        "Results: outputs/<date>/<time>-classify/ (curves.csv, summary.json, curves.png, report.md).",
    ]
    help = {"app_name": "compnet classify", "header": HELP_HEADER, "footer": "\n".join(footer)}
    cs.store(
        group="hydra/help",
        name="compnet_classify",
        node=help | {"template": "${hydra.help.header}\n${hydra.help.footer}\n"},
    )


def validate(cfg: Any) -> None:
    """Refuse impossible settings (one line each); the data file itself is checked by `datasets.load`."""
    _check_keys(cfg, ClassifyConf, "classify")
    models = list(cfg.models)
    _check(len(models) > 0, "models=[]: name at least one of dense, compositional, control")
    for m in models:
        _check(m in MODEL_NAMES, f"unknown model {m!r}; valid: {', '.join(MODEL_NAMES)}")
    _check(len(set(models)) == len(models), f"models={models}: a model is listed twice")
    _check(cfg.data.name in ("digits", "npz"), f"unknown data {cfg.data.name!r}; valid: digits, npz")
    _check(cfg.data.name != "npz" or cfg.data.path is not None, "data=npz needs data.path=FILE.npz")
    tf = cfg.data.test_fraction
    _check(0 < tf < 1, f"data.test_fraction={tf}: need 0 < test_fraction < 1")
    for key in ("trials", "epochs", "hidden", "depth", "batch_size"):
        _check(cfg[key] >= 1, f"{key}={cfg[key]}: need {key} >= 1")
    _check(cfg.seed >= 0, f"seed={cfg.seed}: need seed >= 0")
    _check(cfg.threads >= 0, f"threads={cfg.threads}: need >= 0 (0 = torch's default)")
    _check(0 <= cfg.early_epoch <= cfg.epochs, f"early_epoch={cfg.early_epoch}: need 0 <= early_epoch <= epochs")
    _check(cfg.release_epoch >= 0, f"release_epoch={cfg.release_epoch}: need >= 0 (>= epochs: never released)")
    _check(math.isfinite(cfg.lr) and cfg.lr > 0, f"lr={cfg.lr}: the learning rate must be finite and > 0")

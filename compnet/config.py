"""Structured-config schemas for `compnet train` and `compnet regions`, the config groups, and the checks
(`compnet classify`'s are in config_classify.py).

The schemas are registered in Hydra's ConfigStore and named first in the packaged primary configs'
defaults lists, so an unknown key, a wrong type or an enum typo fails at the command line with Hydra's
own message. The groups (`target`, `init`, `regime`, `experiment`) are registered from the Python tables
that define them, and `compnet train --help` is generated from the schema's field help. Numbers that
have the right type but are impossible (depth 0, lr ≤ 0, …) are refused by `validate` before any work
starts, with one line naming the value and what is allowed.

A field marked `inert` does not change a run's numbers (plots, worker threads) or names its cell
(target, method): every other field is a *setting*, recorded in summary.json and used by
`compnet table` to tell runs apart (`setting_keys`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import II, MISSING

from compnet.methods import (
    EXPERIMENTS,
    INIT_HELP,
    INITS,
    METHODS,
    PEAK_CLAMP,
    RANDOM_INITS,
    REGIME_HELP,
    REGIMES,
    plan,
)
from compnet.targets import TARGETS, USER_TARGETS


def opt(default: Any = MISSING, help: str = "", inert: bool = False, factory: Any = None) -> Any:
    """A schema field with its one-line help (shown by --help) and whether it is inert."""
    meta = {"help": help, "inert": inert}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


class PeakParam(str, Enum):
    clamp = "clamp"  # a = clamp(θ, *PEAK_CLAMP) in the forward pass
    sigmoid = "sigmoid"  # a = sigmoid(θ)


class S1(str, Enum):
    trainable = "trainable"
    tied = "tied"


class Engine(str, Enum):
    auto = "auto"  # fused where its C kernel builds, else torch
    fused = "fused"  # compnet/kernel.c: forward and backward in one C pass
    torch = "torch"  # torch's ops and autograd: the reference the kernel is tested against


class Device(str, Enum):
    cpu = "cpu"
    cuda = "cuda"  # torch's ops on the GPU (the fused kernel is CPU-only)
    auto = "auto"  # cuda where torch sees one (and the engine is not fused), else cpu


class Logger(str, Enum):
    none = "none"
    tensorboard = "tensorboard"  # event files in each cell's folder (compnet/tblog.py)


class DType(str, Enum):
    float32 = "float32"
    float64 = "float64"


@dataclass
class TargetConf:
    name: str = opt(MISSING, "the function fitted: one of the paper's on [0, 1], or custom | file", inert=True)
    # a user's own target (compnet/custom.py, docs/method.md §10); null: not given
    fn: str | None = opt(None, "target=custom: the callable, module:function (or module.function)")
    path: str | None = opt(None, "target=file: its points, CSV (header x,y or x1,…,xn,y) or NPZ (x, y)")
    dim: int | None = opt(None, "custom, file: input dimension; null: 1 (custom), the columns (file)")
    domain: list[float] | None = opt(None, "custom, file: [lo, hi]; null: [0, 1] (custom), the data's (file)")
    sign: str = opt("auto", "custom, file: -1 below its chord (convex), 1 above (concave); auto: found")
    normalise: bool = opt(True, "custom, file: fit (y − y(lo))/(y(hi) − y(lo)); false: y as is")


@dataclass
class InitConf:
    name: str = opt(MISSING, "how the weights start", inert=True)
    peak_low: float = opt(0.25, "starting peaks a_i ~ U(peak_low, peak_high), per trial")
    peak_high: float = opt(0.75)
    raai_k: float = opt(1.0, "RAAI's anti-correlation strength k in [0, 1]")
    raai_sigma_w2: float | None = opt(None, "RAAI's weight variance; null: the zero-bias critical point 2π/(π − k)")
    raai_sigma_b2: float = opt(0.0, "RAAI's bias variance")


@dataclass
class RegimeConf:
    name: str = opt(MISSING, "auto | direct | pretrain", inert=True)
    pretrain_epochs: int = opt(II("epochs"), "epochs of Adam on peaks and scales")
    finetune_epochs: int = opt(II("epochs"), "raw-weight epochs after pretraining")
    direct_epochs: int = opt(II("epochs"), "raw-weight epochs without pretraining")


@dataclass
class ModelConf:
    peaks: PeakParam = opt(PeakParam.clamp, "how pretraining keeps peaks in (0, 1): clamp | sigmoid")
    s1: S1 = opt(S1.trainable, "the first scale: trainable | tied to the law")
    offset: bool = opt(True, "accumulator offset (exact manifold); false: the paper's plain encoding")


class Reading(str, Enum):
    auto = "auto"  # the target's best: split (1-D, one inflection), composed (radial), else ridge
    split = "split"  # one block per convexity interval, identity sides facing (docs/method.md §8)
    ridge = "ridge"  # blocks.ridge_blocks blocks along spread directions, read-out by least squares
    composed = "composed"  # squaring blocks feeding one block: radial targets f(|x|²)


@dataclass
class BlocksConf:
    """Networks of blocks (targets that need them: x3_minus_x, r3; `experiment=extensions`)."""

    reading: Reading = opt(Reading.auto, "how blocks join: auto | split | ridge | composed")
    ridge_blocks: int = opt(8, "blocks of the ridge reading")
    mask: bool = opt(True, "the raw-weight stage keeps the block-diagonal sparsity; false: frees it")
    margin: float = opt(0.5, "accumulator offset beyond the depth a block's input reaches below 0")
    axis_points: int = opt(40, "training points per axis of a target with 2+ inputs (40: a 40×40 grid)")


@dataclass
class ExperimentConf:
    name: str = opt(MISSING, "none, or a table of the paper", inert=True)
    targets: list[str] = opt(help="empty: just `target`", inert=True, factory=list)
    methods: list[str] = opt(help="empty: just `init` + `regime`", inert=True, factory=list)
    depths: list[int] = opt(help="empty: just `depth`", inert=True, factory=list)


@dataclass
class TrainConf:
    target: TargetConf = opt(factory=TargetConf)
    init: InitConf = opt(factory=InitConf)
    regime: RegimeConf = opt(factory=RegimeConf)
    experiment: ExperimentConf = opt(factory=ExperimentConf)
    model: ModelConf = opt(factory=ModelConf)
    blocks: BlocksConf = opt(factory=BlocksConf)
    trials: int = opt(30, "trials per cell")
    trial_start: int = opt(0, "first trial's index: trials trial_start … trial_start+trials−1")
    seed: int = opt(0, "trial i draws from SeedSequence([seed, i])")
    depth: int = opt(5, "hidden layers (width 4)")
    epochs: int = opt(
        1000, "epochs of every stage, unless regime.*_epochs says otherwise", inert=True
    )  # recorded per stage
    lr: float = opt(1e-3, "Adam's learning rate")
    points: int = opt(500, "training points, evenly spaced on [0, 1] (custom: on its domain; file: its own)")
    test_points: int = opt(0, "held-out points at cell centres; > 0 reports test MSE")
    dtype: DType = opt(DType.float32, "float32 | float64")
    plots: bool = opt(True, "draw fit.png, loss.png, layers.png", inert=True)
    regions_every: int = opt(
        0, "count every trial's exact linear pieces every N epochs of both stages; 0 = off", inert=True
    )  # pieces.csv and pieces.png: counted from copies of the parameters, the training is the same bits
    workers: int = opt(0, "threads training slices of the trials; 0 = one per core", inert=True)
    overwrite: bool = opt(False, "reuse a run folder that holds a finished run (its results are replaced)", inert=True)
    engine: Engine = opt(Engine.auto, "auto | fused (the C kernel) | torch (its reference)")
    device: Device = opt(Device.cpu, "cpu | cuda | auto: where torch's ops train (cuda: engine=torch)")
    logger: Logger = opt(Logger.none, "none | tensorboard: event files in each cell's folder", inert=True)


@dataclass
class RegionsConf:
    """`compnet regions`: exact region counts of untrained (or saved) networks, no training."""

    inits: list[str] = opt(help="inits of the depth study", factory=lambda: ["kaiming", "raai", "rai", "manifold"])
    depths: list[int] = opt(help="depths of the width-4 study", factory=lambda: list(range(1, 13)))
    widths: list[int] = opt(help="widths of the width study (random inits)", factory=lambda: [4, 8, 16, 32, 64])
    width_depths: list[int] = opt(help="depths of the width study", factory=lambda: [1, 2, 4, 8])
    draws: int = opt(50, "networks per (init, depth, width)")
    lo: float = opt(0.0, "the input line runs over [lo, hi]")
    hi: float = opt(1.0)
    seed: int = opt(0)
    from_run: str | None = opt(None, "`from=PATH`: count the saved networks of runs instead")
    init: InitConf = opt(factory=lambda: InitConf(name="kaiming"))  # peak range, RAAI settings
    plots: bool = opt(True, inert=True)


def _fields(schema: type, prefix: str = "") -> Iterator[tuple[str, dataclasses.Field, Any]]:
    """(dotted key, field, default) of every leaf of a schema."""
    for f in dataclasses.fields(schema):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(default):
            yield from _fields(type(default), f"{prefix}{f.name}.")
        else:
            yield f"{prefix}{f.name}", f, default


def setting_keys() -> list[str]:
    """Every key of `compnet train` that can change a cell's numbers (the schema's non-inert leaves)."""
    return [key for key, f, _ in _fields(TrainConf) if not f.metadata.get("inert")]


def _line(option: str, help: str) -> str:
    return f"  {option:<32} {help}".rstrip()


def _keys_help(schema: type) -> list[str]:
    """One line per key of a schema: key=default and its help."""
    lines = ["Keys (key=default):"]
    for key, f, default in _fields(schema):
        if key.endswith(".name") or key.startswith("experiment."):
            continue
        default = getattr(default, "value", default)
        # YAML spelling (null, true); an interpolation ${epochs} as <epochs> (Hydra's help would resolve it)
        if isinstance(default, list):
            shown = "[" + ",".join(map(str, default)) + "]"
        else:
            shown = json.dumps(default) if default is None or isinstance(default, bool) else str(default)
        key = "from" if key == "from_run" else key  # what the command line takes (`from` is a Python keyword)
        lines.append(_line(f"{key}={shown.replace('${', '<').replace('}', '>')}", f.metadata.get("help", "")))
    return lines


def help_footer() -> str:
    """`compnet train --help`'s list of groups and keys, from the Python tables and the schema."""
    lines = ["Groups (group=option):"]
    lines += [_line(f"target={t}", TARGETS[t].label) for t in TARGETS]
    lines += [_line(f"target={t}", why) for t, why in USER_TARGETS.items()]
    lines += [_line(f"init={i}", INIT_HELP[i]) for i in INITS]
    lines += [_line(f"regime={r}", REGIME_HELP[r]) for r in REGIMES]
    tables = "|".join(e for e in EXPERIMENTS if e not in ("none", "depth"))
    lines += [_line(f"experiment={tables}", "one of the paper's tables, every cell in one batch")]
    lines += [_line("experiment=depth", "error against depth (experiment.depths=[1..12]), a batch per depth"), ""]
    lines += _keys_help(TrainConf)
    lines += ["", "Results: outputs/<date>/<time>-train/ (trials.csv, summary.json, losses.npz, weights.npz, figures)."]
    return "\n".join(lines)


TRAIN_HELP_HEADER = """compnet train: train `trials` trials of one configuration, or every cell of an experiment.
Defaults are the paper's: width 4, depth 5, 500 points, Adam lr 1e-3, 1000 epochs per stage, 30 trials.
  compnet train target=x3 init=manifold                  differentiability enforced
  compnet train target=x11 init=kaiming                  the default network, trained directly
  compnet train -m target=x3,x11 init=kaiming,manifold   a sweep, one job per configuration
  compnet train experiment=table1                        a table's cells in one batch
  compnet train experiment=depth                         error against depth 1–12, a batch per depth
  compnet train target=custom target.fn=mymod:f          your function (target.domain=[lo,hi], target.dim)
  compnet train target=file target.path=points.csv       your points (columns x,y; or an .npz with x, y)
"""
REGIONS_HELP_HEADER = """compnet regions: exact linear-region counts of untrained networks versus depth and width (no training),
or of the saved networks of finished runs (from=PATH).
  compnet regions                                        the default studies, 50 draws each
  compnet regions from=outputs/2026-11-30/12-00-00-train every trial and stage of a run
"""


def register(app: str = "train") -> None:
    """Make an app's schema, its name-only groups (train) and its generated help known to Hydra; only the
    app's own, so that `compnet regions --help` and its completion offer no training groups."""
    from hydra.core.config_store import ConfigStore

    if app == "classify":
        from compnet import config_classify

        config_classify.register()
        return
    cs = ConfigStore.instance()
    template = "${hydra.help.header}\n${hydra.help.footer}\n"
    if app == "train":
        cs.store(name="train_schema", node=TrainConf)
        for group, names in (("target", [*TARGETS, *USER_TARGETS]), ("init", INITS), ("regime", REGIMES)):
            for name in names:
                cs.store(group=group, name=name, node={"name": name})
        for name, node in EXPERIMENTS.items():
            cs.store(group="experiment", name=name, node=node, package="_global_")
        help = {"app_name": "compnet train", "header": TRAIN_HELP_HEADER, "footer": help_footer()}
    else:
        cs.store(name="regions_schema", node=RegionsConf)
        help = {
            "app_name": "compnet regions",
            "header": REGIONS_HELP_HEADER,
            "footer": "\n".join(_keys_help(RegionsConf)),
        }
    cs.store(group="hydra/help", name=f"compnet_{app}", node=help | {"template": template})


class ConfigError(ValueError):
    """A configuration value that has the right type but is impossible."""


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)


def _one_of(what: str, value: str, valid) -> None:
    _check(value in valid, f"unknown {what} {value!r}; valid: {', '.join(valid)}")


def _check_keys(cfg: Any, schema: type, app: str) -> None:
    """Refuse keys the schema does not know, however they were added (`+gpus=1`): silently ignored,
    they would only make the user believe they had an effect."""
    known = {key for key, _, _ in _fields(schema)}
    prefixes = {key.rsplit(".", 1)[0] for key in known if "." in key}

    def walk(node: Any, prefix: str) -> list[str]:
        out = []
        for k, v in node.items_ex(resolve=False) if hasattr(node, "items_ex") else node.items():
            key = f"{prefix}{k}"
            if key in prefixes and hasattr(v, "items"):
                out += walk(v, f"{key}.")
            elif key not in known:
                out.append(key)
        return out

    if unknown := walk(cfg, ""):
        raise ConfigError(f"unknown key {unknown[0]!r} (`compnet {app} --help` lists the keys)")


def check_overrides(overrides: list[str]) -> None:
    """Combinations of command-line overrides that would silently do less than they say: an experiment's
    own targets, methods and depths replace `target=`, `init=`, `regime=` and `depth=`."""
    keys = {o.lstrip("+~").split("=", 1)[0]: o.split("=", 1)[-1] for o in overrides if "=" in o}
    named = EXPERIMENTS.get(keys.get("experiment", "none"), {}).get("experiment", {})
    if keys.get("target") == "file" and "points" in keys:
        raise ConfigError(
            f"target=file trains on the file's own points, so points={keys['points']} would be ignored: drop points="
        )
    for group, replaced_by in (
        ("target", "experiment.targets"),
        ("init", "experiment.methods"),
        ("regime", "experiment.methods"),
        ("depth", "experiment.depths"),
    ):
        listed = replaced_by.split(".")[1]
        by = replaced_by if replaced_by in keys else f"experiment={keys['experiment']}" if named.get(listed) else None
        if group in keys and by:
            raise ConfigError(
                f"{by} sets the {listed} itself, so {group}={keys[group]} would "
                f"be ignored: use {replaced_by}=[...] instead, or drop {by.split('=')[0]}="
            )


def error_line(e: Exception, app: str = "train") -> str:
    """Hydra's and OmegaConf's composition errors in one line: the message that matters, without the search
    path or the advice to add a key with `+`."""
    import re

    text = str(e)
    if m := re.search(r"Could not find '([^/']+)/([^']+)'", text):
        options = re.findall(r"^\t(\S+)$", text, flags=re.M)
        return f"unknown {m[1]} {m[2]!r}; valid: {', '.join(options)}"
    cause = e.__cause__
    if m := re.search(r"Could not override '([^']+)'", text):
        return f"unknown key {m[1]!r} (`compnet {app} --help` lists the keys)"
    if cause is not None and (m := re.search(r"Error merging override (\S+)", text)):
        return f"{m[1]}: {str(cause).splitlines()[0]}"
    return text.strip().splitlines()[0] if text.strip() else type(e).__name__


def validate(cfg: Any) -> None:
    """Refuse impossible settings before any work starts (one line each)."""
    _check_keys(cfg, TrainConf, "train")
    _check(cfg.depth >= 1, f"depth={cfg.depth}: the network needs depth >= 1 hidden layer")
    depths = list(cfg.experiment.depths)
    _check(all(d >= 1 for d in depths), f"experiment.depths={depths}: every depth must be >= 1")
    _check(len(set(depths)) == len(depths), f"experiment.depths={depths}: a depth is listed twice")
    _check(cfg.trials >= 1, f"trials={cfg.trials}: need trials >= 1")
    _check(cfg.trial_start >= 0, f"trial_start={cfg.trial_start}: need trial_start >= 0")
    _check(cfg.points >= 2, f"points={cfg.points}: need points >= 2")
    _check(cfg.test_points >= 0, f"test_points={cfg.test_points}: need test_points >= 0")
    _check(math.isfinite(cfg.lr) and cfg.lr > 0, f"lr={cfg.lr}: the learning rate must be finite and > 0")
    for key in ("pretrain_epochs", "finetune_epochs", "direct_epochs"):
        n = cfg.regime[key]
        _check(n >= 0, f"regime.{key}={n}: epochs must be >= 0")
    _check(cfg.seed >= 0, f"seed={cfg.seed}: need seed >= 0")
    _check(cfg.workers >= 0, f"workers={cfg.workers}: need >= 0 (0 = one per core)")
    _check(cfg.regions_every >= 0, f"regions_every={cfg.regions_every}: need >= 0 (0 = off)")
    _check(
        not (cfg.engine == "fused" and cfg.device == "cuda"),  # str enums: equal to their values
        "engine=fused runs on the CPU only; with device=cuda use engine=torch or engine=auto",
    )
    _check_target(cfg)
    if cfg.experiment.methods:
        for m in cfg.experiment.methods:
            _one_of("method", m, METHODS)
    else:
        _one_of("init", cfg.init.name, INITS)
        _one_of("regime", cfg.regime.name, REGIMES)
        _check(
            not (cfg.regime.name == "pretrain" and cfg.init.name in RANDOM_INITS),
            f"regime=pretrain needs peaks to pretrain; init={cfg.init.name} has none (use init=manifold or compositional)",
        )
    _check(cfg.blocks.ridge_blocks >= 1, f"blocks.ridge_blocks={cfg.blocks.ridge_blocks}: need >= 1")
    _check(cfg.blocks.margin >= 0, f"blocks.margin={cfg.blocks.margin}: need >= 0")
    _check(cfg.blocks.axis_points >= 2, f"blocks.axis_points={cfg.blocks.axis_points}: need >= 2")
    for cell in plan(cfg):
        _check_blocks(cfg, cell)
    # pretraining is the only stage that clamps peaks
    pretrains = any(cell.regime == "pretrain" for cell in plan(cfg))
    _check_init(cfg.init, clamped=cfg.model.peaks == PeakParam.clamp and pretrains)


def _check_blocks(cfg: Any, cell: Any) -> None:
    """A block method needs a target that needs blocks, and a reading that can fit it."""
    from compnet.methods import BLOCK_ONLY
    from compnet.targets import target_of

    target = target_of(cell.target, cfg)
    _check(
        target.needs_blocks or cell.method not in BLOCK_ONLY,
        f"method {cell.method} compares against a network of blocks; target={cell.target} has none (it is one block)",
    )
    if target.needs_blocks:
        from compnet.readings import ReadingError, design

        for key in ("regions_every", "test_points"):
            _check(not cfg[key], f"{key}={cfg[key]}: not available for networks of blocks yet (target={cell.target})")

        try:
            design(target, getattr(cfg.blocks.reading, "value", cfg.blocks.reading), cfg.blocks)
        except ReadingError as e:
            raise ConfigError(str(e)) from None


# the target keys only a user's target reads, and their defaults (TargetConf)
USER_KEYS = {"fn": None, "path": None, "dim": None, "domain": None, "sign": "auto", "normalise": True}


def _check_target(cfg: Any) -> None:
    """Every target is known, no key is given that it would ignore, and the single network can fit it: a user's
    target (custom, file) is resolved, evaluated and checked here, before any work (compnet/custom.py)."""
    conf = cfg.target
    for t in cfg.experiment.targets:
        _check(t not in USER_TARGETS, f"experiment.targets=[{t}]: a user's target is one: use target={t} instead")
    for target in cfg.experiment.targets or [conf.name]:
        _one_of("target", target, [*TARGETS, *USER_TARGETS])
    owner = {"fn": "custom", "path": "file"}
    for key, default in USER_KEYS.items():
        given = conf[key] if key != "domain" or conf[key] is None else list(conf[key])
        if given == default or str(given) == str(default):
            continue
        if cfg.experiment.targets or conf.name not in USER_TARGETS:
            names = ", ".join(cfg.experiment.targets) or conf.name
            needs = owner.get(key, "custom or target=file")
            raise ConfigError(f"target.{key}={given} is read only with target={needs} (here: {names})")
        _check(
            conf.name == owner.get(key, conf.name),
            f"target.{key}={given} is read only with target={owner.get(key)} (here: target={conf.name})",
        )
    if conf.name in USER_TARGETS and not cfg.experiment.targets:
        from compnet import custom  # numpy only; imports the user's module

        custom.load(cfg)  # resolved and checked here; one that needs blocks trains in the block engine


def _check_init(init: Any, clamped: bool = False) -> None:
    """Starting peaks and RAAI settings (shared by `compnet train` and `compnet regions`)."""
    lo, hi = init.peak_low, init.peak_high
    _check(0 < lo < 1 and 0 < hi < 1, f"init.peak_low={lo}, init.peak_high={hi}: peaks must lie in (0, 1)")
    _check(lo <= hi, f"init.peak_low={lo} > init.peak_high={hi}: need low <= high")
    if clamped:  # a peak drawn outside the clamp would be pretrained from the clamp's edge and never move
        a, b = PEAK_CLAMP
        _check(
            a <= lo and hi <= b,
            f"init.peak_low={lo}, init.peak_high={hi}: with model.peaks=clamp starting peaks must lie in [{a}, {b}]",
        )
    _check(0 <= init.raai_k <= 1, f"init.raai_k={init.raai_k}: need 0 <= k <= 1")
    _check(init.raai_sigma_b2 >= 0, f"init.raai_sigma_b2={init.raai_sigma_b2}: need >= 0")
    if init.raai_sigma_w2 is not None:
        _check(init.raai_sigma_w2 > 0, f"init.raai_sigma_w2={init.raai_sigma_w2}: need > 0")


def validate_regions(cfg: Any) -> None:
    """The same for `compnet regions`."""
    _check_keys(cfg, RegionsConf, "regions")
    for init in cfg.inits:
        _one_of("init", init, INITS)
    depths = list(cfg.depths) + list(cfg.width_depths)
    _check(
        all(d >= 1 for d in depths),
        f"depths={list(cfg.depths)}, width_depths={list(cfg.width_depths)}: every depth must be >= 1",
    )
    _check(all(w >= 1 for w in cfg.widths), f"widths={list(cfg.widths)}: every width must be >= 1")
    _check(cfg.draws >= 1, f"draws={cfg.draws}: need draws >= 1")
    _check(cfg.lo < cfg.hi, f"lo={cfg.lo}, hi={cfg.hi}: need lo < hi")
    _check(cfg.seed >= 0, f"seed={cfg.seed}: need seed >= 0")
    _check(len(cfg.inits) > 0, "inits=[]: name at least one init to count")
    if cfg.from_run is not None:
        from pathlib import Path

        path = Path(cfg.from_run)
        _check(path.exists(), f"from={path}: no such folder")
        _check(path.is_dir(), f"from={path} is a file; give a run, experiment or sweep folder")
    _check_init(cfg.init)

"""Structured-config schemas for `compnet train` and `compnet regions`, and the domain checks.

The schemas are registered in Hydra's ConfigStore and named first in the packaged primary configs'
defaults lists, so an unknown key, a wrong type or an enum typo fails at the command line with Hydra's
own message. Numbers that have the right type but are impossible (depth 0, lr ≤ 0, …) are refused by
`validate` before any work starts, with one line naming the value and what is allowed. `plan` turns a
configuration into its cells: one (target, method) pair each, a row-and-column entry of the paper's tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Optional

from omegaconf import II, MISSING

from compnet.targets import TARGETS

RANDOM_INITS = ("kaiming", "rai", "raai")
PEAK_INITS = ("manifold", "compositional")  # start from peaks a_1 … a_{d+1}
INITS = RANDOM_INITS + PEAK_INITS
PEAK_CLAMP = (0.01, 0.99)  # model.peaks=clamp keeps pretrained peaks here (zero gradient outside)


class PeakParam(str, Enum):
    clamp = "clamp"  # a = clamp(θ, *PEAK_CLAMP) in the forward pass
    sigmoid = "sigmoid"  # a = sigmoid(θ)


class S1(str, Enum):
    trainable = "trainable"
    tied = "tied"


class Engine(str, Enum):
    auto = "auto"  # fused where its C kernel builds, else torch
    fused = "fused"  # compnet/kernel.c: forward and backward in one C pass (≈4× faster than torch's ops)
    torch = "torch"  # torch's ops and autograd: the reference the kernel is tested against


class DType(str, Enum):
    float32 = "float32"
    float64 = "float64"


@dataclass
class TargetConf:
    name: str = MISSING


@dataclass
class InitConf:
    name: str = MISSING
    peak_low: float = 0.25  # starting peaks a_i ~ U(peak_low, peak_high), per trial
    peak_high: float = 0.75
    raai_k: float = 1.0  # anti-correlation strength k ∈ [0, 1]
    raai_sigma_w2: Optional[float] = None  # None: zero-bias critical point 2π/(π − k)
    raai_sigma_b2: float = 0.0


@dataclass
class RegimeConf:
    name: str = MISSING  # auto | direct | pretrain
    pretrain_epochs: int = II("epochs")
    finetune_epochs: int = II("epochs")  # raw-weight epochs after pretraining
    direct_epochs: int = II("epochs")  # raw-weight epochs without pretraining


@dataclass
class ModelConf:
    peaks: PeakParam = PeakParam.clamp
    s1: S1 = S1.trainable
    offset: bool = True  # accumulator offset: the exact manifold; false = the paper's plain encoding


@dataclass
class ExperimentConf:
    name: str = MISSING
    targets: list[str] = field(default_factory=list)  # empty: just `target`
    methods: list[str] = field(default_factory=list)  # empty: just `init` + `regime`


@dataclass
class TrainConf:
    target: TargetConf = field(default_factory=TargetConf)
    init: InitConf = field(default_factory=InitConf)
    regime: RegimeConf = field(default_factory=RegimeConf)
    experiment: ExperimentConf = field(default_factory=ExperimentConf)
    model: ModelConf = field(default_factory=ModelConf)
    trials: int = 30
    seed: int = 0
    depth: int = 5
    epochs: int = 1000
    lr: float = 1e-3
    points: int = 500  # training points, evenly spaced on [0, 1]
    test_points: int = 0  # held-out points at cell centres; > 0 reports test MSE
    dtype: DType = DType.float32
    plots: bool = True
    workers: int = 0  # threads training slices of the trials side by side; 0 = one per core
    engine: Engine = Engine.auto


@dataclass
class RegionsConf:
    """`compnet regions`: exact region counts of untrained (or saved) networks, no training."""

    inits: list[str] = field(default_factory=lambda: ["kaiming", "raai", "rai", "manifold"])
    depths: list[int] = field(default_factory=lambda: list(range(1, 13)))  # width-4 depth study
    widths: list[int] = field(default_factory=lambda: [4, 8, 16, 32, 64])  # width study, random inits
    width_depths: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    draws: int = 50  # networks per (init, depth, width)
    lo: float = 0.0  # the interval the input line runs over
    hi: float = 1.0
    seed: int = 0
    from_run: Optional[str] = None  # `from=PATH`: count the saved networks of a run folder instead
    init: InitConf = field(default_factory=lambda: InitConf(name="kaiming"))  # peak range, RAAI settings
    plots: bool = True


# (init, regime) of each of the paper's rows, and its name in the tables
METHODS: dict[str, tuple[str, str, str]] = {
    "default": ("kaiming", "direct", "Default network"),
    "rai": ("rai", "direct", "RAI distribution"),
    "raai": ("raai", "direct", "RAAI distribution"),
    "no_pretraining": ("manifold", "direct", "No pretraining"),
    "not_enforced": ("compositional", "pretrain", "Differentiability not enforced"),
    "enforced": ("manifold", "pretrain", "Differentiability enforced"),
}
REGIMES = ("auto", "direct", "pretrain")


def resolve_regime(init: str, regime: str) -> str:
    """`auto`: pretrain when the init has peaks to pretrain, else train the weights directly."""
    if regime == "auto":
        return "pretrain" if init in PEAK_INITS else "direct"
    return regime


def method_of(init: str, regime: str) -> str:
    for key, (i, r, _) in METHODS.items():
        if (i, r) == (init, resolve_regime(init, regime)):
            return key
    return f"{init}-{resolve_regime(init, regime)}"


def method_label(method: str) -> str:
    return METHODS[method][2] if method in METHODS else method


@dataclass(frozen=True)
class Cell:
    target: str
    method: str
    init: str
    regime: str  # direct | pretrain

    @property
    def name(self) -> str:
        return f"{self.target}-{self.method}"


def plan(cfg: Any) -> list[Cell]:
    """The cells a configuration trains: every target × every method (or its one init + regime)."""
    targets = list(cfg.experiment.targets) or [cfg.target.name]
    if cfg.experiment.methods:
        methods = [(m, METHODS[m][0], METHODS[m][1]) for m in cfg.experiment.methods]
    else:
        init, regime = cfg.init.name, resolve_regime(cfg.init.name, cfg.regime.name)
        methods = [(method_of(init, regime), init, regime)]
    return [Cell(t, m, i, r) for t in targets for m, i, r in methods]


class ConfigError(ValueError):
    """A configuration value that has the right type but is impossible."""


def _check(ok: bool, msg: str) -> None:
    if not ok:
        raise ConfigError(msg)


def _one_of(what: str, value: str, valid) -> None:
    _check(value in valid, f"unknown {what} {value!r}; valid: {', '.join(valid)}")


def validate(cfg: Any) -> None:
    """Refuse impossible settings before any work starts (one line each)."""
    _check(cfg.depth >= 1, f"depth={cfg.depth}: the network needs depth >= 1 hidden layer")
    _check(cfg.trials >= 1, f"trials={cfg.trials}: need trials >= 1")
    _check(cfg.points >= 2, f"points={cfg.points}: need points >= 2")
    _check(cfg.test_points >= 0, f"test_points={cfg.test_points}: need test_points >= 0")
    _check(cfg.lr > 0, f"lr={cfg.lr}: the learning rate must be > 0")
    for key in ("pretrain_epochs", "finetune_epochs", "direct_epochs"):
        n = cfg.regime[key]
        _check(n >= 0, f"regime.{key}={n}: epochs must be >= 0")
    _check(cfg.seed >= 0, f"seed={cfg.seed}: need seed >= 0")
    _check(cfg.workers >= 0, f"workers={cfg.workers}: need >= 0 (0 = one per core)")
    if Engine(cfg.engine) is Engine.fused:
        from compnet.kernel import unavailable

        why = unavailable()
        _check(why is None, f"engine=fused: the kernel does not build here ({why}); use engine=auto or engine=torch")
    for target in cfg.experiment.targets or [cfg.target.name]:
        _one_of("target", target, TARGETS)
    if cfg.experiment.methods:
        for m in cfg.experiment.methods:
            _one_of("method", m, METHODS)
    else:
        _one_of("init", cfg.init.name, INITS)
        _one_of("regime", cfg.regime.name, REGIMES)
        regime = resolve_regime(cfg.init.name, cfg.regime.name)
        _check(
            not (regime == "pretrain" and cfg.init.name in RANDOM_INITS),
            f"regime=pretrain needs peaks to pretrain; init={cfg.init.name} has none (use init=manifold or compositional)",
        )
    # pretraining is the only stage that clamps peaks
    pretrains = any(cell.regime == "pretrain" for cell in plan(cfg))
    _check_init(cfg.init, clamped=cfg.model.peaks == PeakParam.clamp and pretrains)


def _check_init(init: Any, clamped: bool = False) -> None:
    """Starting peaks and RAAI settings (shared by `compnet train` and `compnet regions`)."""
    lo, hi = init.peak_low, init.peak_high
    _check(0 < lo < 1 and 0 < hi < 1, f"init.peak_low={lo}, init.peak_high={hi}: peaks must lie in (0, 1)")
    _check(lo <= hi, f"init.peak_low={lo} > init.peak_high={hi}: need low <= high")
    if clamped:  # a peak drawn outside the clamp would be pretrained from the clamp's edge and never move
        a, b = PEAK_CLAMP
        _check(a <= lo and hi <= b, f"init.peak_low={lo}, init.peak_high={hi}: with model.peaks=clamp starting peaks must lie in [{a}, {b}]")
    _check(0 <= init.raai_k <= 1, f"init.raai_k={init.raai_k}: need 0 <= k <= 1")
    _check(init.raai_sigma_b2 >= 0, f"init.raai_sigma_b2={init.raai_sigma_b2}: need >= 0")
    if init.raai_sigma_w2 is not None:
        _check(init.raai_sigma_w2 > 0, f"init.raai_sigma_w2={init.raai_sigma_w2}: need > 0")


def register() -> None:
    """Make the schemas known to Hydra (named `*_schema` in the primary configs' defaults lists)."""
    from hydra.core.config_store import ConfigStore

    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConf)
    cs.store(name="regions_schema", node=RegionsConf)


def validate_regions(cfg: Any) -> None:
    """The same for `compnet regions`."""
    for init in cfg.inits:
        _one_of("init", init, INITS)
    _check(all(d >= 1 for d in cfg.depths) and all(d >= 1 for d in cfg.width_depths), f"depths={list(cfg.depths)}, width_depths={list(cfg.width_depths)}: every depth must be >= 1")
    _check(all(w >= 1 for w in cfg.widths), f"widths={list(cfg.widths)}: every width must be >= 1")
    _check(cfg.draws >= 1, f"draws={cfg.draws}: need draws >= 1")
    _check(cfg.lo < cfg.hi, f"lo={cfg.lo}, hi={cfg.hi}: need lo < hi")
    _check(cfg.seed >= 0, f"seed={cfg.seed}: need seed >= 0")
    _check_init(cfg.init)

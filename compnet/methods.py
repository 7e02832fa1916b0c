"""The paper's vocabulary: initialisations, training regimes, the methods of its tables, and cells.

A method is an (initialisation, regime) pair, a row of the paper's Tables 1–3 (docs/method.md §4, §6):
random inits train their raw weights directly; peak inits (manifold, compositional) may first pretrain
their peaks and scales through the encoding. A cell is one (target, method) pair with `trials` trials: one
row-and-column entry of a table; an experiment over depths (`experiment=depth`) has one per depth too.
`plan` turns a configuration into its cells.

Nothing here imports torch or Hydra: the command line reads these tables to register its config groups.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

RANDOM_INITS = ("kaiming", "rai", "raai")
PEAK_INITS = ("manifold", "compositional")  # start from peaks a_1 … a_{d+1}
INITS = RANDOM_INITS + PEAK_INITS
REGIMES = ("auto", "direct", "pretrain")
PEAK_CLAMP = (0.01, 0.99)  # model.peaks=clamp keeps pretrained peaks here (zero gradient outside)

# one line each in `compnet train --help`
INIT_HELP = {
    "kaiming": "PyTorch's nn.Linear default (the paper's Default network)",
    "rai": "randomized asymmetric initialisation (Lu et al. 2020)",
    "raai": "anti-correlated RAI (Singh & Sreejith 2021), a reconstruction",
    "manifold": "peaks ~ U(init.peak_low, init.peak_high), scales from the differentiability law",
    "compositional": "the same peaks, every scale its own parameter (differentiability not enforced)",
}
REGIME_HELP = {
    "auto": "pretrain for inits with peaks, direct for random ones",
    "direct": "Adam on the raw weights for regime.direct_epochs",
    "pretrain": "Adam on peaks and scales, then a fresh Adam on the raw weights",
}


class Method(NamedTuple):
    init: str
    regime: str  # direct | pretrain
    label: str  # the paper's name for the row


# the paper's rows, in its order
METHODS: dict[str, Method] = {
    "default": Method("kaiming", "direct", "Default network"),
    "rai": Method("rai", "direct", "RAI distribution"),
    "raai": Method("raai", "direct", "RAAI distribution"),
    "no_pretraining": Method("manifold", "direct", "No pretraining"),
    "not_enforced": Method("compositional", "pretrain", "Differentiability not enforced"),
    "enforced": Method("manifold", "pretrain", "Differentiability enforced"),
    # networks of blocks only (docs/method.md §8): a dense network with as many parameters, the fair control
    "dense_same": Method("kaiming", "direct", "Dense, same parameters"),
}
BLOCK_ONLY = ("dense_same",)


# The paper's tables as experiments (`experiment=table1`): every cell of a table trained in one batch.
# Registered as the config group `experiment` (config.register); a key of the whole config may be set too.
_ALL = ["default", "raai", "no_pretraining", "not_enforced", "enforced"]
EXPERIMENTS: dict[str, dict[str, Any]] = {
    "none": {"experiment": {"name": "none"}},  # a single configuration: `target` x (`init`, `regime`)
    "table1": {"experiment": {"name": "table1", "targets": ["x3", "x11"], "methods": _ALL}},
    "table2": {"experiment": {"name": "table2", "targets": ["sin", "tanh"], "methods": _ALL}},
    # sparse data: 10 evenly spaced training points, 10 held-out points at cell centres
    "table3": {
        "experiment": {"name": "table3", "targets": ["x3", "x11", "sin", "tanh"], "methods": ["default", "enforced"]},
        "points": 10,
        "test_points": 10,
    },
    # error against depth (docs/method.md §9): no pretraining beside it, so that the law alone is measured too
    # the paper's extension (docs/method.md §8): a non-convex and a two-dimensional target, networks of blocks
    "extensions": {
        "experiment": {
            "name": "extensions",
            "targets": ["x3_minus_x", "r3"],
            "methods": ["default", "raai", "dense_same", "no_pretraining", "not_enforced", "enforced"],
        }
    },
    "depth": {
        "experiment": {
            "name": "depth",
            "targets": ["x2", "x3", "x11"],
            "methods": ["default", "raai", "no_pretraining", "enforced"],
            "depths": list(range(1, 13)),
        }
    },
}


def resolve_regime(init: str, regime: str) -> str:
    """`auto`: pretrain when the init has peaks to pretrain, else train the weights directly."""
    if regime == "auto":
        return "pretrain" if init in PEAK_INITS else "direct"
    return regime


def method_of(init: str, regime: str) -> str:
    """The paper's method key of an (init, regime) pair, or `init-regime` for a pair it did not run."""
    regime = resolve_regime(init, regime)
    for key, m in METHODS.items():
        if (m.init, m.regime) == (init, regime):
            return key
    return f"{init}-{regime}"


def method_label(method: str) -> str:
    return METHODS[method].label if method in METHODS else method


def method_order(method: str) -> int:
    keys = list(METHODS)
    return keys.index(method) if method in keys else len(keys)


@dataclass(frozen=True)
class Cell:
    target: str
    method: str
    init: str
    regime: str  # direct | pretrain
    depth: int | None = None  # set where the experiment runs several depths (`experiment.depths`)

    @property
    def name(self) -> str:
        """The cell's folder in an experiment's run folder."""
        return cell_name(self.target, self.method, self.depth)


def cell_name(target: str, method: str, depth: int | None = None) -> str:
    return f"{target}-{method}" + ("" if depth is None else f"-d{depth:02d}")


def is_experiment(cfg: Any) -> bool:
    """An experiment (a grid of targets × methods × depths: a folder per cell and a table) or a single
    configuration."""
    return bool(cfg.experiment.methods or cfg.experiment.targets or cfg.experiment.depths)


def plan(cfg: Any) -> list[Cell]:
    """The cells a configuration trains: every depth × target × method (or its one depth, target, init + regime)."""
    targets = list(cfg.experiment.targets) or [cfg.target.name]
    if cfg.experiment.methods:
        methods = [(m, METHODS[m].init, METHODS[m].regime) for m in cfg.experiment.methods]
    else:
        init, regime = cfg.init.name, resolve_regime(cfg.init.name, cfg.regime.name)
        methods = [(method_of(init, regime), init, regime)]
    depths = list(cfg.experiment.depths) or [None]
    return [Cell(t, m, i, r, d) for d in depths for t in targets for m, i, r in methods]

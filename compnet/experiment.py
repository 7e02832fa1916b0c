"""From a configuration to trained trials: the cells of an experiment, batched together.

A cell is one (target, method) pair with `trials` trials, i.e. one row-and-column entry of the paper's
tables. `compnet train target=x3 init=manifold` is one cell; `experiment=table1` is ten. All cells that
pretrain share one batched pretraining run, and all cells with the same number of raw-weight epochs share
one batched raw run: the per-trial results do not change (see `train`), the Python overhead is paid once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from compnet.config import METHODS, RANDOM_INITS, S1, DType, PeakParam, method_of, resolve_regime
from compnet.init import draw_peaks, generators, random_weights, trial_seed
from compnet.model import Shapes, encode, forward, law_scales
from compnet.targets import get_target, test_grid, train_grid
from compnet.train import Reparam, Stopwatch, mse, pretrain, train_raw, workers_default

COLLAPSE_FRACTION = 0.9  # final MSE >= 0.9 Var(target): the output is (close to) a constant


@dataclass(frozen=True)
class Cell:
    target: str
    method: str
    init: str
    regime: str  # direct | pretrain

    @property
    def name(self) -> str:
        return f"{self.target}-{self.method}"


@dataclass
class CellResult:
    cell: Cell
    seeds: list[int]
    x: torch.Tensor  # training points
    var_target: float
    loss_train: torch.Tensor  # [E + 1, T] raw-weight stage
    loss_pretrain: torch.Tensor | None  # [E1 + 1, T]
    start: torch.Tensor  # [T, P] raw weights at initialisation
    pretrained: torch.Tensor | None  # [T, P] raw weights after pretraining
    final: torch.Tensor  # [T, P]
    peaks_start: torch.Tensor | None  # [T, d + 1]
    peaks_pretrained: torch.Tensor | None
    diverged: torch.Tensor  # [T] bool
    test_mse: torch.Tensor | None

    @property
    def mse(self) -> torch.Tensor:
        return self.loss_train[-1]

    @property
    def mse_init(self) -> torch.Tensor:
        return (self.loss_pretrain if self.loss_pretrain is not None else self.loss_train)[0]

    @property
    def mse_pretrain(self) -> torch.Tensor | None:
        return None if self.loss_pretrain is None else self.loss_pretrain[-1]

    @property
    def collapsed(self) -> torch.Tensor:
        return ~self.diverged & (self.mse >= COLLAPSE_FRACTION * self.var_target)


def plan(cfg: Any) -> list[Cell]:
    targets = list(cfg.experiment.targets) or [cfg.target.name]
    if cfg.experiment.methods:
        methods = [(m, METHODS[m][0], METHODS[m][1]) for m in cfg.experiment.methods]
    else:
        init, regime = cfg.init.name, resolve_regime(cfg.init.name, cfg.regime.name)
        methods = [(method_of(init, regime), init, regime)]
    return [Cell(t, m, i, r) for t in targets for m, i, r in methods]


def reparam_of(cfg: Any) -> Reparam:
    m = cfg.model
    return Reparam(peaks=PeakParam(m.peaks).value, s1=S1(m.s1).value, offset=m.offset)


def run(cfg: Any) -> tuple[list[CellResult], float]:
    """Train every cell of the configuration; returns the results and the training wall time (s)."""
    workers = cfg.workers or workers_default()
    dtype, T, d = getattr(torch, DType(cfg.dtype).value), cfg.trials, cfg.depth
    shapes, reparam = Shapes(d), reparam_of(cfg)
    x = train_grid(cfg.points, dtype)
    cells = plan(cfg)
    clock = Stopwatch()

    starts, peaks, signs, ys = [], [], [], []
    for cell in cells:
        gens = generators(cfg.seed, T)
        target = get_target(cell.target)
        sign = torch.full((T,), target.sign, dtype=dtype)
        if cell.init in RANDOM_INITS:
            p = None
            init = cfg.init
            flat = random_weights(cell.init, shapes, gens, dtype, init.raai_k, init.raai_sigma_w2, init.raai_sigma_b2)
        else:
            p = draw_peaks(gens, d + 1, cfg.init.peak_low, cfg.init.peak_high, dtype)
            flat = Shapes.join(encode(p, law_scales(p), sign, reparam.offset))
        starts.append(flat)
        peaks.append(p)
        signs.append(sign)
        ys.append(target(x).expand(T, -1))

    pre = [i for i, c in enumerate(cells) if c.regime == "pretrain"]
    loss_pre: dict[int, torch.Tensor] = {}
    pretrained: dict[int, torch.Tensor] = {}
    peaks_pre: dict[int, torch.Tensor] = {}
    raw_start = list(starts)
    if pre:
        free = torch.cat([torch.full((T,), cells[i].init == "compositional") for i in pre])
        sign = torch.cat([signs[i] for i in pre])
        with clock:
            fit = pretrain(
                reparam,
                torch.cat([peaks[i] for i in pre]),
                free,
                sign,
                x,
                torch.cat([ys[i] for i in pre]),
                cfg.regime.pretrain_epochs,
                cfg.lr,
                workers,
            )
            flat = Shapes.join(reparam.layers(fit.params, free, sign)).detach()
        a = reparam.peak_values(fit.params[0])
        for j, i in enumerate(pre):
            sl = slice(j * T, (j + 1) * T)
            loss_pre[i], pretrained[i], peaks_pre[i] = fit.history[:, sl], flat[sl], a[sl]
            raw_start[i] = flat[sl]

    epochs_of = [cfg.regime.finetune_epochs if c.regime == "pretrain" else cfg.regime.direct_epochs for c in cells]
    loss_raw: dict[int, torch.Tensor] = {}
    final: dict[int, torch.Tensor] = {}
    diverged: dict[int, torch.Tensor] = {}
    for epochs in sorted(set(epochs_of)):
        group = [i for i, e in enumerate(epochs_of) if e == epochs]
        with clock:
            fit = train_raw(
                shapes, torch.cat([raw_start[i] for i in group]), x, torch.cat([ys[i] for i in group]), epochs, cfg.lr, workers
            )
        for j, i in enumerate(group):
            sl = slice(j * T, (j + 1) * T)
            loss_raw[i], final[i], diverged[i] = fit.history[:, sl], fit.params[0][sl], fit.diverged[sl]

    xt = test_grid(cfg.test_points, dtype) if cfg.test_points else None
    results = []
    for i, cell in enumerate(cells):
        target = get_target(cell.target)
        test = None
        if xt is not None:
            with torch.no_grad():
                test = mse(forward(shapes.split(final[i]), xt), target(xt))
        results.append(
            CellResult(
                cell=cell,
                seeds=[trial_seed(cfg.seed, t) for t in range(T)],
                x=x,
                var_target=float(ys[i][0].var(unbiased=False)),
                loss_train=loss_raw[i],
                loss_pretrain=loss_pre.get(i),
                start=starts[i],
                pretrained=pretrained.get(i),
                final=final[i],
                peaks_start=peaks[i],
                peaks_pretrained=peaks_pre.get(i),
                diverged=diverged[i],
                test_mse=test,
            )
        )
    return results, clock.seconds

"""From a configuration to trained trials: the cells of an experiment, batched together.

A cell is one (target, method) pair with `trials` trials, i.e. one row-and-column entry of the paper's
tables. `compnet train target=x3 init=manifold` is one cell; `experiment=table1` is ten. All cells that
pretrain share one batched pretraining run, and all cells with the same number of raw-weight epochs share
one batched raw run: the per-trial results do not change (see `batching`), the Python overhead is paid once.
Then the analysis a run folder records: the held-out MSE (Table 3) and the exact linear pieces of every
trial's network at the start, after pretraining and at the end (docs/method.md §7); with regions_every=N also
every N epochs of both stages, from snapshots the optimiser kept, all counted in one batched call.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from compnet import custom, kernel
from compnet.batching import Stopwatch, workers_default
from compnet.custom import UserTarget
from compnet.init import generators, start_weights, trial_seed
from compnet.methods import Cell, plan
from compnet.model import Reparam, Shapes, forward
from compnet.pieces import trial_pieces
from compnet.stages import mse, pretrain, train_raw
from compnet.targets import get_target, test_grid, train_grid

# A trial has collapsed when its output is (close to) a constant: it varies by at most 10% of the target's
# variance over the training points, and so fits no better than a constant would (final MSE ≥ 0.9 Var).
COLLAPSE_FRACTION = 0.9
# A trial has diverged when its loss turned NaN or infinite (it is frozen there), or when it blew up to a
# finite final MSE beyond a million times the target's variance: no statistic should average it in.
BLOWUP_FRACTION = 1e6


@dataclass
class CellResult:
    cell: Cell
    trial_start: int  # the global index of the first trial (a shard's `trial_start`)
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
    diverged: torch.Tensor  # [T] bool: non-finite loss during training, or blown up (BLOWUP_FRACTION)
    collapsed: torch.Tensor  # [T] bool: the output is close to a constant (COLLAPSE_FRACTION)
    test_mse: torch.Tensor | None
    engine: str  # the engine that ran: fused | torch
    device: str  # where it ran: cpu | cuda
    pieces: dict[str, list[int]]  # per stage (init, pretrain, final): linear pieces per trial, −1 if diverged
    wasted_final: list[int]  # hidden neurons that never change sign on [0, 1], per trial, −1 if diverged
    # regions_every=N: stage (pretrain, train) → epoch → linear pieces per trial, −1 once diverged
    pieces_by_epoch: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    # a network of blocks (or its dense control): its reading, layer widths and groups, trained parameters
    network: dict[str, Any] = field(default_factory=dict)
    # a 2-D target's exact pieces along lines: stage → line → pieces per trial (−1 if diverged), lines.csv
    lines: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    # a user's target (compnet/custom.py): what it was (summary.json's target_source), the values the network
    # fitted (v, network units; the losses above are in the target's own units, × scale²)
    target_source: dict[str, Any] | None = None
    y: torch.Tensor | None = None

    @property
    def mse(self) -> torch.Tensor:
        return self.loss_train[-1]

    @property
    def mse_init(self) -> torch.Tensor:
        return (self.loss_pretrain if self.loss_pretrain is not None else self.loss_train)[0]

    @property
    def mse_pretrain(self) -> torch.Tensor | None:
        return None if self.loss_pretrain is None else self.loss_pretrain[-1]


def failures(
    pred: torch.Tensor, y: torch.Tensor, final: torch.Tensor, trained_diverged: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(diverged, collapsed) per trial from the final outputs pred [T, N] on the training points y [T, N] and
    the final MSE [T] training recorded."""
    var = y.var(-1, unbiased=False)
    diverged = trained_diverged | ~(final <= BLOWUP_FRACTION * var)  # NaN compares False
    flat = pred.var(-1, unbiased=False) <= (1 - COLLAPSE_FRACTION) * var
    return diverged, ~diverged & flat & (final >= COLLAPSE_FRACTION * var)


def _value(v: Any) -> Any:
    """A config enum's value (the engine reads configs without importing their schemas)."""
    return getattr(v, "value", v)


def reparam_of(cfg: Any) -> Reparam:
    m = cfg.model
    return Reparam(peaks=_value(m.peaks), s1=_value(m.s1), offset=m.offset)


@dataclass
class Start:
    """Where a cell's trials begin: raw weights [T, P], peaks [T, d+1] (peak inits), wave sign and target."""

    flat: torch.Tensor
    peaks: torch.Tensor | None
    sign: torch.Tensor
    y: torch.Tensor


def start_of(
    cell: Cell, cfg: Any, shapes: Shapes, reparam: Reparam, x: torch.Tensor, user: UserTarget | None = None
) -> Start:
    gens, T = generators(cfg.seed, cfg.trials, cfg.trial_start), cfg.trials
    target = get_target(cell.target) if user is None else user.target
    sign = torch.full((T,), target.sign, dtype=x.dtype)
    y = (target(x) if user is None else user.values(x.dtype)).expand(T, -1)
    flat, peaks = start_weights(cell.init, shapes, gens, cfg.init, sign, x.dtype, reparam.offset)
    return Start(flat, peaks, sign, y)


def _slices(n_cells: int, T: int):
    return [slice(j * T, (j + 1) * T) for j in range(n_cells)]


def at_depth(cfg: Any, depth: int | None) -> Any:
    """The configuration of an experiment's cells at one of its depths (`experiment.depths`)."""
    from omegaconf import OmegaConf

    return cfg if depth is None else OmegaConf.merge(cfg, {"depth": depth})


@dataclass
class Kept:
    """One batch's raw weights at the epochs its optimiser kept, to be counted with every other batch's."""

    stage: str  # pretrain | train
    cells: list[int]  # the batch's cells, T trials each, in order
    epochs: list[int]
    weights: torch.Tensor  # [S, cells·T, P]
    history: torch.Tensor  # [E + 1, cells·T]: the stage's loss, to tell when a trial diverged


def count_kept(shapes: Shapes, kept: list[Kept], T: int) -> dict[int, dict[str, dict[int, list[int]]]]:
    """Per cell, stage and kept epoch, the linear pieces of every trial: every network of every batch counted
    in one call of the batched counter. A trial whose loss had turned non-finite by then (Adam froze it there)
    or whose weights are not finite counts −1, as trial_pieces counts a diverged trial."""
    P = shapes.size
    counts = torch.tensor(trial_pieces(shapes, torch.cat([k.weights.reshape(-1, P) for k in kept]))[0])
    out: dict[int, dict[str, dict[int, list[int]]]] = {}
    for k, pieces in zip(kept, counts.split([k.weights.shape[0] * k.weights.shape[1] for k in kept])):
        pieces = pieces.view(len(k.epochs), -1)
        for s, epoch in enumerate(k.epochs):
            frozen = ~torch.isfinite(k.history[: epoch + 1]).all(0)
            at = torch.where(frozen, -1, pieces[s])
            for i, sl in zip(k.cells, _slices(len(k.cells), T)):
                out.setdefault(i, {}).setdefault(k.stage, {})[epoch] = at[sl].tolist()
    return out


def run(cfg: Any) -> tuple[list[CellResult], float]:
    """Train every cell of the configuration, one batch per depth; returns the results and the training wall
    time (s)."""
    cells, results, seconds = plan(cfg), {}, 0.0
    for depth in dict.fromkeys(c.depth for c in cells):
        at = [c for c in cells if c.depth == depth]
        from compnet.targets import target_of

        needs = {t: target_of(t, cfg).needs_blocks for t in dict.fromkeys(c.target for c in at)}
        single, blocks = [c for c in at if not needs[c.target]], [c for c in at if needs[c.target]]
        for train, group in ((_run_batch, single), (_run_blocks, blocks)):
            if group:
                done, wall = train(at_depth(cfg, depth), group)
                results |= {r.cell: r for r in done}
                seconds += wall
    return [results[c] for c in cells], seconds


def _run_blocks(cfg: Any, cells: list[Cell]) -> tuple[list[CellResult], float]:
    from compnet.extensions import run_cells  # networks of blocks (docs/method.md §8)

    return run_cells(cfg, cells)


def device_of(cfg: Any) -> torch.device:
    """Where torch's ops train: `auto` is cuda where torch sees one, unless the engine insists on the fused
    kernel (CPU-only), else cpu."""
    device = _value(cfg.device)
    if device == "auto":
        device = "cuda" if _value(cfg.engine) != "fused" and torch.cuda.is_available() else "cpu"
    return torch.device(device)


def _full_precision_matmuls() -> None:
    """float32 products on the GPU as on the CPU: TF32 would keep 10 bits of the mantissa."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")


def _run_batch(cfg: Any, cells: list[Cell]) -> tuple[list[CellResult], float]:
    """Train cells of one depth together: on `device_of(cfg)`, the analysis afterwards on the CPU."""
    device = device_of(cfg)
    fused = kernel.resolve(_value(cfg.engine), device.type) == "fused"
    if device.type == "cuda":
        _full_precision_matmuls()
    # one GPU is one stream of work: worker threads would only take turns on it
    workers = 1 if device.type == "cuda" else cfg.workers or workers_default()
    T, shapes, reparam = cfg.trials, Shapes(cfg.depth), reparam_of(cfg)
    dtype = getattr(torch, _value(cfg.dtype))
    user = custom.of(cfg)  # a user's target: its own points (and maps), shared by every cell of the batch
    x = train_grid(cfg.points, dtype) if user is None else user.inputs(dtype)
    starts = [start_of(c, cfg, shapes, reparam, x, user) for c in cells]
    clock = Stopwatch()
    every = cfg.regions_every
    kept: list[Kept] = []
    xd = x.to(device)  # on the CPU, `to` returns the tensor itself: the same numbers as before devices

    # stage 1: every pretraining cell in one batch (enforced and not-enforced side by side)
    pre = [i for i, c in enumerate(cells) if c.regime == "pretrain"]
    pretrained: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # loss, weights, peaks
    if pre:
        free = torch.cat([torch.full((T,), cells[i].init == "compositional") for i in pre]).to(device)
        sign = torch.cat([starts[i].sign for i in pre]).to(device)
        peaks, y = torch.cat([starts[i].peaks for i in pre]), torch.cat([starts[i].y for i in pre])
        with clock:
            epochs = cfg.regime.pretrain_epochs
            fit = pretrain(
                reparam, peaks.to(device), free, sign, xd, y.to(device), epochs, cfg.lr, workers, fused, every
            )
            flat = Shapes.join(reparam.layers(fit.params, free, sign)).detach().cpu()  # waits for a GPU
        if fit.snapshots:  # rebuilt as the pretrained network is, outside the training clock
            with torch.no_grad():
                weights = torch.stack([Shapes.join(reparam.layers(p, free, sign)) for _, p in fit.snapshots]).cpu()
            kept.append(Kept("pretrain", pre, [e for e, _ in fit.snapshots], weights, fit.history.cpu()))
        a, history = reparam.peak_values(fit.params[0]).cpu(), fit.history.cpu()
        for i, sl in zip(pre, _slices(len(pre), T)):
            pretrained[i] = (history[:, sl], flat[sl], a[sl])

    # stage 2: raw weights, one batch per number of epochs (direct and fine-tuning may differ)
    epochs_of = [cfg.regime.finetune_epochs if c.regime == "pretrain" else cfg.regime.direct_epochs for c in cells]
    trained: dict[int, tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = {}  # loss, weights, diverged
    for epochs in sorted(set(epochs_of)):
        group = [i for i, e in enumerate(epochs_of) if e == epochs]
        flat = torch.cat([pretrained[i][1] if i in pretrained else starts[i].flat for i in group]).to(device)
        y = torch.cat([starts[i].y for i in group]).to(device)
        with clock:
            fit = train_raw(shapes, flat, xd, y, epochs, cfg.lr, workers, fused, every)
            history, final, diverged = fit.history.cpu(), fit.params[0].cpu(), fit.diverged.cpu()  # waits for a GPU
        if fit.snapshots:
            weights = torch.stack([p[0] for _, p in fit.snapshots]).cpu()
            kept.append(Kept("train", group, [e for e, _ in fit.snapshots], weights, history))
        for i, sl in zip(group, _slices(len(group), T)):
            trained[i] = (history[:, sl], final[sl], diverged[sl])

    by_epoch = count_kept(shapes, kept, T) if kept else {}
    xt, yt = None, None  # held-out points, and a user's target's values there
    if cfg.test_points:
        xt, yt = (
            (test_grid(cfg.test_points, x.dtype), None) if user is None else user.held_out(cfg.test_points, x.dtype)
        )
    units = 1.0 if user is None else user.scale**2  # MSE in the target's own units (normalised: × scale²)
    results = []
    for i, cell in enumerate(cells):
        loss, final, diverged = trained[i]
        loss_pre, weights_pre, peaks_pre = pretrained.get(i, (None, None, None))
        with torch.no_grad():
            diverged, collapsed = failures(forward(shapes.split(final), x), starts[i].y, loss[-1], diverged)
        test = None
        if xt is not None:
            with torch.no_grad():
                test = mse(forward(shapes.split(final), xt), get_target(cell.target)(xt) if yt is None else yt)
        pieces = {"init": trial_pieces(shapes, starts[i].flat)[0]}
        if weights_pre is not None:
            pieces["pretrain"] = trial_pieces(shapes, weights_pre)[0]
        counts, wasted = trial_pieces(shapes, final)
        # a frozen trial's weights are finite, but what it ends with is not a trained network: −1, as in pieces.csv
        pieces["final"], wasted = ([-1 if d else n for n, d in zip(ns, diverged.tolist())] for ns in (counts, wasted))
        if train_counts := by_epoch.get(i, {}).get("train"):  # its last row is this count: −1 for a blow-up too
            train_counts[max(train_counts)] = pieces["final"]
        if units != 1.0:  # after `failures`, which compares the network's own MSE with its own variance
            loss, loss_pre, test = (None if t is None else t * units for t in (loss, loss_pre, test))
        results.append(
            CellResult(
                cell=cell,
                trial_start=cfg.trial_start,
                seeds=[trial_seed(cfg.seed, t) for t in range(cfg.trial_start, cfg.trial_start + T)],
                x=x,
                var_target=float(starts[i].y[0].var(unbiased=False)) * units,
                loss_train=loss,
                loss_pretrain=loss_pre,
                start=starts[i].flat,
                pretrained=weights_pre,
                final=final,
                peaks_start=starts[i].peaks,
                peaks_pretrained=peaks_pre,
                diverged=diverged,
                collapsed=collapsed,
                test_mse=test,
                engine="fused" if fused else "torch",
                device=device.type,
                pieces=pieces,
                wasted_final=wasted,
                pieces_by_epoch=by_epoch.get(i, {}),
                target_source=None if user is None else user.source,
                y=None if user is None else starts[i].y[0],
            )
        )
    return results, clock.seconds

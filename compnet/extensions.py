"""The extension's cells (docs/method.md §8): targets that need a network of blocks, trained like the paper's.

Per target, its reading (`readings.design`) fixes the block network; the methods are the paper's rows on it
and dense controls beside it:

- enforced / not enforced: pretraining Adam on every block's peaks and scales (law-tied, or each scale free),
  the block network rebuilt from them at every step (`Design.layers`), then a fresh Adam on the raw weights;
- no pretraining: the raw weights from the manifold start;
- default, RAAI: dense networks of the block network's widths, trained directly;
- dense_same: a dense network of `depth` hidden layers and (about) as many parameters as the block network
  trains: the fair control.

The raw-weight stage keeps the block-diagonal sparsity (`blocks.mask`): the fused kernel reads only the
diagonal blocks (`groups`), so a block network costs per neuron what a 4-wide one does. Cells of one target that
share an architecture and a stage train in one batch (pretraining: both pretrained methods; raw stage: per
architecture and number of epochs), all their trials together.

What a cell records is `experiment.CellResult`'s: the grid x ([N], or [N, n]), the flat raw weights, and the
exact linear pieces: along the domain for a 1-D target, along the x-axis for a 2-D one (`line_pieces` counts
both axes and both diagonals, lines.csv).
"""

from __future__ import annotations

from typing import Any

import torch

from compnet import kernel
from compnet.batching import Stopwatch, chunked, workers_default
from compnet.encoder import ComposedEncoder, SumEncoder
from compnet.init import draw_peaks, generators, random_weights, trial_seed
from compnet.methods import PEAK_INITS, Cell
from compnet.model import Shapes, forward, law_scales
from compnet.optim import Fit, Report, adam
from compnet.pieces import trial_pieces
from compnet.readings import Design, design
from compnet.stages import batch_mse, train_raw
from compnet.targets import USER_TARGETS, Target, domain_grid, get_target

# the 2-D lines along which pieces are counted, as (start, end) on [−1, 1]², mapped onto the target's domain
# (`lines_of`): both axes through the centre, both diagonals
LINES = {
    "x-axis": ((-1.0, 0.0), (1.0, 0.0)),
    "y-axis": ((0.0, -1.0), (0.0, 1.0)),
    "diagonal": ((-1.0, -1.0), (1.0, 1.0)),
    "antidiagonal": ((-1.0, 1.0), (1.0, -1.0)),
}


def lines_of(target: Target) -> dict[str, tuple[tuple[float, ...], tuple[float, ...]]]:
    """LINES on the target's square domain [lo, hi]² (a user's 2-D target need not live on [−1, 1]²)."""
    lo, hi = target.domain

    def at(point: tuple[float, float]) -> tuple[float, ...]:
        return tuple(lo + (hi - lo) * (v + 1) / 2 for v in point)

    return {name: (at(a), at(b)) for name, (a, b) in LINES.items()}


def grid_of(target: Target, cfg: Any, dtype: torch.dtype) -> torch.Tensor:
    """The training points: `points` on a 1-D domain, `blocks.axis_points` per axis otherwise."""
    return domain_grid(target, cfg.points if target.dim == 1 else cfg.blocks.axis_points, dtype)


def data_of(name: str, cfg: Any, dtype: torch.dtype) -> tuple[Target, torch.Tensor, torch.Tensor, Any]:
    """(target, training points x, values y [N], the user's target or None). A user's target is fitted in its
    own coordinates and units (the readings map each block's input onto [0, 1] themselves); a file's points
    are its own, a callable's the grid a built-in target would get."""
    if name not in USER_TARGETS:
        target = get_target(name)
        x = grid_of(target, cfg, dtype)
        return target, x, target(x), None
    from compnet import custom

    user = custom.load(cfg, cfg.points if (cfg.target.dim or 1) == 1 else cfg.blocks.axis_points)
    if user.source.get("kind") == "file":
        x, y = (torch.from_numpy(a).to(dtype) for a in (user.x, user.y))
        return user.target, x, y, user
    x = grid_of(user.target, cfg, dtype)  # the grid a built-in target gets, rounded once from float64
    return user.target, x, user.target(x.double()).to(dtype), user


def design_of(target: Target, cfg: Any) -> Design:
    return design(target, getattr(cfg.blocks.reading, "value", cfg.blocks.reading), cfg.blocks)


def dense_width(params: int, n: int, hidden: int) -> int:
    """The width w of a dense network (n inputs, `hidden` layers) whose parameter count is closest to `params`."""

    def count(w: int) -> int:
        return n * w + w + (hidden - 1) * (w * w + w) + w + 1

    return min(range(1, 4 * params), key=lambda w: (abs(count(w) - params), w))


def widths_of(cell: Cell, d: Design, cfg: Any) -> tuple[list[int], list[int] | None]:
    """A cell's layer widths and, for a block network whose mask is kept, its groups (None: dense)."""
    widths = d.widths(cfg.depth)
    if cell.method == "dense_same":  # `depth` hidden layers: a deep narrow dense network (the composed reading
        # has 2·depth) would collapse and flatter the blocks
        w = dense_width(d.parameters(cfg.depth, cfg.blocks.mask), d.n, cfg.depth)
        return [d.n] + [w] * cfg.depth + [1], None
    if cell.init in PEAK_INITS:
        return widths, d.groups(cfg.depth) if cfg.blocks.mask else None
    return widths, None


def _peaks(gens: list[torch.Generator], d: Design, cfg: Any, dtype: torch.dtype) -> torch.Tensor:
    """Starting peaks [T, K, d+1] ~ U(init.peak_low, init.peak_high), per trial."""
    flat = draw_peaks(gens, d.K * (cfg.depth + 1), cfg.init.peak_low, cfg.init.peak_high, dtype)
    return flat.view(len(gens), d.K, cfg.depth + 1)


def pretrain_blocks(d: Design, reparam: Any, peaks, free, x, y, epochs: int, lr: float, workers: int, fused: bool):
    """Adam on every block's (θ, s_1, s) through the block network (`stages.pretrain` for blocks); returns the
    Fit with params [θ [T, K, d+1], s_1 [T, K], s [T, K, d]]. On the fused engine a step has no autograd:
    `encoder.SumEncoder` (a sum of blocks) or `encoder.ComposedEncoder` (the composition) writes the layers
    and maps the kernel's gradients back."""
    K, d1 = peaks.shape[1], peaks.shape[2]
    groups = d.groups(d1 - 1)

    def values(p: list[torch.Tensor], f: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Peaks [T, K, d+1] and scales [T, K, d] of the parameters (differentiable)."""
        theta, s1, s = p
        a = reparam.peak_values(theta)
        T = a.shape[0]
        scales = reparam.scales(a.reshape(T * K, d1), s1.reshape(-1), s.reshape(T * K, -1), f.repeat_interleave(K))
        return a, scales.view(T, K, d1 - 1)

    def readouts(p: list[torch.Tensor], f: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """The read-out of the current blocks: fixed, or least squares (the loss is minimal in it, so no gradient
        flows through it)."""
        if d.readout is not None:
            return d.readout.expand(len(ys), -1)
        with torch.no_grad():
            return d.readouts(x, ys, *values(p, f))

    def build(p: list[torch.Tensor], f: torch.Tensor, ys: torch.Tensor):
        return d.layers(*values(p, f), readouts(p, f, ys))

    def fit(sl: slice | torch.Tensor, report: Report | None) -> Fit:
        f, ys = free[sl], y[sl]

        if fused:  # no autograd (encoder.SumEncoder, encoder.ComposedEncoder); the fused engine is CPU-only
            if d.reading == "composed":
                enc = ComposedEncoder(reparam, f, d.sign, d1 - 1, d.n)
            else:
                enc = SumEncoder(reparam, f, d.sign, d1 - 1, d.proj, d.shift, d.margin)
            step = kernel.bind(enc.layers, x, ys, enc.grads, groups)  # the layers are rewritten in place

            def loss(p: list[torch.Tensor]) -> torch.Tensor:
                enc.encode(p, readouts(p, f, ys).numpy())
                out = step()
                enc.vjp(p)
                return out
        else:

            def loss(p: list[torch.Tensor]) -> torch.Tensor:
                return batch_mse(build(p, f, ys), x, ys, fused=False)

        s = law_scales(peaks[sl])
        return adam([reparam.theta(peaks[sl]), s[..., 0].clone(), s], loss, epochs, lr, report=report)

    return chunked(fit, peaks.shape[0], workers, "pretrain", epochs), build


def line_pieces(shapes: Shapes, flat: torch.Tensor, start, end) -> list[int]:
    """Exact linear pieces of every trial's 2-D network along the segment start → end: the line folded into
    the first layer makes it a 1-D network on [0, 1]."""
    layers = shapes.split(flat.double())
    (w1, b1), rest = layers[0], layers[1:]
    a, b = torch.tensor(start, dtype=torch.float64), torch.tensor(end, dtype=torch.float64)
    line = [((w1 @ (b - a)).unsqueeze(2), w1 @ a + b1), *rest]
    one_d = Shapes.of([1] + shapes.widths[1:])
    return trial_pieces(one_d, Shapes.join(line))[0]


def pieces_of(target: Target, shapes: Shapes, flat: torch.Tensor) -> tuple[list[int], list[int]]:
    """(pieces, wasted neurons) per trial: on the domain (1-D) or along the x-axis (2-D; wasted not counted)."""
    if target.dim == 1:
        return trial_pieces(shapes, flat, *target.domain)
    counts = line_pieces(shapes, flat, *lines_of(target)["x-axis"])
    return counts, [-1] * len(counts)


def _pieces(target: Target, shapes: Shapes, stages: dict[str, torch.Tensor | None], gone: list[bool]):
    """(pieces per stage, wasted neurons after training, a 2-D target's pieces along LINES per stage): −1 after
    training for a diverged trial."""
    weights = {k: w for k, w in stages.items() if w is not None}
    pieces = {k: pieces_of(target, shapes, w)[0] for k, w in weights.items() if k != "final"}
    counts, wasted = pieces_of(target, shapes, weights["final"])
    pieces["final"], wasted = ([-1 if dv else v for v, dv in zip(vs, gone)] for vs in (counts, wasted))
    lines = {}
    if target.dim == 2:
        ends = lines_of(target)
        lines = {k: {n: line_pieces(shapes, w, *ends[n]) for n in ends} for k, w in weights.items()}
        lines["final"] = {n: [-1 if dv else v for v, dv in zip(vs, gone)] for n, vs in lines["final"].items()}
    return pieces, wasted, lines


def _network(cell: Cell, d: Design, widths: list[int], groups: list[int] | None) -> dict[str, Any]:
    """What summary.json records of a cell's network: reading, widths, groups and trained parameters."""
    groups = groups or [1] * (len(widths) - 1)
    return {
        "reading": d.reading if cell.init in PEAK_INITS else "dense",
        "widths": widths,
        "groups": groups,
        "parameters": sum(o * i // g + o for o, i, g in zip(widths[1:], widths[:-1], groups)),
    }


def run_cells(cfg: Any, cells: list[Cell]) -> tuple[list[Any], float]:
    """Train the cells whose targets need blocks (one target at a time); returns CellResults and the training
    wall time (s)."""
    from compnet.experiment import CellResult, _value, device_of, failures, reparam_of

    device = device_of(cfg)
    fused = kernel.resolve(_value(cfg.engine), device.type) == "fused"
    workers = 1 if device.type == "cuda" else cfg.workers or workers_default()
    dtype, T, reparam = getattr(torch, _value(cfg.dtype)), cfg.trials, reparam_of(cfg)
    clock, results = Stopwatch(), {}
    for name in dict.fromkeys(c.target for c in cells):
        target, x, y, user = data_of(name, cfg, dtype)
        ours = [c for c in cells if c.target == name]
        d = design_of(target, cfg).to(dtype, device)
        y = y.expand(T, -1)
        xd, yd = x.to(device), y.to(device)
        gens = generators(cfg.seed, T, cfg.trial_start)
        peaks = _peaks(gens, d, cfg, dtype)
        arch = {c: widths_of(c, d, cfg) for c in ours}
        start: dict[Cell, torch.Tensor] = {}
        for c in ours:
            if c.init in PEAK_INITS:
                pd, sc = peaks.to(device), law_scales(peaks).to(device)
                start[c] = Shapes.join(d.layers(pd, sc, d.readouts(xd, yd, pd, sc))).detach().cpu()
            else:
                i = cfg.init
                shapes = Shapes.of(arch[c][0])
                start[c] = random_weights(c.init, shapes, gens, dtype, i.raai_k, i.raai_sigma_w2, i.raai_sigma_b2)

        # stage 1: both pretrained methods in one batch
        pre = [c for c in ours if c.regime == "pretrain"]
        pretrained: dict[Cell, tuple] = {}  # loss, weights, peaks
        if pre:
            free = torch.cat([torch.full((T,), c.init == "compositional") for c in pre]).to(device)
            ys = yd.repeat(len(pre), 1)
            with clock:
                epochs = cfg.regime.pretrain_epochs
                fit, build = pretrain_blocks(
                    d, reparam, peaks.repeat(len(pre), 1, 1).to(device), free, xd, ys, epochs, cfg.lr, workers, fused
                )
                with torch.no_grad():
                    flat = Shapes.join(build(fit.params, free, ys)).cpu()
            a = reparam.peak_values(fit.params[0]).detach().cpu()
            for j, c in enumerate(pre):
                sl = slice(j * T, (j + 1) * T)
                pretrained[c] = (fit.history[:, sl].cpu(), flat[sl], a[sl].flatten(1))

        # stage 2: raw weights, one batch per architecture and number of epochs
        trained: dict[Cell, tuple] = {}  # loss, weights, diverged
        epochs_of = {c: cfg.regime.finetune_epochs if c in pretrained else cfg.regime.direct_epochs for c in ours}
        for key in dict.fromkeys((str(arch[c]), epochs_of[c]) for c in ours):
            group = [c for c in ours if (str(arch[c]), epochs_of[c]) == key]
            widths, groups = arch[group[0]]
            flat = torch.cat([pretrained[c][1] if c in pretrained else start[c] for c in group]).to(device)
            ys = yd.repeat(len(group), 1)
            with clock:
                fit = train_raw(Shapes.of(widths), flat, xd, ys, key[1], cfg.lr, workers, fused, groups=groups)
                history, final, diverged = fit.history.cpu(), fit.params[0].cpu(), fit.diverged.cpu()
            for j, c in enumerate(group):
                sl = slice(j * T, (j + 1) * T)
                trained[c] = (history[:, sl], final[sl], diverged[sl])

        for c in ours:
            shapes = Shapes.of(arch[c][0])
            loss, final, diverged = trained[c]
            loss_pre, weights_pre, peaks_pre = pretrained.get(c, (None, None, None))
            with torch.no_grad():
                diverged, collapsed = failures(forward(shapes.split(final), x), y, loss[-1], diverged)
            stages = {"init": start[c], "pretrain": weights_pre, "final": final}
            pieces, wasted, lines = _pieces(target, shapes, stages, diverged.tolist())
            results[c] = CellResult(
                cell=c,
                trial_start=cfg.trial_start,
                seeds=[trial_seed(cfg.seed, t) for t in range(cfg.trial_start, cfg.trial_start + T)],
                x=x,
                var_target=float(y[0].var(unbiased=False)),
                loss_train=loss,
                loss_pretrain=loss_pre,
                start=start[c],
                pretrained=weights_pre,
                final=final,
                peaks_start=peaks.flatten(1) if c.init in PEAK_INITS else None,
                peaks_pretrained=peaks_pre,
                diverged=diverged,
                collapsed=collapsed,
                test_mse=None,
                engine="fused" if fused else "torch",
                device=device.type,
                pieces=pieces,
                wasted_final=wasted,
                network=_network(c, d, *arch[c]),
                lines=lines,
                target_source=None if user is None else user.source,
                y=None if user is None else y[0],
            )
    return [results[c] for c in cells], clock.seconds

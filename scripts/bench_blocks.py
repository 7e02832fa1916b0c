"""`make bench`'s rows for networks of blocks: cost per neuron, side by side with today's 1-D network.

Each stage of the paper's protocol (pretraining through the encoding, then the raw weights) on 30 trials, timed
for the 1-D network of Tables 1–2 (x³, 5 hidden layers of 4, 500 points), the split reading of x³ − x (5 layers
of 8 = two blocks, 500 points) and the composed reading of r³ (5 layers of 8 then 5 of 4, a 40×40 grid), on the
engine `compnet train` would use. Normalised per hidden neuron, training point and step (ns), and divided by
the 1-D network's: the issue's bar is ≤ 2×.
"""

from __future__ import annotations

import time

import torch

import compnet
from compnet import kernel
from compnet.experiment import reparam_of
from compnet.extensions import data_of, design_of, pretrain_blocks
from compnet.init import draw_peaks, generators
from compnet.model import Shapes, law_scales
from compnet.stages import pretrain, train_raw
from compnet.targets import get_target, train_grid


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _one_d(T: int, epochs: int, workers: int, fused: bool) -> tuple[float, float, int, int]:
    cfg = compnet.compose("target=x3")
    x = train_grid(500)
    y = get_target("x3")(x).expand(T, -1)
    peaks = draw_peaks(generators(0, T), 6, 0.25, 0.75)
    reparam, sign, free = reparam_of(cfg), torch.full((T,), -1.0), torch.zeros(T, dtype=torch.bool)
    pre = _timed(lambda: pretrain(reparam, peaks, free, sign, x, y, epochs, 1e-3, workers, fused))
    flat = Shapes.join(reparam.layers(reparam.start(peaks), free, sign)).detach()
    raw = _timed(lambda: train_raw(Shapes(5), flat, x, y, epochs, 1e-3, workers, fused))
    return pre, raw, 20, 500


def _blocks(target: str, T: int, epochs: int, workers: int, fused: bool) -> tuple[float, float, int, int]:
    cfg = compnet.compose(f"target={target}", "init=manifold")
    t, x, y, _ = data_of(target, cfg, torch.float32)
    d = design_of(t, cfg).to(torch.float32)
    y = y.expand(T, -1)
    peaks = draw_peaks(generators(0, T), d.K * 6, 0.25, 0.75).view(T, d.K, 6)
    free = torch.zeros(T, dtype=torch.bool)
    pre = _timed(lambda: pretrain_blocks(d, reparam_of(cfg), peaks, free, x, y, epochs, 1e-3, workers, fused))
    scales = law_scales(peaks)
    flat = Shapes.join(d.layers(peaks, scales, d.readouts(x, y, peaks, scales))).detach()
    widths = d.widths(5)
    raw = _timed(lambda: train_raw(Shapes.of(widths), flat, x, y, epochs, 1e-3, workers, fused, groups=d.groups(5)))
    return pre, raw, sum(widths[1:-1]), x.shape[0]


def blocks_table(T: int = 30, epochs: int = 200, workers: int = 1) -> str:
    """The Markdown rows: per network and stage, wall time, ns per neuron-point-step, and the ratio to 1-D."""
    fused = kernel.unavailable() is None
    rows = {
        "1-D x³ (4-wide, Tables 1–2)": _one_d(T, epochs, workers, fused),
        "x³ − x, split (2 blocks)": _blocks("x3_minus_x", T, epochs, workers, fused),
        "r³, composed (2 squares → 1 block)": _blocks("r3", T, epochs, workers, fused),
    }
    base = None
    lines = [
        f"Networks of blocks, {T} trials × {epochs} epochs per stage, {'fused' if fused else 'torch'} engine, "
        f"{workers} worker(s): ns per hidden neuron, point and step (ratio to the 1-D network)",
        "",
        "| network | neurons × points | pretraining s | ns/neuron-point-step | raw stage s | ns/neuron-point-step |",
        "|---|---|---|---|---|---|",
    ]
    for name, (pre, raw, neurons, points) in rows.items():
        work = T * epochs * neurons * points / 1e9
        per = (pre / work, raw / work)
        base = base or per
        lines.append(
            f"| {name} | {neurons} × {points} | {pre:.2f} | {per[0]:.2f} ({per[0] / base[0]:.2f}×) | {raw:.2f} | "
            f"{per[1]:.2f} ({per[1] / base[1]:.2f}×) |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(blocks_table())

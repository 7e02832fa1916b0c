"""`compnet classify`: a dense MLP against the same MLP with its hidden ReLUs replaced by compositional blocks, and a
random control, trained side by side for T trials each (docs/method.md §11). H hidden neurons (`hidden`), F
features, C classes, blocks of depth d (`depth`):

    dense          x → W_o ReLU(W_1 x + b_1) + b_o                                  (F → H → C)
    compositional  x → CompositionalLayer(F, C, depth=d, blocks=H): the same dense maps W_1 (its projection) and
                   W_o (its read-out), each hidden neuron's ReLU replaced by a compositional block on
                   u = ½ + W_1 x + b_1 (input_map): d block-diagonal ReLU layers of width 4H (2^d pieces per block);
                   reparameterised (peaks, s_1) until `release_epoch`, then free block weights and a fresh Adam
    control        the same layer with init="random": free from the start, block weights ~ U(±1/√fan_in),
                   exactly the compositional model's parameters after the switch

This is the reading of the paper's VGG-16 experiment in which 4-neuron blocks act on the classifier's neurons
(about 0.5% extra compute): the dense layers stay, the blocks add depth d of width 4 per neuron.
Every model holds its T trials in one module (a leading trial dimension, batched products). Training: cross-
entropy, Adam(lr), minibatches of `batch_size`; trial t of every model sees the same shuffle (its own
generator); the loss is the sum over trials of each trial's mean, so one Adam over the stacked parameters is T
independent Adams. Before training (epoch 0) and after each epoch every trial's training loss, test loss and
test accuracy are recorded (the training loss: the epoch's minibatch losses as they were met; at epoch 0 the
whole training set's).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from compnet.datasets import Split
from compnet.nn import CompositionalLayer

MODELS = ("dense", "compositional", "control")
LABELS = {
    "dense": "dense MLP",
    "compositional": "compositional layer",
    "control": "block-diagonal, random init",
}
COLUMNS = ["model", "trial", "epoch", "train_loss", "test_loss", "test_accuracy"]


class StackedMLP(nn.Module):
    """T independent ReLU MLPs with the sizes `dims` (input, hidden…, output), nn.Linear's default init."""

    def __init__(self, dims: list[int], trials: int, generator: torch.Generator) -> None:
        super().__init__()
        self.weights, self.biases = nn.ParameterList(), nn.ParameterList()
        for n_in, n_out in zip(dims[:-1], dims[1:]):
            bound = 1 / math.sqrt(n_in)
            for plist, shape in ((self.weights, (trials, n_out, n_in)), (self.biases, (trials, n_out))):
                plist.append(nn.Parameter((2 * torch.rand(*shape, generator=generator) - 1) * bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x [T, M, F] → [T, M, C]
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b.unsqueeze(1), x, w.transpose(1, 2))
            if i < len(self.weights) - 1:
                x = torch.relu(x)
        return x


def build(name: str, cfg: Any, n_features: int, n_classes: int, generator: torch.Generator) -> nn.Module:
    """Model `name` of `cfg` with cfg.trials stacked trials."""
    if name == "dense":
        return StackedMLP([n_features, cfg.hidden, n_classes], cfg.trials, generator)
    init = "compositional" if name == "compositional" else "random"
    kw = {"init": init, "input_map": cfg.input_map, "trials": cfg.trials, "generator": generator}
    return CompositionalLayer(n_features, n_classes, depth=cfg.depth, blocks=cfg.hidden, **kw)


def n_parameters(model: nn.Module, trials: int) -> int:
    """Parameters of one trial."""
    return sum(p.numel() for p in model.parameters()) // trials


@dataclass
class Result:
    """curves: one row per (model, trial, epoch) (COLUMNS); params: parameters per trial and model (the
    compositional model's after its switch)."""

    curves: pd.DataFrame
    params: dict[str, int]
    wall_seconds: float


def _generator(seed: int, *key: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, *key]).generate_state(1)[0]))


def _batches(n: int, cfg: Any, epoch: int) -> Iterator[torch.Tensor]:
    """Each trial's minibatch indices of one epoch ([T, B]): the same for every model."""
    order = torch.rand(cfg.trials, n, generator=_generator(cfg.seed, 1, epoch)).argsort(1)
    for start in range(0, n, cfg.batch_size):
        yield order[:, start : start + cfg.batch_size]


@torch.no_grad()
def _evaluate(model: nn.Module, X: torch.Tensor, y: torch.Tensor, T: int) -> tuple[torch.Tensor, ...]:
    """Mean cross-entropy and accuracy of every trial ([T] each) on all of X."""
    logits = model(X.expand(T, *X.shape))
    loss = F.cross_entropy(logits.flatten(0, 1), y.repeat(T), reduction="none").view(T, -1).mean(1)
    return loss, (logits.argmax(-1) == y).double().mean(1)


def train_model(name: str, cfg: Any, data: Split, device: torch.device) -> tuple[pd.DataFrame, int]:
    """Train model `name`'s T trials; its curves and its parameters per trial."""
    T = cfg.trials
    Xtr, ytr, Xte, yte = (
        torch.as_tensor(a, device=device) for a in (data.X_train, data.y_train, data.X_test, data.y_test)
    )
    model = build(name, cfg, Xtr.shape[1], data.n_classes, _generator(cfg.seed, 0, MODELS.index(name))).to(device)
    release = name == "compositional" and cfg.release_epoch < cfg.epochs
    rows: list[np.ndarray] = []

    def record(epoch: int, train_loss: torch.Tensor) -> None:
        test_loss, acc = _evaluate(model, Xte, yte, T)
        cols = [np.full(T, epoch), train_loss.cpu().numpy(), test_loss.cpu().numpy(), acc.cpu().numpy()]
        rows.append(np.stack([np.arange(T), *cols], 1))

    record(0, _evaluate(model, Xtr, ytr, T)[0])  # before training: on the whole training set
    opt = None
    for epoch in range(1, cfg.epochs + 1):
        if release and epoch - 1 == cfg.release_epoch:
            model.release()  # the parameters change: a fresh Adam (CompositionalLayer.release)
            opt = None
        opt = opt or torch.optim.Adam(model.parameters(), lr=cfg.lr)
        total = torch.zeros(T, dtype=torch.float64, device=device)
        for idx in _batches(len(ytr), cfg, epoch):
            idx = idx.to(device)
            logits = model(Xtr[idx])  # [T, B, C]
            loss = F.cross_entropy(logits.flatten(0, 1), ytr[idx].flatten(), reduction="none").view(T, -1).mean(1)
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
            total += loss.detach() * idx.shape[1]
        record(epoch, total / len(ytr))  # the epoch's minibatch losses, weighted by their sizes
    frame = pd.DataFrame(np.concatenate(rows), columns=COLUMNS[1:])
    frame.insert(0, "model", name)
    return frame.astype({"trial": int, "epoch": int}), n_parameters(model, T)


def run(cfg: Any, data: Split, device: torch.device) -> Result:
    """Train every model of `cfg.models` on `data`."""
    clock = time.perf_counter()
    frames, params = [], {}
    for name in cfg.models:
        frame, params[name] = train_model(name, cfg, data, device)
        frames.append(frame)
    return Result(pd.concat(frames, ignore_index=True), params, time.perf_counter() - clock)


def statistics(curves: pd.DataFrame, epochs: list[int]) -> dict[str, dict[str, dict[str, float]]]:
    """{model: {epoch: mean, std, min, max test accuracy, mean test loss}} at the given epochs."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for model, frame in curves.groupby("model", sort=False):
        out[str(model)] = {}
        for e in epochs:
            acc = frame.test_accuracy[frame.epoch == e]
            out[str(model)][str(e)] = {
                "mean_test_accuracy": float(acc.mean()),
                "std_test_accuracy": float(acc.std(ddof=1)) if len(acc) > 1 else 0.0,
                "min_test_accuracy": float(acc.min()),
                "max_test_accuracy": float(acc.max()),
                "mean_test_loss": float(frame.test_loss[frame.epoch == e].mean()),
            }
    return out


def report(stats: dict[str, Any], params: dict[str, int]) -> str:
    """A markdown table: test accuracy (mean ± std over trials, min) per model at the summary's epochs."""
    epochs = list(next(iter(stats.values())))
    head = "| model | parameters | " + " | ".join(f"epoch {e}" for e in epochs) + " |"
    lines = [head, "|" + "---|" * (len(epochs) + 2)]
    for model, by_epoch in stats.items():
        cells = [
            f"{s['mean_test_accuracy']:.4f} ± {s['std_test_accuracy']:.4f} (min {s['min_test_accuracy']:.4f})"
            for s in by_epoch.values()
        ]
        lines.append(f"| {LABELS.get(model, model)} | {params[model]:,} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def draw(curves: pd.DataFrame, path: Path, release_epoch: int | None, title: str) -> None:
    """curves.png: test accuracy and test loss against epoch, per model the mean over trials and a band of ± one
    standard deviation (thin lines: min and max); the switch to free weights dashed."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2)
    for (model, frame), color in zip(curves.groupby("model", sort=False), ("C0", "C3", "C2")):
        for ax, col in zip(axes, ("test_accuracy", "test_loss")):
            g = frame.groupby("epoch")[col]
            mean, std = g.mean(), g.std(ddof=1).fillna(0)
            ax.plot(mean.index, mean, color=color, label=LABELS.get(str(model), str(model)))
            ax.fill_between(mean.index, mean - std, mean + std, color=color, alpha=0.25, lw=0)
            ax.plot(mean.index, g.min(), color=color, lw=0.5, alpha=0.6)
            ax.plot(mean.index, g.max(), color=color, lw=0.5, alpha=0.6)
    for ax, label in zip(axes, ("test accuracy", "test loss (cross-entropy)")):
        if release_epoch is not None:
            ax.axvline(release_epoch, color="0.4", ls="--", lw=0.8)
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    lo = max(0.0, float(curves.groupby(["model", "epoch"]).test_accuracy.mean().quantile(0.1)) - 0.05)
    axes[0].set_ylim(lo, 1.0)  # the late epochs, where the models differ by little, stay readable
    axes[0].legend(loc="lower right", fontsize=8)
    fig.suptitle(title, fontsize=9)
    fig.savefig(path, dpi=120)


@dataclass
class Classification:
    """What `compnet classify` returns: the curves (COLUMNS), summary.json's content, the run folder (or None)."""

    curves: pd.DataFrame
    summary: dict[str, Any]
    folder: Path | None


def reported_epochs(cfg: Any) -> list[int]:
    """The epochs the summary and the report state: the early one, the switch, the last."""
    switch = [cfg.release_epoch] if 0 < cfg.release_epoch < cfg.epochs and "compositional" in cfg.models else []
    return sorted({cfg.early_epoch, *switch, cfg.epochs})


def summary_of(cfg: Any, data: Split, result: Result, device: torch.device) -> dict[str, Any]:
    from omegaconf import OmegaConf

    from compnet.runs import produced_by

    epochs = reported_epochs(cfg)
    return {
        "command": "compnet classify",
        "config": OmegaConf.to_container(cfg, resolve=True, enum_to_str=True),
        "produced_by": produced_by(),
        "device": device.type,
        "data": {
            "source": data.source,
            "n_train": len(data.y_train),
            "n_test": len(data.y_test),
            "n_features": int(data.X_train.shape[1]),
            "n_classes": data.n_classes,
        },
        "parameters_per_trial": result.params,
        "wall_seconds": round(result.wall_seconds, 2),
        "epochs_reported": epochs,
        "test": statistics(result.curves, epochs),
    }


def write(folder: Path, result: Result, summary: dict[str, Any], plots: bool) -> None:
    """curves.csv, report.md, curves.png (with `plots`) and, last, summary.json (it marks the run finished)."""
    import json

    from compnet.runs import produced_line

    folder.mkdir(parents=True, exist_ok=True)
    result.curves.to_csv(folder / "curves.csv", index=False)
    cfg = summary["config"]
    head = (
        f"{produced_line(summary, 'compnet classify')}: {summary['data']['source'].split(' (')[0]}, {cfg['trials']} "
        f"trials per model, {cfg['epochs']} epochs (free weights from epoch {cfg['release_epoch']}), hidden "
        f"{cfg['hidden']}, blocks of depth {cfg['depth']}, Adam lr {cfg['lr']:g}, batch {cfg['batch_size']}; "
        f"trained in {summary['wall_seconds']:.0f} s. Test accuracy, mean ± standard deviation over the trials (min):"
    )
    (folder / "report.md").write_text(f"# compnet classify\n\n{head}\n\n{report(summary['test'], result.params)}\n")
    if plots:
        switch = cfg["release_epoch"] if cfg["release_epoch"] < cfg["epochs"] else None
        title = (
            f"{summary['data']['source'].split(' (')[0]}: {cfg['trials']} trials, hidden {cfg['hidden']}, "
            f"blocks of depth {cfg['depth']}, Adam lr {cfg['lr']:g}, batch {cfg['batch_size']}; dashed: switch to free weights"
        )
        draw(result.curves, folder / "curves.png", switch, title)
    (folder / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")

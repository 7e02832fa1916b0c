"""Figures, drawn only from what run folders and region counts hold (so `compnet plot` can redraw them).

- fit.png      the target with the best, median and worst trial, and their pointwise error (log axis); the
               same axes for every cell of the target in an experiment;
- loss.png     every trial's loss per epoch (log axis, shared as fit.png's), the pretraining / raw-weight
               boundary marked;
- layers.png   each hidden layer's pre-activations of the best trial over [0, 1], at the start and at the
               end (the paper's Figures 5–6): does the triangle structure survive, which layers are wasted;
- pieces.png   (regions_every=N) linear pieces of every trial against epoch, both stages on one time axis;
               an experiment's folder gets one too, every cell in it (a panel per target, a line per method);
- trials.png   (tables) final MSE of every trial per method and target, one dot per trial;
- regions.png  (`compnet regions`) pieces versus depth and per neuron versus width, or of saved networks;
- depth.png    (`experiment=depth`) median and min final MSE against depth per method and target.

Matplotlib's object-oriented API throughout: no pyplot and no global state, so figures can be drawn from
worker threads and nothing leaks between them. A run's own three figures are built once per thread and shape
and redrawn with each cell's data (`_Reused`): an experiment draws them for every cell. Their axes, ticks and
labels (most of a figure's cost) are drawn once per set of limits and kept as pixels, each cell's lines drawn
over them (`_Backdrop`); the cells of one target are drawn together with shared limits (`draw_cells`), so
one set of axes serves them all.
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, NamedTuple

import matplotlib
import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, MaxNLocator, NullFormatter, NullLocator

from compnet.methods import method_label, method_order
from compnet.runs import PIECES, STAGES, cell_of, figures_of, read_summary, settings_recorded
from compnet.shards import read_trials
from compnet.tables import row_labels, row_order
from compnet.targets import get_target, target_label, target_order


def _ranked(trials: pd.DataFrame) -> dict[str, int]:
    """Best, median and worst trial by final MSE among the finite ones: their rows in trials.csv, which are
    their rows in weights.npz (the `trial` column holds global indices, which a shard does not start at 0)."""
    ok = trials[np.isfinite(trials["mse"])].sort_values("mse")
    if ok.empty:
        return {}
    return {"best": int(ok.index[0]), "median": int(ok.index[len(ok) // 2]), "worst": int(ok.index[-1])}


def _margins(width: float, height: float, left: float, top: float, hspace: float = 0.2, wspace: float = 0.2) -> dict:
    """Fixed margins in inches, as gridspec fractions. A run's own three figures are drawn for every cell of
    an experiment, and matplotlib's tight layout doubles their cost (Tables 1+2: 61 figures, 48 s → ~24 s)."""
    edges = {"left": left / width, "right": 1 - 0.15 / width, "bottom": 0.55 / height, "top": 1 - top / height}
    return edges | {"hspace": hspace, "wspace": wspace}


def _title(summary: dict[str, Any]) -> str:
    label = summary["target_source"]["label"] if "target_source" in summary else target_label(summary["target"])
    return f"{method_label(summary['method'])} on {label}"


def _network(weights: np.ndarray, depth: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Saved raw weights [T, P] as the layers (weight [T, out, in], bias [T, out]) of a width-4 MLP, float64.
    Figures evaluate the few networks they show in numpy: on [1, 4, 4] × [1, 4, 2001] a torch op costs more
    in dispatch (and intra-op threads) than in arithmetic."""
    flat, layers, pos = np.asarray(weights, dtype=np.float64), [], 0
    dims = [1] + [4] * depth + [1]
    for n_in, n_out in zip(dims, dims[1:]):
        w = flat[:, pos : pos + n_out * n_in].reshape(-1, n_out, n_in)
        layers.append((w, flat[:, pos + n_out * n_in : pos + n_out * n_in + n_out]))
        pos += n_out * n_in + n_out
    return layers


def _preactivations(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> list[np.ndarray]:
    """Every layer's pre-activation [T, out, N] at the points x [N] (ReLU between layers, as model.forward)."""
    h, out = np.broadcast_to(x, (layers[0][0].shape[0], 1, len(x))), []
    for w, b in layers:
        out.append(w @ h + b[:, :, None])
        h = np.maximum(out[-1], 0)
    return out


def _log_axis(ax: Any, axis: str = "y") -> None:
    """A log axis labelled 10⁻³ in plain text: matplotlib's default labels are mathtext, parsed and laid
    out per label and per figure, a large part of a small figure's cost; minor ticks unlabelled."""
    along = ax.yaxis if axis == "y" else ax.xaxis
    along.set_major_formatter(FuncFormatter(_power_of_ten))
    along.set_minor_formatter(NullFormatter())


def _power_of_ten(v: float, _pos: Any = None) -> str:
    e = int(round(np.log10(v))) if v > 0 else 0
    if v <= 0 or not np.isclose(v, 10.0**e):
        return ""
    return "10" + str(e).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


# _TITLE: a title given its height (y=1.0, where matplotlib puts it) is not re-placed at every draw: matplotlib
# would measure the axes' tick labels each time to see whether something at the top is in its way; nothing is
# (no tick labels or offset text above these axes), so the pixels are the same.


class _Reused(threading.local):
    """A run's own figures (fit, loss, layers), built once per thread and shape and redrawn with each cell's
    data: creating a figure's axes, ticks and legend costs about as much as drawing it, and an experiment draws
    the same three figures for every cell. Thread-local, so worker threads never share one."""

    def __init__(self) -> None:
        self.figures: dict[tuple, Any] = {}

    def get(self, key: tuple, build: Callable[[], Any]) -> Any:
        if key not in self.figures:
            self.figures[key] = build()
        return self.figures[key]


_REUSED = _Reused()
RANKS = {"best": "tab:green", "median": "tab:blue", "worst": "tab:red"}


class _Backdrop:
    """A figure drawn in two layers (Agg blitting): its background (axes, ticks, tick labels, axis labels:
    most of a figure's cost) drawn once per `key` (its limits and labels) and kept as pixels, and each
    cell's own artists (`animated`) drawn over it. The cells of one target share their limits
    (`draw_cells`), so one background serves them all. The pixels are those of drawing the background,
    then the cell's artists, in a fresh figure: a cell's lines lie over the axes' frame, not under it."""

    KEEP = 16  # backgrounds kept per figure (an 840×840 one is 2.8 MB), the oldest dropped first

    def __init__(self, fig: Figure, animated: list[Any]) -> None:
        self.fig, self.canvas, self.animated = fig, FigureCanvasAgg(fig), animated
        for artist in animated:
            artist.set_animated(True)  # left out of canvas.draw(): the background
        self.backgrounds: dict[Hashable, Any] = {}

    def background(self, key: Hashable) -> None:
        """The canvas holds the background of `key` (the figure's limits and labels being set for it)."""
        if key in self.backgrounds:
            self.canvas.restore_region(self.backgrounds[key])
            return
        self.canvas.draw()
        self.backgrounds[key] = self.canvas.copy_from_bbox(self.fig.bbox)
        if len(self.backgrounds) > self.KEEP:
            del self.backgrounds[next(iter(self.backgrounds))]

    def save(self, path: Path, key: Hashable) -> None:
        """Write the figure as it stands (limits set, data in place) over the background of `key`."""
        self.background(key)
        for artist in self.animated:
            self.fig.draw_artist(artist)
        _png(self.canvas, path)


def _decades(values: list[np.ndarray]) -> tuple[float, float]:
    """Log-axis limits at whole decades around the positive finite `values` (with a little room)."""
    shown = np.concatenate([v[np.isfinite(v) & (v > 0)].ravel() for v in values])
    if not shown.size:
        return 1e-3, 1.0
    return 10.0 ** np.floor(np.log10(shown.min() / 1.2)), 10.0 ** np.ceil(np.log10(shown.max() * 1.2))


class _Fit(_Backdrop):
    def __init__(self, n: int) -> None:
        fig = Figure(figsize=(7, 7), dpi=120)
        self.axes = ax, ax_err = fig.subplots(2, 1, sharex=True, gridspec_kw=_margins(7, 7, 0.8, 0.4, hspace=0.1))
        self.target = ax.plot([0, 1], [0, 1], "k", lw=2.5, alpha=0.35, label="target")[0]
        colors = list(RANKS.values())[:n]
        self.ranked = [ax.plot([0, 1], [0, 1], color=c, lw=1, label=" ")[0] for c in colors]
        self.errors = [ax_err.semilogy([0, 1], [1, 1], color=c, lw=0.8)[0] for c in colors]
        self.points = ax.plot([0, 1], [0, 1], ".", color="gray", ms=2, label="points")[0]
        ax.set_xlim(-0.05, 1.05)  # x (u for a user's target) spans [0, 1]: matplotlib's 5% margins
        ax_err.set_ylabel("|network − target|")
        _log_axis(ax_err)
        self.legend = ax.legend(fontsize=8)
        super().__init__(fig, [self.target, *self.ranked, *self.errors, self.points, self.legend, ax.title])


class _FitData(NamedTuple):
    user: bool  # a user's target: drawn in the network's units (u, v)
    x: np.ndarray
    y: np.ndarray  # the target at x
    pred: np.ndarray  # [ranked, N] the best, median and worst trial at x
    errors: np.ndarray  # [ranked, N] their |network − target|
    points: tuple[np.ndarray, np.ndarray]
    labels: list[str]  # the legend's
    title: str


def _fit_data(summary: dict[str, Any], trials: pd.DataFrame, weights: Any) -> _FitData:
    user = "y" in weights
    if user:
        order = np.argsort(weights["x"], kind="stable")
        x, y = (weights[k][order].astype(np.float64) for k in ("x", "y"))
        label, ys = summary["target_source"]["label"], weights["y"]
    else:
        target = get_target(summary["target"])
        x = np.linspace(0, 1, 1001)
        y, label = target.values(x), target_label(summary["target"])
        ys = target.values(weights["x"])
    ranked = _ranked(trials)
    pred = _preactivations(_network(weights["final"][list(ranked.values())], settings_recorded(summary)["depth"]), x)
    pred = pred[-1][:, 0]
    units = " in y's units" if user else ""  # trials.csv's MSE; the axes are the network's (u, v)
    labels = [f"target {label}"]
    labels += [
        f"{k} (trial {trials.loc[t, 'trial']}, MSE {trials.loc[t, 'mse']:.2e}{units})" for k, t in ranked.items()
    ]
    labels.append(f"{len(ys)} training points")
    title = f"{_title(summary)}, {summary['n_trials']} trials"
    return _FitData(user, x, y, pred, np.maximum(np.abs(pred - y), 1e-16), (weights["x"], ys), labels, title)


def _fit_limits(fits: list[_FitData]) -> tuple[float, float]:
    """The top panel's y limits for cells of one target: the target (its training points, for a user's
    target) and every shown trial, with matplotlib's 5% margins; a trial reaches at most the target's span
    beyond it (one far off would flatten the others), the error panel below showing by how much it leaves."""
    lo = min(min(d.y.min(), d.points[1].min()) for d in fits)
    hi = max(max(d.y.max(), d.points[1].max()) for d in fits)
    span = hi - lo if hi > lo else 1.0
    shown = np.concatenate([d.pred[np.isfinite(d.pred)] for d in fits] + [np.array([lo, hi])])
    lo, hi = max(shown.min(), lo - span), min(shown.max(), hi + span)
    pad = 0.05 * (hi - lo) if hi > lo else 0.5
    return float(lo - pad), float(hi + pad)


def _draw_fit(path: Path, d: _FitData, limits: tuple[float, float], error_limits: tuple[float, float]) -> None:
    f = _REUSED.get(("fit", len(d.pred)), lambda: _Fit(len(d.pred)))
    ax, ax_err = f.axes
    f.target.set_data(d.x, d.y)
    for line, err, pred, error in zip(f.ranked, f.errors, d.pred, d.errors):
        line.set_data(d.x, pred)
        err.set_data(d.x, error)
    f.points.set_data(*d.points)
    for text, label in zip(f.legend.get_texts(), d.labels):
        text.set_text(label)
    ax.set_ylim(limits)
    ax_err.set_ylim(error_limits)
    ax.set_ylabel("v = (y − offset)/scale (summary: target_source)" if d.user else "y")
    ax_err.set_xlabel("u = (x − lo)/(hi − lo)" if d.user else "x")
    ax.set_title(d.title, y=1.0)  # y: see _TITLE
    f.save(path, (d.user, limits, error_limits))


class _Loss(_Backdrop):
    def __init__(self) -> None:
        fig = Figure(figsize=(7, 4), dpi=120)
        self.ax = ax = fig.subplots(gridspec_kw=_margins(7, 4, left=0.8, top=0.4))
        # every trial's loss in one collection (30 Line2D cost 30 artists' setup and draw)
        self.curves = LineCollection([], color="tab:blue", lw=0.6, alpha=0.5)
        ax.add_collection(self.curves)
        ax.set_yscale("log")
        _log_axis(ax)
        self.switch = ax.axvline(0, color="k", ls="--", lw=1)  # the pretraining / raw-weight boundary
        self.label = ax.text(0, 1, " raw weights freed", va="top", fontsize=8)
        ax.set(xlabel="epoch", ylabel="MSE")
        super().__init__(fig, [self.curves, self.switch, self.label, ax.title])


def _losses(losses: Any) -> tuple[np.ndarray, int]:
    """Every trial's loss per epoch, both stages [epochs, trials], and where the raw stage starts (0: no
    pretraining)."""
    if "loss_pretrain" not in losses:
        return losses["loss_train"], 0
    return np.concatenate([losses["loss_pretrain"], losses["loss_train"]]), len(losses["loss_pretrain"])


def _draw_loss(path: Path, summary: dict[str, Any], loss: np.ndarray, switch: int, limits: tuple[float, float]) -> None:
    f = _REUSED.get(("loss",), _Loss)
    epochs = np.arange(len(loss), dtype=float)
    f.curves.set_segments([np.column_stack([epochs, col]) for col in loss.T])
    f.ax.set_xlim(-0.05 * len(loss), 1.05 * (len(loss) - 1))
    f.ax.set_ylim(limits)
    f.switch.set_visible(switch > 0)
    f.label.set_visible(switch > 0)
    f.switch.set_xdata([switch - 0.5] * 2)
    f.label.set_position((switch, limits[1]))
    f.ax.set_title(f"{_title(summary)}: loss of every trial", y=1.0)  # y: see _TITLE
    f.save(path, (f.ax.get_xlim(), limits))


class _Layers(_Backdrop):
    """The layers figure: its 2·depth panels' axes, ticks, labels and legend never change (every neuron is
    scaled to [−1, 1]), so its background is drawn once and each cell draws only its lines and title."""

    def __init__(self, depth: int) -> None:
        fig = Figure(figsize=(2.6 * depth, 5), dpi=110)
        margins = _margins(2.6 * depth, 5, left=0.8, top=1.0, hspace=0.3, wspace=0.12)
        # every neuron is scaled to its own peak, so every panel spans [−1, 1]: one shared y axis, labelled once
        axes = fig.subplots(2, depth, squeeze=False, sharex=True, sharey=True, gridspec_kw=margins)
        self.lines = []  # per panel, a line per neuron
        for row, stage in enumerate(("start", "trained")):
            for k in range(depth):
                ax = axes[row, k]
                ax.axhline(0, color="k", lw=0.6)
                labels = [f"neuron {i + 1}" for i in range(4)]
                self.lines.append(ax.plot([0, 1], np.zeros((2, 4)), lw=0.9, label=labels))
                ax.set_title(f"{stage}: layer {k + 1}", fontsize=9)
        axes[0, 0].set(xlim=(-0.05, 1.05), ylim=(-1.1, 1.1))
        axes[0, 0].set_ylabel("pre-activation / its max")
        # in the top margin, under the title: inside a panel it would hide some cell's lines
        fig.legend(handles=self.lines[0], loc="upper center", bbox_to_anchor=(0.5, 1 - 0.38 / 5), ncols=4,
                   fontsize=8, frameon=False)  # fmt: skip
        self.title = fig.suptitle(" ")
        super().__init__(fig, [*(line for panel in self.lines for line in panel), self.title])


def _draw_layers(path: Path, summary: dict[str, Any], trials: pd.DataFrame, weights: Any) -> None:
    ranked = _ranked(trials)
    if not ranked:
        return
    t, depth = ranked["best"], settings_recorded(summary)["depth"]
    x = np.linspace(0, 1, 2001)
    f = _REUSED.get(("layers", depth), lambda: _Layers(depth))
    panels = iter(f.lines)
    for key in ("start", "final"):
        for z in _preactivations(_network(weights[key][t : t + 1], depth), x)[:-1]:
            # each neuron scaled to its own peak: deep waves are tiny (c_k ~ 4^-k) beside the accumulator, and
            # what matters is their shape and where they cross zero
            scaled = z[0] / np.maximum(np.abs(z[0]).max(1, keepdims=True), 1e-300)
            for line, row in zip(next(panels), scaled):
                line.set_data(x, row)
    f.title.set_text(f"Pre-activations of the best trial ({trials.loc[t, 'trial']}), {_title(summary)}")
    f.save(path, ())


def _save(fig: Figure, path: Path) -> None:
    """Draw `fig` and write it as a PNG (`_png`): the pixels savefig writes, in a third of its encoding time."""
    canvas = FigureCanvasAgg(fig) if not isinstance(fig.canvas, FigureCanvasAgg) else fig.canvas
    canvas.draw()
    _png(canvas, path)


def _png(canvas: FigureCanvasAgg, path: Path) -> None:
    """The canvas as it stands, as an 8-bit PNG: RGB when every pixel is opaque (as in every figure here:
    the alpha channel would be a quarter of the data, all 255), rows unfiltered, zlib's fastest level, and
    savefig's metadata (dpi, `Software`). PIL's writer (savefig's) tries a filter per row and spends ~3x
    as long for files within ~10% of these; the pixels are the same."""
    rgba = np.asarray(canvas.buffer_rgba())
    height, width, _ = rgba.shape
    opaque = bool(rgba[..., 3].min() == 255)
    channels = 3 if opaque else 4
    raw = np.empty((height, 1 + width * channels), dtype=np.uint8)
    raw[:, 0] = 0  # filter type None, every row
    raw[:, 1:].reshape(height, width, channels)[...] = rgba[..., :channels]
    dpm = round(canvas.figure.dpi / 0.0254)  # pixels per metre

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    software = f"Software\0Matplotlib version{matplotlib.__version__}, https://matplotlib.org/".encode("latin-1")
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2 if opaque else 6, 0, 0, 0))
        + chunk(b"tEXt", software)
        + chunk(b"pHYs", struct.pack(">IIB", dpm, dpm, 1))
        + chunk(b"IDAT", zlib.compress(raw.data, 1))
        + chunk(b"IEND", b"")
    )


def _switch(pieces: pd.DataFrame) -> int:
    """Where the raw stage starts on the shared time axis: the last pretraining epoch (0 without one)."""
    pre = pieces.epoch[pieces.stage == "pretrain"]
    return int(pre.max()) if len(pre) else 0


def _spread(pieces: pd.DataFrame, switch: int) -> pd.DataFrame:
    """Median and 10–90% range of the counted trials per point of the time axis (the raw stage shifted to
    start at `switch`); a diverged trial (−1) is left out."""
    ok = pieces[pieces.pieces >= 0]
    counts = ok.pieces.groupby(ok.epoch + np.where(ok.stage == "train", switch, 0))
    return pd.DataFrame({"median": counts.median(), "low": counts.quantile(0.1), "high": counts.quantile(0.9)})


def _pieces_axes(ax: Any, depths: set[int], switch: int) -> None:
    """Log-2 pieces axis, the 2^d line of each depth shown, the switch from pretraining to raw weights."""
    for d in sorted(depths):
        ax.axhline(2.0**d, color="k", ls=":", lw=1, label=f"$2^{{{d}}}$")
    if switch:
        ax.axvline(switch, color="k", ls="--", lw=1)
        ax.text(switch, 2.0 ** max(depths), " raw weights freed", va="bottom", fontsize=8)
    ax.set_yscale("log", base=2)
    ax.set(xlabel="epoch (pretraining, then raw weights)", ylabel="linear pieces on [0, 1]")
    ax.grid(alpha=0.3)


def _draw_spread(ax: Any, spread: pd.DataFrame, color: str, label: str) -> None:
    ax.plot(spread.index, spread["median"], color=color, lw=1.2, label=label)
    ax.fill_between(spread.index, spread["low"], spread["high"], color=color, alpha=0.15, lw=0)


def draw_pieces(path: Path, summary: dict[str, Any], pieces: pd.DataFrame) -> None:
    """A cell's linear pieces through training: median and 10–90% of its trials against epoch."""
    switch = _switch(pieces)
    fig = Figure(figsize=(7, 4))
    ax = fig.subplots(gridspec_kw=_margins(7, 4, left=0.8, top=0.4))
    _draw_spread(ax, _spread(pieces, switch), "tab:blue", "median, 10–90% of trials")
    _pieces_axes(ax, {settings_recorded(summary)["depth"]}, switch)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"{_title(summary)}: linear pieces of {summary['n_trials']} trials", fontsize=10)
    fig.savefig(path, dpi=120)


def draw_pieces_experiment(folder: Path, summaries: list[dict[str, Any]], pieces: pd.DataFrame) -> Path:
    """pieces.png of an experiment: a panel per target, a line (median, 10–90% band) per method; methods
    without pretraining start their raw stage at the switch, beside the others' raw stage."""
    targets = sorted({s["target"] for s in summaries}, key=target_order)
    methods = list(dict.fromkeys(s["method"] for s in summaries))  # a method's colour is the same in every panel
    switch = _switch(pieces)
    fig = Figure(figsize=(5.5 * len(targets), 4.5), layout="tight")
    axes = fig.subplots(1, len(targets), squeeze=False, sharey=True)[0]
    for ax, target in zip(axes, targets):
        cells = [s for s in summaries if s["target"] == target]
        for s in cells:
            rows = pieces[pieces.cell == cell_of(s)]
            _draw_spread(ax, _spread(rows, switch), f"C{methods.index(s['method'])}", method_label(s["method"]))
        _pieces_axes(ax, {settings_recorded(s)["depth"] for s in cells}, switch)
        ax.set_title(target)
    axes[0].legend(fontsize=7)
    fig.suptitle("linear pieces through training (median and 10–90% of trials)")
    path = folder / "pieces.png"
    fig.savefig(path, dpi=120)
    return path


def draw_cells(
    folders: list[Path],
    summaries: list[dict[str, Any]] | None = None,
    names: tuple[str, ...] | None = None,
    only: list[int] | None = None,
) -> list[Path]:
    """fit.png, loss.png and layers.png of run folders (`summaries`: theirs, if not yet on disk), and
    pieces.png where one has pieces.csv; `names`: only those of them (`figures_of` lists them). The folders
    are the cells of one target (`groups`: an experiment's methods and depths, or one run): their fits'
    error panels share their limits, and so do their loss axes, so that they compare side by side, and a
    figure's background is drawn once for them all (`_Backdrop`). `only`: draw the figures of these of them
    (their indices), the limits still from all. A network of blocks, or its dense control: blockplots."""
    summaries = [read_summary(f) for f in folders] if summaries is None else summaries
    only = range(len(folders)) if only is None else only
    drawn, fits, curves = [], {}, {}
    for i, (folder, summary) in enumerate(zip(folders, summaries)):
        if "network" in summary:
            continue
        wanted = [n for n in figures_of(folder) if names is None or n in names]
        drawn_here = "fit.png" in wanted or ("layers.png" in wanted and i in only)
        trials = pd.read_csv(folder / "trials.csv") if drawn_here else None  # fit: every cell's, for the limits
        with np.load(folder / "losses.npz") as losses, np.load(folder / "weights.npz") as weights:
            if "fit.png" in wanted:
                fits[i] = _fit_data(summary, trials, weights)
            if "loss.png" in wanted:
                curves[i] = _losses(losses)
            if "layers.png" in wanted and i in only:
                _draw_layers(folder / "layers.png", summary, trials, weights)
    limits = _fit_limits(list(fits.values())) if fits else None
    error_limits = _decades([d.errors for d in fits.values()]) if fits else None
    loss_limits = _decades([loss for loss, _ in curves.values()]) if curves else None
    for i in only:
        folder, summary = folders[i], summaries[i]
        if "network" in summary:
            from compnet import blockplots

            drawn += blockplots.draw_cell(folder, summary)
            continue
        wanted = [n for n in figures_of(folder) if names is None or n in names]
        if i in fits:
            _draw_fit(folder / "fit.png", fits[i], limits, error_limits)
        if i in curves:
            _draw_loss(folder / "loss.png", summary, *curves[i], loss_limits)
        if "pieces.png" in wanted:
            draw_pieces(folder / "pieces.png", summary, pd.read_csv(folder / PIECES))
        drawn += [folder / name for name in wanted]
    return drawn


def groups(summaries: list[dict[str, Any]]) -> list[list[int]]:
    """The cells (indices) whose figures `draw_cells` draws together: those of one target."""
    by_target: dict[str, list[int]] = {}
    for i, s in enumerate(summaries):
        by_target.setdefault(s["target"], []).append(i)
    return list(by_target.values())


def warm(depths: tuple[int, ...] = ()) -> None:
    """Build and draw once, in memory, the figures a run will draw (layers.png at each of `depths`): fonts,
    glyphs and the figures' axes are then ready when the first cell's data arrive (the figure helpers of
    compnet/painter.py do this while the main process starts up)."""
    import io

    for f in (_REUSED.get(("fit", 3), lambda: _Fit(3)).fig, _REUSED.get(("loss",), _Loss).fig):
        f.savefig(io.BytesIO(), format="rgba")  # every artist, the animated ones too
    for depth in depths:
        _REUSED.get(("layers", depth), lambda d=depth: _Layers(d)).background(())
    pd.read_csv(io.StringIO("trial,mse\n0,1.0\n"))


def draw_trials(folder: Path, summaries: list[dict[str, Any]], metric: str = "mse") -> Path:
    """Final MSE of every trial, per method (rows of the table) and target (panels); collapsed trials red."""
    targets = sorted({s["target"] for s in summaries}, key=target_order)
    labels = row_labels(summaries)
    rows = row_order(summaries, labels)
    fig = Figure(dpi=120)
    canvas = FigureCanvasAgg(fig)
    # fixed margins, the rows' labels measured: a tight layout draws the figure twice (1.1 of its 2 s)
    left = max(Text(text=r, figure=fig).get_window_extent(canvas.get_renderer()).width for r in rows) / fig.dpi
    width, height = 4.5 * len(targets) + left, 0.6 * len(rows) + 1.8
    fig.set_size_inches(width, height)
    margins = _margins(width, height, left=left + 0.3, top=0.75, wspace=0.08) | {"bottom": 0.65 / height}
    axes = fig.subplots(1, len(targets), squeeze=False, sharey=True, gridspec_kw=margins)
    for ax, target in zip(axes[0], targets):
        for s, label in zip(summaries, labels):
            if s["target"] != target:
                continue
            tr = read_trials(s)  # a merged run's from all its shards
            yrow = rows.index(label) + np.linspace(-0.15, 0.15, len(tr))
            ax.scatter(tr[metric].clip(lower=1e-12), yrow, c=np.where(tr["collapsed"], "tab:red", "tab:blue"), s=9)
        ax.set_xscale("log")
        _log_axis(ax, "x")
        ax.xaxis.set_minor_locator(NullLocator())  # ~60 minor ticks a panel: half the figure's cost
        ax.set_title(target)
        ax.set_xlabel(metric.replace("_", " ").replace("mse", "MSE"))
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(rows)), rows)
    axes[0][0].invert_yaxis()
    fig.suptitle("every trial (red: collapsed)")
    path = folder / "trials.png"
    _save(fig, path)
    return path


def draw_region_study(frame: pd.DataFrame, path: Path, lo: float, hi: float) -> None:
    """Panel 1: mean pieces versus depth with the min–max band and 2^d (log y). Panel 2: pieces per
    neuron versus width, one line per init and depth, the fitted constant dashed."""
    from compnet.study import per_neuron

    studies = [s for s in ("depth", "width") if (frame.study == s).any()]
    fig = Figure(figsize=(6.5 * len(studies), 4.5), layout="tight")
    axes = fig.subplots(1, len(studies), squeeze=False)
    colors = {init: f"C{i}" for i, init in enumerate(dict.fromkeys(frame.init))}
    for ax, study in zip(axes[0], studies):
        rows = frame[frame.study == study]
        if study == "depth":
            for init, g in rows.groupby("init", sort=False):
                s = g.groupby("depth").pieces.agg(["mean", "min", "max"])
                ax.plot(s.index, s["mean"], "o-", color=colors[init], label=init, ms=3)
                ax.fill_between(s.index, s["min"], s["max"], color=colors[init], alpha=0.2)
            d = np.array(sorted(rows.depth.unique()))
            ax.plot(d, 2.0**d, "k--", lw=1, label="$2^d$")
            ax.set_yscale("log", base=2)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set(xlabel="depth (width 4)", ylabel="linear pieces", title="pieces versus depth (mean, min–max)")
        else:
            markers = dict(zip(sorted(rows.depth.unique()), "osD^v<>p*hx+"))
            for (init, depth), g in rows.groupby(["init", "depth"], sort=False):
                s = (g.pieces / g.neurons).groupby(g.width).mean()
                ax.plot(
                    s.index,
                    s.values,
                    marker=markers[depth],
                    color=colors[init],
                    lw=0.8,
                    ms=4,
                    label=f"{init}, depth {depth}",
                )
            for init, c in per_neuron(frame).items():
                ax.axhline(c, color=colors[init], ls="--", lw=1)
            ax.set_xscale("log", base=2)
            ax.set(
                xlabel="width",
                ylabel="pieces / hidden neurons",
                title="Hanin–Rolnick: pieces per neuron (dashed: mean)",
            )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, **({"loc": "center left", "bbox_to_anchor": (1, 0.5)} if study == "width" else {}))
    fig.suptitle(f"linear pieces on [{lo:g}, {hi:g}] at initialisation")
    fig.savefig(path, dpi=120)


def draw_region_runs(frame: pd.DataFrame, path: Path, lo: float, hi: float) -> None:
    """Pieces of every trial per run (rows) and stage (colours), log x; a black bar marks 2^depth."""
    runs = list(dict.fromkeys(frame.run))
    label_width = 0.07 * max(map(len, runs))  # inches: Hydra's sweep folders have long names
    fig = Figure(figsize=(6.5 + label_width, 0.6 * len(runs) + 1.8), layout="tight")
    ax = fig.subplots()
    for k, stage in enumerate(STAGES):
        rows = frame[frame.stage == stage]
        ax.scatter(rows.pieces, rows.run.map(runs.index) + (k - 1) * 0.2, s=10, color=f"C{k}", label=stage)
    depth = frame.groupby("run", sort=False).depth.first()
    ax.scatter(2.0**depth.values, [runs.index(r) for r in depth.index], marker="|", s=300, color="k", label="$2^d$")
    ax.set_xscale("log", base=2)
    ax.set_yticks(range(len(runs)), runs)
    ax.invert_yaxis()
    ax.set(xlabel="linear pieces")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1, 0.5))
    fig.suptitle(f"linear pieces of saved networks on [{lo:g}, {hi:g}], every trial")
    fig.savefig(path, dpi=120)


def draw_depth(df: pd.DataFrame, path: Path, points: int) -> Path:
    """Median (solid) and min (dashed) final MSE against depth per method, one panel per target (log y), with
    the 4^−d slope through the first median of the lowest curve, and on x² Yarotsky's interpolant (depth.py)."""
    from compnet.depth import yarotsky_mse

    targets = sorted(df.target.unique(), key=target_order)
    fig = Figure(figsize=(4.2 * len(targets), 3.8), layout="constrained")
    axes = fig.subplots(1, len(targets), squeeze=False, sharey=True)[0]
    depths = np.array(sorted(df.depth.unique()))
    for ax, target in zip(axes, targets):
        g = df[df.target == target]
        for i, (method, m) in enumerate(sorted(g.groupby("method"), key=lambda kv: method_order(kv[0]))):
            color = f"C{i}"
            ax.plot(m.depth, m["median"], "o-", color=color, ms=3, label=method_label(method))
            ax.plot(m.depth, m["min"], "--", color=color, lw=0.9)
        anchor = g[g.depth == depths[0]]["median"].min()
        ax.plot(depths, anchor * 4.0 ** -(depths - depths[0]), ":", color="grey", label="$4^{-d}$ slope")
        if target == "x2":
            ax.plot(
                depths, [yarotsky_mse(int(d), points) for d in depths], "k-", lw=1.4, label="Yarotsky x² ($2^d$ pieces)"
            )
        ax.set_yscale("log")
        ax.set_title(target_label(target))
        ax.set_xlabel("depth (hidden layers of width 4)")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower left")
    axes[0].set_ylabel("final MSE: median (solid), min (dashed)")
    fig.savefig(path, dpi=120)
    return path

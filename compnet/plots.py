"""A run's figures, drawn only from what its folder holds (so `compnet plot` can redraw them).

- fit.png      the target with the best, median and worst trial, and their pointwise error (log axis); the
               same axes for every cell of the target in an experiment;
- loss.png     every trial's loss per epoch (log axis, shared as fit.png's), the pretraining / raw-weight
               boundary marked;
- layers.png   each hidden layer's pre-activations of the best trial over [0, 1], at the start and at the
               end (the paper's Figures 5–6): does the triangle structure survive, which layers are wasted;
- pieces.png   (regions_every=N) linear pieces of every trial against epoch, both stages on one time axis;
               an experiment's folder gets one too, every cell in it (a panel per target, a line per method);
- trials.png   (tables) final MSE of every trial per method and target, one dot per trial.

A network of blocks' figures are blockplots.py's, the studies' (regions.png, depth.png) studyplots.py's.
Matplotlib's object-oriented API throughout: no pyplot and no global state, so figures can be drawn from
worker threads and nothing leaks between them. A run's own three figures are built once per thread and shape
and redrawn with each cell's data (`canvas.Reused`): an experiment draws them for every cell. Their axes,
ticks and labels (most of a figure's cost) are drawn once per set of limits and kept as pixels, each cell's
lines drawn over them (`canvas.Backdrop`); the cells of one target are drawn together with shared limits
(`draw_cells`), so one set of axes serves them all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Text
from matplotlib.ticker import FixedLocator, NullLocator

from compnet.canvas import REUSED, Backdrop, decades, fixed_margins, log_axis, save
from compnet.methods import method_label
from compnet.runs import PIECES, cell_of, figures_of, read_summary, settings_recorded
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


# _TITLE: a title given its height (y=1.0, where matplotlib puts it) is not re-placed at every draw: matplotlib
# would measure the axes' tick labels each time to see whether something at the top is in its way; nothing is
# (no tick labels or offset text above these axes), so the pixels are the same.


RANKS = {"best": "tab:green", "median": "tab:blue", "worst": "tab:red"}


class _Fit(Backdrop):
    """The fit figure. Its legend sits in the top margin at fixed places (the target and the points in one
    column, the ranked trials in the other): the handles are drawn with the axes, and each cell writes only
    its labels. A legend inside the panel could hide a trial's curve wherever it went, and looked for its
    emptiest corner and laid itself out again at every cell (this costs 5–15% less; the labels' glyphs are
    most of what remains)."""

    TOP = 0.95  # inches above the axes: the title, then the legend's three rows

    def __init__(self, n: int) -> None:
        fig = Figure(figsize=(7, 7), dpi=120)
        grid = fixed_margins(7, 7, 0.8, self.TOP, hspace=0.1)
        self.axes = ax, ax_err = fig.subplots(2, 1, sharex=True, gridspec_kw=grid)
        self.target = ax.plot([0, 1], [0, 1], "k", lw=2.5, alpha=0.35)[0]
        colors = list(RANKS.values())[:n]
        self.ranked = [ax.plot([0, 1], [0, 1], color=c, lw=1)[0] for c in colors]
        self.errors = [ax_err.semilogy([0, 1], [1, 1], color=c, lw=0.8)[0] for c in colors]
        self.points = ax.plot([0, 1], [0, 1], ".", color="gray", ms=2)[0]
        ax.set_xlim(-0.05, 1.05)  # x (u for a user's target) spans [0, 1]: matplotlib's 5% margins
        ax_err.set_ylabel("|network − target|")
        log_axis(ax_err)
        # the labels in _FitData.labels' order: target, ranked trials, points
        places = [(0, 0), *((1, row) for row in range(n)), (0, 1)]
        self.labels = [self._entry(fig, line, column, row) for line, (column, row) in zip(
            [self.target, *self.ranked, self.points], places)]  # fmt: skip
        self.title = fig.text(0.5, 1 - 0.1 / 7, " ", ha="center", va="top", fontsize="large")
        super().__init__(fig, [self.target, *self.ranked, *self.errors, self.points, *self.labels, self.title])

    @staticmethod
    def _entry(fig: Figure, line: Any, column: int, row: int) -> Text:
        """A legend entry in the top margin: `line`'s handle, drawn with the axes, and its label, empty."""
        x, y = (0.8 + 3.1 * column) / 7, 1 - (0.45 + 0.17 * row) / 7
        xs = [x + 0.15 / 7] if line.get_linestyle() == "None" else [x, x + 0.3 / 7]
        handle = Line2D(xs, [y] * len(xs), transform=fig.transFigure, color=line.get_color(), alpha=line.get_alpha(),
                        lw=line.get_linewidth(), ls=line.get_linestyle(), marker=line.get_marker(), ms=line.get_markersize())  # fmt: skip
        fig.add_artist(handle)
        return fig.text(x + 0.38 / 7, y, " ", va="center", fontsize=8)


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
    labels = [_fitting(f"target {label}", 44)]  # a user's target may be named by a long path
    labels += [
        f"{k} (trial {trials.loc[t, 'trial']}, MSE {trials.loc[t, 'mse']:.2e}{units})" for k, t in ranked.items()
    ]
    labels.append(f"{len(ys)} training points")
    title = f"{_title(summary)}, {summary['n_trials']} trials"
    return _FitData(user, x, y, pred, np.maximum(np.abs(pred - y), 1e-16), (weights["x"], ys), labels, title)


def _fitting(text: str, n: int) -> str:
    """`text` in at most `n` characters, its middle left out: a legend entry's column has a fixed width."""
    return text if len(text) <= n else text[: n // 2] + "…" + text[len(text) - (n - n // 2 - 1) :]


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
    f = REUSED.get(("fit", len(d.pred)), lambda: _Fit(len(d.pred)))
    ax, ax_err = f.axes
    f.target.set_data(d.x, d.y)
    for line, err, pred, error in zip(f.ranked, f.errors, d.pred, d.errors):
        line.set_data(d.x, pred)
        err.set_data(d.x, error)
    f.points.set_data(*d.points)
    for text, label in zip(f.labels, d.labels):
        text.set_text(label)
    ax.set_ylim(limits)
    ax_err.set_ylim(error_limits)
    ax.set_ylabel("v = (y − offset)/scale (summary: target_source)" if d.user else "y")
    ax_err.set_xlabel("u = (x − lo)/(hi − lo)" if d.user else "x")
    f.title.set_text(d.title)
    f.save(path, (d.user, limits, error_limits))


class _Loss(Backdrop):
    def __init__(self) -> None:
        fig = Figure(figsize=(7, 4), dpi=120)
        self.ax = ax = fig.subplots(gridspec_kw=fixed_margins(7, 4, left=0.8, top=0.4))
        # every trial's loss in one collection (30 Line2D cost 30 artists' setup and draw)
        self.curves = LineCollection([], color="tab:blue", lw=0.6, alpha=0.5)
        ax.add_collection(self.curves)
        ax.set_yscale("log")
        log_axis(ax)
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
    f = REUSED.get(("loss",), _Loss)
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


class _Layers(Backdrop):
    """The layers figure: its 2·depth panels' axes, ticks, labels and legend never change (every neuron is
    scaled to [−1, 1]), so its background is drawn once and each cell draws only its lines and title. Only the
    edge panels have ticks, three each: a panel's ticks were most of the figure's cost, and it grows with depth
    (depth 12's axes 1.4–2.0 → 0.8–1.0 s, measured side by side)."""

    def __init__(self, depth: int) -> None:
        fig = Figure(figsize=(2.6 * depth, 5), dpi=110)
        grid = fixed_margins(2.6 * depth, 5, left=0.8, top=1.0, hspace=0.3, wspace=0.12)
        # every neuron is scaled to its own peak, so every panel spans [−1, 1]: the same limits, labelled once
        axes = fig.subplots(2, depth, squeeze=False, gridspec_kw=grid)
        self.lines = []  # per panel, a line per neuron
        for row, stage in enumerate(("start", "trained")):
            for k in range(depth):
                ax = axes[row, k]
                ax.set(xlim=(-0.05, 1.05), ylim=(-1.1, 1.1))
                ax.xaxis.set_major_locator(FixedLocator([0, 0.5, 1]) if row == 1 else NullLocator())
                ax.yaxis.set_major_locator(FixedLocator([-1, 0, 1]) if k == 0 else NullLocator())
                ax.axhline(0, color="k", lw=0.6)
                labels = [f"neuron {i + 1}" for i in range(4)]
                self.lines.append(ax.plot([0, 1], np.zeros((2, 4)), lw=0.9, label=labels))
                ax.set_title(f"{stage}: layer {k + 1}", fontsize=9)
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
    f = REUSED.get(("layers", depth), lambda: _Layers(depth))
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
    ax = fig.subplots(gridspec_kw=fixed_margins(7, 4, left=0.8, top=0.4))
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
    figure's background is drawn once for them all (`canvas.Backdrop`). `only`: draw the figures of these of them
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
    error_limits = decades([d.errors for d in fits.values()]) if fits else None
    loss_limits = decades([loss for loss, _ in curves.values()]) if curves else None
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

    for f in (REUSED.get(("fit", 3), lambda: _Fit(3)).fig, REUSED.get(("loss",), _Loss).fig):
        f.savefig(io.BytesIO(), format="rgba")  # every artist, the animated ones too
    for depth in depths:
        REUSED.get(("layers", depth), lambda d=depth: _Layers(d)).background(())
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
    grid = fixed_margins(width, height, left=left + 0.3, top=0.75, wspace=0.08) | {"bottom": 0.65 / height}
    axes = fig.subplots(1, len(targets), squeeze=False, sharey=True, gridspec_kw=grid)
    for ax, target in zip(axes[0], targets):
        xs, ys, collapsed = [], [], []  # a panel's dots in one scatter: one per row cost 7 ms each (`make depth`: 144)
        for s, label in zip(summaries, labels):
            if s["target"] != target:
                continue
            tr = read_trials(s)  # a merged run's from all its shards
            xs.append(tr[metric].clip(lower=1e-12).to_numpy())
            ys.append(rows.index(label) + np.linspace(-0.15, 0.15, len(tr)))
            collapsed.append(tr["collapsed"].to_numpy(dtype=bool))
        ax.scatter(
            np.concatenate(xs), np.concatenate(ys), c=np.where(np.concatenate(collapsed), "tab:red", "tab:blue"), s=9
        )
        ax.set_xscale("log")
        log_axis(ax, "x")
        ax.xaxis.set_minor_locator(NullLocator())  # ~60 minor ticks a panel: half the figure's cost
        ax.set_title(target, y=1.0)  # y: see _TITLE
        ax.set_xlabel(metric.replace("_", " ").replace("mse", "MSE"))
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(range(len(rows)), rows)
    axes[0][0].invert_yaxis()
    fig.suptitle("every trial (red: collapsed)")
    path = folder / "trials.png"
    save(fig, path)
    return path

"""How figures are written and who draws them: compnet's PNG writer against savefig's, targets evaluated
without torch for the figures, and the figure helper processes of compnet/painter.py."""

import os
import shutil
import signal
import time

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

import compnet
from compnet import canvas, painter, plots, runs
from compnet.targets import TARGETS, train_grid

TINY = ["trials=3", "epochs=4", "points=30"]


def _pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGBA"))


@pytest.mark.parametrize("transparent", [False, True])
def test_png_writer_keeps_savefigs_pixels_and_metadata(tmp_path, transparent):
    fig = Figure(figsize=(3, 2), dpi=110)
    ax = fig.subplots()
    ax.plot(np.linspace(0, 1, 50), np.linspace(0, 1, 50) ** 3, lw=0.8, alpha=0.5, label="x³")
    ax.set_title("a title, and a legend")
    ax.legend()
    if transparent:  # an alpha channel that is not all 255: written as RGBA
        fig.patch.set_alpha(0.3)
    fig.savefig(tmp_path / "savefig.png")
    canvas.save(fig, tmp_path / "ours.png")
    ours = Image.open(tmp_path / "ours.png")
    assert ours.mode == ("RGBA" if transparent else "RGB")
    assert np.array_equal(_pixels(tmp_path / "ours.png"), _pixels(tmp_path / "savefig.png"))
    assert ours.info["Software"].startswith("Matplotlib version")
    assert ours.info["dpi"] == pytest.approx((110, 110), abs=0.01)
    empty = FigureCanvasAgg(Figure(figsize=(1, 1), dpi=50))  # an empty, opaque figure: all white
    empty.draw()
    canvas.write_png(empty, tmp_path / "white.png")
    assert (_pixels(tmp_path / "white.png") == 255).all()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_targets_without_torch_are_the_same_numbers(dtype):
    x = torch.cat([train_grid(501, dtype), torch.tensor([0.1, 1 / 3, 0.7], dtype=dtype)])
    for name, target in TARGETS.items():
        if target.dim > 1:
            continue
        values = target.values(x.numpy())
        assert values.dtype == x.numpy().dtype
        assert np.array_equal(values, target(x).numpy()), name


def test_helpers_draw_the_figures_this_process_draws(tmp_path):
    """Every figure of an experiment redrawn by two helpers, one job per figure and cell (each helper's kept
    backgrounds differ from this process's), the limits from all of a target's cells: the pixels drawn here."""
    run = compnet.train("experiment=table1", "experiment.methods=[enforced,default]", *TINY, out=tmp_path / "run")
    copies = []
    for s in run.summaries:
        copy = tmp_path / "copy" / os.path.basename(s["folder"])
        shutil.copytree(s["folder"], copy)
        for name in runs.FIGURES:
            (copy / name).unlink()
        copies.append(copy)
    groups = plots.groups(run.summaries)
    assert sorted(sorted(run.summaries[i]["target"] for i in g) for g in groups) == [["x11"] * 2, ["x3"] * 2]
    with painter.Painter(2, warm={"depths": (5,)}) as p:
        assert p.ready()
        for group in groups:
            folders, summaries = [copies[i] for i in group], [run.summaries[i] for i in group]
            for i in range(len(group)):
                for name in runs.FIGURES:
                    p.submit("compnet.plots", "draw_cells", folders, summaries, (name,), [i])
        p.wait()
        # nothing handed to them made them import torch (a TorchVersion in produced_by did: ~2 s each)
        assert [p.wait([job]) or job.result for job in [p.submit("compnet.painter", "imported", "torch")]] == [False]
    for s, copy in zip(run.summaries, copies):
        for name in runs.FIGURES:
            assert np.array_equal(_pixels(copy / name), _pixels(f"{s['folder']}/{name}")), (copy, name)


def test_a_targets_cells_share_their_log_axes_at_whole_decades():
    errors = [np.array([[3e-7, 0.05], [np.nan, 1e-3]]), np.array([[2e-5, np.inf, 0.0]])]
    assert canvas.decades(errors) == (1e-7, 0.1)  # 3e-7/1.2 → 1e-7 below, 0.05·1.2 → 0.1 above
    assert canvas.decades([np.array([0.09])]) == (0.01, 1.0)  # room: 0.09·1.2 > 0.1
    assert canvas.decades([np.array([np.nan])]) == (1e-3, 1.0)
    summaries = [{"target": t} for t in ("x3", "sin", "x3", "tanh", "sin")]
    assert plots.groups(summaries) == [[0, 2], [1, 4], [3]]


def test_the_fit_panel_shows_every_trial_up_to_the_targets_span_beyond_it():
    x = np.linspace(0, 1, 11)

    def fit(*preds):  # a cell whose target is x on [0, 1] and whose shown trials are the constants `preds`
        pred = np.array([np.full_like(x, p) for p in preds])
        return plots._FitData(False, x, x, pred, np.abs(pred - x), (x, x), [], "")

    assert plots._fit_limits([fit(0.5)]) == pytest.approx((-0.05, 1.05))  # inside: the target's, 5% margins
    assert plots._fit_limits([fit(0.5), fit(-0.42)]) == pytest.approx((-0.42 - 0.071, 1 + 0.071))  # shared
    assert plots._fit_limits([fit(50.0, np.nan)]) == pytest.approx((-0.1, 2.1))  # at most the span beyond


def test_the_fit_legend_sits_in_the_top_margin_and_names_the_shown_trials(tmp_path):
    """fit.png's legend is written per cell at fixed places above the panel: the labels are the cell's, none
    lies on the panel (where it could hide a trial's curve), none on another or off the figure."""
    x = np.linspace(0, 1, 11)
    pred = np.array([x, x**2, np.full_like(x, 0.5)])
    target = plots._fitting("target /home/someone/projects/" + "deep/" * 12 + "targets.py:bump on [-2, 3]", 44)
    assert len(target) == 44 and target.startswith("target /home/") and target.endswith("bump on [-2, 3]")
    labels = [target, *(f"{k} (trial 12345, MSE 8.88e-88 in y's units)" for k in plots.RANKS), "1000 training points"]
    d = plots._FitData(True, x, x, pred, np.abs(pred - x) + 1e-9, (x, x), labels, "a title")
    plots._draw_fit(tmp_path / "fit.png", d, (-0.1, 1.1), (1e-10, 1.0))
    f = canvas.REUSED.get(("fit", 3), lambda: None)
    assert [t.get_text() for t in f.labels] == labels and f.title.get_text() == "a title"
    renderer = f.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in [*f.labels, f.title]]
    panel, page = f.axes[0].get_window_extent(renderer), f.fig.bbox
    assert all(b.y0 > panel.y1 and page.x0 <= b.x0 and b.x1 <= page.x1 and b.y1 <= page.y1 for b in boxes)
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    assert _pixels(tmp_path / "fit.png").shape[:2] == (840, 840)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (ended, not yet reaped by its parent) is not running
        return f.read().rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not os.path.isdir("/proc"), reason="reads /proc")
def test_a_failed_figure_raises_a_killed_helpers_figures_are_drawn_and_no_helper_outlives_them(tmp_path):
    p = painter.Painter(3)
    assert p.ready()
    pids = p.pids
    assert len(set(pids)) == 3 and all(_alive(pid) for pid in pids)  # the others forked from the first
    ok = p.submit("compnet.runs", "figures_of", tmp_path)
    bad = p.submit("compnet.plots", "draw_cells", [tmp_path / "no-such-run"], [{"method": "enforced"}], ("fit.png",))
    with pytest.raises(painter.DrawingError, match="FileNotFoundError"):
        p.wait()
    assert ok.done and ok.result == runs.FIGURES and bad.error
    os.kill(pids[0], signal.SIGKILL)  # a helper killed from outside: the others draw what it was handed
    moved = [p.submit("compnet.runs", "figures_of", tmp_path) for _ in range(3)]
    p.wait(moved)
    assert [job.result for job in moved] == [runs.FIGURES] * 3
    gone = p.submit("os", "_exit", 3)  # a figure that ends its helper and the one it goes to next: it fails
    with pytest.raises(painter.DrawingError, match="twice on this figure"):
        p.wait([gone])
    assert gone.deaths == 2 and not any(_alive(pid) for pid in pids)
    here = p.submit("compnet.runs", "figures_of", tmp_path)  # no helper left: drawn in this process
    p.wait([here])
    assert here.result == runs.FIGURES
    p.close()
    deadline = time.monotonic() + 5
    while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(_alive(pid) for pid in pids)

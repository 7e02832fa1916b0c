"""How compnet draws a figure cheaply, with the pixels matplotlib would draw: fixed margins instead of a tight
layout, log axes labelled in plain text, figures built once and redrawn with each cell's data (`Reused`), their
axes kept as pixels and each cell's lines blitted over them (`Backdrop`), and a PNG writer that spends a third
of savefig's encoding time (`write_png`). The figures themselves are in plots.py (a run's), blockplots.py (a
network of blocks') and studyplots.py (region and depth studies')."""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter


def fixed_margins(
    width: float, height: float, left: float, top: float, hspace: float = 0.2, wspace: float = 0.2
) -> dict:
    """Fixed margins in inches, as gridspec fractions. A run's own three figures are drawn for every cell of
    an experiment, and matplotlib's tight layout doubles their cost (Tables 1+2: 61 figures, 48 s → ~24 s)."""
    edges = {"left": left / width, "right": 1 - 0.15 / width, "bottom": 0.55 / height, "top": 1 - top / height}
    return edges | {"hspace": hspace, "wspace": wspace}


def log_axis(ax: Any, axis: str = "y") -> None:
    """A log axis labelled 10⁻³ in plain text: matplotlib's default labels are mathtext, parsed and laid
    out per label and per figure, a large part of a small figure's cost; minor ticks unlabelled."""
    along = ax.yaxis if axis == "y" else ax.xaxis
    along.set_major_formatter(FuncFormatter(power_of_ten))
    along.set_minor_formatter(NullFormatter())


def power_of_ten(v: float, _pos: Any = None) -> str:
    e = int(round(np.log10(v))) if v > 0 else 0
    if v <= 0 or not np.isclose(v, 10.0**e):
        return ""
    return "10" + str(e).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


class Reused(threading.local):
    """A run's own figures (fit, loss, layers: plots.py), built once per thread and shape and redrawn with each cell's
    data: creating a figure's axes, ticks and legend costs about as much as drawing it, and an experiment draws
    the same three figures for every cell. Thread-local, so worker threads never share one."""

    def __init__(self) -> None:
        self.figures: dict[tuple, Any] = {}

    def get(self, key: tuple, build: Callable[[], Any]) -> Any:
        if key not in self.figures:
            self.figures[key] = build()
        return self.figures[key]


REUSED = Reused()


class Backdrop:
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
        write_png(self.canvas, path)


def decades(values: list[np.ndarray]) -> tuple[float, float]:
    """Log-axis limits at whole decades around the positive finite `values` (with a little room)."""
    shown = np.concatenate([v[np.isfinite(v) & (v > 0)].ravel() for v in values])
    if not shown.size:
        return 1e-3, 1.0
    return 10.0 ** np.floor(np.log10(shown.min() / 1.2)), 10.0 ** np.ceil(np.log10(shown.max() * 1.2))


def save(fig: Figure, path: Path) -> None:
    """Draw `fig` and write it as a PNG (`write_png`): the pixels savefig writes, in a third of its encoding time."""
    canvas = FigureCanvasAgg(fig) if not isinstance(fig.canvas, FigureCanvasAgg) else fig.canvas
    canvas.draw()
    write_png(canvas, path)


def write_png(canvas: FigureCanvasAgg, path: Path) -> None:
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

"""A user's own target: a Python callable by import path (`target=custom target.fn=mod:f`) or the points of a
CSV/NPZ file (`target=file target.path=points.csv`), resolved and checked before any work (docs/method.md §10).

`load(cfg)` turns the `target` node into a `UserTarget`: its training points in its own coordinates and units,
the wave sign found from the data (or given), and the affine maps through which today's single network fits
it: the input mapped onto [0, 1], the values normalised by their end values so that the paper's start
F(0) = 0, F(1) = 1 applies, the MSE reported in the target's own units (× scale²). Everything that is wrong
raises `ConfigError` with one line. numpy only: the command line's checks stay light (no torch).
"""

from __future__ import annotations

import csv
import hashlib
import importlib
import inspect
import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from compnet.config import ConfigError
from compnet.targets import USER_TARGETS, Target, convexity, inflections

# End values closer than this fraction of the values' spread count as equal: no endpoint normalisation.
EQUAL_ENDS = 1e-9
GRID_CHECK = 5  # points per axis on which a callable of dim > 1 is tried before the single engine refuses it


@dataclass(frozen=True)
class UserTarget:
    """A user's target and what the single network trains on. The network fits v = (y − offset)/scale at the
    inputs u = (x − lo)/(hi − lo) (offset 0, scale 1 with target.normalise=false); `target.sign` is that
    network's wave sign σ (0: no single network fits it, `why_blocks` says why)."""

    target: Target
    x: np.ndarray  # float64 training points in the target's own coordinates: [N] or [N, dim]
    y: np.ndarray  # float64 values there, in the target's own units
    u: np.ndarray  # float64 network inputs in [0, 1] (exactly the cfg dtype's values)
    offset: float
    scale: float
    chord_side: int  # −1 below its chord (convex), +1 above (concave), 0 neither: given or found
    why_blocks: str | None
    source: dict[str, Any] = field(default_factory=dict)  # summary.json's `target_source`

    @property
    def v(self) -> np.ndarray:
        """The values the network fits, float64 (the normalisation in numpy: IEEE, the same bits anywhere)."""
        return (self.y - self.offset) / self.scale

    def inputs(self, dtype: Any) -> Any:
        import torch

        return torch.from_numpy(self.u).to(dtype)

    def values(self, dtype: Any) -> Any:
        import torch

        return torch.from_numpy(self.v).to(dtype)

    def held_out(self, points: int, dtype: Any) -> tuple[Any, Any]:
        """(u, v) at the held-out cell centres (test_points; a callable only: a file has no values there)."""
        import torch

        u = _rounded((np.arange(points, dtype=np.float64) + 0.5) / points, self.source["dtype"])
        lo, hi = self.target.domain
        y = _evaluate(self.target.fn, lo + (hi - lo) * u, self.source["fn"], "held-out point")
        return torch.from_numpy(u).to(dtype), torch.from_numpy((y - self.offset) / self.scale).to(dtype)


def _rounded(u: np.ndarray, dtype: str) -> np.ndarray:
    """u rounded once to the training dtype, kept as float64 (exact): train_grid's numbers, without torch."""
    return u.astype(np.float32).astype(np.float64) if dtype == "float32" else u


def resolve(spec: str) -> Callable[..., Any]:
    """The callable named `module:attr` (attr may be dotted) or `module.attr` (the longest importable
    module prefix). The current folder is importable, as with `python -m`. One line naming what was tried."""
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # last: a file in the current folder never shadows an installed module
    if ":" in spec:
        module, _, attr = spec.partition(":")
        tries = [(module, attr)]
    else:
        parts = spec.split(".")
        tries = [(".".join(parts[:i]), ".".join(parts[i:])) for i in range(len(parts) - 1, 0, -1)]
    tried = []
    for module, attr in tries:
        if not module or not attr:
            tried.append(f"{module or '?'}:{attr or '?'} (give module:function)")
            continue
        try:
            obj: Any = importlib.import_module(module)
        except ImportError as e:
            tried.append(f"module {module!r} ({e})")
            continue
        except Exception as e:  # the user's module itself fails on import
            raise ConfigError(f"target.fn={spec}: importing {module!r} raised {type(e).__name__}: {e}") from None
        try:
            for name in attr.split("."):
                obj = getattr(obj, name)
        except AttributeError:
            tried.append(f"{module!r} has no {attr!r}")
            continue
        if not callable(obj):
            raise ConfigError(f"target.fn={spec}: {module}:{attr} is a {type(obj).__name__}, not a callable")
        return obj
    raise ConfigError(f"target.fn={spec} does not resolve: tried {'; '.join(tried)}")


# (callable, points) → values, the last few: the command line checks a configuration, then trains it, in one
# process, and a user's function may be slow (a simulation): each point is evaluated once.
_VALUES: dict[tuple[int, tuple[int, ...], bytes], tuple[Callable[..., Any], np.ndarray]] = {}


def _evaluate(fn: Callable[..., Any], x: np.ndarray, spec: str, what: str = "grid point") -> np.ndarray:
    """fn point by point in float64 (a row of x gives its dim arguments), each value a finite number."""
    key = (id(fn), x.shape, x.tobytes())
    if (hit := _VALUES.get(key)) and hit[0] is fn:  # the object itself is kept, so its id is not reused
        return hit[1]
    out = _values(fn, x, spec, what)
    if len(_VALUES) >= 8:
        _VALUES.pop(next(iter(_VALUES)))
    _VALUES[key] = (fn, out)
    return out


def _values(fn: Callable[..., Any], x: np.ndarray, spec: str, what: str) -> np.ndarray:
    rows = x.tolist()
    out = np.empty(len(rows), dtype=np.float64)
    for i, p in enumerate(rows):
        args = p if isinstance(p, list) else [p]
        try:
            value = fn(*args)
        except Exception as e:
            raise ConfigError(f"target.fn={spec} raised {type(e).__name__} at x={p} ({what}): {e}") from None
        try:
            out[i] = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"target.fn={spec} returned a {type(value).__name__} at x={p}, not a number") from None
        if not math.isfinite(out[i]):
            raise ConfigError(f"target.fn={spec} returned {out[i]} at x={p} ({what}): values must be finite")
    return out


def _check_arity(fn: Callable[..., Any], spec: str, dim: int) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: its first call tells
        return
    try:
        sig.bind(*[0.0] * dim)
    except TypeError:
        raise ConfigError(f"target.fn={spec} does not take {dim} argument(s) {sig}: set target.dim to match") from None


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_points(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """x ([N] or [N, n]) and y ([N]) of a CSV file (a header: x or x1 … xn, and y) or an NPZ file (arrays x
    and y), float64, all finite, at least 2 points; one line on anything else."""
    where = f"target.path={path}"
    if not path.is_file():
        raise ConfigError(f"{where}: {'a folder' if path.exists() else 'no such file'}")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        x, y = _read_npz(path, where)
    elif suffix == ".csv":
        x, y = _read_csv(path, where)
    else:
        raise ConfigError(f"{where}: unknown format {suffix or '(none)'!r}; give a .csv or .npz file")
    if x.ndim not in (1, 2) or y.ndim != 1 or (x.ndim == 2 and x.shape[1] < 1):
        raise ConfigError(f"{where}: x must be [N] or [N, n] and y [N]; found x {list(x.shape)}, y {list(y.shape)}")
    if len(x) != len(y):
        raise ConfigError(f"{where}: mismatched lengths, {len(x)} x against {len(y)} y")
    if len(y) < 2:
        raise ConfigError(f"{where}: {len(y)} point(s); need at least 2")
    for name, a in (("x", x), ("y", y)):
        if len(bad := np.flatnonzero(~np.isfinite(a.reshape(len(a), -1)).all(1))):
            raise ConfigError(f"{where}: {name} holds {a[bad[0]]} at point {bad[0]}; every value must be finite")
    return x, y


def _read_npz(path: Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            if missing := [k for k in ("x", "y") if k not in data.files]:
                raise ConfigError(f"{where}: no array {missing[0]!r} (it holds {', '.join(data.files) or 'none'})")
            x, y = data["x"], data["y"]
    except ConfigError:
        raise
    except Exception as e:  # not a zip, a pickled object array, a truncated file
        raise ConfigError(f"{where}: not a readable .npz ({type(e).__name__}: {e})") from None
    try:
        return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ConfigError(f"{where}: x and y must be numbers ({e})") from None


def _read_csv(path: Path, where: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        with path.open(newline="") as f:
            rows = [r for r in csv.reader(f) if any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise ConfigError(f"{where}: not a readable CSV file ({e})") from None
    if not rows:
        raise ConfigError(f"{where}: empty; need a header (x, y or x1, …, xn, y) and the points")
    header = [c.strip() for c in rows[0]]
    n = len(header) - 1
    xs = ["x"] if n == 1 else [f"x{i}" for i in range(1, n + 1)]
    if n < 1 or sorted(header) != sorted([*xs, "y"]):
        want = "x, y" if n <= 1 else f"{', '.join(xs)}, y"
        raise ConfigError(f"{where}: header {','.join(header)!r}; need the columns {want}")
    cols = [header.index(c) for c in [*xs, "y"]]
    data = np.empty((len(rows) - 1, n + 1))
    for i, row in enumerate(rows[1:]):
        if len(row) != len(header):
            raise ConfigError(f"{where}: line {i + 2} has {len(row)} fields, the header {len(header)}")
        for j, c in enumerate(cols):
            try:
                data[i, j] = float(row[c])
            except ValueError:
                raise ConfigError(f"{where}: line {i + 2}: {row[c].strip()!r} is not a number") from None
    return (data[:, 0] if n == 1 else data[:, :n]), data[:, n]


def _domain(conf: Any) -> tuple[float, float] | None:
    if conf.domain is None:
        return None
    d = [float(v) for v in conf.domain]
    if len(d) != 2 or not all(math.isfinite(v) for v in d):
        raise ConfigError(f"target.domain={d}: give [lo, hi], two finite numbers")
    if d[0] >= d[1]:
        raise ConfigError(f"target.domain={d}: need lo < hi")
    return d[0], d[1]


def _chord_side(conf: Any, x: np.ndarray, y: np.ndarray, dim: int) -> tuple[int, int]:
    """(side, convexity): target.sign as given (−1 below its chord, +1 above), or auto: −convexity."""
    c = convexity(x, y) if dim == 1 else 0
    if str(conf.sign) == "auto":
        return -c, c
    try:
        s = float(conf.sign)
    except ValueError:
        s = math.nan
    if s not in (-1.0, 1.0):
        raise ConfigError(f"target.sign={conf.sign}: give -1 (below its chord: convex), 1 (above: concave) or auto")
    return int(s), c


@dataclass
class _Points:
    """What a callable or a file gives: its training points, in its own coordinates and units."""

    fn: Callable[..., Any]
    x: np.ndarray
    y: np.ndarray
    u: np.ndarray
    dim: int
    domain: tuple[float, float]
    label: str
    source: dict[str, Any]


def _from_callable(conf: Any, n: int | None, cfg: Any, dtype: str) -> _Points:
    """`n` evenly spaced points per axis in the training dtype, u, and x = lo + (hi − lo) u in float64."""
    if not conf.fn:
        raise ConfigError("target=custom needs target.fn=module:function (a Python callable)")
    fn, dim = resolve(conf.fn), 1 if conf.dim is None else int(conf.dim)
    if dim < 1:
        raise ConfigError(f"target.dim={dim}: need dim >= 1")
    _check_arity(fn, conf.fn, dim)
    lo, hi = _domain(conf) or (0.0, 1.0)
    n = n or (cfg.points if dim == 1 else min(cfg.points, GRID_CHECK))
    axis = _rounded(np.arange(n, dtype=np.float64) / max(n - 1, 1), dtype)
    u = axis if dim == 1 else np.stack(np.meshgrid(*[axis] * dim, indexing="ij"), -1).reshape(-1, dim)
    x = lo + (hi - lo) * u  # for [0, 1]: u itself, so a built-in's formula gives its own bits
    y = _evaluate(fn, x, conf.fn)
    file = getattr(inspect.getmodule(fn), "__file__", None)
    source = {"kind": "custom", "fn": conf.fn, "module_file": file, "sha256": file and sha256(Path(file))}
    label = f"{conf.fn} on [{lo:g}, {hi:g}]" + (f"^{dim}" if dim > 1 else "")
    return _Points(fn, x, y, u, dim, (lo, hi), label, source)


def _from_file(conf: Any, cfg: Any, dtype: str) -> _Points:
    """The file's points in its order; the domain is the data's unless given (then it must hold them)."""
    if not conf.path:
        raise ConfigError("target=file needs target.path=FILE (.csv with a header x,y or x1,…,xn,y; .npz with x, y)")
    path = Path(conf.path)
    x, y = read_points(path)
    dim = 1 if x.ndim == 1 else x.shape[1]
    if conf.dim is not None and int(conf.dim) != dim:
        raise ConfigError(f"target.dim={conf.dim}, but {path} holds {dim}-D points")
    if dim == 1 and len(np.unique(x)) < len(x):  # two values at one x: no function, no second differences
        xs = np.sort(x)
        raise ConfigError(f"target.path={path}: x repeats a value ({xs[1:][np.diff(xs) == 0][0]})")
    data = float(x.min()), float(x.max())
    lo, hi = _domain(conf) or data
    if data[0] < lo or data[1] > hi:
        raise ConfigError(f"target.path={path}: its x spans [{data[0]:g}, {data[1]:g}], outside target.domain")
    if lo >= hi:
        raise ConfigError(f"target.path={path}: every x is {lo:g}; the points need a domain lo < hi")
    if cfg.test_points:
        raise ConfigError(f"target=file has values only at its points: test_points={cfg.test_points} must be 0")
    u = _rounded((x - lo) / (hi - lo), dtype)
    source = {"kind": "file", "path": str(path.resolve()), "sha256": sha256(path), "n_points": len(y)}
    return _Points(_no_values_between(path), x, y, u, dim, (lo, hi), f"{path.name} ({len(y)} points)", source)


def load(cfg: Any, points: int | None = None) -> UserTarget:
    """The user's target of a `compnet train` configuration (target=custom or file), resolved, evaluated on
    its grid and checked. custom: `points` per axis on its domain (default: cfg.points in 1-D; a 5-point check
    grid per axis for dim > 1, which the single network refuses anyway); file: its own points."""
    conf = cfg.target
    dtype = str(getattr(cfg.dtype, "value", cfg.dtype))
    p = _from_callable(conf, points, cfg, dtype) if conf.name == "custom" else _from_file(conf, cfg, dtype)
    x, y = p.x, p.y
    side, curv = _chord_side(conf, x, y, p.dim)
    offset, scale, why = 0.0, 1.0, None
    if p.dim > 1:
        why = f"{p.dim}-D input"
    elif side == 0:
        why = "neither convex nor concave"
    if why is None and conf.normalise:
        order = np.argsort(x, kind="stable")
        y0, y1 = float(y[order[0]]), float(y[order[-1]])
        if abs(y1 - y0) <= EQUAL_ENDS * float(y.max() - y.min()):
            why = "equal end values, no endpoint normalisation (target.normalise=false fits it as is)"
        else:
            offset, scale = y0, y1 - y0
    sigma = 0 if why else side * (1 if scale > 0 else -1)  # a decreasing chord flips the side under normalisation
    label = f"{p.label}: {why}" if why else p.label
    target = Target(conf.name, label, float(sigma), p.fn, p.dim, p.domain, mapped=True)
    source = p.source | {
        "label": p.label,
        "dim": p.dim,
        "domain": list(p.domain),
        "convexity": curv,
        "inflections": inflections(x, y) if p.dim == 1 else [],
        "chord_side": side,
        "wave_sign": sigma,
        "normalise": bool(conf.normalise),
        "offset": offset,
        "scale": scale,
        "dtype": dtype,
    }
    return UserTarget(target, x, y, p.u, offset, scale, side, why, source)


def _no_values_between(path: Path) -> Callable[..., float]:
    def fn(*x: float) -> float:
        raise ValueError(f"{path} has values only at its points (UserTarget.x, .y)")

    return fn


def of(cfg: Any) -> UserTarget | None:
    """The configuration's user target, or None for a built-in one."""
    return load(cfg) if cfg.target.name in USER_TARGETS else None

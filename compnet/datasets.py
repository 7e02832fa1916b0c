"""Data for `compnet classify`: scikit-learn's digits (shipped in compnet/data/) or a user's .npz, checked, split
and standardised.

digits: 1,797 images of 8 × 8 pixel counts in 0 … 16 (64 features), labels 0 … 9 (compnet/data/DIGITS_LICENSE.txt).
A user's file: an .npz holding `X` [N, …] (flattened to [N, F]) of finite numbers and `y` [N] of integer
labels that use every class 0 … C−1 (C ≥ 2). Anything else is refused with one line, before any work.

Split: a fixed permutation of the N samples drawn from `seed` (numpy's default_rng), the first
round(test_fraction · N) held out. Standardised with the training part's statistics: x' = (x − μ) / σ per
feature (σ = 0 → 1), so constant pixels stay 0 and nothing of the test part leaks into training.
"""

from __future__ import annotations

import gzip
import zipfile
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import numpy as np

from compnet.config import ConfigError


@dataclass
class Split:
    """Standardised features (float32) and labels (int64) of both parts, and where they came from."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_classes: int
    source: str


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's digits: X [1797, 64] (pixel counts 0 … 16, float64), y [1797] (int64, 0 … 9)."""
    with gzip.open(files("compnet.data").joinpath("digits.csv.gz").open("rb")) as f:
        table = np.loadtxt(f, delimiter=",")
    return table[:, :-1], table[:, -1].astype(np.int64)


def load_npz(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A user's X and y, checked: raises ConfigError naming the file and the first thing wrong with it."""
    path = Path(path)
    where = f"data.path={path}"
    if not path.is_file():
        raise ConfigError(f"{where}: {'is a folder' if path.is_dir() else 'no such file'}; give an .npz of X and y")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise ConfigError(f"{where}: not a readable .npz ({type(e).__name__}: {str(e).splitlines()[0]})") from None
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ConfigError(f"{where}: a single array (.npy), not an .npz of X and y")
    with npz:
        missing = [k for k in ("X", "y") if k not in npz.files]
        if missing:
            raise ConfigError(f"{where}: no array {missing[0]!r} (it holds {', '.join(npz.files) or 'nothing'})")
        try:
            X, y = npz["X"], npz["y"]
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise ConfigError(f"{where}: an array cannot be read ({type(e).__name__}: {e})") from None
    return check_arrays(X, y, where)


def check_arrays(X: np.ndarray, y: np.ndarray, where: str = "data") -> tuple[np.ndarray, np.ndarray]:
    """X [N, …] → [N, F] float64 and y [N] → int64, or ConfigError: shapes, numbers, NaN, label range."""
    if X.dtype.kind not in "biuf" or y.dtype.kind not in "biuf":
        raise ConfigError(f"{where}: X and y must be numbers; got dtypes {X.dtype} and {y.dtype}")
    if X.ndim < 2 or y.ndim != 1:
        raise ConfigError(f"{where}: need X [N, features] and y [N]; got X {X.shape}, y {y.shape}")
    if X.shape[0] != y.shape[0]:
        raise ConfigError(f"{where}: X has {X.shape[0]} samples but y has {y.shape[0]}")
    X = X.reshape(X.shape[0], -1).astype(np.float64)
    if X.shape[0] < 4 or X.shape[1] < 1:
        raise ConfigError(f"{where}: need at least 4 samples and 1 feature; got X {X.shape}")
    if not np.isfinite(X).all():
        bad = np.argwhere(~np.isfinite(X))[0]
        raise ConfigError(f"{where}: X holds NaN or inf (first at sample {bad[0]}, feature {bad[1]})")
    yf = y.astype(np.float64)
    if not np.isfinite(yf).all() or (yf != np.round(yf)).any():
        raise ConfigError(f"{where}: y must hold integer class labels 0 … C−1")
    labels = yf.astype(np.int64)
    if labels.min() < 0:
        raise ConfigError(f"{where}: y holds a negative label ({labels.min()}); labels must be 0 … C−1")
    C = int(labels.max()) + 1
    if C < 2:
        raise ConfigError(f"{where}: y holds one class only; need at least 2")
    absent = sorted(set(range(C)) - set(labels.tolist()))
    if absent:
        raise ConfigError(f"{where}: labels must use every class 0 … {C - 1}; absent: {absent[:5]}")
    return X, labels


def load(path: str | None) -> tuple[np.ndarray, np.ndarray, str]:
    """The data `compnet classify` runs on: digits, or the file at `path`; and its name for the summary."""
    if path is None:
        return (*load_digits(), "digits (scikit-learn 1.9.1, shipped in compnet/data)")
    return (*load_npz(path), str(Path(path).resolve()))


def split(X: np.ndarray, y: np.ndarray, test_fraction: float, seed: int, source: str = "") -> Split:
    """The fixed split of `seed`, standardised by the training part (module docstring)."""
    n = len(y)
    n_test = int(round(test_fraction * n))
    if not 1 <= n_test <= n - 1:
        raise ConfigError(f"data.test_fraction={test_fraction}: leaves {n_test} of {n} samples for testing")
    order = np.random.default_rng(seed).permutation(n)
    test, train = order[:n_test], order[n_test:]
    mu, sd = X[train].mean(0), X[train].std(0)
    sd = np.where(sd > 0, sd, 1.0)
    z = ((X - mu) / sd).astype(np.float32)
    return Split(z[train], y[train], z[test], y[test], int(y.max()) + 1, source)

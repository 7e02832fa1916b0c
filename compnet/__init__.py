"""compnet: compositional ReLU networks with exponentially many linear regions (Milkert, Hyde & Laine, ICML 2025).

Data flow, one module per concern: targets → model, blocks, readings (the network, its encoding and
reparameterisation; networks of blocks and how they join) → init → optim, batching, stages (training) →
experiment, extensions (the cells of a configuration, trained and analysed; those of networks of blocks) →
pieces, study (exact linear regions) → runs, shards (the run folder, both ways) → tables, depth,
blocks_report, plots, blockplots, tblog → commands → cli / api. The public API is imported lazily so that the command line starts fast:

    compnet.train("target=x3", "trials=5", out=None)   # the CLI's pipeline, in-process → Run
    compnet.load_run("outputs/…")                      # any run or sweep folder → Run
    compnet.compositional_mlp(peaks)                   # the network as a plain nn.Sequential
    compnet.count_linear_pieces(model)                 # exact pieces on [0, 1]
    compnet.CompositionalLayer(64, 10, depth=4)        # the drop-in layer (compnet.nn)
    compnet.classify("trials=5", out=None)             # `compnet classify`, in-process
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("compnet")
except PackageNotFoundError:  # imported from a source tree that is not installed
    __version__ = "unknown"

_HOME = {
    "train": "compnet.api",
    "classify": "compnet.api",
    "CompositionalLayer": "compnet.nn",
    "compose": "compnet.api",
    "load_run": "compnet.runs",
    "Run": "compnet.runs",
    "compositional_mlp": "compnet.model",
    "block_network": "compnet.blocks",
    "closed_form": "compnet.model",
    "law_scales": "compnet.model",
    "count_linear_pieces": "compnet.pieces",
    "count_activation_regions": "compnet.pieces",
}
__all__ = list(_HOME)


def __getattr__(name: str) -> Any:
    if name in _HOME:
        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'compnet' has no attribute {name!r}")

"""compnet: compositional ReLU networks with exponentially many linear regions (Milkert, Hyde & Laine, ICML 2025).

Data flow, one module each: targets → model (the network and its encoding) → init → train (the batched
trial engine) → experiment (cells of a configuration) → regions (exact linear regions) → report / tables /
plots (what a run leaves) → cli. The public API is imported lazily so that the command line starts fast.
"""

from __future__ import annotations

from typing import Any

__all__ = ["compositional_mlp", "count_linear_pieces", "count_activation_regions", "closed_form", "law_scales"]
_HOME = {
    "compositional_mlp": "compnet.model",
    "closed_form": "compnet.model",
    "law_scales": "compnet.model",
    "count_linear_pieces": "compnet.regions",
    "count_activation_regions": "compnet.regions",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        import importlib

        return getattr(importlib.import_module(_HOME[name]), name)
    raise AttributeError(f"module 'compnet' has no attribute {name!r}")

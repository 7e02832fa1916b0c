"""Shared fixtures: configurations composed exactly as the command line composes them, and both engines."""

from __future__ import annotations

import pytest

from compnet import kernel
from compnet.api import compose as _compose

# every engine test runs on both engines: torch's ops, and the fused kernel where it builds
ENGINES = [
    "torch",
    pytest.param("fused", marks=pytest.mark.skipif(kernel.unavailable() is not None, reason="no fused kernel here")),
]


@pytest.fixture(params=ENGINES)
def engine(request) -> str:
    return request.param


@pytest.fixture
def compose():
    """`compose("trials=3", ...)`: the config `compnet train trials=3 ...` runs (`command="regions"` for the
    other app); figures off unless asked for."""

    def make(*overrides: str, command: str = "train"):
        extra = ["plots=false"] if command == "train" and not any(o.startswith("plots=") for o in overrides) else []
        return _compose(*extra, *overrides, command=command)

    return make

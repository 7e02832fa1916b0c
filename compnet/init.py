"""Initialisations, one random generator per trial (docs/method.md §4, §6).

Trial i of a run with seed s draws everything from its own generator, seeded by SeedSequence([s, i]) with i
the trial's global index (`trial_start` + its place in the run): its start does not depend on how many
trials run beside it nor on which shard of a run trains it, and methods that start from peaks (manifold,
compositional) start trial i from the same peaks a_1 … a_{d+1} ~ U(low, high).

Random weights, per layer with fan-in n:
- kaiming (PyTorch's nn.Linear default): w, b ~ U(−1/√n, 1/√n);
- rai (Lu et al. 2020): per neuron [w, b] ~ N(0, (0.6007/√n)²), then one uniformly chosen entry of it
  (bias included) is overwritten by a Beta(2, 1) sample;
- raai (a reconstruction of Singh & Sreejith 2021): G ~ N(0, σ_w²/n), rows anti-correlated as
  W = G − (1 − √(1−k)) rowmean(G) (row covariance σ_w²/n (I − k 11ᵀ/n)), b ~ N(0, σ_b²), then RAI's
  Beta(2, 1) step. σ_w² defaults to the zero-bias critical point 2π/(π − k).
Beta(2, 1) has CDF x², so it is sampled as √U.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from compnet.methods import RANDOM_INITS
from compnet.model import Shapes, encode, law_scales

RAI_STD = 0.6007


def trial_seed(seed: int, trial: int) -> int:
    return int(np.random.SeedSequence([seed, trial]).generate_state(1, np.uint64)[0] >> 1)


def generators(seed: int, trials: int, start: int = 0) -> list[torch.Generator]:
    """The generators of trials start … start+trials−1: a shard of a run draws what those trials draw in
    the whole run."""
    return [torch.Generator().manual_seed(trial_seed(seed, i)) for i in range(start, start + trials)]


def draw_peaks(gens: list[torch.Generator], n: int, low: float, high: float, dtype=torch.float32) -> torch.Tensor:
    """Starting peaks a_1 … a_n ~ U(low, high) per trial: [T, n]."""
    return torch.stack([low + (high - low) * torch.rand(n, generator=g, dtype=torch.float64) for g in gens]).to(dtype)


def _asymmetric_step(wb: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Overwrite one uniformly chosen entry per row of [w | b] with a Beta(2, 1) sample."""
    rows = torch.arange(wb.shape[0])
    cols = torch.randint(wb.shape[1], (wb.shape[0],), generator=g)
    wb = wb.clone()
    wb[rows, cols] = torch.rand(wb.shape[0], generator=g, dtype=wb.dtype).sqrt()
    return wb


def anticorrelated(out: int, fan_in: int, g: torch.Generator, k: float, sigma_w2: float) -> torch.Tensor:
    """Rows with covariance σ_w²/n (I − k 11ᵀ/n): G ~ N(0, σ_w²/n), W = G − (1 − √(1−k)) rowmean(G)."""
    G = torch.randn(out, fan_in, generator=g, dtype=torch.float64) * math.sqrt(sigma_w2 / fan_in)
    return G - (1 - math.sqrt(1 - k)) * G.mean(1, keepdim=True)


def _layer(name: str, out: int, fan_in: int, g: torch.Generator, k: float, sigma_w2: float, sigma_b2: float):
    f64 = torch.float64
    if name == "kaiming":
        bound = 1 / math.sqrt(fan_in)
        w = (torch.rand(out, fan_in, generator=g, dtype=f64) * 2 - 1) * bound
        b = (torch.rand(out, generator=g, dtype=f64) * 2 - 1) * bound
        return w, b
    if name == "rai":
        wb = torch.randn(out, fan_in + 1, generator=g, dtype=f64) * (RAI_STD / math.sqrt(fan_in))
    elif name == "raai":
        b = torch.randn(out, 1, generator=g, dtype=f64) * math.sqrt(sigma_b2)
        wb = torch.cat([anticorrelated(out, fan_in, g, k, sigma_w2), b], 1)
    else:
        raise ValueError(f"unknown random init {name!r}; valid: {', '.join(RANDOM_INITS)}")
    wb = _asymmetric_step(wb, g)
    return wb[:, :-1], wb[:, -1]


def raai_sigma_w2(k: float) -> float:
    """Zero-bias critical point of the anti-correlated ReLU network (mean field): σ_w² = 2π/(π − k)."""
    return 2 * math.pi / (math.pi - k)


def random_weights(
    name: str,
    shapes: Shapes,
    gens: list[torch.Generator],
    dtype=torch.float32,
    k: float = 1.0,
    sigma_w2: float | None = None,
    sigma_b2: float = 0.0,
) -> torch.Tensor:
    """Flat raw weights [T, P] for a random initialisation, one generator per trial."""
    sw2 = raai_sigma_w2(k) if sigma_w2 is None else sigma_w2
    flat = []
    for g in gens:
        parts = []
        for out, fan_in in shapes.dims:
            w, b = _layer(name, out, fan_in, g, k, sw2, sigma_b2)
            parts += [w.flatten(), b]
        flat.append(torch.cat(parts))
    return torch.stack(flat).to(dtype)


def start_weights(
    name: str,
    shapes: Shapes,
    gens: list[torch.Generator],
    init: Any,
    sign: torch.Tensor,
    dtype=torch.float32,
    offset: bool = True,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Raw starting weights [T, P] of initialisation `name` (settings `init`: the peak range, RAAI's
    k and variances), and for the peak inits the peaks [T, d+1] they encode on the manifold."""
    if name in RANDOM_INITS:
        return random_weights(name, shapes, gens, dtype, init.raai_k, init.raai_sigma_w2, init.raai_sigma_b2), None
    peaks = draw_peaks(gens, len(shapes.dims), init.peak_low, init.peak_high, dtype)  # d + 1 peaks
    return Shapes.join(encode(peaks, law_scales(peaks), sign, offset)), peaks

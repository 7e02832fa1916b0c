"""The paper's reported numbers (ICML 2025 version; docs/method.md §5), keyed (table, method, target, statistic).

Table 1: min and mean final MSE over 30 trials. Table 3: min test MSE (10 training, 10 test points).
Table 2 (sin, tanh) numbers are not available in the public text.
"""

from __future__ import annotations

_T1 = {
    "default": (2.11e-5, 2.19e-5, 7.20e-2, 2.82e-2),
    "raai": (2.14e-5, 4.40e-5, 3.97e-2, 4.12e-2),
    "no_pretraining": (7.63e-7, 1.86e-5, 3.89e-5, 3.56e-4),
    "not_enforced": (1.64e-7, 3.20e-6, 1.02e-5, 3.73e-5),
    "enforced": (7.86e-8, 8.86e-7, 5.27e-7, 7.87e-6),
}
_T3 = {
    "default": dict(x3=2.41e-4, x11=2.14e-3, sin=2.27e-5, tanh=1.60e-4),
    "enforced": dict(x3=5.65e-6, x11=6.53e-4, sin=7.92e-7, tanh=5.09e-6),
}

PAPER: dict[tuple[str, str, str, str], float] = {}
for _m, (_min3, _min11, _mean3, _mean11) in _T1.items():
    PAPER |= {
        ("table1", _m, "x3", "min"): _min3,
        ("table1", _m, "x11", "min"): _min11,
        ("table1", _m, "x3", "mean"): _mean3,
        ("table1", _m, "x11", "mean"): _mean11,
    }
for _m, _row in _T3.items():
    PAPER |= {("table3", _m, _t, "min"): _v for _t, _v in _row.items()}


def paper_value(table: str, method: str, target: str, stat: str) -> float | None:
    return PAPER.get((table, method, target, stat))

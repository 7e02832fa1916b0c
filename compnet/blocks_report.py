"""extensions.md: what an experiment on networks of blocks shows beside the paper's claim (docs/method.md §8).

The paper's claim for x³ − x and r³: the minimum MSE over 30 runs "one to two orders of magnitude" below
conventional (randomly initialised) networks, a dense and a same-parameter block-diagonal network among them.
Per target: every method's min / median / mean MSE, collapsed trials and trained parameters; the ratios
default / enforced and dense_same / enforced of the min and of the mean, read against 10–100×; the median
linear pieces after training (along the domain in 1-D, along each line through [−1, 1]² in 2-D).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from compnet.methods import method_label, method_order
from compnet.runs import produced_line
from compnet.targets import get_target

REPORT = "extensions.md"


def _row(s: dict[str, Any]) -> dict[str, str]:
    along = s.get("median_pieces_final_along")
    pieces = (
        " / ".join(f"{v:g}" for v in along.values()) if along else f"{s.get('mean_pieces_final', float('nan')):.1f}"
    )
    return {
        "method": method_label(s["method"]),
        "network": f"{s['network']['reading']} {'-'.join(map(str, s['network']['widths'][1:-1]))}",
        "parameters": str(s["network"]["parameters"]),
        "min": f"{s['min_mse']:.2e}",
        "median": f"{s['median_mse']:.2e}",
        "mean": f"{s['mean_mse']:.2e}",
        "collapsed": f"{s['n_collapsed']}/{s['n_trials']}",
        "pieces": pieces,
    }


def _verdict(cells: dict[str, dict[str, Any]]) -> list[str]:
    """default / enforced and dense_same / enforced, min and mean, against the paper's 10–100×."""
    if "enforced" not in cells:
        return []
    e, lines = cells["enforced"], []
    for control in ("default", "dense_same"):
        if control in cells:
            c = cells[control]
            ratios = {k: c[f"{k}_mse"] / e[f"{k}_mse"] for k in ("min", "mean")}
            where = ", ".join(f"{k} {v:.3g}×" for k, v in ratios.items())
            holds = "within" if 10 <= ratios["min"] <= 100 else "above" if ratios["min"] > 100 else "below"
            lines.append(f"- {method_label(control)} / enforced: {where} (the min is {holds} the paper's 10–100×)")
    return lines


def write(folder: Path, summaries: list[dict[str, Any]], command: str) -> str:
    blocks = [s for s in summaries if "network" in s]
    if not blocks:
        return ""
    parts = [f"# Networks of blocks\n\n{produced_line(blocks[0], command)}."]
    settings = blocks[0]["settings"]
    parts.append(
        f"{blocks[0]['n_trials']} trials per cell, depth {settings['depth']} per block, "
        f"{settings['regime.pretrain_epochs']} pretraining + {settings['regime.finetune_epochs']} raw epochs "
        f"({settings['regime.direct_epochs']} without pretraining), lr {settings['lr']}, {settings['dtype']}. "
        "Pieces: exact linear pieces after training, median over the trials: along the domain (1-D) or along the "
        "x-axis / y-axis / diagonal / antidiagonal of [−1, 1]² (2-D)."
    )
    for target in dict.fromkeys(s["target"] for s in blocks):
        cells = {s["method"]: s for s in blocks if s["target"] == target}
        rows = [_row(cells[m]) for m in sorted(cells, key=method_order)]
        table = pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)
        first = next(iter(cells.values()))
        label = first.get("target_source", {}).get("label") or get_target(target).label
        parts.append(f"## {label}\n\n{table}\n\n" + "\n".join(_verdict(cells)))
    text = "\n\n".join(parts) + "\n"
    (folder / REPORT).write_text(text)
    return text

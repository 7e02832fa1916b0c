"""Ablations: the choices the paper leaves open, on x³ and x¹¹, against the paper's numbers.

    make ablations        # or: python scripts/ablations.py [extra compnet overrides, e.g. trials=10]

Each variant changes one setting from compnet's defaults and trains No pretraining, Differentiability not
enforced and Differentiability enforced on x³ and x¹¹. Writes outputs/<date>/<time>-ablations/ablations.md
(one row per variant and method: min and mean MSE, and mean / paper's mean) and a folder per variant.
"""

from __future__ import annotations

import sys

import pandas as pd
from common import provenance, stamp_dir, train

from compnet.methods import method_label
from compnet.paper import paper_value
from compnet.targets import target_order

VARIANTS: dict[str, list[str]] = {
    "defaults (s1 trainable, clamp, offset, U(0.25,0.75), 1000 direct epochs)": [],
    "s1 tied to the law": ["model.s1=tied"],
    "peaks by sigmoid": ["model.peaks=sigmoid"],
    "plain encoding (no accumulator offset)": ["model.offset=false"],
    "starting peaks U(0.1, 0.9)": ["init.peak_low=0.1", "init.peak_high=0.9"],
    "starting peaks U(0.4, 0.6)": ["init.peak_low=0.4", "init.peak_high=0.6"],
    "2000 direct epochs": ["regime.direct_epochs=2000"],
}
METHODS = ["no_pretraining", "not_enforced", "enforced"]


def main(extra: list[str]) -> None:
    root = stamp_dir("ablations")
    rows = []
    for i, (variant, overrides) in enumerate(VARIANTS.items()):
        summaries = train(
            root / f"variant{i}", "experiment=table1", f"experiment.methods=[{','.join(METHODS)}]", *overrides, *extra
        )
        for m in METHODS:
            row = {"variant": variant, "method": method_label(m)}
            for s in sorted((s for s in summaries if s["method"] == m), key=lambda s: target_order(s["target"])):
                t = s["target"]
                paper = paper_value("table1", m, t, "mean")
                row |= {
                    f"{t} min": f"{s['min_mse']:.2e}",
                    f"{t} mean": f"{s['mean_mse']:.2e}",
                    f"{t} mean/paper": f"{s['mean_mse'] / paper:.2g}",
                }
            rows.append(row)
    md = pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)
    head = f"# Ablations\n\n{provenance('ablations', extra)}\n\n"
    (root / "ablations.md").write_text(head + md + "\n")
    print(head + md)
    print(f"\nwrote {root}/ablations.md")


if __name__ == "__main__":
    main(sys.argv[1:])

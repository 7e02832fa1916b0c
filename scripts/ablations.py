"""Ablations: the choices the paper leaves open, on x³ and x¹¹ against the paper's numbers, and the readings
of networks of blocks on the extension's targets.

    make ablations        # or: python scripts/ablations.py [extra compnet overrides, e.g. trials=10]

Each variant changes one setting from compnet's defaults and trains No pretraining, Differentiability not
enforced and Differentiability enforced on x³ and x¹¹. Then each reading of blocks (docs/method.md §8) trains
Differentiability enforced on x³ − x and r³, and the table names the reading with the lowest min and mean.
Writes outputs/<date>/<time>-ablations/ablations.md and a folder per variant.
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
# per target of the extension: reading → overrides (the first is compnet's default for that target)
READINGS: dict[str, dict[str, list[str]]] = {
    "x3_minus_x": {
        "split (default)": [],
        "split, mask freed in the raw stage": ["blocks.mask=false"],
        "ridge, 2 blocks (x and −x)": ["blocks.reading=ridge", "blocks.ridge_blocks=2"],
        "ridge, 8 blocks": ["blocks.reading=ridge", "blocks.ridge_blocks=8"],
    },
    "r3": {
        "composed (default)": [],
        "composed, mask freed in the raw stage": ["blocks.mask=false"],
        "ridge, 4 directions": ["blocks.reading=ridge", "blocks.ridge_blocks=4"],
        "ridge, 8 directions": ["blocks.reading=ridge", "blocks.ridge_blocks=8"],
    },
}


def readings_table(root, extra: list[str]) -> str:
    """Differentiability enforced under each reading of blocks; a line per target naming the winner."""
    rows, verdicts = [], []
    for target, readings in READINGS.items():
        results = {}
        for i, (reading, overrides) in enumerate(readings.items()):
            args = ("experiment=extensions", f"experiment.targets=[{target}]", "experiment.methods=[enforced]")
            (s,) = train(root / f"{target}-reading{i}", *args, *overrides, *extra)
            results[reading] = s
            rows.append(
                {
                    "target": target,
                    "reading": reading,
                    "parameters": str(s["network"]["parameters"]),
                    "min": f"{s['min_mse']:.2e}",
                    "median": f"{s['median_mse']:.2e}",
                    "mean": f"{s['mean_mse']:.2e}",
                    "collapsed": f"{s['n_collapsed']}/{s['n_trials']}",
                }
            )
        for stat in ("min", "mean"):
            ranked = sorted(results, key=lambda r: results[r][f"{stat}_mse"])
            best, second = ranked[0], ranked[1]
            ratio = results[second][f"{stat}_mse"] / results[best][f"{stat}_mse"]
            if ratio < 1.1:  # within rounding of the spread over seeds: not a win
                verdicts.append(f"- {target}, {stat}: **{best}** and {second} tie ({ratio:.2f}×).")
            else:
                verdicts.append(f"- {target}, {stat}: **{best}** wins, {ratio:.2g}× below {second}.")
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True) + "\n\n" + "\n".join(verdicts)


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
    md += "\n\nNetworks of blocks (docs/method.md §8), Differentiability enforced under each reading:\n\n"
    md += readings_table(root, extra)
    head = f"# Ablations\n\n{provenance('ablations', extra)}\n\n"
    (root / "ablations.md").write_text(head + md + "\n")
    print(head + md)
    print(f"\nwrote {root}/ablations.md")


if __name__ == "__main__":
    main(sys.argv[1:])

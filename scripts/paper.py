"""Reproduce the paper: Tables 1, 2 and 3, then every cell against the paper's number.

    make paper            # or: python scripts/paper.py [extra compnet overrides, e.g. trials=10]

Writes outputs/<date>/<time>-paper/{table1,table2,table3}/ (each a complete `compnet train
experiment=tableN` run: table.md/.tex/.csv, trials.png, one folder per cell) and paper_vs_ours.md.
"""

from __future__ import annotations

import sys

from common import provenance, stamp_dir, train

from compnet.tables import metric_of, table, to_markdown, write_comparison


def main(extra: list[str]) -> None:
    root = stamp_dir("paper")
    everything = []
    sections = ["# Reproduced tables\n", provenance("paper", extra) + "\n"]
    for name in ("table1", "table2", "table3"):
        summaries = train(root / name, f"experiment={name}", *extra)
        everything += summaries
        metric = metric_of(summaries)
        sections.append(
            f"## {name} ({'min/mean test MSE' if metric == 'test_mse' else 'min/mean final MSE'}, collapsed trials)\n"
        )
        sections.append(to_markdown(table(summaries, metric)) + "\n")
    (root / "tables.md").write_text("\n".join(sections))
    print("\n".join(sections))
    print(write_comparison(root, everything))
    print(f"\nwrote {root}/tables.md and {root}/paper_vs_ours.md")


if __name__ == "__main__":
    main(sys.argv[1:])

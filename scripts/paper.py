"""Reproduce the paper: Tables 1, 2 and 3, then every cell against the paper's number; optionally over seeds.

    make paper                      # or: python scripts/paper.py [extra compnet overrides, e.g. trials=10]
    make paper SEEDS=0,1,2,3,4      # or: python scripts/paper.py --seeds 0,1,2,3,4 [overrides]

Writes outputs/<date>/<time>-paper/{table1,table2,table3}/ (each a complete `compnet train
experiment=tableN` run: table.md/.tex/.csv, trials.png, one folder per cell), tables.md and paper_vs_ours.md.
With --seeds, seed s's tables go to seed<s>/{table1,table2,table3}/ (trained with `seed=<s>`), tables.md and
paper_vs_ours.md are the first seed's, and seeds.md/seeds.csv give every cell's spread over the seeds.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import provenance, stamp_dir, train

from compnet.tables import metric_of, seed_spread, spread_markdown, table, to_markdown, write_comparison

TABLES = ("table1", "table2", "table3")


def seed_list(text: str) -> list[int]:
    """ "0,1,2" -> [0, 1, 2]; a repeated seed would train the same tables twice and count them twice."""
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are integers separated by commas, not {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"seeds must be distinct and at least one: {text!r}")
    return seeds


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=seed_list, help="comma-separated seeds: every table at each of them")
    parser.add_argument("overrides", nargs="*", help="extra compnet overrides (trials=10 ...)")
    args = parser.parse_args(argv)
    if args.seeds and any(o.split("=")[0].lstrip("+") == "seed" for o in args.overrides):
        parser.error("give the seeds with --seeds (SEEDS=), not as a seed= override")
    return args


def tables_md(folder: Path, extra: list[str], header: str) -> tuple[list[dict], str]:
    """Train Tables 1–3 into folder/tableN; every summary, and tables.md's text (title, `header`, tables)."""
    everything = []
    sections = ["# Reproduced tables\n", header + "\n"]
    for name in TABLES:
        summaries = train(folder / name, f"experiment={name}", *extra)
        everything += summaries
        metric = metric_of(summaries)
        sections.append(
            f"## {name} ({'min/mean test MSE' if metric == 'test_mse' else 'min/mean final MSE'}, collapsed trials)\n"
        )
        sections.append(to_markdown(table(summaries, metric)) + "\n")
    return everything, "\n".join(sections)


def main(argv: list[str]) -> None:
    args = parse(argv)
    extra, root = args.overrides, stamp_dir("paper")
    if not args.seeds:
        everything, md = tables_md(root, extra, provenance("paper", extra))
    else:
        made_by = provenance("paper", extra, SEEDS=",".join(map(str, args.seeds)))
        by_seed = {}
        for seed in args.seeds:
            header = f"{made_by} Seed {seed} (of {len(args.seeds)}; their spread: seeds.md)."
            by_seed[seed], text = tables_md(root / f"seed{seed}", [*extra, f"seed={seed}"], header)
            if seed == args.seeds[0]:  # the root's tables.md and paper_vs_ours.md: the first seed's
                everything, md = by_seed[seed], text
        spread = seed_spread(by_seed)
        spread.to_csv(root / "seeds.csv", index=False)
        seeds_text = ", ".join(map(str, args.seeds))
        intro = (
            f"Every cell over seeds {seeds_text}: median [lowest, highest] of our min and mean, of the collapsed"
            " trials and of ours / paper (where the paper has a number)."
        )
        seeds_md = f"# Across seeds\n\n{made_by}\n\n{intro}\n\n{spread_markdown(spread)}\n"
        (root / "seeds.md").write_text(seeds_md)
        print(seeds_md)
    (root / "tables.md").write_text(md)
    print(md)
    print(write_comparison(root, everything))
    print(f"\nwrote {root}/tables.md and {root}/paper_vs_ours.md" + (" and seeds.md, seeds.csv" if args.seeds else ""))


if __name__ == "__main__":
    main(sys.argv[1:])

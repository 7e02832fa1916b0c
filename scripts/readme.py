"""Put the newest generated tables and figures into README.md, between its markers.

    make readme           # after make paper, make ablations, make pieces, make classify (the targets below)

Each block names the file a `make` target writes (outputs/<date>/<time>-<kind>/...) and the figures beside it;
the newest one goes between `<!-- NAME:begin -->` and `<!-- NAME:end -->`, its figures into docs/figures/, so
the README shows them exactly as the scripts wrote them, with the date, commit and command they name. A block
whose target has not run is left as it is (and named); the prose around the markers is not touched, so re-read
it against the new numbers.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import NamedTuple


class Block(NamedTuple):
    pattern: str  # under outputs/
    command: str  # what writes it
    figures: tuple[str, ...] = ()  # beside it, copied to docs/figures/


BLOCKS = {
    "paper": Block("*/*-paper/tables.md", "make paper"),
    "ablations": Block("*/*-ablations/ablations.md", "make ablations"),
    "seeds": Block("*/*-paper/seeds.md", "make paper SEEDS=0,1,2,3,4"),
    # `make depth` and `make pieces` are plain `compnet train` runs: Hydra's run folder outputs/<date>/<time>-train
    # holds the experiment's file (sweeps end in -multirun, and `make paper` nests its tables one level deeper)
    "depth": Block("*/*-train/depth.md", "make depth", ("depth.png",)),
    "pieces": Block("*/*-train/pieces.md", "make pieces", ("pieces.png",)),
    "extensions": Block("*/*-train/extensions.md", "make extensions", ("fits-x3_minus_x.png", "fits-r3.png")),
    "classify": Block("*/*-classify/report.md", "make classify", ("curves.png",)),
}
FIGURES = Path("docs/figures")


def newest(name: str, outputs: Path) -> Path | None:
    found = sorted(outputs.glob(BLOCKS[name].pattern))  # outputs/<date>/<time>-kind: the names sort by time
    return found[-1] if found else None


def block(text: str) -> str:
    """Drop the file's own title; its sections become sub-sections of the README's."""
    body = text.split("\n", 1)[1].strip()
    return re.sub(r"^## ", "#### ", body, flags=re.M)


def splice(readme: str, name: str, body: str) -> str:
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in readme or end not in readme:
        sys.exit(f"readme: README.md lacks the markers {begin} … {end}")
    head, rest = readme.split(begin, 1)
    return f"{head}{begin}\n{body}\n{end}{rest.split(end, 1)[1]}"


def main() -> None:
    path, outputs = Path("README.md"), Path("outputs")
    readme, done = path.read_text(), 0
    for name, spec in BLOCKS.items():
        source = newest(name, outputs)
        if source is None:
            print(f"README.md: {name} left as it was (no outputs/{spec.pattern}: run `{spec.command}`)")
            continue
        readme = splice(readme, name, block(source.read_text()))
        for figure in spec.figures:
            FIGURES.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source.parent / figure, FIGURES / figure)
        print(f"README.md <- {source}" + "".join(f", {FIGURES / f}" for f in spec.figures))
        done += 1
    if not done:
        sys.exit("readme: nothing to put in: run " + ", ".join(f"`{b.command}`" for b in BLOCKS.values()) + " first")
    path.write_text(readme)


if __name__ == "__main__":
    main()

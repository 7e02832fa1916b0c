"""Put the newest `make paper` and `make ablations` results into README.md, between its markers.

    make readme           # after make paper and make ablations

The README then shows the tables exactly as the scripts wrote them, with the date, commit and command
they name; the prose around the markers is not touched, so re-read it against the new numbers.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

BLOCKS = {"paper": "*/*-paper/tables.md", "ablations": "*/*-ablations/ablations.md"}


def newest(name: str, outputs: Path) -> Path:
    found = sorted(outputs.glob(BLOCKS[name]))  # outputs/<date>/<time>-kind: the names sort by time
    if not found:
        sys.exit(f"readme: no outputs/{BLOCKS[name]}: run `make {name}` first")
    return found[-1]


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
    readme = path.read_text()
    for name in BLOCKS:
        source = newest(name, outputs)
        readme = splice(readme, name, block(source.read_text()))
        print(f"README.md <- {source}")
    path.write_text(readme)


if __name__ == "__main__":
    main()

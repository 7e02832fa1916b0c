"""scripts/readme.py: generated tables go between the README's markers and nowhere else."""

import importlib.util
import os
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


readme = _load("readme")

README = """# compnet
intro
<!-- paper:begin -->
old paper table
<!-- paper:end -->
prose that stays
<!-- ablations:begin -->
old ablations
<!-- ablations:end -->
tail
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_newest_results_replace_only_the_marked_blocks(tmp_path: Path):
    _write(tmp_path / "README.md", README)
    out = tmp_path / "outputs" / "2026-11-23"
    _write(out / "09-00-00-000000-paper" / "tables.md", "# Reproduced tables\n\nOLD\n")
    _write(
        out / "10-00-00-000000-paper" / "tables.md",
        "# Reproduced tables\n\nProduced on X.\n\n## table1 (min)\n\n| a |\n",
    )
    _write(out / "10-30-00-000000-ablations" / "ablations.md", "# Ablations\n\nProduced on Y.\n\n| b |\n")
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        readme.main()
    finally:
        os.chdir(cwd)
    text = (tmp_path / "README.md").read_text()
    assert "old paper table" not in text and "old ablations" not in text and "OLD" not in text
    assert "<!-- paper:begin -->\nProduced on X.\n\n#### table1 (min)\n\n| a |\n<!-- paper:end -->" in text
    assert "<!-- ablations:begin -->\nProduced on Y.\n\n| b |\n<!-- ablations:end -->" in text
    assert text.startswith("# compnet\nintro\n") and "prose that stays" in text and text.endswith("tail\n")


def test_missing_markers_or_results_stop_with_a_message(tmp_path: Path, monkeypatch):
    with pytest.raises(SystemExit, match="markers"):
        readme.splice("no markers here", "paper", "x")
    assert readme.newest("paper", tmp_path) is None
    _write(tmp_path / "README.md", README)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="make paper"):  # nothing at all to put in
        readme.main()
    assert (tmp_path / "README.md").read_text() == README


def test_a_block_not_yet_generated_is_left_as_it_was(tmp_path: Path, monkeypatch, capsys):
    _write(tmp_path / "README.md", README)
    _write(tmp_path / "outputs" / "d" / "10-00-00-000000-ablations" / "ablations.md", "# A\n\nNEW\n")
    monkeypatch.chdir(tmp_path)
    readme.main()
    text = (tmp_path / "README.md").read_text()
    assert "old paper table" in text and "NEW" in text and "old ablations" not in text
    assert "run `make paper`" in capsys.readouterr().out

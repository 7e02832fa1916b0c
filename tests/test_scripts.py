"""scripts/readme.py: generated tables go between the README's markers and nowhere else; scripts/paper.py's
seeds: parsed, refused when ambiguous, and each seed's tables and their spread written where promised."""

import importlib.util
import os
import re
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


def _paper_script(monkeypatch):
    monkeypatch.syspath_prepend(str(SCRIPTS))  # paper.py imports its sibling common.py
    return _load("paper")


def test_paper_seeds_are_parsed_and_refused_when_ambiguous(monkeypatch):
    paper = _paper_script(monkeypatch)
    assert paper.parse(["trials=2"]).seeds is None and paper.parse(["trials=2"]).overrides == ["trials=2"]
    args = paper.parse(["--seeds", "3,0", "trials=2"])
    assert args.seeds == [3, 0] and args.overrides == ["trials=2"]
    for bad in (["--seeds", "0,0"], ["--seeds", "a"], ["--seeds", "0,1", "seed=2"]):
        with pytest.raises(SystemExit):
            paper.parse(bad)
    common = _load("common")
    assert "`make paper SEEDS=0,1 ARGS='trials=2 lr=0.1'`" in common.provenance(
        "paper", ["trials=2", "lr=0.1"], SEEDS="0,1"
    )


@pytest.mark.slow
def test_make_paper_over_two_seeds_writes_each_seed_and_their_spread(tmp_path: Path, monkeypatch):
    from compnet.runs import find_runs, settings_recorded

    paper = _paper_script(monkeypatch)
    monkeypatch.chdir(tmp_path)
    paper.main(["--seeds", "1,0", "trials=2", "epochs=5", "points=20", "plots=false"])
    (root,) = (tmp_path / "outputs").glob("*/*-paper")
    assert sorted(p.name for p in root.iterdir()) == [
        "paper_vs_ours.md",
        "seed0",
        "seed1",
        "seeds.csv",
        "seeds.md",
        "tables.md",
    ]
    for seed in (0, 1):
        assert sorted(p.name for p in (root / f"seed{seed}").iterdir()) == ["table1", "table2", "table3"]
        summaries, missing = find_runs([root / f"seed{seed}" / "table1"])
        assert len(summaries) == 10 and not missing
        assert {settings_recorded(s)["seed"] for s in summaries} == {seed}
    seeds = (root / "seeds.md").read_text()
    assert seeds.startswith("# Across seeds\n") and "`make paper SEEDS=1,0 ARGS='" in seeds
    assert "over seeds 1, 0:" in seeds and "## table3 (test MSE)" in seeds
    # every enforced cell, one row each: Tables 1 and 2 (two targets each), Table 3 (four)
    assert len(re.findall(r"^\| Differentiability enforced +\| \w+ +\|", seeds, flags=re.M)) == 8
    # the root's tables are the first seed's (1): its min MSE, not seed 0's, in tables.md
    first = find_runs([root / "seed1" / "table1"])[0]
    enforced_x3 = next(s for s in first if (s["method"], s["target"]) == ("enforced", "x3"))
    assert f"{enforced_x3['min_mse']:.2e}" in (root / "tables.md").read_text()
    assert "Seed 1 (of 2" in (root / "tables.md").read_text()


def test_make_pieces_output_is_found_where_hydra_puts_the_run(tmp_path: Path, monkeypatch):
    """`make pieces` is a plain `compnet train` run (conf/common.yaml: outputs/<date>/<time>-train): its pieces.md
    goes between the pieces markers and its pieces.png to docs/figures/; a sweep's or a nested one is not it."""
    _write(tmp_path / "README.md", README + "<!-- pieces:begin -->\nold\n<!-- pieces:end -->\n")
    out = tmp_path / "outputs" / "2026-11-30"
    _write(out / "07-00-00-000000-train" / "pieces.md", "# Linear pieces\n\nNEW PIECES\n")
    (out / "07-00-00-000000-train" / "pieces.png").write_bytes(b"png")
    _write(out / "08-00-00-000000-train-multirun" / "0-x" / "pieces.md", "# S\n\nSWEEP\n")
    _write(out / "09-00-00-000000-paper" / "table1" / "pieces.md", "# P\n\nNESTED\n")
    monkeypatch.chdir(tmp_path)
    readme.main()
    assert "<!-- pieces:begin -->\nNEW PIECES\n<!-- pieces:end -->" in (tmp_path / "README.md").read_text()
    assert (tmp_path / "docs" / "figures" / "pieces.png").read_bytes() == b"png"

"""compnet.tables: the paper's layout from summaries; nothing dropped, nothing silently overwritten."""

import json
import math
import re
from pathlib import Path

import pytest

from compnet import tables
from compnet.runs import find_runs
from compnet.tables import table, to_latex, to_markdown, write_tables

# in the schema's order, as runs.settings_of records them
SETTINGS = {
    "regime.pretrain_epochs": 1000,
    "regime.finetune_epochs": 1000,
    "regime.direct_epochs": 1000,
    "model.s1": "trainable",
}
SETTINGS |= {"depth": 5, "seed": 0, "lr": 0.001, "points": 500, "test_points": 0, "dtype": "float32", "engine": "fused"}


def summary(method: str, target: str, mean: float, **settings) -> dict:
    """What runs.summary_of writes, cut to what tables read."""
    return {
        "method": method,
        "target": target,
        "min_mse": mean / 10,
        "mean_mse": mean,
        "n_collapsed": 1,
        "n_trials": 30,
        "settings": SETTINGS | {k.replace("__", "."): v for k, v in settings.items()},
    }


def legacy(s: dict) -> dict:
    """The same summary as written before `settings` held every setting."""
    top = {k: s["settings"][k] for k in ("depth", "seed", "lr", "points", "test_points")}
    epochs = {k.split(".")[1]: v for k, v in s["settings"].items() if k.startswith("regime.")}
    rest = {k: v for k, v in s["settings"].items() if k not in top and k not in SETTINGS or k in ("dtype", "model.s1")}
    return {k: v for k, v in s.items() if k != "settings"} | top | {"epochs": epochs, "settings": rest}


def test_paper_order_of_rows_and_columns():
    df = table(
        [
            summary("enforced", "x11", 1e-5),
            summary("default", "x3", 3e-2),
            summary("enforced", "x3", 4e-7),
            summary("default", "x11", 2e-2),
        ]
    )
    assert list(df.index) == ["Default network", "Differentiability enforced"]
    assert [t for t, _ in df.columns[::3]] == ["x3", "x11"]
    assert df.loc["Differentiability enforced", ("x11", "Mean")] == 1e-5
    assert df.loc["Default network", ("x3", "Collapsed")] == "1/30"


def test_runs_differing_in_a_setting_get_a_row_each():
    """A sweep over lr: both runs of (enforced, x3) stay, labelled by the setting that differs."""
    df = table([summary("enforced", "x3", 1.75e-3, lr=0.001), summary("enforced", "x3", 5.55e-2, lr=0.1)])
    assert list(df.index) == ["Differentiability enforced (lr=0.001)", "Differentiability enforced (lr=0.1)"]
    assert df[("x3", "Mean")].tolist() == [1.75e-3, 5.55e-2]


def test_a_repeated_cell_is_numbered_not_overwritten():
    df = table([summary("default", "x3", 1e-2), summary("default", "x3", 2e-2), summary("default", "x11", 3e-2)])
    assert list(df.index) == ["Default network", "Default network #2"]
    assert df[("x3", "Mean")].tolist() == [1e-2, 2e-2]
    assert df.loc["Default network", ("x11", "Mean")] == 3e-2
    assert math.isnan(df.loc["Default network #2", ("x11", "Mean")])


def test_every_setting_tells_runs_apart():
    tied = summary("enforced", "x3", 2e-6, model__s1="tied")
    longer = summary("enforced", "x3", 1e-6, regime__finetune_epochs=2000)
    labels = list(table([summary("enforced", "x3", 4e-7), tied, longer]).index)
    assert labels == [  # variants of one method in alphabetical order
        "Differentiability enforced (finetune_epochs=1000, s1=tied)",
        "Differentiability enforced (finetune_epochs=1000, s1=trainable)",
        "Differentiability enforced (finetune_epochs=2000, s1=trainable)",
    ]


def test_runs_written_before_settings_existed_compare_by_what_they_hold():
    """Older summaries kept some settings at the top level and the epochs apart, or had no `settings`:
    they are read under today's names, and only what both runs record is compared."""
    new = summary("default", "x3", 1e-2)
    old = legacy(summary("default", "x3", 2e-2))
    assert list(table([new, old]).index) == ["Default network", "Default network #2"]
    older = legacy(summary("default", "x3", 2e-2, lr=0.1, regime__direct_epochs=2000))
    assert list(table([new, older]).index) == [
        "Default network (direct_epochs=1000, lr=0.001)",
        "Default network (direct_epochs=2000, lr=0.1)",
    ]
    oldest = {k: v for k, v in older.items() if k not in ("settings", "epochs")}
    assert list(table([new, oldest]).index) == ["Default network (lr=0.001)", "Default network (lr=0.1)"]


def test_a_missing_cell_shows_a_dash():
    df = table([summary("default", "x3", 1e-2), summary("enforced", "x11", 1e-5)])
    md = to_markdown(df)
    row = next(line for line in md.splitlines() if line.startswith("| Default network"))
    assert row.count("—") == 3 and "nan" not in md


def test_a_file_is_refused_not_taken_for_its_folder(tmp_path: Path, capsys):
    """`compnet table FILE` used to tabulate FILE's folder and write there; now it says what it wants."""
    from compnet.commands import table as table_command

    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text(json.dumps(summary("default", "x3", 1e-2)))
    assert [s["folder"] for s in find_runs([run])[0]] == [str(run)]
    assert table_command([run / "summary.json"]) == 2
    assert "is a file" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == ["summary.json"]


# --- table.tex read back by a small LaTeX tokenizer -------------------------------------------------------
# TeX's own rules, not to_latex's: `\` + letters is a control word (spaces after it are skipped), `\` + one
# other character a control symbol; `{ }` group; `&` separates cells; `_ # % $ ^ ~` outside a control sequence
# are errors here (subscript, parameter, comment, math, superscript, tie); `\\` ends a row and swallows a
# following `*` or `[...]`. Text is what a cell typesets: groups and the spaces after control words vanish,
# runs of spaces become one, and the ligatures -- --- `` '' !` ?` do not typeset literally.


class LatexError(AssertionError):
    pass


UNESCAPE = {"&": "&", "%": "%", "$": "$", "#": "#", "_": "_", "{": "{", "}": "}"}  # \& → &
UNESCAPE |= {"textbackslash": "\\", "textasciitilde": "~", "textasciicircum": "^"}
LIGATURES = {"---": "\u2014", "--": "\u2013", "``": "\u201c", "''": "\u201d", "!`": "\u00a1", "?`": "\u00bf"}


def latex_tokens(src: str) -> list[tuple[str, str]]:
    """(kind, value): ("cs", name), ("{", ""), ("}", ""), ("&", ""), ("text", one character)."""
    out, depth, i = [], 0, 0
    while i < len(src):
        ch = src[i]
        if ch == "\\":
            j = i + 1
            if j == len(src):
                raise LatexError("a lone backslash at the end")
            if src[j].isascii() and src[j].isalpha():
                while j < len(src) and src[j].isascii() and src[j].isalpha():
                    j += 1
                out.append(("cs", src[i + 1 : j]))
                while j < len(src) and src[j] in " \t":
                    j += 1
                j += j < len(src) and src[j] == "\n"  # and one end of line
            else:
                out.append(("cs", src[j]))
                j += 1
            i = j
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth < 0:
                raise LatexError(f"unbalanced '}}' at {i}: {src[max(0, i - 30) : i + 1]!r}")
        elif ch in "_#%$^~":
            raise LatexError(f"unescaped {ch!r} at {i}: {src[max(0, i - 30) : i + 1]!r}")
        out.append((ch, "") if ch in "{}&" else ("text", ch))
        i += 1
    if depth:
        raise LatexError(f"{depth} unclosed '{{'")
    return out


def _blank(tok) -> bool:
    return tok[0] == "text" and tok[1].isspace()


def _strip(toks):
    while toks and _blank(toks[0]):
        toks = toks[1:]
    while toks and _blank(toks[-1]):
        toks = toks[:-1]
    return toks


def _group(toks, i):
    """The tokens inside the group that opens at toks[i] (after blanks), and the index after it."""
    while i < len(toks) and _blank(toks[i]):
        i += 1
    if i == len(toks) or toks[i][0] != "{":
        raise LatexError(f"expected a {{group}} at token {i}")
    depth, j = 0, i
    while True:
        depth += {"{": 1, "}": -1}.get(toks[j][0], 0)
        if depth == 0:
            return toks[i + 1 : j], j + 1
        j += 1


def _split(toks, at):
    """Split at top-level tokens `at` (outside groups)."""
    parts, cur, depth = [], [], 0
    for t in toks:
        depth += {"{": 1, "}": -1}.get(t[0], 0)
        if depth == 0 and t == at:
            parts.append(cur)
            cur = []
        else:
            cur.append(t)
    return parts, cur


def latex_text(toks) -> str:
    """What a run of tokens typesets, as text; any control sequence not in UNESCAPE is an error."""
    out, plain = [], []  # a ligature forms only within a run of plain characters: braces and \x break it

    def flush():
        run = "".join(plain)
        for lig, char in LIGATURES.items():
            run = run.replace(lig, char)
        out.append(run)
        plain.clear()

    for kind, value in toks:
        if kind == "text":
            plain.append(value)
            continue
        flush()
        if kind == "cs":
            if value not in UNESCAPE:
                raise LatexError(f"control sequence \\{value} inside a cell")
            out.append(UNESCAPE[value])  # literal: not part of a ligature
        elif kind == "&":
            raise LatexError("alignment tab inside a group")
        # braces group and typeset nothing
    flush()
    return re.sub(r"\s+", " ", "".join(out)).strip()


def read_tabular(src: str) -> list[list[str]]:
    """The rows of the one tabular in `src`, each a list of cell texts (a \\multicolumn{n} cell repeated n
    times); every row must have as many cells as the column spec declares."""
    toks = _strip(latex_tokens(src))
    if not toks or toks[0] != ("cs", "begin"):
        raise LatexError("no \\begin")
    env, i = _group(toks, 1)
    spec, i = _group(toks, i)
    if latex_text(env) != "tabular":
        raise LatexError(f"environment {latex_text(env)!r}")
    spec = latex_text(spec).replace("|", "").replace(" ", "")
    if not spec or set(spec) - set("lcr"):
        raise LatexError(f"column spec {spec!r}")
    ends = [j for j in range(i, len(toks)) if toks[j] == ("cs", "end")]
    if not ends:
        raise LatexError("no \\end")
    env, after = _group(toks, ends[-1] + 1)
    if latex_text(env) != "tabular" or _strip(toks[after:]):
        raise LatexError("the tabular does not end the source")
    rows, tail = _split(toks[i : ends[-1]], ("cs", "\\"))
    if [t for t in tail if not _blank(t) and t != ("cs", "hline")]:
        raise LatexError("text after the last \\\\")
    table = []
    for n, row in enumerate(rows):
        row = _strip(row)
        while row and row[0] == ("cs", "hline"):
            row = _strip(row[1:])
        if n and row and row[0] in (("text", "*"), ("text", "[")):
            raise LatexError(f"row {n} starts with {row[0][1]!r}: the \\\\ before it takes it as its argument")
        cells, last = _split(row, ("&", ""))
        texts = []
        for cell in [*cells, last]:
            cell = _strip(cell)
            if cell and cell[0] == ("cs", "multicolumn"):
                span, j = _group(cell, 1)
                one, j = _group(cell, j)
                body, j = _group(cell, j)
                if _strip(cell[j:]) or latex_text(one) not in ("l", "c", "r"):
                    raise LatexError(f"malformed \\multicolumn in row {n}")
                texts += [latex_text(body)] * int(latex_text(span))
            else:
                texts.append(latex_text(cell))
        if len(texts) != len(spec):
            raise LatexError(f"row {n} has {len(texts)} cells, the spec {spec!r} declares {len(spec)}")
        table.append(texts)
    return table


def check_latex_table(src: str, df) -> None:
    """`src` is a valid tabular of `df`: the header, then one row per label, recovered exactly."""
    rows = read_tabular(src)
    targets = [t for t, _ in df.columns]
    if rows[:2] != [["Method", *targets], ["", *(k for _, k in df.columns)]]:
        raise LatexError(f"header {rows[:2]}")
    labels = [r[0] for r in rows[2:]]
    if labels != list(df.index):
        raise LatexError(f"labels read back as {labels}, written as {list(df.index)}")
    for row, (_, values) in zip(rows[2:], df.iterrows(), strict=True):
        expected = ["\u2013" if v != v else f"{v:.2e}" if isinstance(v, float) else str(v) for v in values]
        if row[1:] != expected:
            raise LatexError(f"cells {row[1:]}, expected {expected}")


# every special of LaTeX, in labels as compnet writes them and worse
NASTY = [
    "Differentiability enforced (direct_epochs=2000) #2",
    "100% of runs & then some",
    "cost $5 ^ x ~ y",
    "C:\\runs\\new {a} }b{",
    "\\textbf{bold}",
    "all: _#%&${}~^\\ end\\",
]


def nasty_frame():
    summaries = [summary(label, "x3", 1e-2 * (i + 1)) for i, label in enumerate(NASTY)]
    summaries.append(summary(NASTY[0], "weird_target#1", 5e-3))  # a target name escaped in \multicolumn
    return table(summaries)


def test_latex_table_reads_back_exactly_with_special_characters():
    df = nasty_frame()
    assert sorted(df.index) == sorted(NASTY)
    check_latex_table(to_latex(df), df)
    rows = read_tabular(to_latex(df))
    assert rows[0] == ["Method", "x3", "x3", "x3", "weird_target#1", "weird_target#1", "weird_target#1"]
    assert rows[2 + list(df.index).index(NASTY[0])][1:] == [
        "1.00e-03",
        "1.00e-02",
        "1/30",
        "5.00e-04",
        "5.00e-03",
        "1/30",
    ]
    assert rows[3][4:] == ["\u2013"] * 3  # missing cells typeset a dash (`--`)


@pytest.mark.parametrize("special", list("_#%&${}~^\\"))
def test_latex_checker_fails_on_a_naive_table(monkeypatch, special):
    """The checker is not vacuous: without escaping, every one of LaTeX's specials is caught."""
    df = table([summary(f"run{special}one", "x3", 1e-2), summary("default", "x3", 2e-2)])
    check_latex_table(to_latex(df), df)
    monkeypatch.setattr(tables, "tex", str)
    with pytest.raises(LatexError):
        check_latex_table(to_latex(df), df)


def test_latex_checker_catches_miscounted_rows_and_groups():
    df = table([summary("default", "x3", 1e-2)])
    good = to_latex(df)
    check_latex_table(good, df)
    for bad in (
        good.replace("1/30 \\\\", "1/30 & x \\\\"),  # an extra cell
        good.replace("\\multicolumn{3}", "\\multicolumn{2}"),  # a header one short
        good.replace("\\end{tabular}", "x \\end{tabular}"),  # text after the last row end
        good.replace("Default network", "Default {network"),
        good.replace("Default network", "Default--network"),  # a ligature: typesets an en dash
    ):
        with pytest.raises(LatexError):
            check_latex_table(bad, df)


def test_table_tex_file_is_valid_latex(tmp_path: Path):
    """`write_tables` with the labels compnet makes: a setting with `_` and a repeat with `#`."""
    runs = [
        summary("enforced", "x3", 1e-6, regime__direct_epochs=2000),
        summary("enforced", "x3", 2e-6, regime__direct_epochs=2000),
    ]
    runs += [summary("enforced", "x11", 3e-6, regime__direct_epochs=1000)]
    df = table(runs)
    assert "Differentiability enforced (direct_epochs=2000) #2" in df.index
    write_tables(tmp_path, df)
    check_latex_table((tmp_path / "table.tex").read_text(), df)


def test_a_label_starting_with_a_bracket_is_not_taken_by_the_row_end():
    """`\\\\` looks past spaces and the end of line for `*` or `[`: a second row labelled "[draft] ..." is
    read as `\\\\[draft]` (an error: illegal unit of measure), one labelled "*x" loses its star."""
    df = table([summary("default", "x3", 1e-2), summary("[draft] run", "x3", 2e-2)])
    assert list(df.index) == ["Default network", "[draft] run"]
    check_latex_table(to_latex(df), df)


def test_runs_from_different_machines_or_engines_are_flagged():
    from compnet.tables import mixed_provenance

    here = summary("enforced", "x3", 4e-7) | {"produced_by": {"host": "a", "kernel": {"cpu": "AMD EPYC"}}}
    there = summary("enforced", "x11", 1e-5) | {"produced_by": {"host": "b", "kernel": {"cpu": "Intel Xeon"}}}
    assert mixed_provenance([here, here]) == []
    warnings = mixed_provenance([here, there, summary("default", "x3", 1e-2, engine="torch")])
    assert warnings == [
        "runs from 2 machines side by side: a, b",
        "runs from 2 CPU models side by side: AMD EPYC, Intel Xeon",
        "runs of 2 engines side by side: fused, torch",
    ]


# --- the spread over seeds (make paper SEEDS=...) ---------------------------------------------------------


def seeded(method: str, target: str, experiment: str, lo: float, mean: float, collapsed: int, **settings) -> dict:
    """A summary of one experiment's cell with the given min, mean and collapse count; test MSE as well
    where the runs hold out test points (Table 3), with the same numbers."""
    s = summary(method, target, mean, **settings) | {"experiment": experiment, "min_mse": lo, "n_collapsed": collapsed}
    return s | ({"min_test_mse": lo, "mean_test_mse": mean} if settings.get("test_points") else {})


def test_seed_spread_gives_lo_median_hi_of_every_cell_and_its_ratio_to_the_paper():
    from compnet.paper import paper_value

    # (min, mean, collapsed) of Table 1's enforced x3 at three seeds: lo/median/hi by hand below
    t1 = {0: (1e-7, 4e-7, 0), 1: (3e-7, 2e-7, 2), 2: (2e-7, 8e-7, 1)}
    by_seed = {
        seed: [
            seeded("enforced", "x3", "table1", *t1[seed]),  # before Default: rows come in the paper's order
            seeded("default", "x3", "table1", 1e-5 * (seed + 1), 1e-2, 12 + seed),
            seeded("enforced", "sin", "table2", 1e-8, 1e-6, 0),
            seeded("enforced", "x3", "table3", 5e-6 * (seed + 1), 1e-5, 0, test_points=10, points=10),
        ]
        for seed in t1
    }
    spread = tables.seed_spread(by_seed)
    assert list(zip(spread["table"], spread["method"], spread["target"])) == [
        ("table1", "Default network", "x3"),
        ("table1", "Differentiability enforced", "x3"),
        ("table2", "Differentiability enforced", "sin"),
        ("table3", "Differentiability enforced", "x3"),
    ]
    enforced = spread.iloc[1]
    assert enforced["seeds"] == 3 and enforced["metric"] == "mse"
    assert [enforced[f"min {a}"] for a in ("lo", "median", "hi")] == [1e-7, 2e-7, 3e-7]
    assert [enforced[f"mean {a}"] for a in ("lo", "median", "hi")] == [2e-7, 4e-7, 8e-7]
    assert [enforced[f"collapsed {a}"] for a in ("lo", "median", "hi")] == [0, 1, 2]
    assert enforced["paper min"] == 7.86e-8 == paper_value("table1", "enforced", "x3", "min")
    assert enforced["min / paper median"] == pytest.approx(2e-7 / 7.86e-8)
    assert enforced["min / paper lo"] == pytest.approx(1e-7 / 7.86e-8)
    assert enforced["mean / paper hi"] == pytest.approx(8e-7 / 5.27e-7)
    assert spread.iloc[0]["collapsed median"] == 13
    # Table 2 has no paper numbers; Table 3 compares test MSE with the paper's Table 3, which has only a min
    assert math.isnan(spread.iloc[2]["min / paper median"]) and math.isnan(spread.iloc[2]["mean / paper hi"])
    t3 = spread.iloc[3]
    assert t3["metric"] == "test mse" and t3["min / paper median"] == pytest.approx(1e-5 / 5.65e-6)
    assert math.isnan(t3["mean / paper median"])


def test_seed_spread_markdown_shows_median_and_range_and_ratios_only_where_the_paper_has_numbers():
    by_seed = {
        seed: [seeded("enforced", "x3", "table1", lo, 4e-7, 0), seeded("enforced", "sin", "table2", lo, 1e-6, 0)]
        for seed, lo in ((0, 1e-7), (1, 3e-7), (2, 2e-7))
    }
    md = tables.spread_markdown(tables.seed_spread(by_seed))
    t1, t2 = md.split("## table2")
    assert t1.startswith("## table1 (final MSE)")
    assert "| 2.0e-07 [1.0e-07, 3.0e-07] | 4.0e-07 [4.0e-07, 4.0e-07] | 0 [0, 0]" in t1
    assert "| 2.5 [1.3, 3.8] |" in t1 and "| 0.76 [0.76, 0.76] |" in t1  # min and mean / the paper's
    assert "paper" not in t2 and "nan" not in md


def test_merged_shards_from_different_cpus_or_kernel_builds_are_flagged():
    """A row merged from shards (shards.merge_shards) is as many runs as it has shards: each one's CPU model
    and kernel SIMD width count."""
    from compnet.tables import mixed_provenance

    def shard(cpu: str, lanes: int) -> dict:
        kernel = {"cpu": cpu, "lanes_f32": lanes, "lanes_f64": lanes // 2}
        return summary("enforced", "x3", 4e-7) | {"produced_by": {"host": "a", "cpu": cpu, "kernel": kernel}}

    same = summary("enforced", "x3", 4e-7) | {"shards": [shard("AMD EPYC", 8), shard("AMD EPYC", 8)]}
    assert mixed_provenance([same]) == []
    mixed = summary("enforced", "x3", 4e-7) | {"shards": [shard("AMD EPYC", 8), shard("Intel Xeon", 16)]}
    assert mixed_provenance([mixed]) == [
        "runs from 2 CPU models side by side: AMD EPYC, Intel Xeon",
        "runs from 2 kernel SIMD widths side by side: 16/8 lanes (float32/float64), 8/4 lanes (float32/float64)",
    ]

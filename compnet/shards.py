"""Shards of one configuration (`trial_start=K trials=N`, run apart) read back as one run (docs: README "Big runs").

Trial i depends only on its own seed, SeedSequence([seed, i]), so trials run in shards are the trials of the
whole run, bit for bit; their summaries' statistics are recomputed here from the shards' trials.csv rows. Runs
of one configuration are told apart by every recorded setting but the trial range (`SHARD_KEYS`); runs over the
same trials are repeats, not shards, and stay apart.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from compnet.runs import PIECES, settings_recorded, trial_statistics

SHARD_KEYS = ("trial_start", "trials")  # the settings in which shards of one configuration differ


def _configuration(summary: dict[str, Any]) -> str:
    """What shards of one configuration share: the cell and every setting but the trial range."""
    settings = {k: v for k, v in settings_recorded(summary).items() if k not in SHARD_KEYS}
    return json.dumps([summary["target"], summary["method"], settings], sort_keys=True, default=str)


def trial_range(summary: dict[str, Any]) -> tuple[int, int]:
    """The global indices [first, end) of a run's trials (runs from before `trial_start` start at 0)."""
    first = settings_recorded(summary).get("trial_start", 0)
    return first, first + summary["n_trials"]


def _spans(indices: list[int]) -> str:
    """Trial indices as runs of consecutive ones: "2–3, 7"."""
    runs: list[list[int]] = []
    for i in sorted(indices):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}–{b}" if b > a else str(a) for a, b in runs)


def _union(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Shards' trials.csv rows as one frame in trial order, each trial once: from the first shard holding it."""
    if len(frames) == 1:
        return frames[0]
    return pd.concat(frames, ignore_index=True).drop_duplicates("trial").sort_values("trial", ignore_index=True)


def read_trials(summary: dict[str, Any]) -> pd.DataFrame:
    """A cell's trials.csv rows; for shards merged by `merge_shards`, all their trials."""
    return _union([pd.read_csv(Path(s["folder"]) / "trials.csv") for s in summary.get("shards", [summary])])


def read_pieces(summary: dict[str, Any]) -> pd.DataFrame | None:
    """A cell's pieces.csv rows (regions_every=N), None where none was counted; for merged shards, all of theirs."""
    found = [Path(s["folder"]) / PIECES for s in summary.get("shards", [summary])]
    frames = [pd.read_csv(f) for f in found if f.is_file()]
    if len(frames) <= 1:
        return frames[0] if frames else None
    both = pd.concat(frames, ignore_index=True)
    return both.drop_duplicates(["trial", "stage", "epoch"]).sort_values(["stage", "epoch", "trial"], ignore_index=True)


def merge_shards(summaries: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[str]]:
    """Shards of one configuration (runs that differ only in `trial_start` and `trials`) as one summary of
    all their trials, its statistics recomputed from their trials.csv rows; and one line for each thing a
    table should not hide: trials two shards both hold (counted once, from the shard that starts first) and
    trials missing below the last shard's end. Runs of one configuration over the same trials are repeats,
    not shards: they stay apart (a table numbers them)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for s in summaries:
        groups.setdefault(_configuration(s), []).append(s)
    merged, notes = [], []
    for group in groups.values():
        if len({trial_range(s) for s in group}) == 1:
            merged += group
            notes += _gap_note(group, set(range(*trial_range(group[0]))))
            continue
        one, lines = _merge(sorted(group, key=lambda s: (trial_range(s), s["folder"])))
        merged += [one] if one else []
        notes += lines
    return merged, notes


def _gap_note(shards: list[dict[str, Any]], held: set[int]) -> list[str]:
    """The line naming the trials below `held`'s largest that no shard holds (none if there are none)."""
    lacking = sorted(set(range(max(held) + 1)) - held) if held else []
    if not lacking:
        return []
    cell = f"{shards[0]['target']}-{shards[0]['method']}"
    where = ", ".join(s["folder"] for s in shards)
    return [f"{cell}: trials {_spans(lacking)} not found (runs of this configuration: {where})"]


def _merge(shards: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, list[str]]:
    """One summary of shards (sorted by trial range), and the lines naming their overlaps, gaps and
    unreadable trials.csv files (whose shards are left out)."""
    frames, kept, held, lines = [], [], set(), []
    for s in shards:
        try:
            trials = pd.read_csv(Path(s["folder"]) / "trials.csv")
            indices = set(trials["trial"])
        except (OSError, ValueError, KeyError) as e:  # missing, truncated, without a trial column
            lines.append(f"{Path(s['folder']) / 'trials.csv'} (unreadable: {type(e).__name__}: {e}; shard left out)")
            continue
        if both := indices & held:
            lines.append(f"{s['folder']} (trials {_spans(list(both))} also in an earlier shard: counted once)")
        frames.append(trials)
        kept.append(s)
        held |= indices
    if not kept:
        return None, lines
    trials = _union(frames)
    first = kept[0]
    settings = settings_recorded(first) | {"trial_start": int(trials["trial"].min()), "trials": len(trials)}
    one = first | trial_statistics(trials) | {"settings": settings, "shards": kept}
    one["wall_seconds"] = sum(s.get("wall_seconds") or 0.0 for s in kept)  # the training time of all shards
    return one, lines + _gap_note(kept, held)

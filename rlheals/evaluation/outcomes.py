"""Per-hand outcomes of an evaluation, read back from its replies.jsonl.

The paired tests (rlheals.evaluation.stats) compare two checkpoints hand by hand, so they
need which hands each checkpoint solved, not only how many. `evaluate_checkpoint` keeps
every attempt of every hand in replies.jsonl (one JSON object per attempt, with the
hand's `id`, `split`, `attempt` and the verifier's `outcome`); a hand counts as solved
when one of its first `max_attempt` attempts is correct (all attempts by default, so the
counts equal the summary's `successes`; `max_attempt=1` gives attempt-1 success).

Outcomes are pandas Series of bool indexed by hand id, sorted by id, so that vectors of
two checkpoints line up (and a paired test can check that they cover the same hands);
`np.asarray(series)` is the plain bool array the stats functions also take.
"""
from __future__ import annotations

import os
from typing import Hashable, Mapping

import pandas as pd

#: (seed, checkpoint, split) -> per-hand success, the scorecard's input.
OutcomeKey = tuple[Hashable, str, str]


def hand_outcomes(replies_path: str | os.PathLike, max_attempt: int | None = None) -> dict[str, pd.Series]:
    """{split: bool Series (index: hand id, sorted)} from one checkpoint's replies.jsonl."""
    from rlheals.atomic import read_jsonl

    if max_attempt is not None and max_attempt < 1:
        raise ValueError(f"max_attempt must be >= 1, got {max_attempt}")
    solved: dict[str, dict] = {}
    for lineno, row in enumerate(read_jsonl(replies_path), 1):
        missing = [k for k in ("split", "id", "attempt", "outcome") if k not in row]
        if missing:
            raise ValueError(f"{replies_path}:{lineno}: reply row lacks {missing}; expected the replies.jsonl "
                             "that rlheals.evaluation.evaluate writes (split, id, attempt, outcome per attempt)")
        hands = solved.setdefault(str(row["split"]), {})
        hid = row["id"]
        ok = row["outcome"] == "correct" and (max_attempt is None or int(row["attempt"]) <= max_attempt)
        hands[hid] = hands.get(hid, False) or ok
    if not solved:
        raise ValueError(f"{replies_path}: no replies (expected one JSON object per attempt per hand)")
    return {split: pd.Series(h, dtype=bool).sort_index() for split, h in solved.items()}


def load_outcomes(
    replies: Mapping[tuple[Hashable, str], str | os.PathLike], max_attempt: int | None = None
) -> dict[OutcomeKey, pd.Series]:
    """{(seed, checkpoint, split): per-hand success} from {(seed, checkpoint): replies.jsonl}.

    Every checkpoint of one split must cover the same hands (the workflow evaluates all
    checkpoints on the same fixed sets); a mismatch names both files.
    """
    out: dict[OutcomeKey, pd.Series] = {}
    first: dict[str, tuple] = {}
    for (seed, ckpt), path in replies.items():
        for split, series in hand_outcomes(path, max_attempt).items():
            if split in first and not first[split][1].equals(series.index):
                raise ValueError(f"{path}: split '{split}' has other hands than {first[split][0]}; "
                                 "every checkpoint must be evaluated on the same hands")
            first.setdefault(split, (path, series.index))
            out[(seed, ckpt, split)] = series
    return out


#: Columns of a per-hand reading table (rlheals.task.reading, first attempt of each hand).
READING_COLUMNS = ["faces", "as_rule", "as_ten"]


def hand_readings(replies_path: str | os.PathLike) -> dict[str, pd.DataFrame]:
    """{split: per-hand face-card reading of the first reply} from one checkpoint's replies.jsonl.

    The graded skill (the share of face cards a reply writes as the stated rule says) moves
    where success sits at the floor; a paired test on it needs it per hand, like success.
    Each frame is indexed by hand id (sorted) with the columns READING_COLUMNS: the hand's
    face cards and how many of them the first reply wrote as the rule says and as 10.
    """
    from rlheals.atomic import read_jsonl
    from rlheals.task.reading import read_faces

    rows: dict[str, dict] = {}
    for lineno, row in enumerate(read_jsonl(replies_path), 1):
        if int(row.get("attempt", 1)) != 1:
            continue
        missing = [k for k in ("split", "id", "cards", "rule", "reply") if k not in row]
        if missing:
            raise ValueError(f"{replies_path}:{lineno}: reply row lacks {missing}; expected the replies.jsonl "
                             "that rlheals.evaluation.evaluate writes (cards, rule and reply per attempt)")
        r = read_faces(row["reply"], row["cards"], row["rule"])
        rows.setdefault(str(row["split"]), {})[row["id"]] = (r.faces, r.as_rule, r.as_ten)
    if not rows:
        raise ValueError(f"{replies_path}: no first replies (expected one JSON object per attempt per hand)")
    return {split: pd.DataFrame.from_dict(h, orient="index", columns=READING_COLUMNS).sort_index()
            for split, h in rows.items()}


def load_readings(replies: Mapping[tuple[Hashable, str], str | os.PathLike]) -> dict[OutcomeKey, pd.DataFrame]:
    """{(seed, checkpoint, split): per-hand reading} from {(seed, checkpoint): replies.jsonl}."""
    out: dict[OutcomeKey, pd.DataFrame] = {}
    for (seed, ckpt), path in replies.items():
        for split, frame in hand_readings(path).items():
            out[(seed, ckpt, split)] = frame
    return out

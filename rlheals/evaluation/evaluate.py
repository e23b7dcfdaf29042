"""Evaluate a checkpoint on the fixed ID and OOD hands, with retries and feedback.

Each hand gets up to `attempts` replies, as in the paper's "sequential revision": after
a failed attempt the conversation continues with the verifier's feedback and only the
unsolved hands go on to the next attempt. A hand counts as a success when any attempt
is correct.

Per split the summary holds: n, attempts, successes (solved within the attempts),
success_rate and its Wilson interval, the same at attempt 1 (successes_at_1,
success_rate_at_1, ci_low_at_1, ci_high_at_1: what a single-attempt evaluation gives),
mean_reward (the reward of each hand's last attempt, so +5 for a solved hand), the
count of each hand's final outcome (`n_correct`, `n_partial`, `n_wrong_value`,
`n_wrong_numbers`, `n_illegal_formula`, `n_format_error`) and `solved_at_<i>`, the
number of hands first solved at attempt i, and the graded skill of the first replies:
`face_cards`, `face_as_rule`, `face_as_10` and the shares `face_rule_rate`,
`face_10_rate` (rlheals.task.reading), and the feedback channel's own measure, the rescue
rate (`rescue_columns`: hands failed at attempt 1 and solved later, and how many of those
rescues followed a feedback that named a face card's value). Where the hands say whether their problem (the
numbers under the rule) was seen in training (`seen`, from rlheals.data.splits), the row
adds success on seen and on unseen problems apart (`seen_*`, `unseen_*`). Every
attempt's prompt, reply and verdict is kept in replies.jsonl.
"""
from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field

from rlheals.evaluation.generation import DecodingOptions, generate
from rlheals.evaluation.stats import wilson
from rlheals.task.verifier import Outcome, verify

log = logging.getLogger(__name__)

OUTCOMES = [o.value for o in Outcome]


@dataclass
class EvalOptions:
    """Evaluation settings (config `evaluation` + `model.prompt_style` + seed)."""

    attempts: int = field(default=1, metadata={"help": "replies per hand, with feedback in between"})
    prompt_style: str = field(default="compact", metadata={"help": "compact or chat"})
    alpha: float = field(default=0.05, metadata={"help": "1 - confidence level of the intervals"})
    decoding: DecodingOptions = field(default_factory=DecodingOptions)
    backend: str = field(default="hf", metadata={"help": "hf (transformers) or vllm"})
    device_map: str = field(default="single", metadata={"help": "hf: one device, or accelerate's placement"})

    def __post_init__(self) -> None:
        if self.backend not in ("hf", "vllm"):
            raise ValueError(f"evaluation.backend {self.backend!r}: expected 'hf' or 'vllm'")
        if self.attempts < 1:
            raise ValueError(f"evaluation.attempts must be >= 1, got {self.attempts}")
        if self.prompt_style not in ("compact", "chat"):
            raise ValueError(f"model.prompt_style {self.prompt_style!r}: expected 'compact' or 'chat'")

    @classmethod
    def from_config(cls, evaluation: dict, prompt_style: str, seed: int) -> "EvalOptions":
        dec = DecodingOptions(
            max_new_tokens=evaluation["max_new_tokens"],
            batch_size=evaluation["batch_size"],
            decoding=evaluation["decoding"],
            temperature=evaluation["temperature"],
            top_p=evaluation["top_p"],
            seed=seed,
            batch_tokens=evaluation.get("batch_tokens"),
            stop_strings=tuple(evaluation.get("stop_strings", ())),
            drop_finished=evaluation.get("drop_finished", True),
        )
        return cls(
            attempts=evaluation["attempts"],
            prompt_style=prompt_style,
            alpha=evaluation.get("alpha", 0.05),
            decoding=dec,
            backend=evaluation.get("backend", "hf"),
            device_map=evaluation.get("device_map", "single"),
        )


def evaluate_split(model, tokenizer, records: list[dict], opts: EvalOptions, split: str) -> tuple[dict, list[dict]]:
    """(summary row, reply rows) for one split's records ({id, cards, rule, ...})."""
    from rlheals.task.episode import next_context
    from rlheals.task.prompts import build_prompt

    prompts = [build_prompt(r["cards"], r["rule"], opts.prompt_style) for r in records]
    history: list[list] = [[] for _ in records]  # (reply, verdict) per attempt
    pending = list(range(len(records)))
    rows: list[dict] = []
    for attempt in range(opts.attempts):
        if not pending:
            break
        batch_prompts = [next_context(prompts[i], history[i], opts.prompt_style) for i in pending]
        keys = [f"{split}/{records[i].get('id', i)}" for i in pending]  # each hand's own sampling seed
        replies = generate(model, tokenizer, batch_prompts, opts.decoding, attempt=attempt, keys=keys)
        still = []
        for i, prompt, reply in zip(pending, batch_prompts, replies):
            rec = records[i]
            verdict = verify(reply, rec["cards"], rec["rule"])
            history[i].append((reply, verdict))
            rows.append(
                {
                    "split": split, "id": rec.get("id", i), "attempt": attempt + 1, "cards": rec["cards"],
                    "rule": rec["rule"], **({"seen": bool(rec["seen"])} if "seen" in rec else {}),
                    "prompt": prompt, "reply": reply, **verdict.to_dict(),
                }
            )
            if not verdict.correct:
                still.append(i)
        log.info("%s attempt %d: %d/%d hands solved so far", split, attempt + 1, len(records) - len(still), len(records))
        pending = still
    row = summarize(history, split, opts.attempts, opts.alpha)
    row.update(face_columns(records, history))
    row.update(rescue_columns(records, history, opts.alpha))
    if records and all("seen" in r for r in records):
        row.update(seen_columns(history, [bool(r["seen"]) for r in records], opts.alpha))
    return row, rows


SEEN_PARTS = ("seen", "unseen")


def seen_columns(history: list[list], seen: list[bool], alpha: float = 0.05) -> dict:
    """Success apart on seen problems (a training hand has the same numbers under the
    rule, so a right answer may be recall) and on unseen ones: `<part>_n`,
    `<part>_successes`, `<part>_rate`, `<part>_ci_low`, `<part>_ci_high`."""
    out = {}
    for part, flag in (("seen", True), ("unseen", False)):
        tries = [h for h, s in zip(history, seen) if s == flag]
        k = sum(1 for h in tries if h[-1][1].correct)
        low, high = wilson(k, len(tries), alpha)
        out.update({f"{part}_n": len(tries), f"{part}_successes": k,
                    f"{part}_rate": k / len(tries) if tries else float("nan"),
                    f"{part}_ci_low": low, f"{part}_ci_high": high})
    return out


_LISTED = re.compile(r"\[([0-9, ]*)\]")


def named_values(reason: str) -> set[int]:
    """The numbers a feedback reason lists ("you used invalid numbers: [10]; you did not use
    all the cards' numbers: [13] unused" -> {10, 13})."""
    return {int(x) for group in _LISTED.findall(reason) for x in group.replace(",", " ").split()}


def rescue_columns(records: list[dict], history: list[list], alpha: float = 0.05) -> dict:
    """The feedback channel itself: of the hands failed at attempt 1 (`rescue_n`), those
    solved at a later attempt (`rescued`, `rescue_rate` with its Wilson interval), and of
    those, the ones where a feedback before the success named the value one of the hand's
    face cards has under the stated rule (`rescued_named`, `rescue_named_share` with its
    interval: on OOD hands 11, 12 or 13, the value a model that writes 10 must read off the
    feedback). With one attempt nothing can be rescued: rescue_n is the failures, rescued 0."""
    from rlheals.task.cards import FACES, hand_numbers

    failed = rescued = named = 0
    for rec, tries in zip(records, history):
        if not tries or tries[0][1].correct:
            continue
        failed += 1
        if not tries[-1][1].correct:
            continue
        rescued += 1
        values = {v for c, v in zip(rec["cards"], hand_numbers(rec["cards"], rec["rule"])) if c in FACES}
        if any(values & named_values(v.reason) for _, v in tries[:-1]):
            named += 1
    low, high = wilson(rescued, failed, alpha)
    nlow, nhigh = wilson(named, rescued, alpha)
    return {"rescue_n": failed, "rescued": rescued, "rescue_rate": rescued / failed if failed else float("nan"),
            "rescue_ci_low": low, "rescue_ci_high": high, "rescued_named": named,
            "rescue_named_share": named / rescued if rescued else float("nan"),
            "rescue_named_ci_low": nlow, "rescue_named_ci_high": nhigh}


def face_columns(records: list[dict], history: list[list]) -> dict:
    """The graded skill of a split (rlheals.task.reading), from each hand's first reply:
    face cards in the hands, how many the replies wrote as the stated rule says and as 10,
    and those two as shares of all face cards (a reply without a number list counts as
    neither)."""
    from rlheals.task.reading import Reading, read_faces

    total = Reading(0, 0, 0, True)
    for rec, tries in zip(records, history):
        if tries:
            total = total + read_faces(tries[0][0], rec["cards"], rec["rule"])
    share = (lambda k: k / total.faces) if total.faces else (lambda k: float("nan"))
    return {"face_cards": total.faces, "face_as_rule": total.as_rule, "face_as_10": total.as_ten,
            "face_rule_rate": share(total.as_rule), "face_10_rate": share(total.as_ten)}


def summarize(history: list[list], split: str, attempts: int, alpha: float = 0.05) -> dict:
    """Summary row of one split from each hand's (reply, verdict) attempts."""
    n = len(history)
    counts = {o: 0 for o in OUTCOMES}
    solved_at = [0] * attempts
    reward_sum = 0.0
    for tries in history:
        last = tries[-1][1]
        counts[last.outcome.value] += 1
        reward_sum += last.reward
        if last.correct:
            solved_at[len(tries) - 1] += 1
    successes = counts[Outcome.CORRECT.value]
    low, high = wilson(successes, n, alpha)
    first = solved_at[0] if attempts else 0
    low1, high1 = wilson(first, n, alpha)
    row = {
        "split": split, "n": n, "attempts": attempts, "successes": successes,
        "success_rate": successes / n if n else float("nan"), "ci_low": low, "ci_high": high,
        "successes_at_1": first, "success_rate_at_1": first / n if n else float("nan"),
        "ci_low_at_1": low1, "ci_high_at_1": high1,
        "mean_reward": reward_sum / n if n else float("nan"),
    }
    row.update({f"n_{o}": c for o, c in counts.items()})
    row.update({f"solved_at_{i + 1}": c for i, c in enumerate(solved_at)})
    return row


def evaluate_checkpoint(
    model_dir: str | os.PathLike,
    data: dict[str, str | os.PathLike],
    opts: EvalOptions,
    summary_path: str | os.PathLike,
    replies_path: str | os.PathLike,
    device: str = "auto",
) -> "pandas.DataFrame":  # noqa: F821
    """Evaluate the model in `model_dir` on each split file in `data` ({split: jsonl}) and
    write the summary CSV and the replies JSONL (atomically)."""
    import pandas as pd

    from rlheals.atomic import read_jsonl, write_csv, write_jsonl
    if opts.backend == "vllm":
        from rlheals.evaluation.vllm_backend import load_vllm

        model, tokenizer = load_vllm(model_dir, device=device, seed=opts.decoding.seed)
    else:
        from rlheals.train.models import load_model

        model, tokenizer = load_model(model_dir, device=device, device_map=opts.device_map)
    summaries, replies = [], []
    for split, path in data.items():
        records = read_jsonl(path)
        if not records:
            raise ValueError(f"{path}: no evaluation hands (expected one JSON record per line)")
        row, rows = evaluate_split(model, tokenizer, records, opts, split)
        log.info("%s: %d/%d correct (%.3f)", split, row["successes"], row["n"], row["success_rate"])
        summaries.append(row)
        replies.extend(rows)
    frame = pd.DataFrame(summaries)
    write_csv(summary_path, frame)
    write_jsonl(replies_path, replies)
    return frame


def checkpoint_columns(ckpt: str) -> dict:
    """checkpoint, stage, sft_step, rl_algo, rl_step of a checkpoint id."""
    from rlheals.checkpoints import parse_ckpt

    return {"checkpoint": ckpt, **parse_ckpt(ckpt)}


def aggregate(summaries: dict[str, str | os.PathLike], loss_csv: str | os.PathLike | None = None, alpha: float = 0.05):
    """results/tables/eval.csv: one row per (checkpoint, split), with SFT losses joined.

    The Wilson intervals are recomputed at `alpha` (config evaluation.alpha, which does not
    rerun evaluations). For base and SFT checkpoints the SFT loss table's row at that step
    (if logged) adds train_loss, heldout_id_loss, heldout_ood_loss and test_id_loss (the
    paper's test loss; empty for runs logged before it), so the curves sit in one table.
    """
    import pandas as pd

    frames = []
    for ckpt, path in summaries.items():
        frame = pd.read_csv(path)
        for key, value in reversed(list(checkpoint_columns(ckpt).items())):
            frame.insert(0, key, value)
        frames.append(frame)
    table = pd.concat(frames, ignore_index=True)
    cis = [wilson(int(k), int(n), alpha) for k, n in zip(table["successes"], table["n"])]
    table["ci_low"], table["ci_high"] = [c[0] for c in cis], [c[1] for c in cis]
    for part in SEEN_PARTS:
        if f"{part}_n" in table:
            cis = [wilson(int(k), int(n), alpha) if n == n and n > 0 else (float("nan"), float("nan"))
                   for k, n in zip(table[f"{part}_successes"].fillna(0), table[f"{part}_n"])]
            table[f"{part}_ci_low"], table[f"{part}_ci_high"] = [c[0] for c in cis], [c[1] for c in cis]
    if "successes_at_1" not in table:  # a summary written before attempt-1 columns existed
        table["successes_at_1"] = table["solved_at_1"] if "solved_at_1" in table else table["successes"]
        table["success_rate_at_1"] = table["successes_at_1"] / table["n"]
    cis = [wilson(int(k), int(n), alpha) for k, n in zip(table["successes_at_1"], table["n"])]
    table["ci_low_at_1"], table["ci_high_at_1"] = [c[0] for c in cis], [c[1] for c in cis]
    for k_col, n_col, prefix in (("rescued", "rescue_n", "rescue"), ("rescued_named", "rescued", "rescue_named")):
        if k_col in table:
            cis = [wilson(int(k), int(n), alpha) if n == n and n > 0 else (float("nan"), float("nan"))
                   for k, n in zip(table[k_col].fillna(0), table[n_col].fillna(0))]
            table[f"{prefix}_ci_low"], table[f"{prefix}_ci_high"] = [c[0] for c in cis], [c[1] for c in cis]
    for col in ("sft_step", "rl_step"):
        table[col] = table[col].astype("Int64")
    loss_cols = ["train_loss", "heldout_id_loss", "heldout_ood_loss", "test_id_loss"]
    if loss_csv is not None and os.path.exists(loss_csv):
        losses = pd.read_csv(loss_csv)
        losses = losses[["step"] + [c for c in loss_cols if c in losses]].drop_duplicates("step", keep="last")
        on_curve = table["stage"].isin(["base", "sft"])
        keys = table["sft_step"].where(on_curve)
        merged = pd.DataFrame({"step": keys}).merge(losses, on="step", how="left")
        for col in loss_cols:
            table[col] = merged[col].to_numpy() if col in merged else float("nan")
    else:
        for col in loss_cols:
            table[col] = float("nan")
    return table



EDIT_COLUMNS = ["edit_kind", "edit_k_frac", "edit_layers"]


def add_edit_columns(table, edits: dict[str, dict]):
    """eval.csv's edit columns: for an edited checkpoint its kind, the share of the rank it
    edited (mean over the edited matrices of k/rank: the configured share, or what a count
    k came to) and its layers ('all', a third such as 'top (3-3)', or 'first-last'); empty
    for the other rows. `edits`: {checkpoint id: the edit's rlheals_edit.json}."""
    def layers(info: dict) -> str:
        rng = info.get("layer_range")
        span = f"{rng[0]}-{rng[1]}" if rng else "all"
        return f"{info['layers']} ({span})" if isinstance(info.get("layers"), str) else span

    ckpts = table["checkpoint"]
    table["edit_kind"] = [edits[c]["kind"] if c in edits else None for c in ckpts]
    table["edit_k_frac"] = [float(edits[c]["k_frac"]) if c in edits else float("nan") for c in ckpts]
    table["edit_layers"] = [layers(edits[c]) if c in edits else None for c in ckpts]
    return table


def edit_info(model_dir: str | os.PathLike) -> dict:
    """The rlheals_edit.json an edited checkpoint's directory carries (rlheals.svd.edits)."""
    import json

    path = os.path.join(model_dir, "rlheals_edit.json")
    try:
        with open(path) as fh:
            info = json.load(fh)
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: an edited checkpoint without its edit record (rebuild it with rule edit)") from None
    if "k_frac" not in info:
        raise ValueError(f"{path}: no k_frac (an edit built by an older version; rebuild it with rule edit)")
    return info

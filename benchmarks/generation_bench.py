"""Hands per second of evaluation's generation, with and without finished replies leaving
the batch (`evaluation.drop_finished`), measured in one run on the same model and hands.

Both passes generate greedy replies to the same ID and OOD hands in the same batches; the
script checks that the replies are identical and prints hands/s of each and the ratio.

    python benchmarks/generation_bench.py --model results/s0/models/sft-100 --hands 64 --style compact
"""
from __future__ import annotations

import argparse
import json
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="a model folder (HF format), e.g. results/s0/models/sft-100")
    ap.add_argument("--hands", type=int, default=64, help="hands per rule (ID and OOD)")
    ap.add_argument("--style", default="compact", choices=["compact", "chat"])
    ap.add_argument("--batch", type=int, default=64, help="prompts per batch")
    ap.add_argument("--new", type=int, default=48, help="max new tokens")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0, help="seed of the hands")
    ap.add_argument("--json", help="also write the numbers to this file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from rlheals.evaluation.generation import DecodingOptions, generate
    from rlheals.task.cards import make_hands
    from rlheals.task.prompts import build_prompt
    from rlheals.train.models import load_model

    model, tok = load_model(args.model, device="cpu")
    model.eval()
    prompts = [build_prompt(h, rule, args.style) for rule in ("id", "ood")
               for h in make_hands(args.hands, rule, seed=args.seed)]
    rows = {}
    replies = {}
    for drop in (False, True):
        opts = DecodingOptions(max_new_tokens=args.new, batch_size=args.batch, drop_finished=drop)
        t0 = time.perf_counter()
        replies[drop] = generate(model, tok, prompts, opts)
        dt = time.perf_counter() - t0
        rows[drop] = {"seconds": round(dt, 2), "hands_per_s": round(len(prompts) / dt, 3)}
        print(f"drop_finished={drop!s:5}  {len(prompts)} hands  {dt:7.1f} s  {len(prompts) / dt:6.2f} hands/s", flush=True)
    same = replies[False] == replies[True]
    lengths = [len(tok(r, add_special_tokens=False)["input_ids"]) for r in replies[True]]
    ratio = rows[True]["hands_per_s"] / rows[False]["hands_per_s"]
    print(f"speed-up {ratio:.2f}x; replies identical: {same}; reply tokens mean {sum(lengths) / len(lengths):.1f}, "
          f"max {max(lengths)} (max_new_tokens {args.new})")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": args.model, "hands": len(prompts), "style": args.style, "batch": args.batch,
                       "generate": rows[False], "drop_finished": rows[True], "speedup": round(ratio, 3),
                       "identical": same}, f, indent=2)
    if not same:
        raise SystemExit("replies differ between the two generation paths")


if __name__ == "__main__":
    main()

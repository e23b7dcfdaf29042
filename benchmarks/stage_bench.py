"""Measured time and memory of one SFT step and of generation, for random-weight models of real shapes.

The cost model in docs/cluster.md (benchmarks/cost_model.py, rlheals.resources) is computed;
this script measures the same units on the machine it runs on, with models built from
their config alone (random weights: nothing to download, the timing is the same):

* SFT step: forward + backward + AdamW on `--batch` sequences of `--length` tokens
  (bf16 autocast on a GPU that has it, float32 on the CPU; gradient checkpointing with
  `--checkpointing`), the median of `--steps` steps after one warm-up step;
* generation: `--hands` prompts of `--prompt` tokens, `--new` new tokens each (greedy,
  no early stop: the upper bound), in batches of `--gen-batch`;
* peak memory: torch.cuda.max_memory_allocated on a GPU, the process's peak RSS on the CPU.

Each row also prints the cost model's estimate and the ratio measured / estimated.

    python benchmarks/stage_bench.py --device cuda --shapes smollm2 qwen0.5b qwen7b --out OUT
    python benchmarks/stage_bench.py --device cpu --shapes tiny smollm2 --batch 2 --length 64 --hands 4 --new 8
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

SHAPES = {
    "tiny": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=256, vocab_size=256, tie_word_embeddings=True),
    "smollm2": dict(hidden_size=576, num_hidden_layers=30, num_attention_heads=9, num_key_value_heads=3,
                    intermediate_size=1536, vocab_size=49152, tie_word_embeddings=True),
    "qwen0.5b": dict(hidden_size=896, num_hidden_layers=24, num_attention_heads=14, num_key_value_heads=2,
                     intermediate_size=4864, vocab_size=151936, tie_word_embeddings=True),
    "qwen7b": dict(hidden_size=3584, num_hidden_layers=28, num_attention_heads=28, num_key_value_heads=4,
                   intermediate_size=18944, vocab_size=152064, tie_word_embeddings=False),
}


def peak_mb(device: str) -> float:
    import torch

    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def bench(name: str, args) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlheals import resources as R

    cfg = dict(SHAPES[name])
    size = R.ModelSize.from_config(cfg)
    dev = args.device
    gpu = dev.startswith("cuda")
    bf16 = gpu and torch.cuda.is_bf16_supported()
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(**cfg, max_position_embeddings=4096)).to(dev)
    if args.checkpointing:
        model.gradient_checkpointing_enable()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-5)
    ids = torch.randint(0, cfg["vocab_size"], (args.batch, args.length), device=dev)
    times = []
    for i in range(args.steps + 1):
        sync(dev)
        t0 = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync(dev)
        if i:  # the first step warms up kernels and allocators
            times.append(time.perf_counter() - t0)
    sft_s, train_peak = statistics.median(times), peak_mb(dev)
    del opt
    model.eval()
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    prompt = torch.randint(0, cfg["vocab_size"], (args.gen_batch, args.prompt), device=dev)
    n_batches = -(-args.hands // args.gen_batch)
    sync(dev)
    t0 = time.perf_counter()
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=bf16):
        for _ in range(n_batches):
            model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=args.new,
                           min_new_tokens=args.new, do_sample=False, pad_token_id=0)
    sync(dev)
    gen_s, gen_peak = time.perf_counter() - t0, peak_mb(dev)
    threads, gpus = torch.get_num_threads(), (1 if gpu else 0)
    est_sft = R.train_seconds(size, 1, args.batch, args.length, threads, gpus)
    est_gen = R.generate_seconds(size, n_batches * args.gen_batch, args.new, args.prompt, threads, gpus)
    est_mem = R.train_mem_mb(size, args.batch, args.length, checkpointing=args.checkpointing)
    del model
    return {"model": name, "params_M": round(size.params / 1e6, 1), "device": dev,
            "dtype": "bf16 autocast" if bf16 else "float32", "batch_x_length": f"{args.batch}x{args.length}",
            "sft_step_s": round(sft_s, 4), "sft_step_est_s": round(est_sft, 4),
            "sft_ratio": round(sft_s / est_sft, 2) if est_sft else None,
            "train_peak_mb": round(train_peak), "train_mem_est_mb": est_mem,
            "gen_hands": n_batches * args.gen_batch, "gen_new_tokens": args.new, "gen_s": round(gen_s, 3),
            "gen_hands_per_s": round(n_batches * args.gen_batch / gen_s, 2), "gen_est_s": round(est_gen, 3),
            "gen_peak_mb": round(gen_peak)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--shapes", nargs="+", default=["smollm2", "qwen0.5b", "qwen7b"], choices=sorted(SHAPES))
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--length", type=int, default=512)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--checkpointing", action="store_true")
    ap.add_argument("--hands", type=int, default=64)
    ap.add_argument("--gen-batch", type=int, default=64)
    ap.add_argument("--prompt", type=int, default=400)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--out", default=None, help="folder for stage_bench.json (printed either way)")
    args = ap.parse_args()
    rows = []
    for name in args.shapes:
        try:
            rows.append(bench(name, args))
        except RuntimeError as exc:  # e.g. out of memory: say so and go on with the next shape
            rows.append({"model": name, "device": args.device, "error": str(exc).splitlines()[0][:200]})
        print(json.dumps(rows[-1]), flush=True)
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        (Path(args.out) / "stage_bench.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

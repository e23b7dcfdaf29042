"""The cost model: estimated time and memory per stage for four model sizes, on 2 CPU cores and one H200.

Computed by rlheals.resources (the same estimates the rules ask the scheduler for; the
assumptions are in its docstring), for the workloads of the default config (tiny), of
configs/smollm2.yaml + configs/smollm2_gpu.yaml (chat prompt, 5 attempts), and of the paper's recipe scaled to Qwen2.5-0.5B and Qwen2.5-7B
shapes (chat prompt, 5 attempts). docs/cluster.md puts measured numbers beside these.

    python benchmarks/cost_model.py            # markdown table on stdout
    python benchmarks/cost_model.py --study    # plus GPU-hours of a paper-sized study
"""
from __future__ import annotations

import argparse

from rlheals import resources as R

SHAPES = {
    "tiny (default)": {"hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4, "num_key_value_heads": 2,
                       "intermediate_size": 256, "vocab_size": 256},
    "SmolLM2-135M": {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                     "intermediate_size": 1536, "vocab_size": 49152},
    "Qwen2.5-0.5B": {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
                     "intermediate_size": 4864, "vocab_size": 151936},
    "Qwen2.5-7B": {"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
                   "intermediate_size": 18944, "vocab_size": 152064, "tie_word_embeddings": False},
}
#: (SFT batch x tokens, RL replies per step x tokens per episode, eval tokens per hand: prompt, new x attempts)
WORK = {
    "tiny (default)": dict(sft=(32, 128), rl=(16, 88), prompt=40, new=48, attempts=1),
    "SmolLM2-135M": dict(sft=(8, 512), rl=(8, 700), prompt=400, new=96, attempts=5),
    "Qwen2.5-0.5B": dict(sft=(64, 1024), rl=(512, 1000), prompt=400, new=128, attempts=5),
    "Qwen2.5-7B": dict(sft=(64, 1024), rl=(512, 1000), prompt=400, new=128, attempts=5),
}


def fmt_s(s: float) -> str:
    if s < 1e-3:
        return "< 1 ms"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def rows() -> list[dict]:
    out = []
    for name, cfg in SHAPES.items():
        size = R.ModelSize.from_config(cfg)
        w = WORK[name]
        for where, threads, gpus in (("2 CPU cores", 2, 0), ("1 H200", 1, 1)):
            sft = R.train_seconds(size, 1, *w["sft"], threads=threads, gpus=gpus)
            rl_len = w["rl"][1]
            rl = (R.train_seconds(size, 4, w["rl"][0], rl_len, threads=threads, gpus=gpus)  # PPO: 4 epochs
                  + R.generate_seconds(size, w["rl"][0], rl_len - w["prompt"], w["prompt"], threads, gpus))
            ev = R.generate_seconds(size, 234 * 2 * w["attempts"], w["new"], w["prompt"], threads, gpus)
            out.append({
                "model": name, "params": f"{size.params / 1e6:.1f} M", "where": where,
                "SFT step": fmt_s(sft), "RL step": fmt_s(rl), "eval 2 x 234 hands": fmt_s(ev),
                "train memory": f"{R.train_mem_mb(size, *w['sft']) / 1024:.1f} GB",
                "FSDP x 8 memory / GPU": f"{R.train_mem_mb(size, *w['sft'], processes=8, sharded=True, checkpointing=True) / 1024:.1f} GB",
                "eval memory": f"{R.eval_mem_mb(size, 64, w['prompt'] + w['new'] * w['attempts']) / 1024:.1f} GB",
            })
    return out


def study(name: str = "Qwen2.5-7B", sft_steps: int = 1100, forks: int = 4, rl_steps: int = 100, ckpts: int = 20) -> str:
    """GPU-hours of a paper-sized study on H200s: SFT to `sft_steps`, `forks` PPO forks of
    `rl_steps` updates, `ckpts` checkpoints evaluated on 2 x 234 hands with 5 attempts."""
    size, w = R.ModelSize.from_config(SHAPES[name]), WORK[name]
    sft = R.train_seconds(size, sft_steps, *w["sft"], gpus=1)
    rl_len = w["rl"][1]
    rl = forks * rl_steps * (R.train_seconds(size, 4, w["rl"][0], rl_len, gpus=1)
                             + R.generate_seconds(size, w["rl"][0], rl_len - w["prompt"], w["prompt"], gpus=1))
    ev = ckpts * R.generate_seconds(size, 234 * 2 * w["attempts"], w["new"], w["prompt"], gpus=1)
    total = sft + rl + ev
    return (f"{name}: SFT {sft_steps} steps {sft / 3600:.1f} GPU-h, {forks} PPO forks x {rl_steps} updates "
            f"{rl / 3600:.1f} GPU-h, {ckpts} evaluations {ev / 3600:.1f} GPU-h: {total / 3600:.0f} H200-hours "
            f"at {R.GPU_FLOPS:.1e} FLOP/s sustained (x2-3 for generation's lower utilisation)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--study", action="store_true", help="also the GPU-hours of a paper-sized study")
    args = ap.parse_args()
    table = rows()
    cols = list(table[0])
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in table:
        print("| " + " | ".join(str(r[c]) for c in cols) + " |")
    if args.study:
        print()
        print(study())
        print(study("Qwen2.5-0.5B"))


if __name__ == "__main__":
    main()

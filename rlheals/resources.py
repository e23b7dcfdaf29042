"""What a job needs, from the model's size: the rules' `mem_mb` and `runtime`, and the README's cost model.

A 0.65M-parameter tiny model and a 7B model cannot share constants: SLURM kills a job
that asks for too little and queues forever one that asks for too much. Everything here
is computed from the model's config.json (parameter count) and the stage's work (steps x
tokens), with stated assumptions:

* memory of training: float32 master weights, gradients and AdamW's two moments, 16
  bytes per parameter, sharded over the processes under FSDP (each process holds all of
  it under DDP), plus activations (batch x length x hidden x layers x ~20 bytes per
  process, divided by ~8 with gradient checkpointing), plus 1.5 GB of libraries;
* memory of evaluation: the weights in float32 (4 bytes/parameter) plus the KV cache of a
  batch (2 x layers x kv width x tokens x 4 bytes), plus the libraries;
* time: 6 x parameters x tokens floating-point operations for a training step
  (forward + backward), 2 x parameters x tokens for generation, at a sustained rate of
  `CPU_FLOPS` per CPU thread or `GPU_FLOPS` per GPU (conservative: measured transformer
  training reaches 20-50% of peak); runtimes add a floor and a 3x margin, since a
  time limit kills the job.

The figures are upper-bound estimates for scheduling, not measurements; the README's
cost model puts measured numbers beside them.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

#: Sustained float32 throughput per CPU thread (FLOP/s). Measured here: SmolLM2-135M SFT at
#: 3-6 s per step of 8 x 128 tokens on 2 threads (6.6e11 FLOP/step: 0.6-1.1e11 FLOP/s in all),
#: evaluation of 100 hands x 5 attempts in 224 s; the estimate errs on the slow side.
CPU_FLOPS = 5.0e10
#: Sustained bf16 training throughput per GPU (FLOP/s): about 25% of an H100/H200's dense peak.
GPU_FLOPS = 2.5e14
LIB_MB = 1500


@dataclass(frozen=True)
class ModelSize:
    """The sizes of a decoder-only transformer that memory and time scale with."""

    params: int
    hidden: int
    layers: int
    kv_width: int

    @classmethod
    def from_config(cls, cfg: dict) -> "ModelSize":
        """From a config.json (Llama/Qwen/SmolLM field names); tied embeddings counted once."""
        try:
            hidden = int(cfg["hidden_size"])
            layers = int(cfg.get("num_hidden_layers") or cfg["num_layers"])
            heads = int(cfg["num_attention_heads"])
            inter = int(cfg["intermediate_size"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"model config lacks {exc}; expected hidden_size, num_hidden_layers, "
                             "num_attention_heads and intermediate_size") from None
        kv = int(cfg.get("num_key_value_heads") or heads)
        head_dim = int(cfg.get("head_dim") or hidden // heads)
        vocab = int(cfg.get("vocab_size") or 32000)
        attn = hidden * heads * head_dim * 2 + hidden * kv * head_dim * 2
        mlp = 3 * hidden * inter
        embed = vocab * hidden * (1 if cfg.get("tie_word_embeddings", True) else 2)
        return cls(params=layers * (attn + mlp + 2 * hidden) + embed + hidden, hidden=hidden, layers=layers,
                   kv_width=kv * head_dim)


def train_mem_mb(size: ModelSize, batch: int, length: int, processes: int = 1, sharded: bool = False,
                 checkpointing: bool = False) -> int:
    """Memory (MB) one training process needs; `batch` is the global batch."""
    states = 16 * size.params / (processes if sharded else 1)
    per_proc_batch = max(1, math.ceil(batch / max(1, processes)))
    acts = per_proc_batch * length * size.hidden * size.layers * 20 / (8 if checkpointing else 1)
    return int((states + acts) / 2**20 * 1.25) + LIB_MB


def eval_mem_mb(size: ModelSize, batch: int, length: int) -> int:
    """Memory (MB) of evaluation: float32 weights, a batch's KV cache and logits' working set."""
    kv = 2 * size.layers * size.kv_width * batch * length * 4
    return int((4 * size.params + kv) / 2**20 * 1.25) + LIB_MB


def flops_seconds(flops: float, threads: int = 1, gpus: int = 0) -> float:
    """Seconds for `flops` at the sustained rate of the job's GPUs, else its CPU threads."""
    rate = GPU_FLOPS * gpus if gpus > 0 else CPU_FLOPS * max(1, threads)
    return flops / rate


def train_seconds(size: ModelSize, steps: int, batch: int, length: int, threads: int = 1, gpus: int = 0) -> float:
    """Estimated compute time of `steps` optimizer steps of `batch` sequences of `length` tokens."""
    return flops_seconds(6.0 * size.params * steps * batch * length, threads, gpus)


def generate_seconds(size: ModelSize, sequences: int, new_tokens: int, prompt: int, threads: int = 1,
                     gpus: int = 0) -> float:
    """Estimated compute time of generating `new_tokens` after `prompt` tokens for `sequences` hands."""
    return flops_seconds(2.0 * size.params * sequences * (prompt + new_tokens), threads, gpus)


def runtime_min(seconds: float, floor: int = 30) -> int:
    """A job's time limit (minutes) from its estimated compute: 3x margin, a floor for start-up."""
    return max(floor, int(math.ceil(3 * seconds / 60)))

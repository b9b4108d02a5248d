"""Loading safetensors checkpoints (single, sharded, bf16, tied) against torch's own tensors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from executor_helpers import LLAMA3_ROPE, make_tiny_llama

from twinfer.errors import ConfigError
from twinfer.lpu.weights import (
    Checkpoint,
    WeightStore,
    attention_window,
    checkpoint_spec,
    rope_from_config,
)


def test_reads_fp32_checkpoint_exactly(tmp_path):
    model = make_tiny_llama(tmp_path, layers=1)
    ck = Checkpoint.open(tmp_path)
    for name, p in model.state_dict().items():
        assert np.array_equal(ck.read_fp32(name), p.numpy()), name


def test_reads_bf16_checkpoint_exactly(tmp_path):
    model = make_tiny_llama(tmp_path, layers=1, save_dtype="bfloat16")
    header_len = int.from_bytes((tmp_path / "model.safetensors").read_bytes()[:8], "little")
    header = json.loads((tmp_path / "model.safetensors").read_bytes()[8 : 8 + header_len])
    assert header["model.norm.weight"]["dtype"] == "BF16"  # the raw-bytes path is exercised
    ck = Checkpoint.open(tmp_path)
    for name, p in model.state_dict().items():
        assert np.array_equal(ck.read_fp32(name), p.numpy()), name


def test_reads_sharded_checkpoint(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    a = torch.randn(4, 3).to(torch.bfloat16)
    b = torch.randn(5)
    save_file({"x.weight": a}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({"y.bias": b}, str(tmp_path / "model-00002-of-00002.safetensors"))
    index = {
        "metadata": {},
        "weight_map": {
            "x.weight": "model-00001-of-00002.safetensors",
            "y.bias": "model-00002-of-00002.safetensors",
        },
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    ck = Checkpoint.open(tmp_path)
    assert ck.names() == ["x.weight", "y.bias"]
    assert np.array_equal(ck.read_fp32("x.weight"), a.float().numpy())
    assert np.array_equal(ck.read_fp32("y.bias"), b.numpy())


def test_index_naming_a_missing_shard(tmp_path):
    index = {"weight_map": {"x": "gone.safetensors"}}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(ConfigError, match="gone.safetensors"):
        Checkpoint.open(tmp_path)


def test_missing_folder_and_missing_weights(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        Checkpoint.open(tmp_path / "nope")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ConfigError, match="no weights"):
        Checkpoint.open(tmp_path)


def test_tied_lm_head_falls_back_to_embedding(tmp_path):
    model = make_tiny_llama(tmp_path, layers=1, tie=True)
    spec = checkpoint_spec(tmp_path)
    assert spec.tie_word_embeddings
    store = WeightStore.open(tmp_path, spec)
    head = store.matrix("lm_head.weight", "fp32").dequantize()
    assert np.array_equal(head, model.lm_head.weight.detach().numpy())
    untied = WeightStore(Checkpoint.open(tmp_path), tie_word_embeddings=False)
    with pytest.raises(ConfigError, match="lm_head.weight"):
        untied.matrix("lm_head.weight", "fp32")


@pytest.mark.parametrize("dtype", ["bf16", "int8", "fp8"])
def test_shards_share_whole_matrix_scales(tmp_path, dtype):
    make_tiny_llama(tmp_path, layers=1)
    store = WeightStore.open(tmp_path)
    name = "model.layers.0.mlp.down_proj.weight"
    whole = store.matrix(name, dtype).dequantize()
    left = store.shard(name, (10, 30), (0, 50), dtype).dequantize()
    right = store.shard(name, (10, 30), (50, 128), dtype).dequantize()
    assert np.array_equal(np.concatenate([left, right], axis=1), whole[10:30])
    with pytest.raises(ConfigError, match="outside"):
        store.shard(name, (0, 65), (0, 10), dtype)


def test_rope_from_both_config_layouts():
    new = {"rope_parameters": {**LLAMA3_ROPE, "rope_theta": 5e5}}
    old = {"rope_theta": 5e5, "rope_scaling": {**LLAMA3_ROPE}}
    assert rope_from_config(new) == (5e5, LLAMA3_ROPE)
    assert rope_from_config(old) == (5e5, LLAMA3_ROPE)
    assert rope_from_config({"rope_parameters": {"rope_type": "default", "rope_theta": 7.0}}) == (
        7.0,
        None,
    )
    assert rope_from_config({}) == (10000.0, None)


def test_checkpoint_spec_reads_transformers5_rope(tmp_path):
    make_tiny_llama(tmp_path, layers=1, rope_theta=5e4, rope_scaling=LLAMA3_ROPE)
    spec = checkpoint_spec(tmp_path)
    assert spec.rope_theta == 5e4
    assert dict(spec.rope_scaling)["rope_type"] == "llama3"


def test_checkpoint_spec_accepts_mixtral(tmp_path):
    cfg = {
        "architectures": ["MixtralForCausalLM"], "hidden_size": 8, "num_attention_heads": 2,
        "num_hidden_layers": 1, "intermediate_size": 16, "vocab_size": 10,
        "max_position_embeddings": 32, "num_local_experts": 2, "num_experts_per_tok": 1,
    }  # fmt: skip
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    spec = checkpoint_spec(tmp_path)
    assert spec.moe is not None and spec.moe.num_experts == 2


def test_attention_window_by_family():
    assert attention_window({"sliding_window": 4096}) == 4096  # Mistral
    assert attention_window({"sliding_window": None}) is None
    assert attention_window({"sliding_window": 4096, "use_sliding_window": False}) is None  # Qwen2
    assert attention_window({"sliding_window": 32, "use_sliding_window": True}) == 32

"""``twinfer run`` end to end on tiny random models saved to tmp folders, checked against transformers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from executor_helpers import hf_greedy, make_tiny_llama

from twinfer.cli import main


def _train_tokenizer(folder):
    """A byte-level BPE tokenizer trained offline in well under a second, saved as tokenizer.json."""
    tokenizers = pytest.importorskip("tokenizers")
    from tokenizers import decoders, models, pre_tokenizers, trainers

    tok = tokenizers.Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = sorted(set("the quick brown fox jumps over lazy dog "))
    trainer = trainers.BpeTrainer(
        vocab_size=60, special_tokens=["<unk>"], initial_alphabet=alphabet
    )
    tok.train_from_iterator(["the quick brown fox jumps over the lazy dog"] * 20, trainer)
    tok.save(str(folder / "tokenizer.json"))
    return tok


def _run_json(capsys, *args):
    rc = main(["run", *args, "--json"])
    out = capsys.readouterr().out
    assert rc == 0, out
    return json.loads(out)


def test_run_prompt_with_tokenizer_matches_transformers(tmp_path, capsys):
    tok = _train_tokenizer(tmp_path)
    model = make_tiny_llama(tmp_path, vocab=128)
    r = _run_json(
        capsys, "--model-dir", str(tmp_path), "--prompt", "the lazy dog jumps", "--max-new-tokens", "5",
        "--dtype", "bf16",
    )  # fmt: skip
    ids = tok.encode("the lazy dog jumps").ids
    assert r["prompt_token_ids"] == ids
    hf_tokens, _ = hf_greedy(model, [ids], 5)
    assert r["generated_token_ids"] == hf_tokens[0].tolist()
    assert r["generated_text"] == tok.decode(r["generated_token_ids"], skip_special_tokens=False)
    assert r["chips_used"] == 1 and r["lpu_prefill_s"] > 0 and r["lpu_tokens_per_s_per_user"] > 0
    assert r["lpu_total_s"] == pytest.approx(
        r["lpu_prefill_s"] + 4 * r["lpu_decode_s_per_token_mean"]
    )


def test_run_token_ids_on_two_chips_without_tokenizer(tmp_path, capsys):
    # A bf16 checkpoint in several shards, as large published models come.
    model = make_tiny_llama(tmp_path, layers=1, save_dtype="bfloat16", max_shard_size="20KB")
    assert len(list(tmp_path.glob("*.safetensors"))) > 1
    assert (tmp_path / "model.safetensors.index.json").exists()
    r = _run_json(
        capsys, "--model-dir", str(tmp_path), "--token-ids", "5,9,77,3", "--max-new-tokens", "4",
        "--chips", "2", "--dtype", "bf16",
    )  # fmt: skip
    assert r["tensor_split"] * r["pipeline_stages"] == 2
    assert r["generated_text"] is None and "no tokenizer.json" in r["text_note"]
    hf_tokens, _ = hf_greedy(model, [[5, 9, 77, 3]], 4)
    assert np.array_equal(r["generated_token_ids"], hf_tokens[0])


def test_run_text_output(tmp_path, capsys):
    make_tiny_llama(tmp_path, layers=1)
    args = ["--token-ids", "1,2", "--max-new-tokens", "2", "--round-activations"]
    rc = main(["run", "--model-dir", str(tmp_path), *args])
    out = capsys.readouterr().out
    assert rc == 0
    assert "fp16 weights, fp16 activations" in out
    assert (
        "generated ids (2):" in out
        and "LPU cycle model: prefill" in out
        and "tokens/s per user" in out
    )


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("none", ["--token-ids", "1"], "not found"),
        ("config_only", ["--token-ids", "1"], "no weights"),
        ("deepseek", ["--token-ids", "1"], "no weights"),
        ("model", ["--prompt", "hi"], "no tokenizer.json"),
        ("model", ["--prompt", "hi", "--token-ids", "1"], "exactly one of"),
        ("model", ["--token-ids", "1,x"], "comma-separated"),
        ("model", ["--token-ids", "1,500"], "outside the model's vocabulary"),
        ("model", ["--token-ids", "1", "--dtype", "int4"], "--dtype"),
        ("model", ["--token-ids", "1", "--hardware", "h100"], "not an LPU"),
        ("o_bias", ["--token-ids", "1"], "not supported by the LPU compiler"),
        ("window8", ["--token-ids", "1,2,3,4,5", "--max-new-tokens", "5"], "sliding window of 8"),
    ],
)
def test_run_user_errors_exit_2(tmp_path, capsys, setup, args, message):
    folder = tmp_path / "m"
    if setup != "none":
        folder.mkdir()
    if setup == "model":
        make_tiny_llama(folder, layers=1)
    elif setup == "o_bias":  # Llama attention_bias=True also gives o_proj a bias
        make_tiny_llama(folder, layers=1, attention_bias=True)
    elif setup == "window8":  # Mistral attending within 8 tokens; 5 + 5 - 1 = 9 > 8
        make_tiny_llama(folder, layers=1, family="mistral", sliding_window=8)
    elif setup == "config_only":
        make_tiny_llama(folder, layers=1)
        (folder / "model.safetensors").unlink()
    elif setup == "deepseek":  # an MLA + MoE config is accepted up to the missing weights
        cfg = {
            "architectures": ["DeepseekV3ForCausalLM"], "hidden_size": 8, "num_attention_heads": 2,
            "num_hidden_layers": 1, "intermediate_size": 16, "vocab_size": 10,
            "max_position_embeddings": 32, "kv_lora_rank": 4, "qk_nope_head_dim": 2,
            "qk_rope_head_dim": 2, "v_head_dim": 2, "n_routed_experts": 2, "num_experts_per_tok": 1,
            "moe_intermediate_size": 4, "n_group": 1, "topk_group": 1,
        }  # fmt: skip
        (folder / "config.json").write_text(json.dumps(cfg))
    rc = main(["run", "--model-dir", str(folder), *args])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and "Traceback" not in err

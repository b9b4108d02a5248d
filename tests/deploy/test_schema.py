"""The option tables catch what an engine's CLI would reject."""

from __future__ import annotations

from twinfer.deploy.schema import option_tables, validate_command


def test_every_table_names_its_source_version():
    for command, table in option_tables().items():
        assert any(ch.isdigit() for ch in table["source"]), command


def test_valid_vllm_command_passes():
    assert validate_command("vllm serve", ["m", "--tensor-parallel-size", "4", "--enable-chunked-prefill",
                                           "--kv-transfer-config", '{"kv_connector": "NixlConnector", "kv_role": "kv_both"}']) == []


def test_bad_options_are_reported():
    problems = validate_command("vllm serve", ["m", "--tensor-parallel-size", "0", "--kv-cache-dtype", "fp4",
                                               "--tp-size", "2", "--kv-transfer-config", '{"kv_connector": "Nope"}'])
    text = " | ".join(problems)
    assert "below 1" in text and "not one of" in text and "unknown option --tp-size" in text and "'Nope'" in text
    assert validate_command("vllm serve", ["--port", "8000"]) == ["missing positional argument 'model'"]
    assert validate_command("python -m sglang.launch_server", ["--tp-size", "x"]) == ["--tp-size 'x' is not a valid int"]
    assert "no option table" in validate_command("tgi", [])[0]

"""--model-dir: real greedy tokens from twinfer's LPU numpy kernels, paced by the fleet."""

from __future__ import annotations

import httpx
import numpy as np
from serve_helpers import write_tiny_llama

from twinfer.lpu.executor import ReferenceModel, greedy_generate
from twinfer.serve.app import ServeConfig
from twinfer.serve.fixed import FixedLatencySim
from twinfer.serve.model_text import ModelTextSource


def test_completion_tokens_are_the_models_greedy_tokens(tmp_path, start_server):
    write_tiny_llama(tmp_path)
    source = ModelTextSource.open(tmp_path)  # no tokenizer.json: UTF-8 bytes in, " <id>" out
    config = ServeConfig(model_name="tiny", context_tokens=256)
    server = start_server(
        config, lambda: FixedLatencySim(ttft_s=0.01, itl_s=0.005), text_source=source
    )
    body = {"model": "tiny", "prompt": "ab", "max_tokens": 8, "stream": True}
    with httpx.stream("POST", server.url + "/v1/completions", json=body, timeout=60) as resp:
        lines = [line for line in resp.iter_lines() if line.startswith("data: {")]
    text = "".join(__import__("json").loads(line[6:])["choices"][0]["text"] for line in lines)
    got = [int(t.strip("<>")) for t in text.split()]
    # Reference: the same kernels' greedy decoding run directly (their agreement with transformers
    # is tested in tests/lpu); here the server's thread, incremental decoding and pacing are tested.
    ref_model = ReferenceModel(source.spec, source.store, dtype="bf16")
    ref = greedy_generate(
        lambda ids: ref_model.forward(ids)[:, -1], np.array([[97, 98]]), 8
    ).tokens[0]
    assert got == [int(t) for t in ref]
    assert len(set(got)) > 1  # a collapsed random model would make this test weak

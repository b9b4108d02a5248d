"""Launch commands of one pool's instances for vLLM, SGLang and the Dynamo vLLM worker.

Each function returns (command, args): the program words (``vllm serve``) and
the arguments after them, which :func:`twinfer.deploy.schema.validate_command`
checks. Batch limits come from the pool (the plan's ``max_batch_seqs`` and
token budget); memory fraction, KV dtype and the disaggregation connector
follow the engine's documented options (sources in ``engine_options.json``).
"""

from __future__ import annotations

import json

from twinfer.deploy.fleet import DeployPool
from twinfer.gpu.engines import ENGINES

#: Ports each instance listens on (the engines' documented defaults).
VLLM_PORT = 8000
SGLANG_PORT = 30000


def _fp8(dtype: str) -> bool:
    return dtype in ("fp8", "fp8_e4m3", "int8")


def vllm_args(pool: DeployPool, model_id: str, disaggregated: bool) -> tuple[str, list[str]]:
    """``vllm serve`` for one instance of ``pool``; disaggregated pools exchange KV through the NIXL connector."""
    args = [model_id, "--tensor-parallel-size", str(pool.tp), "--pipeline-parallel-size", str(pool.pp),
            "--gpu-memory-utilization", str(ENGINES["vllm"].gpu_memory_fraction), "--port", str(VLLM_PORT)]
    args += ["--max-num-seqs", str(pool.max_num_seqs)]
    if pool.max_num_batched_tokens:
        args += ["--max-num-batched-tokens", str(pool.max_num_batched_tokens), "--enable-chunked-prefill"]
    args += ["--kv-cache-dtype", "fp8" if _fp8(pool.kv_cache_dtype) else "auto"]
    if _fp8(pool.weights_dtype):
        args += ["--quantization", "fp8"]
    if disaggregated:
        # vLLM docs (features/disagg_prefill, nixl_connector_usage): both sides run NixlConnector with kv_both.
        args += ["--kv-transfer-config", json.dumps({"kv_connector": "NixlConnector", "kv_role": "kv_both"})]
    return "vllm serve", args


def sglang_args(pool: DeployPool, model_id: str, disaggregated: bool) -> tuple[str, list[str]]:
    """``python -m sglang.launch_server`` for one instance; disaggregated pools use SGLang's PD mode over NIXL."""
    args = ["--model-path", model_id, "--tp-size", str(pool.tp), "--pp-size", str(pool.pp),
            "--mem-fraction-static", str(ENGINES["sglang"].gpu_memory_fraction), "--port", str(SGLANG_PORT)]
    args += ["--max-running-requests", str(pool.max_num_seqs)]
    if pool.max_num_batched_tokens:
        args += ["--chunked-prefill-size", str(pool.max_num_batched_tokens)]
    if _fp8(pool.kv_cache_dtype):
        args += ["--kv-cache-dtype", "fp8_e4m3"]
    if _fp8(pool.weights_dtype):
        args += ["--quantization", "fp8"]
    if disaggregated:
        args += ["--disaggregation-mode", pool.role, "--disaggregation-transfer-backend", "nixl"]
    return "python -m sglang.launch_server", args


def dynamo_worker_args(pool: DeployPool, model_id: str, disaggregated: bool) -> tuple[str, list[str]]:
    """A Dynamo vLLM worker (``python3 -m dynamo.vllm``); prefill workers say so, KV moves over NIXL."""
    args = ["--model", model_id, "--tensor-parallel-size", str(pool.tp), "--pipeline-parallel-size", str(pool.pp),
            "--gpu-memory-utilization", str(ENGINES["vllm"].gpu_memory_fraction)]
    args += ["--max-num-seqs", str(pool.max_num_seqs)]
    if pool.max_num_batched_tokens:
        args += ["--max-num-batched-tokens", str(pool.max_num_batched_tokens)]
    args += ["--kv-cache-dtype", "fp8" if _fp8(pool.kv_cache_dtype) else "auto"]
    if _fp8(pool.weights_dtype):
        args += ["--quantization", "fp8"]
    if disaggregated:
        args += ["--connector", "nixl"]
        if pool.role == "prefill":
            args.append("--is-prefill-worker")
    return "python3 -m dynamo.vllm", args


def dynamo_frontend_args(disaggregated: bool) -> tuple[str, list[str]]:
    """The Dynamo HTTP frontend (OpenAI API); KV-aware routing for disaggregated graphs."""
    return "python3 -m dynamo.frontend", ["--http-port", str(VLLM_PORT), "--router-mode",
                                           "kv" if disaggregated else "round-robin"]

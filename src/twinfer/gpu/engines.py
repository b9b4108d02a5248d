"""Serving-engine profiles: what vLLM, SGLang and TensorRT-LLM change against the plain roofline op graph.

The op graph of :func:`twinfer.models.ops.lower_step` prices every op as its
own kernel (the ``roofline`` profile, kept as the baseline). A real engine
differs in three documented ways, each a field of :class:`EngineProfile`:

* **Fusions** (:mod:`twinfer.gpu.fusion` applies them): residual add +
  RMSNorm in one kernel, SwiGLU act-and-mul in the up-projection GEMM's
  epilogue, RoPE inside the attention pre-processing kernel, residual add +
  RMSNorm inside the tensor-parallel all-reduce kernel.
* **Host time per step**: scheduling, input preparation, sampling and output
  processing that the GPU waits for (``step_overhead_s``), and the launch
  cost of each kernel when a step runs outside a CUDA graph
  (``host_launch_s``: the step takes at least kernels x launch cost).
* **Host time per request** on the way to its first token, outside the
  model steps (tokenisation, hand-off from the API server to the engine
  loop, detokenising and sending the first token): ``request_overhead_s``,
  added to TTFT by ``twinfer estimate`` (the fleet simulator does not add it).
* **Defaults** that size the instance: max sequences per step, max tokens
  per step, the fraction of GPU memory the engine takes.

Sources are the engines' own code and docs (paths below are in the engines'
GitHub repositories). Host times are not published as numbers; they are
marked ``[U]`` with a range, and ``twinfer calibrate`` or a measured
``--calibration`` file should replace them where a GPU is at hand.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from twinfer.errors import UnknownNameError
from twinfer.gpu.efficiency import GpuEfficiency

#: Fusion names understood by :func:`twinfer.gpu.fusion.fuse_graph`.
FUSIONS = ("add_rmsnorm", "act_in_gemm_fp8", "rope_in_attention", "allreduce_add_rmsnorm")


@dataclass(frozen=True)
class EngineProfile:
    """How one serving engine runs a model step on GPUs (see the module docstring for each part)."""

    name: str
    fusions: frozenset[str]  # subset of FUSIONS
    prefill_attention_kernel: str  # kernel family for prompt attention
    decode_attention_kernel: str  # kernel family for decode attention
    cuda_graphs: bool  # decode steps replay captured CUDA graphs
    cuda_graph_max_tokens: int  # largest step (tokens) captured in a graph; larger steps launch eagerly
    host_launch_s: float  # host cost per kernel launched outside a graph [U]
    step_overhead_s: float  # host time per step the GPU waits for (schedule, inputs, sampling, outputs) [U]
    request_overhead_s: float  # host path of one request to its first token outside the steps (TTFT only) [U]
    max_num_seqs: int  # default sequences per step
    max_num_batched_tokens: int  # default tokens per step (chunked-prefill budget)
    gpu_memory_fraction: float  # default share of GPU memory the engine manages
    elementwise_mem_eff: float | None  # HBM share its vectorised norm/activation/RoPE kernels reach (None: fitted)
    attn_prefill: tuple[float, float] | None  # its prompt attention: (peak share, half-efficiency length) (None: prior)
    window_bounded_kv: bool  # sliding-window layers keep only the window's KV (frees blocks outside it)
    sources: tuple[tuple[str, str], ...]  # (claim, source) pairs

    def without_cuda_graphs(self) -> EngineProfile:
        """The same engine run eagerly (vLLM ``--enforce-eager``, SGLang ``--disable-cuda-graph``): every step
        launches its kernels one by one."""
        return replace(self, name=f"{self.name}-eager", cuda_graphs=False)

    def graph_covers(self, total_tokens: int, has_prefill: bool) -> bool:
        """Whether a step of ``total_tokens`` runs as a CUDA-graph replay (no per-kernel host launches)."""
        return self.cuda_graphs and not has_prefill and total_tokens <= self.cuda_graph_max_tokens


#: Host path of one request to its first token [U]: the API server tokenises the prompt and hands it to the engine
#: loop over IPC (vLLM V1: ZMQ to EngineCore; SGLang: TokenizerManager -> Scheduler -> DetokenizerManager; TRT-LLM:
#: executor request queue), then detokenises and streams the first token. No engine publishes it; 2 ms is a guess,
#: range 1-5 ms.
_REQUEST_PATH_NOTE = ("request_overhead_s [U]", "2 ms guessed for tokenise + IPC hand-off + first-token "
                      "detokenise/stream; range 1-5 ms; not published by any engine")

#: HBM share of the engines' vectorised element-wise kernels (fused_add_rms_norm, silu_and_mul, RoPE). Derived
#: from AIConfigurator 0.12's measured H100 databases (benchmarks/data/aiconfigurator_results.json, Llama-3.1-8B,
#: 16 x 512 tokens): add_norm moves 4 x 8192 x 4096 x 2 B in 64 calls = 17.2 GB in 6.60 ms (2.6 TB/s) and act_gate
#: 3 x 8192 x 14336 x 2 B in 32 calls = 22.5 GB in 8.51 ms (2.65 TB/s): 0.78-0.79 of 3.35 TB/s, both for TRT-LLM and
#: vLLM. Vidur's measured norms (the fitted default, 0.25) come from older unvectorised kernels.
_ENGINE_ELEMENTWISE_EFF = 0.78
#: Prompt attention of the engines' kernels: efficiency = peak x n / (n + half_len) for n tokens per prompt, solved
#: from AIConfigurator 0.12's measured H100 TRT-LLM context attention (Llama-3.1-8B, 32 layers, 32 heads x 128):
#: 16 x 512 tokens, 1.10e12 causal FLOPs in 7.33 ms (0.155 of 989 TFLOP/s), and 64 x 2,048 tokens, 70.4e12 FLOPs in
#: 193.4 ms (0.368): peak 0.68, half length 1,730. Its batch-1 512-token point (1.24 ms) is 2x slower than this
#: curve says (too few tiles to fill the GPU): not captured. SGLang's FA3/FlashInfer kernels are assumed alike [U].
_ENGINE_ATTN_PREFILL = (0.68, 1730.0)
_ATTN_NOTE = ("attn_prefill", "peak 0.68, half length 1,730 tokens: solved from AIConfigurator 0.12 H100 TRT-LLM "
              "context-attention timings at 16 x 512 and 64 x 2,048 tokens (benchmarks/data/aiconfigurator_results.json)")
_ELEMENTWISE_NOTE = ("elementwise_mem_eff", "0.78 of HBM: AIConfigurator 0.12 H100 add_norm and act_gate timings "
                     "(TRT-LLM and vLLM databases, recorded in benchmarks/data/aiconfigurator_results.json)")

ROOFLINE = EngineProfile(
    name="roofline",
    fusions=frozenset(),
    prefill_attention_kernel="FlashAttention (generic)",
    decode_attention_kernel="paged decode attention (generic)",
    cuda_graphs=True,
    cuda_graph_max_tokens=1 << 30,
    host_launch_s=0.0,
    step_overhead_s=0.0,
    request_overhead_s=0.0,
    max_num_seqs=256,
    max_num_batched_tokens=8192,
    gpu_memory_fraction=0.9,
    elementwise_mem_eff=None,
    attn_prefill=None,
    window_bounded_kv=False,
    sources=(("baseline", "every op a separate kernel, no host time: the plain roofline of twinfer.models.ops"),),
)

VLLM = EngineProfile(
    name="vllm",
    fusions=frozenset({"add_rmsnorm"}),
    prefill_attention_kernel="FlashAttention-3 (vllm-flash-attn) on Hopper, FlashAttention-2 on Ampere",
    decode_attention_kernel="FlashAttention paged KV (FLASH_ATTN backend; FlashInfer optional)",
    cuda_graphs=True,
    cuda_graph_max_tokens=512,
    host_launch_s=8e-6,
    step_overhead_s=0.5e-3,
    request_overhead_s=2e-3,
    max_num_seqs=1024,
    max_num_batched_tokens=8192,
    gpu_memory_fraction=0.9,
    elementwise_mem_eff=_ENGINE_ELEMENTWISE_EFF,
    attn_prefill=_ENGINE_ATTN_PREFILL,
    window_bounded_kv=True,
    sources=(
        ("window_bounded_kv", "vllm/v1/core/kv_cache_manager + SlidingWindowSpec (hybrid KV cache manager, v0.10+): "
                              "blocks outside the window are freed"),
        ("add_rmsnorm", "vllm csrc/layernorm_kernels.cu fused_add_rms_norm; RMSNorm.forward_cuda(x, residual) in "
                        "vllm/model_executor/layers/layernorm.py"),
        ("act not in GEMM", "vllm csrc/activation_kernels.cu silu_and_mul is its own kernel after the merged "
                            "gate_up_proj (MergedColumnParallelLinear)"),
        ("rope separate", "vllm/model_executor/layers/rotary_embedding: rotary_embedding custom op, its own kernel"),
        ("qkv/gate_up one GEMM", "QKVParallelLinear and MergedColumnParallelLinear in vllm/model_executor/layers/linear.py"),
        ("attention", "vllm/v1/attention/backends/flash_attn.py (default on NVIDIA), flashinfer.py optional"),
        ("cuda graphs", "vllm docs design/cuda_graphs: FULL_AND_PIECEWISE by default (-O2); capture sizes up to "
                        "max_cudagraph_capture_size 512"),
        ("defaults", "vllm/engine/arg_utils.py: GPUs >= 70 GiB (H100/H200), OpenAI server: max_num_seqs 1024, "
                     "max_num_batched_tokens 8192; gpu_memory_utilization 0.9"),
        ("host time [U]", "vLLM V1 blog (2025-01-27): CPU work between steps is significant for Llama-8B on H100 "
                          "(~5 ms steps); no async scheduling by default. 0.5 ms per step is a guess, range 0.2-1.5 ms; "
                          "8 us per eager launch (PyTorch dispatch + cudaLaunchKernel), range 4-20 us"),
        _ELEMENTWISE_NOTE,
        _ATTN_NOTE,
        _REQUEST_PATH_NOTE,
    ),
)

SGLANG = EngineProfile(
    name="sglang",
    fusions=frozenset({"add_rmsnorm"}),
    prefill_attention_kernel="FlashAttention-3 (fa3 backend, default on Hopper) / FlashInfer",
    decode_attention_kernel="FlashAttention-3 / FlashInfer paged decode",
    cuda_graphs=True,
    cuda_graph_max_tokens=256,
    host_launch_s=8e-6,
    step_overhead_s=0.15e-3,
    request_overhead_s=2e-3,
    max_num_seqs=1024,
    max_num_batched_tokens=8192,
    gpu_memory_fraction=0.88,
    elementwise_mem_eff=_ENGINE_ELEMENTWISE_EFF,
    attn_prefill=_ENGINE_ATTN_PREFILL,
    window_bounded_kv=True,
    sources=(
        ("window_bounded_kv", "sglang SWAKVPool / hybrid SWA memory pool for Gemma-3-style interleaved windows"),
        ("add_rmsnorm", "sglang python/sglang/srt/layers/layernorm.py RMSNorm.forward_cuda -> sgl_kernel "
                        "fused_add_rmsnorm"),
        ("act not in GEMM", "sglang python/sglang/srt/layers/activation.py SiluAndMul -> sgl_kernel silu_and_mul"),
        ("rope separate", "sglang python/sglang/srt/layers/rotary_embedding.py: apply_rope_with_cos_sin_cache_inplace"),
        ("attention", "sglang server_args.py attention_backend: fa3 default on Hopper, flashinfer otherwise"),
        ("cuda graphs", "sglang server_args.py cuda_graph_max_bs (auto, 256 on 80 GB GPUs at small TP) [U]"),
        ("defaults", "sglang server_args.py: chunked_prefill_size 8192 on 80 GB GPUs; mem_fraction_static ~0.88 "
                     "(auto from GPU memory and TP) [U]; max_running_requests from KV room (1024 as a cap here) [U]"),
        ("host time [U]", "SGLang v0.4 blog (2024-12-04) zero-overhead batch scheduler overlaps CPU scheduling with "
                          "the GPU step: 0.15 ms left per step is a guess, range 0.05-0.5 ms"),
        _ELEMENTWISE_NOTE,
        _ATTN_NOTE,
        _REQUEST_PATH_NOTE,
    ),
)

TRTLLM = EngineProfile(
    name="trtllm",
    fusions=frozenset({"add_rmsnorm", "act_in_gemm_fp8", "rope_in_attention", "allreduce_add_rmsnorm"}),
    prefill_attention_kernel="TRT-LLM context FMHA (fused multi-head attention, paged KV)",
    decode_attention_kernel="XQA / masked multi-head attention (generation kernels)",
    cuda_graphs=True,
    cuda_graph_max_tokens=128,
    host_launch_s=4e-6,
    step_overhead_s=0.15e-3,
    request_overhead_s=2e-3,
    max_num_seqs=2048,
    max_num_batched_tokens=8192,
    gpu_memory_fraction=0.9,
    elementwise_mem_eff=_ENGINE_ELEMENTWISE_EFF,
    attn_prefill=_ENGINE_ATTN_PREFILL,
    window_bounded_kv=True,
    sources=(
        ("window_bounded_kv", "TRT-LLM docs: variable sliding window attention (max_attention_window per layer, "
                              "cyclic KV cache)"),
        ("add_rmsnorm", "tensorrt_llm/_torch/modules/rms_norm.py RMSNorm(residual=...) -> flashinfer fused add rmsnorm"),
        ("allreduce_add_rmsnorm", "tensorrt_llm/functional.py AllReduceFusionOp.RESIDUAL_RMS_NORM; "
                                  "cpp/tensorrt_llm/kernels/communicationKernels/allReduceFusionKernels.cu"),
        ("act_in_gemm_fp8", "tensorrt_llm/layers/mlp.py FusedGatedMLP: gate+up GEMM with a SwiGLU epilogue "
                            "(gemm_swiglu plugin) for FP8 on Hopper only; BF16 runs swiglu as its own kernel "
                            "(AIConfigurator's TRT-LLM database times act_gate separately)"),
        ("rope_in_attention", "cpp/tensorrt_llm/kernels/unfusedAttentionKernels (applyBiasRopeUpdateKVCache: RoPE "
                              "and the KV-cache write in the attention pre-processing kernel)"),
        ("attention", "TRT-LLM docs advanced/gpt-attention.md: context FMHA, XQA for generation"),
        ("cuda graphs", "TRT-LLM LLM API cuda_graph_config (generation-only batches; max_batch_size 128 by default) [U]"),
        ("defaults", "trtllm-serve / LLM API: max_batch_size 2048, max_num_tokens 8192; "
                     "KvCacheConfig.free_gpu_memory_fraction 0.9"),
        ("host time [U]", "TRT-LLM docs features/overlap-scheduler: CPU work of step n overlaps GPU step n+1 (on by "
                          "default). 0.15 ms left per step is a guess, range 0.05-0.5 ms; 4 us per launch (C++ runtime)"),
        _ELEMENTWISE_NOTE,
        _ATTN_NOTE,
        _REQUEST_PATH_NOTE,
    ),
)

#: Engine profiles by name (``--engine`` on estimate, ``engine:`` in a scenario pool).
ENGINES: dict[str, EngineProfile] = {p.name: p for p in (ROOFLINE, VLLM, SGLANG, TRTLLM)}
#: The profile used when none is named: the engine-neutral roofline (see README "Engine profiles").
DEFAULT_ENGINE = "roofline"


def engine_efficiency(eff: GpuEfficiency, engine: EngineProfile) -> GpuEfficiency:
    """``eff`` with the engine's own kernels: its vectorised element-wise ops and its prompt attention."""
    if engine.elementwise_mem_eff is not None:
        eff = eff.replace(elementwise_mem_eff=engine.elementwise_mem_eff,
                          elementwise_l2_eff=max(eff.elementwise_l2_eff, engine.elementwise_mem_eff))
    if engine.attn_prefill is not None:
        eff = eff.replace(attn_prefill_peak_eff=engine.attn_prefill[0], attn_prefill_half_len=engine.attn_prefill[1])
    return eff


def get_engine(name: str | EngineProfile | None) -> EngineProfile:
    """The engine profile called ``name`` (None: the default); unknown names raise UnknownNameError."""
    if isinstance(name, EngineProfile):
        return name
    key = DEFAULT_ENGINE if name is None else name.lower()
    if key not in ENGINES:
        raise UnknownNameError(f"unknown engine {name!r}; choose one of {', '.join(ENGINES)}")
    return ENGINES[key]

"""ModelSpec: the shape of a decoder-only transformer, as every backend sees it.

A ModelSpec holds only what determines work and memory: sizes, attention
kind (grouped-query or DeepSeek's multi-head latent attention), and the
mixture-of-experts layout. Parameter counts and KV-cache sizes are derived
here once, from the same formulas the published model cards use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from twinfer.units import dtype_bytes

AttentionKind = Literal["gqa", "mla"]


@dataclass(frozen=True)
class MlaShape:
    """DeepSeek multi-head latent attention sizes (DeepSeek-V2/V3 papers, sec. 2.1)."""

    q_lora_rank: int  # 0 means queries are projected directly from hidden
    kv_lora_rank: int  # width of the compressed KV latent that is cached
    qk_nope_head_dim: int  # per-head query/key dims without rotary embedding
    qk_rope_head_dim: int  # per-head dims that carry rotary embedding (shared key part)
    v_head_dim: int  # per-head value dims
    rope_interleave: bool = True  # rotary pairs (x0, x1), (x2, x3)... (HF DeepseekV3Config default)


@dataclass(frozen=True)
class MoeShape:
    """Mixture-of-experts layout of the feed-forward blocks."""

    num_experts: int  # routed experts per MoE layer
    experts_per_token: int  # top-k routed experts each token uses
    expert_intermediate_size: int  # FFN width of one routed expert
    num_shared_experts: int = 0  # always-on experts (DeepSeek), same width as routed ones
    first_dense_layers: int = 0  # leading layers that keep a dense FFN (DeepSeek-V3: 3)
    # Routing (HF MixtralTopKRouter / DeepseekV3TopkRouter): "softmax" over the router logits,
    # or DeepSeek-V3's "sigmoid" scores with group-limited top-k over ``n_group`` groups.
    scoring: str = "softmax"
    n_group: int = 1  # expert groups (DeepSeek-V3: 8)
    topk_group: int = 1  # groups a token may pick experts from (DeepSeek-V3: 4)
    norm_topk_prob: bool = True  # renormalise the top-k weights to sum to 1
    routed_scaling_factor: float = 1.0  # multiplies the routed weights (DeepSeek-V3: 2.5)


@dataclass(frozen=True)
class ModelSpec:
    """A decoder-only transformer's shape (Llama, Mistral, Qwen2, Mixtral, DeepSeek-V3, Gemma-2/3, Phi-3).

    Built from a Hugging Face ``config.json`` by :func:`twinfer.models.load_model`.
    All FFNs are gated (gate, up, down projections; SwiGLU or Gemma's GeGLU,
    the same shapes). Gemma-2/3 interleave ``num_sliding_layers``
    sliding-window layers (each query sees the last ``sliding_window``
    tokens) with global ones, cap logits with tanh soft-capping, and add a
    norm after each sub-layer (``sandwich_norms``); Gemma-3 also normalises
    queries and keys per head (``qk_norm``).
    """

    name: str
    architecture: str  # HF architecture family: llama, mistral, qwen2, mixtral, deepseek_v3
    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int  # dense FFN width
    vocab_size: int
    max_position_embeddings: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    tie_word_embeddings: bool = False
    qkv_bias: bool = False  # Qwen2 adds biases to q, k, v
    attention: AttentionKind = "gqa"
    mla: MlaShape | None = None
    moe: MoeShape | None = None
    native_dtype: str = "bf16"  # dtype of the published checkpoint
    rope_scaling: tuple[tuple[str, object], ...] = field(default=())
    sliding_window: int = 0  # tokens a sliding-window layer attends to (0: none)
    num_sliding_layers: int = 0  # layers with sliding-window attention (the rest are global)
    attn_logit_softcap: float | None = None  # Gemma-2: scores -> cap * tanh(scores / cap) inside attention
    final_logit_softcap: float | None = None  # Gemma-2: the same on the output logits
    sandwich_norms: bool = False  # Gemma-2/3: an extra RMSNorm after attention and after the FFN
    qk_norm: bool = False  # Gemma-3: RMSNorm over head_dim on queries and keys
    ffn_activation: str = "silu"  # silu (SwiGLU) or gelu_pytorch_tanh (GeGLU): same op shapes
    # Multi-token-prediction modules shipped with the checkpoint (HF num_nextn_predict_layers; DeepSeek-V3: 1,
    # Kimi-K2: 0); speculative method mtp needs at least one. Their weights are not in the parameter counts.
    mtp_layers: int = 0

    # ---- layer structure -------------------------------------------------
    @property
    def num_moe_layers(self) -> int:
        """Layers whose FFN is a mixture of experts."""
        if self.moe is None:
            return 0
        return self.num_layers - self.moe.first_dense_layers

    @property
    def num_dense_layers(self) -> int:
        """Layers whose FFN is dense."""
        return self.num_layers - self.num_moe_layers

    @property
    def q_dim(self) -> int:
        """Width of all query heads together."""
        if self.mla is not None:
            return self.num_attention_heads * (self.mla.qk_nope_head_dim + self.mla.qk_rope_head_dim)
        return self.num_attention_heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of all key (or value) heads together, for grouped-query attention."""
        return self.num_kv_heads * self.head_dim

    # ---- parameters --------------------------------------------------------
    def attention_params(self) -> int:
        """Parameters of one layer's attention block (projections and MLA norms)."""
        h = self.hidden_size
        if self.mla is not None:
            m = self.mla
            nh = self.num_attention_heads
            qk = m.qk_nope_head_dim + m.qk_rope_head_dim
            if m.q_lora_rank:
                q = h * m.q_lora_rank + m.q_lora_rank + m.q_lora_rank * nh * qk
            else:
                q = h * nh * qk
            kv_a = h * (m.kv_lora_rank + m.qk_rope_head_dim) + m.kv_lora_rank
            kv_b = m.kv_lora_rank * nh * (m.qk_nope_head_dim + m.v_head_dim)
            o = nh * m.v_head_dim * h
            return q + kv_a + kv_b + o
        params = h * self.q_dim + 2 * h * self.kv_dim + self.q_dim * h
        if self.qkv_bias:
            params += self.q_dim + 2 * self.kv_dim
        return params

    def dense_ffn_params(self) -> int:
        """Parameters of one dense gated FFN (gate, up, down)."""
        return 3 * self.hidden_size * self.intermediate_size

    def expert_params(self) -> int:
        """Parameters of one routed or shared expert."""
        assert self.moe is not None
        return 3 * self.hidden_size * self.moe.expert_intermediate_size

    def router_params(self) -> int:
        """Parameters of one MoE router (gate matrix; DeepSeek-V3 adds a bias per expert)."""
        assert self.moe is not None
        bias = self.moe.num_experts if self.architecture == "deepseek_v3" else 0
        return self.hidden_size * self.moe.num_experts + bias

    def embedding_params(self) -> int:
        """Input embedding plus output head (counted once when tied)."""
        table = self.vocab_size * self.hidden_size
        return table if self.tie_word_embeddings else 2 * table

    def _ffn_params(self, experts_counted: int) -> int:
        total = self.num_dense_layers * self.dense_ffn_params()
        if self.moe is not None:
            per_layer = (experts_counted + self.moe.num_shared_experts) * self.expert_params()
            total += self.num_moe_layers * (per_layer + self.router_params())
        return total

    @property
    def norms_per_layer(self) -> int:
        """RMSNorms over the hidden size in one layer (2 pre-norms; Gemma adds 2 sandwich norms)."""
        return 4 if self.sandwich_norms else 2

    def _common_params(self) -> int:
        norms = self.num_layers * self.norms_per_layer * self.hidden_size + self.hidden_size
        if self.qk_norm:
            norms += self.num_layers * 2 * self.head_dim
        return self.num_layers * self.attention_params() + norms + self.embedding_params()

    def param_count(self) -> int:
        """Total parameters (all experts), as model cards report them."""
        experts = self.moe.num_experts if self.moe else 0
        return self._common_params() + self._ffn_params(experts)

    def active_param_count(self) -> int:
        """Parameters used per token: all but the routed experts a token does not pick.

        Both embedding tables count, as in Mistral's "12.9B active" for Mixtral.
        """
        experts = self.moe.experts_per_token if self.moe else 0
        return self._common_params() + self._ffn_params(experts)

    def lpu_unsupported_reason(self) -> str | None:
        """Why the virtual LPU cannot run this model (None when it can).

        The LPU compiler lowers Llama-style layers only; Gemma's sliding-window
        layers, soft-capping and sandwich norms are not in its op set.
        """
        if self.num_sliding_layers or self.attn_logit_softcap or self.final_logit_softcap or self.sandwich_norms:
            return (f"{self.name} ({self.architecture}) uses sliding-window layers, logit soft-capping or sandwich "
                    "norms, which the virtual LPU does not model; estimate it on a GPU (twinfer estimate "
                    "--hardware h100) or use a GPU pool")
        return None

    # ---- KV cache ------------------------------------------------------------
    def kv_elements_per_token(self) -> int:
        """Cached elements per token across all layers.

        GQA caches K and V: 2 x layers x kv_heads x head_dim. MLA caches the
        compressed latent and the shared rotary key: layers x (kv_lora_rank + rope_dim).
        """
        if self.mla is not None:
            return self.num_layers * (self.mla.kv_lora_rank + self.mla.qk_rope_head_dim)
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim

    def kv_bytes_per_token(self, kv_dtype: str = "bf16", context_tokens: int | None = None) -> float:
        """KV-cache bytes per token (formula in shared/reference/gpu-and-serving.md).

        ``context_tokens`` None: every layer keeps every token (an engine that
        does not bound sliding-window layers' cache). Otherwise the mean per
        token of a sequence that long when sliding-window layers keep only the
        window (:meth:`kv_bytes_per_sequence` / ``context_tokens``).
        """
        if context_tokens is None or not self.num_sliding_layers:
            return self.kv_elements_per_token() * dtype_bytes(kv_dtype)
        return self.kv_bytes_per_sequence(context_tokens, kv_dtype) / max(1, context_tokens)

    def kv_bytes_per_sequence(self, context_tokens: int, kv_dtype: str = "bf16") -> float:
        """KV-cache bytes of one sequence of ``context_tokens``, sliding-window layers holding at most the window."""
        per_layer_token = self.kv_elements_per_token() * dtype_bytes(kv_dtype) / self.num_layers
        global_layers = self.num_layers - self.num_sliding_layers
        return per_layer_token * (global_layers * context_tokens
                                  + self.num_sliding_layers * min(context_tokens, self.sliding_window))

    def weight_bytes(self, weight_dtype: str = "bf16") -> float:
        """Bytes of all weights stored at ``weight_dtype``."""
        return self.param_count() * dtype_bytes(weight_dtype)

"""Build a ModelSpec from a Hugging Face ``config.json`` (a file or a folder holding one)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from twinfer.errors import ConfigError
from twinfer.models.spec import MlaShape, ModelSpec, MoeShape

#: HF ``architectures`` entries and ``model_type`` values -> twinfer family.
_FAMILIES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "MixtralForCausalLM": "mixtral",
    "DeepseekV3ForCausalLM": "deepseek_v3",
    "Gemma2ForCausalLM": "gemma2",
    "Gemma3ForCausalLM": "gemma3",
    "Gemma3ForConditionalGeneration": "gemma3",
    "Phi3ForCausalLM": "phi3",
    "llama": "llama",
    "mistral": "mistral",
    "qwen2": "qwen2",
    "mixtral": "mixtral",
    "deepseek_v3": "deepseek_v3",
    "gemma2": "gemma2",
    "gemma3_text": "gemma3",
    "gemma3": "gemma3",
    "phi3": "phi3",
}

#: Gemma3TextConfig defaults for keys the published (sparse) Gemma-3 text_config leaves out
#: (transformers 5.x models/gemma3/configuration_gemma3.py).
_GEMMA3_TEXT_DEFAULTS: dict[str, Any] = {
    "vocab_size": 262208, "max_position_embeddings": 131072, "rms_norm_eps": 1e-6, "rope_theta": 1_000_000.0,
    "sliding_window": 4096, "sliding_window_pattern": 6, "tie_word_embeddings": True,
    "hidden_activation": "gelu_pytorch_tanh",
}

_DTYPES = {"bfloat16": "bf16", "float16": "fp16", "float32": "fp32", "float8_e4m3fn": "fp8"}


def _family(cfg: dict[str, Any], where: str) -> str:
    for arch in cfg.get("architectures") or []:
        if arch in _FAMILIES:
            return _FAMILIES[arch]
    model_type = cfg.get("model_type")
    if model_type in _FAMILIES:
        return _FAMILIES[model_type]
    known = ", ".join(k for k in _FAMILIES if k[0].isupper())
    raise ConfigError(
        f"{where}: unsupported architecture {cfg.get('architectures') or model_type!r}; "
        f"twinfer models these: {known}"
    )


def _need(cfg: dict[str, Any], key: str, where: str) -> Any:
    if key not in cfg or cfg[key] is None:
        raise ConfigError(f"{where}: missing field {key!r}, which this architecture requires")
    return cfg[key]


def _positive_int(cfg: dict[str, Any], key: str, where: str) -> int:
    value = _need(cfg, key, where)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{where}: field {key!r} must be a positive integer, got {value!r}")
    return value


def _positive_float(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}: field {key!r} must be a positive finite number, got {value!r}")
    return float(value)


def rope_from_config(cfg: dict[str, Any]) -> tuple[float, dict[str, Any] | None]:
    """(rope theta, rope scaling or None) from a config.json, in either HF layout.

    transformers < 5 writes ``rope_theta`` and ``rope_scaling``; transformers 5
    writes one ``rope_parameters`` object holding ``rope_theta`` and the scaling
    keys (``rope_type`` "default" meaning none).
    """
    params = cfg.get("rope_parameters")
    if isinstance(params, dict) and isinstance(params.get("full_attention"), dict):
        params = params["full_attention"]  # Gemma-3: per layer type; global layers carry the long-context RoPE
    if isinstance(params, dict):
        theta = _positive_float(params.get("rope_theta", cfg.get("rope_theta", 10000.0)), "rope_theta", "config.json")
        scaling = {k: v for k, v in params.items() if k != "rope_theta"}
    else:
        theta = _positive_float(cfg.get("rope_theta", 10000.0), "rope_theta", "config.json")
        scaling = dict(cfg.get("rope_scaling") or {})
    kind = scaling.get("rope_type") or scaling.get("type") or "default"
    return theta, (None if kind == "default" else scaling)


def spec_from_config(cfg: dict[str, Any], name: str, where: str = "config.json") -> ModelSpec:
    """Turn a parsed HF config dict into a ModelSpec; errors name the missing or bad field."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{where}: expected a JSON object at top level")
    family = _family(cfg, where)
    if family == "gemma3":
        # Gemma3ForConditionalGeneration nests the language model in text_config (the vision tower is not modelled).
        nested = cfg.get("text_config")
        text: dict[str, Any] = nested if isinstance(nested, dict) else cfg
        cfg = {**_GEMMA3_TEXT_DEFAULTS, **text, "torch_dtype": text.get("torch_dtype") or cfg.get("torch_dtype")}
    hidden = _positive_int(cfg, "hidden_size", where)
    heads = _positive_int(cfg, "num_attention_heads", where)
    layers = _positive_int(cfg, "num_hidden_layers", where)
    kv_heads = _positive_int(cfg, "num_key_value_heads", where) if cfg.get("num_key_value_heads") is not None else heads
    head_dim = _positive_int(cfg, "head_dim", where) if cfg.get("head_dim") is not None else hidden // heads
    if hidden % heads and not cfg.get("head_dim"):
        raise ConfigError(f"{where}: hidden_size {hidden} is not divisible by num_attention_heads {heads}")
    if heads % kv_heads:
        raise ConfigError(f"{where}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}")
    dtype = _DTYPES.get(str(cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"), "bf16")
    rope_theta, rope_scaling = rope_from_config(cfg)
    common: dict[str, Any] = dict(
        name=name,
        architecture=family,
        hidden_size=hidden,
        num_layers=layers,
        num_attention_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=_positive_int(cfg, "intermediate_size", where),
        vocab_size=_positive_int(cfg, "vocab_size", where),
        max_position_embeddings=_positive_int(cfg, "max_position_embeddings", where),
        rms_norm_eps=_positive_float(cfg.get("rms_norm_eps", 1e-5), "rms_norm_eps", where),
        rope_theta=rope_theta,
        # Gemma configs leave tie_word_embeddings out: their config classes default it to True.
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", family.startswith("gemma"))),
        qkv_bias=family == "qwen2" or bool(cfg.get("attention_bias", False)),
        native_dtype=dtype,
        rope_scaling=tuple(sorted((str(k), _hashable(v)) for k, v in (rope_scaling or {}).items())),
        mtp_layers=_mtp_layers(cfg, where),
    )
    if family in ("gemma2", "gemma3"):
        common.update(_gemma_fields(cfg, family, layers, where))
    if family == "phi3":
        common["rope_scaling"] = _phi3_rope(cfg, rope_scaling, head_dim, where)
    if family == "mixtral":
        common["moe"] = MoeShape(
            num_experts=_positive_int(cfg, "num_local_experts", where),
            experts_per_token=_positive_int(cfg, "num_experts_per_tok", where),
            expert_intermediate_size=common["intermediate_size"],
        )
    if family == "deepseek_v3":
        common["attention"] = "mla"
        common["mla"] = MlaShape(
            q_lora_rank=int(cfg.get("q_lora_rank") or 0),
            kv_lora_rank=_positive_int(cfg, "kv_lora_rank", where),
            qk_nope_head_dim=_positive_int(cfg, "qk_nope_head_dim", where),
            qk_rope_head_dim=_positive_int(cfg, "qk_rope_head_dim", where),
            v_head_dim=_positive_int(cfg, "v_head_dim", where),
            rope_interleave=bool(cfg.get("rope_interleave", True)),
        )
        common["head_dim"] = common["mla"].qk_nope_head_dim + common["mla"].qk_rope_head_dim
        common["num_kv_heads"] = heads
        if int(cfg.get("moe_layer_freq", 1)) != 1:
            raise ConfigError(f"{where}: moe_layer_freq other than 1 is not supported")
        common["moe"] = MoeShape(
            num_experts=_positive_int(cfg, "n_routed_experts", where),
            experts_per_token=_positive_int(cfg, "num_experts_per_tok", where),
            expert_intermediate_size=_positive_int(cfg, "moe_intermediate_size", where),
            num_shared_experts=int(cfg.get("n_shared_experts") or 0),
            first_dense_layers=int(cfg.get("first_k_dense_replace") or 0),
            scoring=str(cfg.get("scoring_func") or "sigmoid"),
            n_group=int(cfg.get("n_group") or 1),
            topk_group=int(cfg.get("topk_group") or 1),
            norm_topk_prob=bool(cfg.get("norm_topk_prob", True)),
            routed_scaling_factor=float(cfg.get("routed_scaling_factor") or 1.0),
        )
        moe = common["moe"]
        if moe.scoring not in ("sigmoid", "softmax"):
            raise ConfigError(f"{where}: scoring_func {moe.scoring!r} is not supported; use sigmoid or softmax")
        if moe.num_experts % moe.n_group or not 1 <= moe.topk_group <= moe.n_group:
            raise ConfigError(f"{where}: n_routed_experts {moe.num_experts} must split into n_group {moe.n_group} "
                              f"equal groups and 1 <= topk_group ({moe.topk_group}) <= n_group")
    return ModelSpec(**common)


def _mtp_layers(cfg: dict[str, Any], where: str) -> int:
    """``num_nextn_predict_layers`` (DeepSeek-V3's multi-token-prediction modules): an integer >= 0, 0 when absent."""
    value = cfg.get("num_nextn_predict_layers")
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: field 'num_nextn_predict_layers' must be an integer >= 0, got {value!r}")
    return value


def _gemma_fields(cfg: dict[str, Any], family: str, layers: int, where: str) -> dict[str, Any]:
    """Sliding-window layout, soft-capping and norms of Gemma-2/3 (HF Gemma2/Gemma3 modelling code)."""
    types = cfg.get("layer_types")
    if isinstance(types, list):
        if len(types) != layers:
            raise ConfigError(f"{where}: layer_types has {len(types)} entries for {layers} layers")
        sliding = sum(1 for t in types if t == "sliding_attention")
    elif family == "gemma2":
        sliding = (layers + 1) // 2  # Gemma-2: even layers (0, 2, ...) slide, odd ones are global
    else:
        pattern = int(cfg.get("sliding_window_pattern") or 6)  # Gemma-3: every 6th layer is global
        sliding = layers - layers // pattern
    window = _positive_int(cfg, "sliding_window", where) if sliding else 0
    act = str(cfg.get("hidden_activation") or cfg.get("hidden_act") or "gelu_pytorch_tanh")
    return {
        "sliding_window": window, "num_sliding_layers": sliding,
        "attn_logit_softcap": _cap(cfg.get("attn_logit_softcapping"), "attn_logit_softcapping", where),
        "final_logit_softcap": _cap(cfg.get("final_logit_softcapping"), "final_logit_softcapping", where),
        "sandwich_norms": True, "qk_norm": family == "gemma3", "ffn_activation": act,
    }


def _cap(value: Any, key: str, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{where}: field {key!r} must be a positive number or null, got {value!r}")
    return float(value)


def _phi3_rope(cfg: dict[str, Any], scaling: dict[str, Any] | None, head_dim: int,
               where: str) -> tuple[tuple[str, object], ...]:
    """Phi-3/3.5 LongRoPE ("longrope", formerly "su"): per-dimension factors and the original context."""
    if not scaling:
        return ()
    kind = str(scaling.get("rope_type") or scaling.get("type"))
    if kind in ("longrope", "su"):
        for key in ("long_factor", "short_factor"):
            factors = scaling.get(key)
            if not isinstance(factors, list) or len(factors) != head_dim // 2:
                raise ConfigError(f"{where}: rope_scaling.{key} must list head_dim / 2 = {head_dim // 2} factors "
                                  f"(LongRoPE scales each rotary frequency), got {factors!r:.60}")
        original = cfg.get("original_max_position_embeddings") or scaling.get("original_max_position_embeddings")
        if not isinstance(original, int) or original <= 0:
            raise ConfigError(f"{where}: LongRoPE needs original_max_position_embeddings (the pre-extension context)")
        scaling = {**scaling, "rope_type": "longrope", "original_max_position_embeddings": original}
    return tuple(sorted((str(k), _hashable(v)) for k, v in scaling.items()))


def _hashable(value: Any) -> Any:
    """Lists in configs (e.g. long_factor) become tuples so the frozen spec stays hashable."""
    return tuple(_hashable(v) for v in value) if isinstance(value, list) else value


def read_config_file(path: Path) -> dict[str, Any]:
    """Read ``config.json`` from a file or folder path, with clear errors."""
    file = path / "config.json" if path.is_dir() else path
    if not file.exists():
        raise ConfigError(f"{path}: no config.json found (give a config file or a folder holding one)")
    try:
        data = json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{file}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: expected a JSON object at top level")
    return data


def spec_from_path(path: Path) -> ModelSpec:
    """Build a ModelSpec from a config file or model folder on disk."""
    file = path / "config.json" if path.is_dir() else path
    name = path.name if path.is_dir() else path.parent.name or path.stem
    return spec_from_config(read_config_file(path), name=name, where=str(file))

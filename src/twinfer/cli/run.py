"""``twinfer run``: compile a model folder onto a virtual LPU system, execute it numerically, print the text.

The numbers come from two places and are labelled as such: the generated
tokens from the numpy executor running the compiled programs on the real
weights, and the latencies from the compiled schedules (cycle model).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

_DTYPES = ("fp16", "bf16", "int8", "fp8")
#: Largest fp32 copy of the weights the executor keeps for speed (a choice for 24 GiB machines).
WIDEN_LIMIT_BYTES = 4 * 1024**3


def _parse_ids(text: str) -> list[int]:
    from twinfer.errors import ConfigError

    try:
        ids = [int(t) for t in text.replace(" ", "").split(",") if t]
    except ValueError:
        raise ConfigError(
            f"--token-ids {text!r}: give comma-separated integers, e.g. 1,2,3"
        ) from None
    if not ids:
        raise ConfigError("--token-ids is empty; give at least one token id, e.g. 1,2,3")
    return ids


def _tokenizer(folder: Any) -> tuple[Any, str | None]:
    """The folder's ``tokenizer.json`` loaded with the tokenizers library, or (None, why not)."""
    path = folder / "tokenizer.json"
    if not path.exists():
        return None, f"no tokenizer.json in {folder}: token ids only"
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return (
            None,
            "the 'tokenizers' package is not installed (pip install tokenizers): token ids only",
        )
    return Tokenizer.from_file(str(path)), None


def run_generation(
    model_dir: str,
    *,
    prompt: str | None,
    token_ids: str | None,
    max_new_tokens: int,
    chips: int | None,
    hardware: str,
    dtype: str,
    round_activations: bool = False,
) -> dict[str, Any]:
    """Compile, execute and time one greedy generation; the result as a plain dict."""
    import time
    from pathlib import Path

    import numpy as np

    from twinfer.errors import ConfigError
    from twinfer.lpu.chip import make_chip
    from twinfer.lpu.executor import (
        ProgramExecutor,
        compile_generation,
        execute_generation,
        unused_weights,
    )
    from twinfer.lpu.weights import WeightStore, attention_window, checkpoint_spec
    from twinfer.models.hf_config import read_config_file
    from twinfer.models.ops import Precision

    if dtype not in _DTYPES:
        raise ConfigError(f"--dtype {dtype!r} is not supported; use one of: {', '.join(_DTYPES)}")
    if max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens must be >= 1, got {max_new_tokens}")
    if (prompt is None) == (token_ids is None):
        raise ConfigError("give exactly one of --prompt TEXT or --token-ids 1,2,3")
    folder = Path(model_dir).expanduser()
    spec = checkpoint_spec(folder)  # clear errors: missing folder, config, unsupported architecture
    store = WeightStore.open(folder, spec)  # clear error: no safetensors weights
    tok, no_tok = _tokenizer(folder)
    if prompt is not None:
        if tok is None:
            raise ConfigError(f"--prompt cannot be tokenised ({no_tok}); give --token-ids instead")
        ids = tok.encode(prompt).ids
        if not ids:
            raise ConfigError("--prompt tokenised to no tokens; give a non-empty prompt")
    else:
        ids = _parse_ids(token_ids or "")
    bad = [i for i in ids if not 0 <= i < spec.vocab_size]
    if bad:
        raise ConfigError(
            f"token ids {bad[:5]} are outside the model's vocabulary (0..{spec.vocab_size - 1})"
        )
    window = attention_window(read_config_file(folder))
    final_ctx = len(ids) + max_new_tokens - 1
    if window is not None and final_ctx > window:
        raise ConfigError(
            f"{folder}: the model attends within a sliding window of {window} tokens, but this run "
            f"reaches {final_ctx}; the LPU program attends globally, so keep prompt + new tokens <= {window + 1}"
        )
    chip = make_chip(hardware)
    precision = Precision(weights=dtype, activations="fp16", kv_cache="fp16")
    compiled = compile_generation(
        spec, chip, chips=chips, batch=1, prompt_len=len(ids),
        max_new_tokens=max_new_tokens, precision=precision,
    )  # fmt: skip
    unused = unused_weights(compiled, store)
    if unused:
        raise ConfigError(
            f"{folder}: the compiled program does not use {len(unused)} checkpoint tensor(s), e.g. "
            f"{', '.join(unused[:3])}; this variant of {spec.architecture} is not supported by the LPU compiler"
        )
    t0 = time.perf_counter()
    # Widened fp32 copies of the weights speed up matmuls; skip them when they would not fit easily.
    widen = spec.param_count() * 4 <= WIDEN_LIMIT_BYTES
    executor = ProgramExecutor(store, keep_widened=widen, round_activations=round_activations)
    gen = execute_generation(compiled, store, np.array([ids]), executor=executor)
    run_s = time.perf_counter() - t0
    new = [int(t) for t in gen.tokens[0]]
    decode = compiled.decode_latencies_s
    plan = compiled.plan
    return {
        "model": spec.name,
        "model_dir": str(folder),
        "architecture": spec.architecture,
        "hardware": chip.spec.name,
        "weight_dtype": dtype,
        "activation_dtype": precision.activations if round_activations else "fp32",
        "chips": plan.num_chips,
        "chips_used": plan.chips_used,
        "tensor_split": plan.tp,
        "pipeline_stages": len(plan.stages),
        "prompt_token_ids": [int(i) for i in ids],
        "generated_token_ids": new,
        "generated_text": tok.decode(new, skip_special_tokens=False) if tok is not None else None,
        "text_note": no_tok,
        "lpu_prefill_s": compiled.prefill_latency_s,
        "lpu_decode_s_per_token_mean": (sum(decode) / len(decode)) if decode else None,
        "lpu_total_s": compiled.total_latency_s,
        "lpu_tokens_per_s_per_user": (len(decode) / sum(decode)) if decode else None,
        "latency_source": "compiled schedule length / chip clock (twinfer cycle model)",
        "compile_wall_s": compiled.compile_s,
        "executor_wall_s": run_s,
    }


def _ms(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 1e3:.3f} ms"


def run_command(
    model_dir: Annotated[
        str, typer.Option("--model-dir", help="Folder with config.json and *.safetensors.")
    ],
    prompt: Annotated[
        str | None, typer.Option("--prompt", help="Prompt text (needs tokenizer.json).")
    ] = None,
    token_ids: Annotated[
        str | None, typer.Option("--token-ids", help="Prompt as token ids, e.g. 1,2,3.")
    ] = None,
    max_new_tokens: Annotated[
        int, typer.Option("--max-new-tokens", help="Tokens to generate.")
    ] = 16,
    chips: Annotated[
        int | None, typer.Option("--chips", help="Chips (default: the fewest that fit).")
    ] = None,
    hardware: Annotated[str, typer.Option("--hardware", help="LPU preset.")] = "groq-tsp-v1",
    dtype: Annotated[
        str, typer.Option("--dtype", help="Weight dtype: fp16, bf16, int8, fp8.")
    ] = "fp16",
    round_activations: Annotated[
        bool,
        typer.Option(
            "--round-activations",
            help="Hold activations and KV cache in fp16 as the chip would (default: fp32).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Generate greedily with a real model on the virtual LPU: tokens from the executor, time from the schedule."""
    import json

    r = run_generation(
        model_dir, prompt=prompt, token_ids=token_ids, max_new_tokens=max_new_tokens,
        chips=chips, hardware=hardware, dtype=dtype, round_activations=round_activations,
    )  # fmt: skip
    if as_json:
        typer.echo(json.dumps(r, indent=2))
        return
    typer.echo(
        f"{r['model']} ({r['architecture']}, {r['weight_dtype']} weights, {r['activation_dtype']} activations) on {r['chips']} x {r['hardware']}: "
        f"{r['tensor_split']}-way tensor split x {r['pipeline_stages']} pipeline stages"
    )
    typer.echo(
        f"prompt ids ({len(r['prompt_token_ids'])}): {' '.join(map(str, r['prompt_token_ids']))}"
    )
    typer.echo(
        f"generated ids ({len(r['generated_token_ids'])}): {' '.join(map(str, r['generated_token_ids']))}"
    )
    if r["generated_text"] is not None:
        typer.echo(f"generated text: {r['generated_text']!r}")
    else:
        typer.echo(f"({r['text_note']})")
    tps = r["lpu_tokens_per_s_per_user"]
    typer.echo(
        f"LPU cycle model: prefill {_ms(r['lpu_prefill_s'])}, decode {_ms(r['lpu_decode_s_per_token_mean'])}/token, "
        f"total {_ms(r['lpu_total_s'])}, {'n/a' if tps is None else f'{tps:,.0f}'} tokens/s per user"
    )
    typer.echo(
        f"this machine: compile {r['compile_wall_s']:.2f} s, numpy executor {r['executor_wall_s']:.2f} s"
    )


def register(app: typer.Typer) -> None:
    """Add ``twinfer run`` to ``app``."""
    app.command("run")(run_command)

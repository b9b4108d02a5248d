"""``twinfer compile``: compile a model onto a virtual LPU system and print the plan and its latencies."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from twinfer.cli.console import out_console
from twinfer.cli.hardware import HardwareFileOption


def compile_command(
    model: Annotated[str, typer.Option("--model", help="Model preset or config.json path (e.g. llama-2-70b).")],
    hardware: Annotated[str, typer.Option("--hardware", help="LPU preset: groq-tsp-v1, groq3-lp30.")] = "groq-tsp-v1",
    chips: Annotated[int | None, typer.Option("--chips", help="Chips in the system (default: the fewest that fit).")] = None,
    batch: Annotated[int, typer.Option("--batch", help="Sequences per step (the compiled batch).")] = 1,
    context: Annotated[int | None, typer.Option("--context", help="Context length for decode and KV capacity (default: min(model max, 4096)).")] = None,
    prompt: Annotated[int | None, typer.Option("--prompt", help="Prompt length for the prefill time (default 550).")] = None,
    dtype: Annotated[str | None, typer.Option("--dtype", help="Weight dtype: int8, fp8, fp16, bf16 (fp32 accumulation); default: the chip's native one (TSP v1 int8, LP30 fp8).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
    trace: Annotated[str | None, typer.Option("--trace", help="Write the decode schedule as Chrome trace JSON (Perfetto).")] = None,
    trace_chips: Annotated[int, typer.Option("--trace-chips", help="Chips to include in the trace (the first N).")] = 16,
    trace_phase: Annotated[str, typer.Option("--trace-phase", help="Which program to trace: decode or prefill.")] = "decode",
    prefill_chunk: Annotated[int | None, typer.Option("--prefill-chunk", help="Cut a batch-1 prompt into chunks of N tokens pipelined across stages (multiplies instructions and compile time by ~prompt/N).")] = None,
    hardware_file: HardwareFileOption = None,
    param: Annotated[list[str] | None, typer.Option("--param", help="Override a chip micro-architecture parameter, NAME=VALUE (repeatable; see twinfer.lpu.chip.PARAM_SOURCES).")] = None,
    speculative_k: Annotated[int | None, typer.Option("--speculative-k", help="Speculative decoding: also compile a verify step of K + 1 positions per sequence and show tokens/s per user with it.")] = None,
    acceptance: Annotated[str | None, typer.Option("--acceptance", help="With --speculative-k: acceptance rate, or one per position (0.9,0.8,0.7); default 0.7.")] = None,
    speculative_method: Annotated[str | None, typer.Option("--speculative-method", help="With --speculative-k: mtp or eagle (a head on the same chips; a draft model: twinfer estimate --draft-model). Default: mtp on a model with an MTP module, else eagle.")] = None,
) -> None:
    """Compile prefill and decode of MODEL onto an LPU system: partition plan, SRAM per chip, latencies."""
    import json
    from pathlib import Path

    from twinfer.errors import ConfigError
    from twinfer.lpu.summary import compile_model
    from twinfer.models import load_model

    if dtype is not None and dtype not in ("int8", "fp8", "fp16", "bf16"):
        raise ConfigError(f"--dtype {dtype!r} is not supported; use int8, fp8, fp16 or bf16")
    if trace_phase not in ("decode", "prefill"):
        raise ConfigError(f"--trace-phase must be decode or prefill, got {trace_phase!r}")
    from twinfer.lpu.chip import make_chip, with_params

    overrides: dict[str, float] = {}
    for item in param or []:
        name, sep, value = item.partition("=")
        try:
            overrides[name.strip()] = float(value) if "." in value or "e" in value.lower() else int(value)
        except ValueError:
            sep = ""
        if not sep:
            raise ConfigError(f"--param {item!r} must look like NAME=NUMBER, e.g. --param d_mxm_cycles=30")
    _check_ranges(overrides, trace, trace_chips, prefill_chunk, prompt)
    from twinfer.cli.hardware import load_extra

    base = make_chip(hardware, extra=load_extra(hardware_file))
    chip = with_params(base, **overrides) if overrides else base
    spec = load_model(model)
    spec_cfg = None
    if speculative_k is not None:
        from twinfer.perf.speculative import SpeculativeConfig, check_drafter, parse_acceptance

        if speculative_method == "draft":
            raise ConfigError("--speculative-method draft: compile prices MTP / EAGLE heads on the same chips; "
                              "price a draft model with twinfer estimate --draft-model")
        how = speculative_method or ("mtp" if spec.mtp_layers else "eagle")
        spec_cfg = SpeculativeConfig.build(how, speculative_k, parse_acceptance(acceptance or "0.7"),
                                           where="--speculative")
        check_drafter(spec_cfg, spec, "--speculative")
    elif acceptance is not None or speculative_method is not None:
        flag = "--acceptance" if acceptance is not None else "--speculative-method"
        raise ConfigError(f"{flag}: speculative decoding needs --speculative-k (tokens proposed per step)")
    cm = compile_model(spec, hardware, chips=chips, batch=batch, context=context, prompt=prompt, weights=dtype,
                       chip=chip, prefill_chunk=prefill_chunk)
    from twinfer.lpu.bands import compiled_bands

    d = cm.to_dict()
    from twinfer.lpu.plan import MoePlan

    if isinstance(cm.plan, MoePlan):  # routed experts live on expert chips after the attention stages
        d["experts"] = cm.plan.expert_summary()
    d.update(compiled_bands(cm))
    if spec_cfg is not None:
        from twinfer.lpu.verify_step import compile_verify, speculative_effect

        d["speculative"] = speculative_effect(cm, compile_verify(cm, spec_cfg.k), spec_cfg)
    if trace:
        from twinfer.lpu.trace import trace_events

        prog = cm.decode if trace_phase == "decode" else cm.prefill
        Path(trace).write_text(json.dumps(trace_events(prog, range(min(trace_chips, prog.chips)))), encoding="utf-8")
        d["trace_file"] = trace
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    _print(d)


def _print(d: dict) -> None:
    from rich.table import Table

    con = out_console()
    mib = 2**20
    con.print(f"[bold]{d['model']}[/bold] on {d['chips']} x {d['hardware']} ({d['weight_dtype']} weights, fp32 accumulation)")
    con.print(f"partition: {d['tensor_split']}-way tensor split x {d['pipeline_stages']} pipeline stages = "
              f"{d['chips_used']} chips used ({d['chips'] - d['chips_used']} idle)")
    t = Table(title="pipeline stages")
    for col in ("stage", "chips", "blocks"):
        t.add_column(col)
    stages = d["stages"]
    shown = stages if len(stages) <= 12 else stages[:6] + [None] + stages[-5:]
    for s in shown:
        if s is None:
            t.add_row("...", "...", "...")
        else:
            t.add_row(str(s["stage"]), f"{s['chips'][0]}-{s['chips'][1]}", s["blocks"])
    con.print(t)
    if "experts" in d:
        e = d["experts"]
        con.print(f"routed experts: {e['expert_groups']} groups of {e['chips_per_group']} chips "
                  f"(up to {e['moe_layers_per_group']} MoE layer(s) each) = {e['expert_chips']} of the chips used; "
                  f"tokens dispatched to them and combined over C2C")
    s = d["sram_bytes_per_chip"]
    con.print(f"SRAM per chip: min {s['min'] / mib:.1f} / mean {s['mean'] / mib:.1f} / max {s['max'] / mib:.1f} MiB "
              f"of {s['usable'] / mib:.1f} MiB usable")
    con.print(f"KV cache room: {d['kv_capacity_tokens']:,} tokens in all (sequences x context) on the tightest stage")
    con.print(f"decode (batch {d['batch']}, context {d['context']}): {d['per_token_latency_s'] * 1e3:.3f} ms per token "
              f"({d['decode_step_cycles']:,} cycles + the per-token costs below) -> "
              f"{d['tokens_per_s_per_user']:.1f} tokens/s per user, {d['tokens_per_s_system']:.1f} tokens/s system")
    lo, hi = d["per_token_latency_s_range"]
    ulo, uhi = d["tokens_per_s_per_user_range"]
    slo, shi = d["tokens_per_s_system_range"]
    tlo, thi = d["ttft_s_range"]
    con.print(f"band ({d['band_parameter_sets']} parameter sets: {d['band_from']}): {lo * 1e3:.3f}-{hi * 1e3:.3f} ms "
              f"per token, {ulo:.0f}-{uhi:.0f} tokens/s per user, {slo:.0f}-{shi:.0f} tokens/s system, "
              f"TTFT {tlo * 1e3:.1f}-{thi * 1e3:.1f} ms")
    loop = d["decode_loop_s"]
    con.print("per-token costs outside the layer chain: " + ", ".join(
        f"{k.removesuffix('_s').replace('_', ' ')} {v * 1e6:.1f} us" for k, v in loop.items()))
    how = (f"chunks of {d['prefill_chunk']} pipelined across stages" if d["prefill_chunk"]
           else "whole prompt stage after stage; --prefill-chunk N pipelines it")
    con.print(f"prefill ({d['batch']} x {d['prompt']} tokens, {how}): {d['prefill_s'] * 1e3:.2f} ms")
    sp = d.get("speculative")
    if sp:
        con.print(f"speculative decoding ({sp['method']}, k={sp['k']}, acceptance "
                  f"{','.join(f'{a:g}' for a in sp['acceptance'])}): verify step of {sp['k'] + 1} positions "
                  f"{sp['verify_step_s'] * 1e3:.3f} ms ({sp['verify_over_decode_cycles']:.2f}x the decode step's "
                  f"cycles) + draft {sp['draft_s'] * 1e3:.3f} ms ({sp['draft_assumption']}) -> "
                  f"{sp['tokens_per_step']:.2f} tokens per step, {sp['tokens_per_s_per_user']:.1f} tokens/s per user "
                  f"({sp['speedup']:.2f}x plain)")
    con.print(f"MXM utilisation: decode {d['mxm_utilisation_decode']:.2%}, prefill {d['mxm_utilisation_prefill']:.2%}")
    a = Table(title="where one decode step's time goes (critical path)")
    a.add_column("category")
    a.add_column("cycles", justify="right")
    a.add_column("share", justify="right")
    total = max(1, sum(d["decode_attribution_cycles"].values()))
    for k, v in d["decode_attribution_cycles"].items():
        a.add_row(k, f"{v:,}", f"{v / total:.1%}")
    con.print(a)
    if d["layouts_tried"]:
        lt = Table(title=f"layouts tried on {d['chips']} chips (analytic per-token latency; the fastest is compiled)")
        moe = any(row["expert_group_chips"] for row in d["layouts_tried"])
        cols = ("tensor split", "stages", *(("expert group",) if moe else ()), "chips used", "ms per token",
                "tokens/s per user", "instructions")
        for col in cols:
            lt.add_column(col, justify="right")
        for row in d["layouts_tried"]:
            group = (f"{row['expert_group_chips']} chips",) if moe else ()
            lt.add_row(str(row["tensor_split"]), str(row["pipeline_stages"]), *group, str(row["chips_used"]),
                       f"{row['per_token_latency_s'] * 1e3:.3f}", f"{row['tokens_per_s_per_user']:.0f}",
                       f"~{row['instructions_est']:,}" + ("" if row["within_budget"] else " (over budget)"))
        con.print(lt)
    con.print(f"compiled {d['instructions']['decode']:,} + {d['instructions']['prefill']:,} instructions "
              f"in {d['compile_seconds']:.1f} s")
    if "trace_file" in d:
        con.print(f"trace written to {d['trace_file']}")


def _check_ranges(overrides: dict[str, float], trace: str | None, trace_chips: int,
                  prefill_chunk: int | None, prompt: int | None) -> None:
    """Refuse NaN, negative or absurd option values before the compiler sees them."""
    from dataclasses import fields

    from twinfer.cli import checks
    from twinfer.errors import ConfigError
    from twinfer.lpu.chip import ChipParams

    types = {f.name: f.default for f in fields(ChipParams)}
    for name, value in overrides.items():
        divisor = name in ("vxm_alus_per_lane", "host_bw_bytes_per_s")
        checks.number_in_range(f"--param {name}", value, 0, 1e15, low_open=divisor)
        if isinstance(types.get(name), int) and not float(value).is_integer():
            raise ConfigError(f"--param {name}: expected a whole number, got {value!r}")
        if isinstance(types.get(name), int):
            overrides[name] = int(value)
    checks.output_file(Path(trace) if trace else None, "--trace")
    checks.number_in_range("--trace-chips", trace_chips, 1, 1e6)
    checks.number_in_range("--prefill-chunk", prefill_chunk, 1, 1e7)
    checks.number_in_range("--prompt", prompt, 1, 1e7)


def register(app: typer.Typer) -> None:
    """Add ``twinfer compile`` to ``app``."""
    app.command("compile")(compile_command)

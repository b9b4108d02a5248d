"""``twinfer estimate``: latency, throughput and memory of one model on one GPU instance, from the GPU model.

TTFT is the prefill of the whole batch in one step; time per output token
is one decode step of the batch at mid-generation context (input + output/2).
``--engine`` picks a serving-engine profile (:mod:`twinfer.gpu.engines`):
its fusions, host time and defaults; the breakdown keeps the unfused
roofline beside it so the difference is visible.
With ``--ep N`` the instance is N attention replicas of ``--tp`` GPUs with a
MoE model's experts split over them (:mod:`twinfer.gpu.expert_parallel`);
memory is then per GPU for the replica holding the most sequences. With
``--speculative-k K --acceptance P`` it also prices speculative decoding at
that context (:mod:`twinfer.perf.speculative`): the drafter's K proposals
plus a verify step of K + 1 positions, over the expected accepted tokens;
``--draft-hardware`` runs a ``--draft-model`` on devices of its own (a GPU or
an LPU), adding the hand-off of drafts and verified tokens over the link.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from twinfer.cli.console import out_console
from twinfer.cli.hardware import HardwareFileOption, load_extra


def _precision(dtype: str, kv_dtype: str | None) -> Any:
    from twinfer.errors import ConfigError
    from twinfer.models.ops import Precision
    from twinfer.units import DTYPE_BYTES

    if dtype not in ("bf16", "fp16", "fp8", "fp4", "int8", "int4"):
        raise ConfigError(f"--dtype must be one of bf16, fp16, fp8, fp4, int8, int4; got {dtype!r}")
    kv = kv_dtype or ("fp8" if DTYPE_BYTES[dtype] < 2 else "bf16")  # TensorRT-LLM's FP8 recipes also quantise KV
    act = "fp16" if dtype == "fp16" else "bf16"
    return Precision(weights=dtype, activations=act, kv_cache=kv)


def _suggest_tp(model: Any, gpu: Any, tp: int, pp: int, precision: Any, need_tokens: int, kw: dict[str, Any]) -> str:
    """The smallest larger TP (dividing the heads, within the NVLink domain) that fits, as advice."""
    from twinfer.errors import TwinferError
    from twinfer.gpu import GpuStepCost

    candidate = tp * 2
    while candidate <= gpu.scale_up_gpus:
        if model.num_attention_heads % candidate == 0:
            try:
                cost = GpuStepCost(model, gpu, tp=candidate, pp=pp, precision=precision, **kw)
                if cost.resources().kv_capacity_tokens >= need_tokens:
                    return f"--tp {candidate} fits"
            except TwinferError:
                pass
        candidate *= 2
    return "no TP within one NVLink domain fits: add --pp, use --dtype fp8, or a GPU with more memory"


def _speculative(cost: Any, spec: Any, gpu: Any, tp: int, precision: Any, batch: int, context: int, k: int,
                 acceptance: str, draft_model: str | None, method: str | None, extra: Any,
                 draft_devices: Any = None, needed_tokens: int = 0) -> dict[str, Any]:
    """Speculative decoding at ``context`` cached tokens per sequence: draft + verify time over the expected tokens.

    ``draft_devices`` (a :class:`~twinfer.perf.speculative.DraftDevices`) puts the draft model on devices of its
    own, which must hold its KV of ``needed_tokens`` (the batch's whole sequences).
    """
    from twinfer.errors import ConfigError, TwinferError
    from twinfer.hardware import get_hardware, get_link
    from twinfer.hardware.specs import default_link_between
    from twinfer.models import load_model
    from twinfer.perf import make_step_cost
    from twinfer.perf.pipeline import pipelined
    from twinfer.perf.speculative import (
        SeparateDrafter,
        SpeculativeConfig,
        check_draft_model,
        check_drafter,
        parse_acceptance,
        speculative_timing,
    )

    how = method or ("draft" if draft_model else "mtp" if spec.mtp_layers else "eagle")
    cfg = SpeculativeConfig.build(how, k, parse_acceptance(acceptance), draft_model, where="--speculative",
                                  draft_devices=draft_devices)
    check_drafter(cfg, spec, "--speculative")
    separate = None
    if cfg.method == "draft":
        assert cfg.draft_model is not None
        on = cfg.draft_devices
        draft_spec = load_model(cfg.draft_model)
        check_draft_model(draft_spec, spec, "--draft-model")
        try:
            draft: Any = pipelined(make_step_cost(draft_spec, on.hardware if on else gpu.name,
                                                  tp=on.tp if on else tp, chips=on.chips if on else None,
                                                  precision=precision, max_batch_seqs=batch, extra_hardware=extra))
        except TwinferError as exc:  # the backend names the target's flags; say they are the drafter's here
            sizing = "--draft-tp / --draft-chips" if on else "--tp"
            raise type(exc)(f"--draft-model {cfg.draft_model}: {exc} (for the drafter, use {sizing})") from None
        if on is None:
            assumption = f"draft model {cfg.draft_model} on the same GPUs (tp={tp}), its memory not charged"
        else:
            res = draft.resources()
            if res.kv_capacity_tokens < needed_tokens:
                raise ConfigError(f"--draft-hardware: the drafter's {res.num_devices} x {res.hardware} hold KV for "
                                  f"{res.kv_capacity_tokens:,} tokens, less than the batch's {needed_tokens:,} "
                                  "(--batch x (--input-len + --output-len)); give it more --draft-chips / --draft-tp")
            link = get_link(on.link or default_link_between(gpu, get_hardware(on.hardware, extra)), extra)
            separate = SeparateDrafter(res, link)
            assumption = (f"draft model {cfg.draft_model} on its own {res.num_devices} x {res.hardware}, "
                          f"over {link.name}")
    else:
        draft = 1.0 / spec.num_layers
        assumption = f"each {cfg.method} proposal costs one layer of the target (1/{spec.num_layers} of a decode step)"
    t = speculative_timing(cfg, cost, [context] * batch, draft, separate)
    return {"method": cfg.method, "k": cfg.k, "acceptance": list(cfg.acceptance), "draft_model": cfg.draft_model,
            "draft_hardware": cfg.draft_devices.hardware if cfg.draft_devices else None,
            "assumption": assumption, "tokens_per_step": t.tokens_per_step, "plain_step_s": t.plain_step_s,
            "draft_s": t.draft_s, "handoff_s": t.handoff_s, "verify_step_s": t.verify_step_s,
            "tpot_s": t.time_per_token_s, "tokens_per_s_per_user": 1.0 / t.time_per_token_s, "speedup": t.speedup}


def _rows(ops: list[Any]) -> list[dict[str, Any]]:
    return [{"op": o.name, "kind": o.kind, "time_ms": o.time_s * 1e3, "repeat": o.repeat,
             "total_ms": o.total_s * 1e3} for o in ops]


def _host(cost: Any, shape: Any) -> dict[str, float]:
    """The engine's host time of one step, and the whole step."""
    host = cost.host_time_s(shape)
    return {"step_overhead_ms": host["step_overhead_s"] * 1e3, "launch_floor_ms": host["launch_floor_s"] * 1e3,
            "step_ms": cost.step_time_s(shape) * 1e3}


def estimate_command(
    model: Annotated[str, typer.Option("--model", help="Model preset or path to a config.json.")] = "llama-3-70b",
    hardware: Annotated[str, typer.Option("--hardware", help="GPU preset (twinfer hardware lists them).")] = "h100",
    tp: Annotated[int, typer.Option("--tp", help="Tensor-parallel GPUs.")] = 8,
    pp: Annotated[int, typer.Option("--pp", help="Pipeline stages.")] = 1,
    ep: Annotated[int, typer.Option("--ep", help="Expert parallelism (MoE): attention replicas of --tp GPUs, experts split over them.")] = 1,
    expert_imbalance: Annotated[float, typer.Option("--expert-imbalance", help="With --ep: hottest rank's expert load / mean (>= 1).")] = 1.0,
    batch: Annotated[int, typer.Option("--batch", help="Sequences served together.")] = 16,
    input_len: Annotated[int, typer.Option("--input-len", help="Prompt tokens per sequence.")] = 2048,
    output_len: Annotated[int, typer.Option("--output-len", help="Generated tokens per sequence.")] = 256,
    dtype: Annotated[str, typer.Option("--dtype", help="Weight dtype: bf16, fp8, fp4 ... (fp8/fp4 also use an fp8 KV cache).")] = "bf16",
    kv_dtype: Annotated[str | None, typer.Option("--kv-dtype", help="KV-cache dtype (default: follows --dtype).")] = None,
    speculative_k: Annotated[int | None, typer.Option("--speculative-k", help="Speculative decoding: tokens proposed per verify step.")] = None,
    acceptance: Annotated[str | None, typer.Option("--acceptance", help="With --speculative-k: acceptance rate, or one per position (0.9,0.8,0.7); default 0.7.")] = None,
    draft_model: Annotated[str | None, typer.Option("--draft-model", help="With --speculative-k: the drafter model (without it: the model's MTP module, or EAGLE-style heads).")] = None,
    speculative_method: Annotated[str | None, typer.Option("--speculative-method", help="draft | mtp | eagle (default: draft with --draft-model, else mtp on a model with an MTP module, else eagle).")] = None,
    draft_hardware: Annotated[str | None, typer.Option("--draft-hardware", help="With --draft-model: run the drafter on devices of its own (a GPU or LPU preset).")] = None,
    draft_tp: Annotated[int, typer.Option("--draft-tp", help="With --draft-hardware: GPUs per drafter.")] = 1,
    draft_chips: Annotated[int | None, typer.Option("--draft-chips", help="With --draft-hardware: LPU chips per drafter (default: the fewest that fit).")] = None,
    breakdown: Annotated[bool, typer.Option("--breakdown", help="Per-op time of one layer for the prefill and a decode step.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON (always with the breakdown).")] = False,
    calibration: Annotated[Path | None, typer.Option("--calibration", help="Calibration JSON from `twinfer calibrate`.")] = None,
    engine: Annotated[str, typer.Option("--engine", help="Serving engine profile: roofline (unfused, no host time), "
                                        "vllm, sglang, trtllm.")] = "roofline",
    cuda_graphs: Annotated[bool, typer.Option("--cuda-graphs/--no-cuda-graphs", help="Decode steps replay CUDA graphs "
                                              "(off: every kernel is launched from the host, as with --enforce-eager).")] = True,
    hardware_file: HardwareFileOption = None,
) -> None:
    """Estimate TTFT, time per output token, tokens/s per user and per GPU, and memory for one GPU instance."""
    import json

    from twinfer.cli.checks import calibration_warning
    from twinfer.errors import CapacityError, ConfigError
    from twinfer.gpu import GpuStepCost, default_efficiency, load_calibration
    from twinfer.gpu.engines import get_engine
    from twinfer.hardware import GpuSpec, get_hardware
    from twinfer.models import StepShape, load_model
    from twinfer.perf.speculative import DraftDevices

    for name, value in (("--batch", batch), ("--input-len", input_len), ("--output-len", output_len), ("--ep", ep)):
        if value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
        if value > 10_000_000:  # same ceiling as a workload's tokens per request (twinfer.workload.columns)
            raise ConfigError(f"{name} {value} is above the limit of 10,000,000; use a smaller value")
    extra = load_extra(hardware_file)
    gpu = get_hardware(hardware, extra)
    if not isinstance(gpu, GpuSpec):
        raise ConfigError(f"{gpu.name} is an LPU; `twinfer estimate` covers GPUs (LPUs: see the lpu commands)")
    spec = load_model(model)
    precision = _precision(dtype, kv_dtype)
    profile = get_engine(engine) if cuda_graphs else get_engine(engine).without_cuda_graphs()
    eff = load_calibration(calibration, default_efficiency(gpu.name)) if calibration else None
    if calibration and (warning := calibration_warning(calibration, gpu.name)):
        typer.echo(warning, err=True)
    kw: dict[str, Any] = {"efficiency": eff, "extra_hardware": extra, "max_batch_seqs": max(batch, 1),
                          "engine": profile, "kv_context_tokens": input_len + output_len}
    need_tokens = -(-batch // ep) * (input_len + output_len)  # on the replica holding the most sequences
    if ep > 1:
        from twinfer.gpu.expert_parallel import ExpertParallelStepCost

        if pp > 1:
            raise ConfigError(f"--ep {ep} with --pp {pp}: expert parallelism here runs without pipeline stages; drop --pp")
        cost: GpuStepCost = ExpertParallelStepCost(spec, gpu, tp=tp, ep=ep, expert_imbalance=expert_imbalance,
                                                   precision=precision, **kw)
    else:
        try:
            cost = GpuStepCost(spec, gpu, tp=tp, pp=pp, precision=precision, **kw)
        except CapacityError as exc:
            raise CapacityError(f"{exc}. Suggestion: {_suggest_tp(spec, gpu, tp, pp, precision, need_tokens, kw)}") from None
    mem = cost.memory
    kv_need = need_tokens * mem.kv_bytes_per_token  # per-token size already averaged over input + output
    if kv_need > mem.kv_free_bytes:
        missing = (kv_need - mem.kv_free_bytes) / 1e9
        if ep > 1:
            raise CapacityError(
                f"{spec.name} on {ep} x {tp} x {gpu.name} (ep={ep}): the KV cache of the busiest replica's "
                f"{-(-batch // ep)} x ({input_len} + {output_len}) tokens needs {kv_need / 1e9:.1f} GB per GPU but only "
                f"{mem.kv_free_bytes / 1e9:.1f} GB are free: {missing:.1f} GB missing. Suggestion: a larger --ep or a smaller --batch"
            )
        raise CapacityError(
            f"{spec.name} on {tp * pp} x {gpu.name}: the KV cache of {batch} x ({input_len} + {output_len}) tokens needs "
            f"{kv_need / 1e9:.1f} GB per GPU but only {mem.kv_free_bytes / 1e9:.1f} GB are free after weights and workspace: "
            f"{missing:.1f} GB missing. Suggestion: {_suggest_tp(spec, gpu, tp, pp, precision, need_tokens, kw)}, "
            "or a smaller --batch"
        )
    prefill = StepShape.prefill([input_len] * batch)
    decode = StepShape.decode([input_len + output_len // 2] * batch)
    ttft = cost.step_time_s(prefill) + profile.request_overhead_s  # the request's host path (0 for roofline)
    tpot = cost.step_time_s(decode)
    gpus = tp * pp * ep
    e2e = ttft + output_len * tpot
    result = {
        "model": spec.name, "hardware": gpu.name, "tp": tp, "pp": pp, "ep": ep, "expert_imbalance": expert_imbalance,
        "gpus": gpus, "batch": batch,
        "input_len": input_len, "output_len": output_len,
        "precision": {"weights": precision.weights, "activations": precision.activations, "kv_cache": precision.kv_cache},
        "calibration": str(calibration) if calibration else None,
        "engine": {"name": profile.name, "fusions": sorted(profile.fusions),
                   "prefill_attention": profile.prefill_attention_kernel, "decode_attention": profile.decode_attention_kernel,
                   "cuda_graph_max_tokens": profile.cuda_graph_max_tokens, "step_overhead_ms": profile.step_overhead_s * 1e3,
                   "request_overhead_ms": profile.request_overhead_s * 1e3,
                   "memory_fraction": cost.memory_utilization},
        "ttft_s": ttft, "tpot_s": tpot,
        "tokens_per_s_per_user": 1.0 / tpot,
        "decode_tokens_per_s_per_gpu": batch / tpot / gpus,
        "output_tokens_per_s_per_gpu": batch * output_len / e2e / gpus,
        "request_latency_s": e2e,
        "memory_per_gpu": {
            "capacity_bytes": gpu.memory_bytes, "usable_bytes": mem.usable_bytes, "weights_bytes": mem.weight_bytes,
            "workspace_bytes": mem.workspace_bytes, "kv_needed_bytes": kv_need, "kv_free_bytes": mem.kv_free_bytes,
            "kv_capacity_tokens": int(mem.kv_free_bytes // mem.kv_bytes_per_token),
        },
        "breakdown": {"prefill": _rows(cost.op_times(prefill)), "decode": _rows(cost.op_times(decode))},
        "breakdown_roofline": {"prefill": _rows(cost.op_times(prefill, fused=False)),
                               "decode": _rows(cost.op_times(decode, fused=False))},
        "host": {"prefill": _host(cost, prefill), "decode": _host(cost, decode)},
    }
    if speculative_k is not None:
        on = None
        if draft_hardware is not None:
            if draft_model is None:
                raise ConfigError("--draft-hardware: give --draft-model too (it places the draft model on its own "
                                  "devices; heads run on the target's)")
            on = DraftDevices.from_dict({"hardware": draft_hardware, "tp": draft_tp, "chips": draft_chips},
                                        "--draft-hardware")
            on.check("--draft-hardware", extra)
        elif draft_tp != 1 or draft_chips is not None:
            raise ConfigError("--draft-tp / --draft-chips size a drafter on its own devices: give --draft-hardware too")
        result["speculative"] = _speculative(cost, spec, gpu, tp, precision, batch, input_len + output_len // 2 - 1,
                                             speculative_k, acceptance or "0.7", draft_model, speculative_method,
                                             extra, on, needed_tokens=batch * (input_len + output_len))
    else:
        given = [flag for flag, value in (("--acceptance", acceptance), ("--draft-model", draft_model),
                                          ("--speculative-method", speculative_method),
                                          ("--draft-hardware", draft_hardware), ("--draft-chips", draft_chips))
                 if value is not None] + (["--draft-tp"] if draft_tp != 1 else [])
        if given:
            raise ConfigError(f"{given[0]}: speculative decoding needs --speculative-k (tokens proposed per step)")
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    _print(result, breakdown)


def _print(r: dict[str, Any], breakdown: bool) -> None:
    from rich.table import Table

    console = out_console()
    m = r["memory_per_gpu"]
    p = r["precision"]
    e = r["engine"]
    ep = f", ep={r['ep']}" if r["ep"] > 1 else ""
    console.print(f"[bold]{r['model']}[/] on {r['gpus']} x {r['hardware']} (tp={r['tp']}, pp={r['pp']}{ep}), "
                  f"batch {r['batch']}, {r['input_len']} in / {r['output_len']} out, weights {p['weights']}, KV {p['kv_cache']}, "
                  f"engine {e['name']} (fused: {', '.join(e['fusions']) or 'nothing'})")
    console.print(f"  TTFT (prefill of the batch)      {r['ttft_s'] * 1e3:10.1f} ms"
                  + (f"   (incl. {e['request_overhead_ms']:.1f} ms request host path)" if e["request_overhead_ms"] else ""))
    console.print(f"  time per output token            {r['tpot_s'] * 1e3:10.2f} ms   (decode step at context "
                  f"{r['input_len'] + r['output_len'] // 2})")
    console.print(f"  tokens/s per user                {r['tokens_per_s_per_user']:10.1f}")
    console.print(f"  decode tokens/s per GPU          {r['decode_tokens_per_s_per_gpu']:10.1f}")
    console.print(f"  output tokens/s per GPU (w/ TTFT) {r['output_tokens_per_s_per_gpu']:9.1f}")
    sp = r.get("speculative")
    if sp:
        console.print(f"  with speculative decoding ({sp['method']}, k={sp['k']}, acceptance "
                      f"{','.join(f'{a:g}' for a in sp['acceptance'])}): {sp['tokens_per_step']:.2f} tokens per verify step")
        handoff = f" + hand-off {sp['handoff_s'] * 1e3:.3f}" if sp["draft_hardware"] else ""
        console.print(f"    time per output token          {sp['tpot_s'] * 1e3:10.2f} ms   (draft {sp['draft_s'] * 1e3:.2f}"
                      f"{handoff} + verify {sp['verify_step_s'] * 1e3:.2f} ms per step)")
        console.print(f"    tokens/s per user              {sp['tokens_per_s_per_user']:10.1f}   ({sp['speedup']:.2f}x plain; "
                      f"{sp['assumption']})")
    used = m["weights_bytes"] + m["workspace_bytes"] + m["kv_needed_bytes"]
    console.print(f"  memory per GPU: {used / 1e9:.1f} GB used (weights {m['weights_bytes'] / 1e9:.1f} + workspace "
                  f"{m['workspace_bytes'] / 1e9:.1f} + KV {m['kv_needed_bytes'] / 1e9:.1f}) of {m['usable_bytes'] / 1e9:.1f} GB "
                  f"usable ({m['capacity_bytes'] / 1e9:.0f} GB x {e['memory_fraction']:.2f}); "
                  f"KV room for {m['kv_capacity_tokens']:,} tokens")
    if not breakdown:
        return
    for phase in ("prefill", "decode"):
        ops, host = r["breakdown"][phase], r["host"][phase]
        base = {row["op"]: row["total_ms"] for row in r["breakdown_roofline"][phase]}
        table = Table(title=f"{phase} step, engine {e['name']}: time per execution (one layer for per-layer ops); "
                            "'roofline ms' is the same op unfused")
        for col in ("op", "kind", "ms each", "runs", "ms total", "roofline ms"):
            table.add_column(col, justify="left" if col in ("op", "kind") else "right")
        for row in ops:
            table.add_row(row["op"], row["kind"], f"{row['time_ms']:.4f}", str(row["repeat"]), f"{row['total_ms']:.3f}",
                          f"{base.pop(row['op']):.3f}" if row["op"] in base else "fused")
        for name, ms in base.items():
            table.add_row(name, "(fused away)", "", "", "0.000", f"{ms:.3f}")
        table.add_row("host: step overhead", "host", "", "1", f"{host['step_overhead_ms']:.3f}", "0.000")
        console.print(table)
        kernels = sum(row["total_ms"] for row in ops)
        roofline = sum(row["total_ms"] for row in r["breakdown_roofline"][phase])
        console.print(f"  {phase}: kernels {kernels:.3f} ms (unfused roofline {roofline:.3f} ms; fusion and the engine's "
                      f"element-wise kernels save {roofline - kernels:.3f} ms); launch floor {host['launch_floor_ms']:.3f} ms; "
                      f"step {host['step_ms']:.3f} ms")


def register(app: typer.Typer) -> None:
    """Add ``twinfer estimate`` to ``app``."""
    app.command("estimate")(estimate_command)

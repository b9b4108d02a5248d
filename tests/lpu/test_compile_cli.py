"""``twinfer compile`` end to end on a tiny model, its trace, and its error for a model that cannot fit."""

from __future__ import annotations

import json

from twinfer.cli import main
from twinfer.lpu.passes import compile_step
from twinfer.lpu.system import System
from twinfer.lpu.trace import trace_events

TINY_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 96,
    "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "torch_dtype": "bfloat16",
}


def test_compile_json_and_trace(tmp_path, capsys):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(TINY_CONFIG))
    trace = tmp_path / "sched.json"
    rc = main(["compile", "--model", str(cfg), "--hardware", "groq-tsp-v1", "--chips", "2", "--batch", "2",
               "--context", "64", "--prompt", "16", "--json", "--trace", str(trace), "--trace-chips", "1"])
    assert rc == 0
    d = json.loads(capsys.readouterr().out)
    assert d["chips_used"] == 2 and d["tensor_split"] * d["pipeline_stages"] == 2
    # The compiled layout is the fastest of those the search tried (1 x 2 and 2 x 1).
    tried = d["layouts_tried"]
    assert {(t["tensor_split"], t["pipeline_stages"]) for t in tried} == {(1, 2), (2, 1)}
    fastest = min(tried, key=lambda t: t["per_token_latency_s"])
    assert (fastest["tensor_split"], fastest["pipeline_stages"]) == (d["tensor_split"], d["pipeline_stages"])
    assert d["tokens_per_s_per_user"] == 1.0 / d["per_token_latency_s"]
    assert d["prefill_cycles"] > d["decode_step_cycles"] > 0
    assert sum(d["decode_attribution_cycles"].values()) == d["decode_step_cycles"]
    events = json.loads(trace.read_text())["traceEvents"]
    assert {e["pid"] for e in events} == {0}  # --trace-chips 1 keeps chip 0 only
    assert any(e["ph"] == "X" and e["cat"] == "matmul" for e in events)


def test_model_that_cannot_fit_exits_2(capsys):
    rc = main(["compile", "--model", "llama-2-70b", "--hardware", "groq-tsp-v1", "--chips", "64"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "at least" in err and "chips" in err and "Traceback" not in err


def test_trace_has_one_track_per_chip_and_unit(tsp, tiny_model):
    prog = compile_step(tiny_model, System(tsp, 1), phase="decode", batch=1, seq_len=4).program
    tr = trace_events(prog)
    x = [e for e in tr["traceEvents"] if e["ph"] == "X"]
    assert len(x) == len(prog.instrs)
    names = {e["args"]["name"] for e in tr["traceEvents"] if e["name"] == "thread_name"}
    assert {"MXM", "VXM", "MEM"} <= names
    last = max(e["ts"] + e["dur"] for e in x)
    assert abs(last - prog.schedule_cycles / 900e6 * 1e6) < 1e-2


def test_human_output_and_parameter_override(tmp_path, capsys):
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(TINY_CONFIG))
    base = ["compile", "--model", str(cfg), "--chips", "1", "--context", "32", "--prompt", "8"]
    assert main(base) == 0
    out = capsys.readouterr().out
    assert "per token" in out and "tokens/s per user" in out and "SRAM per chip" in out
    assert main([*base, "--json"]) == 0
    slow = json.loads(capsys.readouterr().out)
    assert main([*base, "--json", "--param", "d_mxm_cycles=124"]) == 0
    slower = json.loads(capsys.readouterr().out)
    # Every MXM op on the single chip's dependency chain pays the extra 100 cycles.
    n_mxm = 7 * 2 + 1 + 2  # matmuls per layer x layers + LM head + attentions
    assert slower["decode_step_cycles"] == slow["decode_step_cycles"] + 100 * n_mxm
    assert main([*base, "--param", "bogus"]) == 2


def test_groq3_preset_compiles(tmp_path, capsys):
    from twinfer.lpu.chip import make_chip
    from twinfer.lpu.plan import min_chips
    from twinfer.models import load_model
    from twinfer.models.ops import Precision

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(TINY_CONFIG))
    assert main(["compile", "--model", str(cfg), "--hardware", "groq3-lp30", "--context", "64", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["hardware"] == "groq3-lp30" and d["kv_capacity_tokens"] > 0
    # LP30's geometry is a TSP v1 placeholder, but its ~500 MB SRAM needs fewer chips for a 7B model.
    prec = Precision(weights="int8", activations="fp16", kv_cache="fp16")
    m = load_model("llama-2-7b")
    lp30 = min_chips(m, make_chip("groq3-lp30"), prec, batch=1, ctx=4096, tokens=1).chips_used
    v1 = min_chips(m, make_chip("groq-tsp-v1"), prec, batch=1, ctx=4096, tokens=1).chips_used
    assert lp30 < v1


def test_trace_slices_are_whole_nanoseconds_and_never_overlap(tsp, tiny_model):
    from collections import defaultdict
    from decimal import Decimal

    prog = compile_step(tiny_model, System(tsp, 1), phase="decode", batch=1, seq_len=4).program
    text = json.dumps(trace_events(prog))  # what the CLI writes; read back exactly as decimals
    events = [e for e in json.loads(text, parse_float=Decimal)["traceEvents"] if e["ph"] == "X"]
    by_track = defaultdict(list)
    for e in events:
        start_ns, dur_ns = Decimal(e["ts"]) * 1000, Decimal(e["dur"]) * 1000
        assert start_ns == int(start_ns) and dur_ns == int(dur_ns)  # whole nanoseconds
        by_track[(e["pid"], e["tid"])].append((int(start_ns), int(start_ns + dur_ns)))
    for spans in by_track.values():
        spans.sort()
        assert all(b[0] >= a[1] for a, b in zip(spans, spans[1:], strict=False))

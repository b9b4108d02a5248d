"""Engine profiles in the GPU step cost: fusion savings, host time, defaults, sliding windows, pools."""

from __future__ import annotations

import pytest

from twinfer.errors import ConfigError, UnknownNameError
from twinfer.gpu import GpuStepCost
from twinfer.gpu.engines import ENGINES, FUSIONS, get_engine
from twinfer.models import StepShape, load_model

PREFILL = StepShape.prefill([2048] * 4)
DECODE = StepShape.decode([1500] * 32)


@pytest.fixture(scope="module")
def costs():
    m = load_model("llama-3-70b")
    return {name: GpuStepCost(m, "h100", tp=8, engine=name) for name in ENGINES}


def test_every_profile_is_sourced_and_uses_known_fusions():
    for p in ENGINES.values():
        assert p.fusions <= set(FUSIONS)
        assert p.sources and all(claim and src for claim, src in p.sources)
        assert 0 < p.gpu_memory_fraction <= 1 and p.max_num_seqs >= 1
    with pytest.raises(UnknownNameError, match="vllm, sglang, trtllm"):
        get_engine("tgi")


def test_step_time_is_the_sum_of_its_ops_plus_host_time(costs):
    for name, cost in costs.items():
        for shape in (PREFILL, DECODE):
            ops = sum(o.total_s for o in cost.op_times(shape))
            host = cost.host_time_s(shape)
            assert cost.step_time_s(shape) == pytest.approx(max(ops, host["launch_floor_s"]) + host["step_overhead_s"],
                                                            rel=1e-9), name


def test_fusion_only_removes_kernel_time(costs):
    """Outside attention (each engine's own kernel, see test_engine_attention_*), an engine's kernels take no
    longer than the unfused roofline, and the roofline column is the baseline."""
    base = costs["roofline"]
    for cost in costs.values():
        for shape in (PREFILL, DECODE):
            fused = sum(o.total_s for o in cost.op_times(shape) if o.kind != "attention")
            unfused = sum(o.total_s for o in cost.op_times(shape, fused=False) if o.kind != "attention")
            assert fused <= unfused * (1 + 1e-12)
            baseline = [o.total_s for o in cost.op_times(shape, fused=False)]
            assert baseline == pytest.approx([o.total_s for o in base.op_times(shape)], rel=1e-12)
    saved = {n: sum(o.total_s for o in costs["roofline"].op_times(PREFILL) if o.kind != "attention")
             - sum(o.total_s for o in c.op_times(PREFILL) if o.kind != "attention") for n, c in costs.items()}
    assert saved["roofline"] == 0.0 < saved["vllm"] < saved["trtllm"]


def test_engine_defaults_size_the_instance():
    m = load_model("llama-3-8b")
    vllm = GpuStepCost(m, "h100", engine="vllm")
    sglang = GpuStepCost(m, "h100", engine="sglang")
    assert vllm.resources().max_batch_seqs == 1024 and vllm.max_step_tokens == 8192
    assert sglang.memory.usable_bytes == pytest.approx(0.88 * sglang.gpu.memory_bytes)
    assert GpuStepCost(m, "h100", engine="vllm", max_batch_seqs=8).resources().max_batch_seqs == 8


def test_eager_steps_cannot_beat_the_launch_floor():
    """A one-token step outside a CUDA graph takes at least kernels x launch cost."""
    m = load_model("llama-3-8b")
    cost = GpuStepCost(m, "h100", engine="vllm")
    shape = StepShape.prefill([1])
    floor = cost.host_time_s(shape)["launch_floor_s"]
    assert floor == pytest.approx((9 * 32 + 3) * ENGINES["vllm"].host_launch_s)
    assert cost.step_time_s(shape) >= floor
    assert cost.host_time_s(StepShape.decode([100]))["launch_floor_s"] == 0.0  # replayed from a graph


def test_roofline_engine_keeps_todays_numbers():
    """The default engine is the unfused roofline without host time: no engine argument changes nothing."""
    m = load_model("llama-3-8b")
    a, b = GpuStepCost(m, "h100"), GpuStepCost(m, "h100", engine="roofline")
    assert a.step_time_s(PREFILL) == b.step_time_s(PREFILL) and a.host_time_s(DECODE)["step_overhead_s"] == 0.0


def test_sliding_layers_stop_growing_past_the_window():
    """Gemma-2-9B decode: past the 4,096-token window only the 21 global layers read more KV.

    Against a copy of the model whose layers are all global, the step-time slope in the context is 21/42.
    """
    import dataclasses

    gemma = load_model("gemma-2-9b")
    full = dataclasses.replace(gemma, num_sliding_layers=0)
    slope = {}
    for name, m in (("gemma", gemma), ("full", full)):
        c = GpuStepCost(m, "h100")
        slope[name] = (c.step_time_s(StepShape.decode([7000] * 8)) - c.step_time_s(StepShape.decode([6000] * 8)))
    assert slope["gemma"] / slope["full"] == pytest.approx(21 / 42, rel=1e-6)


def test_sliding_model_decode_ramp_is_one_exact_step():
    c = GpuStepCost(load_model("gemma-2-9b"), "h100", engine="vllm")
    dt0, _, valid = c.decode_run_affine(8, 48000)
    assert valid == 1 and dt0 == c.step_time_s(StepShape(decode_seqs=8, decode_context_tokens=48000))


def test_window_bounded_kv_gives_more_room_for_long_contexts():
    gemma = load_model("gemma-3-27b")
    plain = GpuStepCost(gemma, "h200", engine="roofline", kv_context_tokens=32768)
    bounded = GpuStepCost(gemma, "h200", engine="vllm", kv_context_tokens=32768)
    assert bounded.memory.kv_bytes_per_token < plain.memory.kv_bytes_per_token / 3


def test_pool_engine_key_reaches_the_step_cost():
    from twinfer.perf import make_step_cost
    from twinfer.sim.scenario import PoolConfig

    pool = PoolConfig.from_dict({"hardware": "h100", "tp": 1, "engine": "trtllm"}, "fleets[0].pools.mixed")
    assert pool.engine == "trtllm"
    cost = make_step_cost(load_model("llama-3-8b"), pool.hardware, engine=pool.engine)
    assert cost.engine.name == "trtllm"
    with pytest.raises(ConfigError, match="unknown engine 'tgi'"):
        PoolConfig.from_dict({"hardware": "h100", "engine": "tgi"}, "fleets[0].pools.mixed")
    with pytest.raises(ConfigError, match="is an LPU"):
        make_step_cost(load_model("llama-3-8b"), "groq-tsp-v1", engine="vllm")


def test_engine_attention_reproduces_the_measured_points_it_was_solved_from():
    """AIConfigurator's H100 TRT-LLM context attention (Llama-3.1-8B): 7.33 ms at 16 x 512, 193.4 ms at 64 x 2,048."""
    cost = GpuStepCost(load_model("llama-3.1-8b"), "h100", engine="trtllm")
    for prompts, n, ms in ((16, 512, 7.33), (64, 2048, 193.4)):
        attn = [o for o in cost.op_times(StepShape.prefill([n] * prompts)) if o.kind == "attention"]
        assert sum(o.total_s for o in attn) * 1e3 == pytest.approx(ms, rel=0.03)


def test_without_cuda_graphs_small_decode_steps_are_launch_bound():
    """Eager vLLM, Gemma-3-1B, one sequence: per layer 2 add+norms, qkv, qk-norm, RoPE, attention, out-proj,
    2 sandwich norms, up, act, down = 12 kernels; x 26 layers + embedding, final norm, lm_head = 315 launches
    at 8 us = 2.52 ms, more than the GPU's ~1.9 ms: the step takes the launch time plus its host overhead."""
    m = load_model("gemma-3-1b")
    graphs = GpuStepCost(m, "h100", engine="vllm")
    eager = GpuStepCost(m, "h100", engine=ENGINES["vllm"].without_cuda_graphs())
    shape = StepShape.decode([500])
    launches_s = 315 * 8e-6
    overhead = ENGINES["vllm"].step_overhead_s
    assert eager.host_time_s(shape)["launch_floor_s"] == pytest.approx(launches_s)
    assert graphs.step_time_s(shape) - overhead < launches_s  # the GPU alone would be faster
    assert eager.step_time_s(shape) == pytest.approx(launches_s + overhead)
    dt0, _, valid = eager.decode_run_affine(1, 500)
    assert dt0 == eager.step_time_s(shape) and valid == 1


def test_a_scenario_pool_runs_with_its_engine():
    """Two fleets that differ only in ``engine:``: the simulation runs both, the engine's host time and fusions
    change its latencies, and the same seed gives the same numbers."""
    from twinfer.sim import Scenario, simulate

    base = {"model": "llama-3-8b",
            "workload": {"num_requests": 60, "arrivals": {"kind": "poisson", "rate_per_s": 20},
                         "prompt_tokens": {"kind": "uniform", "low": 50, "high": 400},
                         "output_tokens": {"kind": "uniform", "low": 5, "high": 40}},
            "fleets": [{"name": "roofline", "pools": {"mixed": {"hardware": "h100"}}},
                       {"name": "vllm", "pools": {"mixed": {"hardware": "h100", "engine": "vllm"}}}]}
    scen = Scenario.from_dict(base)
    first = {r.name: r.summary for r in simulate(scen, seed=3).fleets}
    again = {r.name: r.summary for r in simulate(scen, seed=3).fleets}
    assert first == again
    assert first["vllm"]["tpot_p50_s"] != first["roofline"]["tpot_p50_s"]
    assert first["vllm"]["completed"] == first["roofline"]["completed"] == 60

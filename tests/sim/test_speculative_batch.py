"""Speculative pools in the simulator: verify steps of k + 1 tokens, seeded accepted lengths, metrics.

References are independent of the code under test: a timeline counted by hand (the same one as
test_multi_token.py's, which an always-accepting drafter with k = 1 must reproduce), the closed form
E[tokens per step] = (1 - a^(k+1)) / (1 - a) (Leviathan et al. 2023, eq. 1) with its sampling error,
and a pool without speculation (k: 0 must change nothing, byte for byte).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sim_factories import FixedCost, make_requests

from twinfer.errors import ConfigError
from twinfer.perf.speculative import SpeculativeConfig
from twinfer.perf.speculative_cost import SpeculativeStepCost
from twinfer.sim.cluster import FleetSim, PoolSetup
from twinfer.sim.metrics import PoolPricing, fleet_result
from twinfer.sim.request import RequestState
from twinfer.sim.scheduler import BatchingConfig

COST = FixedCost(fixed_s=0.01, per_token_s=0.001)


def _fleet(spec: SpeculativeConfig, cost=COST, seed: int = 0, track_tokens: bool = False, count: int = 1,
           **batching) -> FleetSim:
    setup = PoolSetup("mixed", SpeculativeStepCost(cost, spec, 0.0), count, BatchingConfig(**batching),
                      speculative=spec, seed=seed)
    return FleetSim([setup], kv_bytes_per_token=1000.0, num_layers=10, track_tokens=track_tokens)


def test_an_always_accepting_drafter_reproduces_the_hand_counted_two_token_timeline():
    # test_multi_token.py's timeline: A (10-token prompt, 6 wanted) and B (20, 3) at t = 0, steps of
    # 10 ms + 1 ms per token: prefill [0, 40 ms]; decode A, B x 2 [40, 54]; A x 2 [54, 66]; A x 2 [66, 78]
    sim = _fleet(SpeculativeConfig.build("mtp", 1, 1.0))
    sim.load_workload([0.0, 0.0], [10, 20], [6, 3])
    sim.run_until()
    a, b = sim.requests
    assert (a.finish_s, b.finish_s) == pytest.approx((0.078, 0.054))
    assert (a.generated, b.generated) == (6, 3) and a.state is b.state is RequestState.DONE
    res = fleet_result("f", sim, {"mixed": PoolPricing("f", 1, 1.0, 1.0, 2.0)}, 1.0, 1.0)
    # TPOT counts accepted tokens: A's 5 decode tokens in 38 ms, B's 2 in 14 ms
    assert res.requests["tpot_s"] == pytest.approx([0.038 / 5, 0.014 / 2])
    assert res.requests["max_tbt_s"] == pytest.approx([0.014, 0.014])
    assert res.summary["output_tokens"] == 9
    # 4 member-steps (A 3, B 1) emitted A's 2 + 2 + 1 (its last step: one wanted) and B's 2 tokens
    assert res.summary["pool.mixed.speculative.tokens_per_step"] == pytest.approx(7 / 4)
    assert res.summary["pool.mixed.speculative.expected_tokens_per_step"] == pytest.approx(2.0)
    sched = sim.instances[0].sched
    assert sched.outstanding == 0 and sched.ctx_sum == 0 and sched.free_blocks == sched.total_blocks
    # gaps: A 14, 0, 12, 0, 12 ms and B 14, 0 ms: 7 gaps, three of them 0
    assert sum(sched.tbt_hist.values()) == 7 and sched.tbt_hist[0] == 3


def test_the_server_streams_a_steps_accepted_tokens_at_its_end():
    from twinfer.serve.sim_fleet import SimulatedFleet

    fleet = SimulatedFleet(_fleet(SpeculativeConfig.build("mtp", 1, 1.0), track_tokens=True))
    key = fleet.submit(10, 6, 0.0)
    events = [e for e in fleet.run_until(float("inf")) if e.key == key]
    # prefill [0, 20 ms]; verify steps of 10 + 2 ms: two tokens at 32, 44 ms, the last one at 56 ms
    assert [e.time_s for e in events] == pytest.approx([0.020, 0.032, 0.032, 0.044, 0.044, 0.056])
    assert [e.index for e in events] == list(range(6)) and events[-1].last


@pytest.mark.parametrize("acceptance", [0.7, [0.9, 0.6, 0.3]], ids=["rate", "per-position"])
def test_mean_accepted_length_matches_the_closed_form(acceptance):
    k = 3
    a = [acceptance] * k if isinstance(acceptance, float) else acceptance
    # tokens per step: 1 + number of leading accepted drafts; P(>= i + 1 tokens) = a_1 ... a_i
    surv = np.cumprod(a)
    mean = 1.0 + surv.sum()  # the closed form, (1 - 0.7^4) / 0.3 = 2.533 for one rate
    p_len = np.append(1.0 - a[0], [surv[i] * (1.0 - a[i + 1]) for i in range(k - 1)])
    p_len = np.append(p_len, surv[-1])  # P(1 .. k + 1 tokens)
    var = float(np.sum(p_len * (np.arange(1, k + 2) - mean) ** 2))
    spec = SpeculativeConfig.build("mtp", k, acceptance)
    sim = _fleet(spec, seed=11, count=2)
    t, p, o = make_requests(200, 50.0, (20, 200), (100, 400), seed=5)
    sim.load_workload(t, p, o)
    sim.run_until()
    assert sim.completed == 200
    scheds = [i.sched for i in sim.instances]
    steps = sum(s.drawn_steps for s in scheds)
    drawn = sum(s.drawn_tokens for s in scheds) / steps
    assert abs(drawn - mean) < 4.0 * math.sqrt(var / steps)  # 4 sigma of the sample mean
    # what clients see: every step's tokens capped at the output; each request's last step may be cut
    emitted = sum(s.emitted_tokens for s in scheds)
    assert emitted == int(o.sum()) - 200  # every output token after the first came from a verify step
    assert sum(s.member_steps for s in scheds) == steps
    # TBT: one gap per token after each first, and a zero gap for every token after a step's first
    hist = {}
    for s in scheds:
        for b, w in s.tbt_hist.items():
            hist[b] = hist.get(b, 0) + w
    assert sum(hist.values()) == int(o.sum()) - 200
    assert hist[0] == emitted - steps


def test_same_seed_gives_identical_runs_and_another_seed_differs():
    spec = SpeculativeConfig.build("eagle", 4, 0.6)
    t, p, o = make_requests(60, 20.0, (20, 300), (20, 200), seed=2)

    def run(seed):
        sim = _fleet(spec, seed=seed, count=2)
        sim.load_workload(t, p, o)
        sim.run_until()
        return [(r.first_token_s, r.finish_s, r.max_tbt_s) for r in sim.requests]

    assert run(1) == run(1)
    assert run(1) != run(2)


def test_preempt_policy_grows_kv_for_drafts_and_resumes_the_stream():
    # a KV cache of 40 blocks of 8 tokens for requests of up to 300 tokens: preemptions happen
    spec = SpeculativeConfig.build("mtp", 3, [0.8, 0.6, 0.4])
    cost = FixedCost(fixed_s=0.01, per_token_s=0.0001, kv_tokens=320)
    sim = _fleet(spec, cost=cost, kv_policy="preempt", block_tokens=8)
    t, p, o = make_requests(40, 30.0, (20, 100), (50, 150), seed=3)
    sim.load_workload(t, p, o)
    sim.run_until()
    assert sim.completed == 40
    assert sum(r.preemptions for r in sim.requests) > 0
    assert [r.generated for r in sim.requests] == [int(x) for x in o]
    sched = sim.instances[0].sched
    assert sched.outstanding == 0 and sched.ctx_sum == 0 and sched.free_blocks == sched.total_blocks


SCENARIO = """
model: llama-3-8b
workload:
  num_requests: 40
  arrivals: {kind: poisson, rate_per_s: 8}
  prompt_tokens: {kind: uniform, low: 100, high: 600}
  output_tokens: {kind: uniform, low: 10, high: 120}
fleets:
  - name: colo
    pools: {mixed: {hardware: h100, count: 1%s}}
"""


def _summary(tmp_path, name, extra):
    from twinfer.cli import main

    (tmp_path / name).mkdir()
    f = tmp_path / name / "s.yaml"  # the same file name: the scenario is named after it
    f.write_text(SCENARIO % extra)
    out = tmp_path / name / "out"
    assert main(["simulate", str(f), "--seed", "4", "--out", str(out)]) == 0
    return (out / "summary.json").read_bytes(), (out / "requests.parquet").read_bytes()


def test_k_zero_is_byte_identical_to_a_pool_without_speculation(tmp_path):
    assert _summary(tmp_path, "off", ", speculative: {method: mtp, k: 0, acceptance: 0.7}") == \
        _summary(tmp_path, "plain", "")


def test_a_speculative_scenario_run_twice_is_byte_identical(tmp_path):
    extra = ", speculative: {method: eagle, k: 4, acceptance: [0.9, 0.7, 0.5, 0.3]}"
    assert _summary(tmp_path, "one", extra) == _summary(tmp_path, "two", extra)


def test_summary_names_the_settings_and_speculation_pays_at_high_acceptance(tmp_path):
    plain = json.loads(_summary(tmp_path, "plain", "")[0])
    spec = json.loads(_summary(tmp_path, "spec", ", speculative: {method: eagle, k: 3, acceptance: 0.8}")[0])
    fp, fs = plain["fleets"][0] if "fleets" in plain else plain, spec["fleets"][0] if "fleets" in spec else spec
    key = "pool.mixed.speculative"
    assert fs[f"{key}.method"] == "eagle" and fs[f"{key}.k"] == 3 and fs[f"{key}.acceptance"] == [0.8] * 3
    assert fs[f"{key}.expected_tokens_per_step"] == pytest.approx((1 - 0.8**4) / 0.2)
    assert 1.0 < fs[f"{key}.tokens_per_step"] <= 4.0
    assert f"{key}.k" not in fp
    assert fs["tpot_mean_s"] < fp["tpot_mean_s"]  # memory-bound decode: a verify step costs little more


def test_a_draft_model_costs_more_than_heads_at_the_same_acceptance(tmp_path):
    heads = json.loads(_summary(tmp_path, "heads", ", speculative: {method: eagle, k: 3, acceptance: 0.8}")[0])
    draft = json.loads(_summary(tmp_path, "draft", ", speculative: {method: draft, draft_model: llama-3.1-8b, "
                                                   "k: 3, acceptance: 0.8}")[0])
    fh, fd = heads["fleets"][0], draft["fleets"][0]
    # the same seed: the same draws, so the same tokens per step; three 8B decode steps outweigh three head passes
    assert fd["pool.mixed.speculative.tokens_per_step"] == fh["pool.mixed.speculative.tokens_per_step"]
    assert fd["pool.mixed.speculative.draft_model"] == "llama-3.1-8b"
    assert fd["tpot_mean_s"] > fh["tpot_mean_s"]
    assert fd["pool.mixed.kv_capacity_tokens"] < fh["pool.mixed.kv_capacity_tokens"]  # the 8B's weights and KV


@pytest.mark.parametrize("drafter, precision", [("h100", ""), ("groq-tsp-v1", ", precision: int8")])
def test_a_draft_model_on_its_own_devices_is_paid_for_and_keeps_its_own_memory(tmp_path, drafter, precision):
    """The drafter's devices join the instance's price and count; its cache, not the target's HBM, holds its KV."""
    from twinfer.hardware import get_hardware
    from twinfer.models import load_model
    from twinfer.models.ops import Precision
    from twinfer.perf import make_step_cost

    same = json.loads(_summary(tmp_path, "same", ", speculative: {method: draft, draft_model: llama-3.1-8b, "
                                                 "k: 3, acceptance: 0.8}")[0])["fleets"][0]
    own = json.loads(_summary(tmp_path, "own", ", speculative: {method: draft, draft_model: llama-3.1-8b, "
                                               f"k: 3, acceptance: 0.8, draft_devices: {{hardware: {drafter}{precision}}}}}")[0])
    fo, key = own["fleets"][0], "pool.mixed"
    weights = Precision(weights="int8") if precision else Precision()  # the pool's bf16 unless the drafter has its own
    alone = make_step_cost(load_model("llama-3.1-8b"), drafter, precision=weights).resources()
    target = make_step_cost(load_model("llama-3-8b"), "h100", precision=Precision()).resources()
    assert fo[f"{key}.speculative.draft_hardware"] == drafter
    assert fo[f"{key}.hardware"] == f"h100-sxm+{get_hardware(drafter).name}"
    assert fo["devices"] == 1 + alone.num_devices
    assert fo["price_per_hour_usd"] == pytest.approx(get_hardware("h100").price_per_hour_usd + alone.price_per_hour_usd)
    assert fo[f"{key}.kv_capacity_tokens"] == min(target.kv_capacity_tokens, alone.kv_capacity_tokens)
    # the same seed: the same draws; the drafter's devices change the time of each step, not what it yields
    assert fo[f"{key}.speculative.tokens_per_step"] == same[f"{key}.speculative.tokens_per_step"]
    assert fo["tpot_mean_s"] != same["tpot_mean_s"]


def test_cancelled_requests_leave_no_stream_behind():
    spec = SpeculativeConfig.build("mtp", 2, 0.5)
    sim = _fleet(spec)
    a, b = sim.submit(10, 50, 0.0), sim.submit(12, 40, 0.0)
    sim.run_until(0.1)
    sim.cancel(a)
    sim.run_until()
    sched = sim.instances[0].sched
    assert b.state is RequestState.DONE and a.state is RequestState.CANCELLED
    assert sched._streams == {} and sched._cum == {} and sched.free_blocks == sched.total_blocks


@pytest.mark.parametrize("spec, match", [
    ("{method: medusa, k: 3, acceptance: 0.7}", "unknown drafter"),
    ("{method: mtp, k: 3, acceptance: [0.9, 0.8]}", "one per proposed position"),
    ("{method: mtp, k: 3, acceptance: 1.5}", r"probabilities in \[0, 1\]"),
    ("{method: draft, k: 3, acceptance: 0.7}", "draft_model"),
    ("{method: mtp, k: 20, acceptance: 0.7}", "block_tokens"),
    ("{method: mtp, k: 3, acceptance: 0.7, depth: 2}", "unknown key"),
    ("{method: eagle, k: 3, acceptance: 0.7, draft_model: llama-3.1-8b}", r"draft_model: .* remove draft_model"),
    ("{method: mtp, k: 1, acceptance: 0.7}", r"method: .*llama-3-8b has none.* use method: eagle"),
    ("{k: 1, acceptance: 0.7}", r"method: mtp \(the default without a draft_model\)"),
    # drafters that cannot work: sized the other chip's way, unknown chip or link, another tokenizer, bigger
    ("{method: draft, k: 3, acceptance: 0.7, draft_model: llama-3.1-8b, draft_devices: {hardware: h100, chips: 4}}",
     r"draft_devices\.chips: h100 is a GPU"),
    ("{method: draft, k: 3, acceptance: 0.7, draft_model: llama-3.1-8b, draft_devices: {hardware: groq-tsp-v1, tp: 4}}",
     r"draft_devices\.tp: .* is an LPU"),
    ("{method: draft, k: 3, acceptance: 0.7, draft_model: llama-3.1-8b, draft_devices: {hardware: h100, link: warp}}",
     "draft_devices: unknown link"),
    ("{method: draft, k: 3, acceptance: 0.7, draft_model: llama-3.1-8b, draft_devices: {hardware: nope-9000}}",
     "draft_devices: unknown hardware"),
    ("{method: draft, k: 3, acceptance: 0.7, draft_model: mistral-7b}", "mistral-7b has a vocabulary of 32,000"),
    ("{method: draft, k: 3, acceptance: 0.7, draft_model: llama-3-70b}", "llama-3-70b is larger than the target"),
])
def test_bad_speculative_settings_are_named(spec, match):
    import yaml

    from twinfer.sim.scenario import Scenario

    d = yaml.safe_load(SCENARIO % f", speculative: {spec}")
    with pytest.raises(ConfigError, match=match) as err:
        Scenario.from_dict(d, "s.yaml")
    assert "s.yaml.fleets[0] (colo).pools.mixed.speculative" in str(err.value)


def test_speculation_on_a_prefill_pool_is_refused():
    import yaml

    from twinfer.sim.scenario import Scenario

    d = yaml.safe_load(SCENARIO % "")
    d["fleets"][0]["pools"] = {"prefill": {"hardware": "h100", "speculative": {"k": 2, "acceptance": 0.7}},
                               "decode": {"hardware": "h100"}}
    with pytest.raises(ConfigError, match="put speculative: on the decode pool"):
        Scenario.from_dict(d, "s.yaml")


def test_an_unknown_draft_model_is_a_clear_error(tmp_path, capsys):
    from twinfer.cli import main

    f = tmp_path / "s.yaml"
    f.write_text(SCENARIO % ", speculative: {method: draft, draft_model: nope-1b, k: 3, acceptance: 0.7}")
    assert main(["simulate", str(f), "--out", str(tmp_path / "o")]) == 2
    assert "speculative.draft_model" in capsys.readouterr().err


def test_a_decode_pool_reserves_the_kv_of_the_last_steps_drafts():
    from twinfer.sim.request import Request
    from twinfer.sim.speculative_batch import SpeculativeScheduler

    spec = SpeculativeConfig.build("mtp", 3, 0.5)
    sched = SpeculativeScheduler("decode", BatchingConfig(block_tokens=4), 1000, 8, False, spec, 0)
    r = Request(0, 0.0, 10, 6)
    r.generated = 1
    sched.try_reserve_remote(r)
    # reserved: prompt + output + k = 10 + 6 + 3 = 19 tokens, 5 blocks of 4 (the last verify step starts with at
    # most 5 tokens out and writes 3 drafts: 18 tokens, more than the 16 of prompt + output)
    assert r.blocks_in == 5


def test_disaggregated_speculative_decode_pool_finishes_every_request():
    spec = SpeculativeConfig.build("eagle", 3, [0.9, 0.7, 0.5])
    batching = BatchingConfig()
    pools = [PoolSetup("prefill", COST, 1, batching),
             PoolSetup("decode", SpeculativeStepCost(COST, spec, 0.05), 2, batching, speculative=spec, seed=3)]
    from twinfer.sim.cluster import LinkSetup

    sim = FleetSim(pools, kv_bytes_per_token=1000.0, num_layers=10, link=LinkSetup(1e12, 0.0))
    t, p, o = make_requests(50, 20.0, (20, 200), (2, 120), seed=9)
    sim.load_workload(t, p, o)
    sim.run_until()
    assert sim.completed == 50 and [r.generated for r in sim.requests] == [int(x) for x in o]
    decode = [i.sched for i in sim.instances if i.role == "decode"]
    assert sum(s.emitted_tokens for s in decode) == int(o.sum()) - 50  # first tokens come from prefill


def test_simulate_prints_the_tokens_per_verify_step(tmp_path, capsys):
    from twinfer.cli import main

    f = tmp_path / "s.yaml"
    f.write_text(SCENARIO % ", speculative: {method: eagle, k: 3, acceptance: 0.8}")
    assert main(["simulate", str(f)]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "speculative eagle k=3:" in out and "(2.95 expected)" in out  # (1 - 0.8^4) / 0.2 = 2.952

"""An autoscaling fleet: the planner acts on a load step at the times worked out by hand, pays what
it ran, never routes to a draining instance, moves instances between roles, and changes nothing
when it cannot act."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from sim_factories import FixedCost

from twinfer.sim import Scenario, simulate_fleet
from twinfer.sim.run import build_fleet_sim

# Prefill of a 1,000-token prompt: chunked steps of <= 2,048 tokens at 10 ms + 0.1 ms per token, so one
# instance prefills ~2 prompts per 0.215 s step (~9.5 requests/s); 15 requests/s swamp it, 30 do not swamp two.
COST = FixedCost(fixed_s=0.01, per_token_s=1e-4)


def _step_workload(light_end_s: float = 100.0, heavy_end_s: float = 160.0, heavy_rps: float = 15.0) -> SimpleNamespace:
    light = np.arange(0.0, light_end_s, 1.0)  # 1 request/s
    heavy = light_end_s + np.arange(1, int((heavy_end_s - light_end_s) * heavy_rps) + 1) / heavy_rps
    t = np.concatenate([light, heavy])
    n = len(t)
    return SimpleNamespace(arrival_s=t, prompt_tokens=np.full(n, 1000), output_tokens=np.full(n, 2), name="step")


def _scenario(autoscale: dict | None, pools: dict | None = None) -> Scenario:
    fleet = {"name": "f", "pools": pools or {"mixed": {"hardware": "h100", "count": 1}}}
    if autoscale is not None:
        fleet["autoscale"] = autoscale
    return Scenario.from_dict({
        "model": "llama-3-8b", "slo": {"ttft_s": 0.5, "tpot_s": 0.05},
        "workload": {"num_requests": 10, "arrivals": {"kind": "poisson", "rate_per_s": 1},
                     "prompt_tokens": {"kind": "fixed", "value": 1000}, "output_tokens": {"kind": "fixed", "value": 2}},
        "fleets": [fleet]})


STEP_PLANNER = {"interval_s": 10, "reconfigure_delay_s": 20, "patience_windows": 1, "cold_ratio": 0.0,
                "max_instances": {"mixed": 2}}


def test_a_load_step_adds_an_instance_after_one_window_plus_the_delay_and_pays_for_it() -> None:
    scen = _scenario(STEP_PLANNER)
    res = simulate_fleet(scen, scen.fleets[0], workload=_step_workload(), costs={"mixed": COST})
    s = res.summary
    assert res.autoscale is not None
    # Load steps up just after t=100. The window (100, 110] sees the queue grow past 4 per instance
    # (patience 1): the add is decided at 110, paid from then, and serves from 110 + 20 = 130.
    # cold_ratio 0 never lets the pool shrink; max 2 stops a second add.
    assert res.autoscale["timeline"] == [{"t_s": 0.0, "mixed": 1, "paid": 1}, {"t_s": 110.0, "mixed": 1, "paid": 2},
                                         {"t_s": 130.0, "mixed": 2, "paid": 2}]
    assert (s["autoscale.adds"], s["autoscale.removes"], s["autoscale.moves"]) == (1, 0, 0)
    # instance-hours by hand: 1 instance over [0, 110), 2 over [110, end)
    end = s["duration_s"]
    assert s["autoscale.instance_hours"] == pytest.approx((110.0 + 2 * (end - 110.0)) / 3600.0, rel=1e-12)
    assert s["autoscale.cost_usd"] == pytest.approx(s["autoscale.instance_hours"] * COST.price, rel=1e-12)
    # the new instance (global index 1) takes requests only once it serves
    inst = res.requests["prefill_instance"]
    assert (inst == 1).any()
    assert res.requests["arrival_s"][inst == 1].min() >= 130.0
    # static at peak: 2 instances over the static run; it meets the SLO more often than the autoscaled fleet,
    # which queued for 30 s before its second instance arrived
    assert s["autoscale.static_instances"] == 2
    static = simulate_fleet(scen, scen.fleets[0].__class__(name="s", pools={"mixed": scen.fleets[0].pools["mixed"].__class__(
        hardware="h100", count=2)}), workload=_step_workload(), costs={"mixed": COST})
    assert s["autoscale.static_instance_hours"] == pytest.approx(2 * static.summary["duration_s"] / 3600.0, rel=1e-12)
    assert s["autoscale.static_slo_attainment"] == static.summary["slo_attainment"] > s["slo_attainment"]
    assert s["autoscale.saving_fraction"] == pytest.approx(1 - s["autoscale.cost_usd"] / s["autoscale.static_cost_usd"])


def test_same_config_and_workload_give_identical_results() -> None:
    scen = _scenario(STEP_PLANNER)
    runs = [simulate_fleet(scen, scen.fleets[0], workload=_step_workload(), costs={"mixed": COST}) for _ in range(2)]
    assert runs[0].summary == runs[1].summary
    for k, col in runs[0].requests.items():
        assert np.array_equal(col, runs[1].requests[k], equal_nan=True), k


def test_a_planner_that_cannot_act_changes_no_request() -> None:
    """min = max = count: the planner runs every window but may not resize; every request is as without it."""
    wl = _step_workload()
    frozen = _scenario({"interval_s": 10, "min_instances": {"mixed": 2}, "max_instances": {"mixed": 2}},
                       pools={"mixed": {"hardware": "h100", "count": 2}})
    plain = _scenario(None, pools={"mixed": {"hardware": "h100", "count": 2}})
    a = simulate_fleet(frozen, frozen.fleets[0], workload=wl, costs={"mixed": COST})
    b = simulate_fleet(plain, plain.fleets[0], workload=wl, costs={"mixed": COST})
    for k, col in b.requests.items():
        assert np.array_equal(col, a.requests[k], equal_nan=True), k
    assert a.summary["autoscale.instance_hours"] == pytest.approx(2 * b.summary["duration_s"] / 3600.0, rel=1e-12)
    assert a.summary["autoscale.saving_fraction"] == pytest.approx(0.0, abs=1e-12)


def test_a_removed_instance_drains_and_routers_never_send_it_work() -> None:
    """Heavy then light load on 3 instances: the planner removes instances; none gets a request after its decision."""
    t = np.concatenate([np.arange(0, 60, 1 / 25.0), 60 + np.arange(0, 120, 1.0)])
    n = len(t)
    wl = SimpleNamespace(arrival_s=t, prompt_tokens=np.full(n, 1000), output_tokens=np.full(n, 50), name="down")
    scen = _scenario({"interval_s": 10, "reconfigure_delay_s": 5, "patience_windows": 2},
                     pools={"mixed": {"hardware": "h100", "count": 3}})
    for router in ("round_robin", "least_outstanding", "least_kv"):
        fleet = scen.fleets[0].__class__(name="f", pools=scen.fleets[0].pools, router=router,
                                         autoscale=scen.fleets[0].autoscale)
        sim, _ = build_fleet_sim(scen, fleet, costs={"mixed": COST})
        sim.load_workload(wl.arrival_s, wl.prompt_tokens, wl.output_tokens)
        sim.run_until()
        reb = sim.rebalancer
        removals = [c for c in reb.changes if c.action.kind == "remove"]
        assert removals, router
        for ch in removals:
            idx = ch.instance.index
            got = [r for r in sim.requests if r.prefill_instance == idx]
            assert all(r.arrival_s <= ch.action.decided_at_s for r in got), router
            # drained: it finished the requests it held, then left (its last one finished at the drain)
            assert ch.drained_s == ch.landed_s >= ch.action.decided_at_s
            if got:
                assert max(r.finish_s for r in got) <= ch.drained_s
        assert sim.completed == n


def test_a_disaggregated_fleet_moves_an_idle_decode_instance_to_prefill() -> None:
    """Prefill swamped, decode idle (two output tokens each): a decode instance drains, waits the delay, then prefills.

    A TTFT target of 0.2 s puts the light phase's 0.11 s TTFT between cold (< 0.5 x target) and hot, so the
    planner does not shrink the fleet before the step.
    """
    pools = {"prefill": {"hardware": "h100", "count": 1}, "decode": {"hardware": "h100", "count": 2}}
    scen = _scenario({"interval_s": 10, "reconfigure_delay_s": 20, "patience_windows": 1, "ttft_target_s": 0.2,
                      "max_instances": {"prefill": 2, "decode": 2}}, pools=pools)
    wl = _step_workload()
    sim, _ = build_fleet_sim(scen, scen.fleets[0], costs={"prefill": COST, "decode": COST})
    sim.load_workload(wl.arrival_s, wl.prompt_tokens, wl.output_tokens)
    sim.run_until()
    reb = sim.rebalancer
    moves = [c for c in reb.changes if c.action.kind == "move"]
    # decode is cold from the start (queue empty, its ITL tiny); the first hot prefill window ends at 110:
    # decode instance 2 (least work, newest on a tie) leaves at once, idle, and prefills from 110 + 20 = 130
    assert len(moves) == 1
    ch = moves[0]
    assert (ch.action.role, ch.action.decided_at_s, ch.instance.index, ch.drained_s, ch.landed_s) == \
        ("prefill", 110.0, 2, 110.0, 130.0)
    assert reb.timeline[:3] == [{"t_s": 0.0, "prefill": 1, "decode": 2, "paid": 3},
                                {"t_s": 110.0, "prefill": 1, "decode": 1, "paid": 3},
                                {"t_s": 130.0, "prefill": 2, "decode": 1, "paid": 3}]
    new = sim.pools["prefill"].instances[-1]
    assert new.index == 3 and len(sim.links) == 2
    got = [r for r in sim.requests if r.prefill_instance == 3]
    assert got and min(r.arrival_s for r in got) >= 130.0
    assert not any(r.decode_instance == 2 and r.kv_start_s > 110.0 for r in sim.requests)
    assert sim.completed == len(wl.arrival_s)


def test_live_submissions_restart_planning_after_an_idle_spell() -> None:
    """Emulation-server style: requests submitted in two bursts; the planner sleeps while idle and ticks again."""
    scen = _scenario(STEP_PLANNER)
    sim, _ = build_fleet_sim(scen, scen.fleets[0], costs={"mixed": COST})
    for k in range(300):  # 30 requests/s for 10 s: one instance falls behind
        sim.submit(1000, 2, at_s=k / 30.0)
    sim.run_until(200.0)
    reb = sim.rebalancer
    assert sim.completed == 300 and not reb.ticking
    grown = len(reb.changes)
    assert grown >= 1
    for k in range(300):
        sim.submit(1000, 2, at_s=500.0 + k / 30.0)
    assert reb.ticking
    sim.run_until()
    assert sim.completed == 600
    assert reb.last_tick_s > 500.0 and reb.last_tick_s % 10.0 == 0.0  # planned again, on the 10 s grid


def test_a_prefill_instance_moved_to_a_speculating_decode_pool_speculates() -> None:
    """Decode runs 2 sequences at a time: 4 requests/s of 200 outputs (800 tokens/s; one instance keeps at most
    2 x (3 + 1) tokens per 10 ms step) queue there while prefill idles. One of the two prefill instances moves
    (decided at the first window's end, 10 s; joins at 30 s) and, restarted as a decode instance, verifies drafts
    as the decode pool does: more than one token kept per verify step."""
    from twinfer.sim.speculative_batch import SpeculativeScheduler

    spec = {"method": "draft", "draft_model": "llama-3.1-8b", "k": 3, "acceptance": 0.8}
    pools = {"prefill": {"hardware": "h100", "tp": 8, "count": 2},
             "decode": {"hardware": "h100", "tp": 8, "batching": {"max_batch_seqs": 2}, "speculative": spec}}
    scen = Scenario.from_dict({
        "model": "llama-3.3-70b", "slo": {"ttft_s": 0.5, "tpot_s": 0.05},
        "workload": {"num_requests": 10, "arrivals": {"kind": "poisson", "rate_per_s": 1},
                     "prompt_tokens": {"kind": "fixed", "value": 100}, "output_tokens": {"kind": "fixed", "value": 2}},
        "fleets": [{"name": "f", "pools": pools, "autoscale": {
            "interval_s": 10, "reconfigure_delay_s": 20, "patience_windows": 1,
            "max_instances": {"prefill": 2, "decode": 2}}}]})
    n = 160
    sim, _ = build_fleet_sim(scen, scen.fleets[0], costs={"prefill": COST, "decode": FixedCost(fixed_s=0.01)})
    sim.load_workload(np.arange(n) * 0.25, np.full(n, 100), np.full(n, 200))
    sim.run_until()
    changes = [(c.action.kind, c.action.role, c.action.decided_at_s, c.landed_s) for c in sim.rebalancer.changes]
    assert changes[0] == ("move", "decode", 10.0, 30.0)
    joined = sim.pools["decode"].instances[-1]
    assert joined.index == 3 and isinstance(joined.sched, SpeculativeScheduler)
    assert not isinstance(sim.pools["prefill"].instances[0].sched, SpeculativeScheduler)
    assert any(r.decode_instance == 3 for r in sim.requests) and sim.completed == n
    assert joined.sched.emitted_tokens > 1.5 * joined.sched.member_steps > 0


def test_the_trace_names_an_instance_that_joined_after_a_move_by_its_new_role() -> None:
    from twinfer.sim.timeline import instance_names

    pools = {"prefill": {"hardware": "h100", "count": 1}, "decode": {"hardware": "h100", "count": 2}}
    scen = _scenario({"interval_s": 10, "reconfigure_delay_s": 20, "patience_windows": 1, "ttft_target_s": 0.2,
                      "max_instances": {"prefill": 2, "decode": 2}}, pools=pools)
    res = simulate_fleet(scen, scen.fleets[0], workload=_step_workload(), costs={"prefill": COST, "decode": COST},
                         record_timeline=True)
    # fleet-wide index 3 is the instance that left decode (index 2) and joined prefill as its second instance
    assert instance_names(res) == {0: "prefill 0 (fake)", 1: "decode 0 (fake)", 2: "decode 1 (fake)",
                                   3: "prefill 1 (fake)"}
    assert res.summary["autoscale.moves"] == 1 and res.summary["pool.prefill.instances"] == 2


@pytest.mark.slow
def test_the_diurnal_example_saves_instance_hours_against_its_static_peak() -> None:
    from pathlib import Path

    from twinfer.sim import load_scenario, simulate

    path = Path(__file__).resolve().parents[2] / "examples" / "autoscale_diurnal.yaml"
    res = simulate(load_scenario(path), seed=0)
    for f in res.fleets:
        s = f.summary
        assert s["completed"] == s["requests"] > 10_000
        assert s["autoscale.instance_hours"] < s["autoscale.static_instance_hours"]
        assert s["autoscale.min_instances"] < s["autoscale.peak_instances"] <= s["autoscale.static_instances"]
        assert 0.0 < s["slo_attainment"] <= s["autoscale.static_slo_attainment"] <= 1.0


def test_a_decode_instance_that_joins_takes_hand_offs_waiting_for_kv_room() -> None:
    """Decode KV holds 2 requests: hand-offs queue in the decode pool; the added decode instance takes them on joining."""
    pools = {"prefill": {"hardware": "h100", "count": 1}, "decode": {"hardware": "h100", "count": 1}}
    scen = _scenario({"interval_s": 10, "reconfigure_delay_s": 20, "patience_windows": 1,
                      "max_instances": {"prefill": 1, "decode": 2}}, pools=pools)
    n = 40
    t = np.arange(n) * 0.5  # 2 requests/s of 100 prompt tokens and 200 outputs at 10 ms per decode step
    wl = SimpleNamespace(arrival_s=t, prompt_tokens=np.full(n, 100), output_tokens=np.full(n, 200), name="kv")
    small = FixedCost(fixed_s=0.01, kv_tokens=2 * 304)  # room for two requests (19 blocks of 16 tokens each)
    sim, _ = build_fleet_sim(scen, scen.fleets[0], costs={"prefill": COST, "decode": small})
    sim.load_workload(wl.arrival_s, wl.prompt_tokens, wl.output_tokens)
    sim.run_until()
    adds = [c for c in sim.rebalancer.changes if c.action.kind == "add"]
    # the decode queue passes 4 per instance within the first window: add decided at 10, joining at 30
    assert [(c.action.role, c.action.decided_at_s, c.landed_s) for c in adds] == [("decode", 10.0, 30.0)]
    new = sim.pools["decode"].instances[-1]
    took = sorted(r.kv_start_s for r in sim.requests if r.decode_instance == new.index)
    assert took[:2] == [30.0, 30.0]  # two waiting hand-offs start their transfers the moment it joins
    assert sim.completed == n

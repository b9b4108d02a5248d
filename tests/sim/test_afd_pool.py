"""AFD decode pools in scenarios: the schema and its errors, KV from the attention group, price of both groups."""

from __future__ import annotations

import copy

import pytest

from twinfer.afd.config import AfdConfig, AttentionGroup, FfnGroup
from twinfer.cli import main
from twinfer.errors import ConfigError
from twinfer.hardware import get_hardware
from twinfer.sim import Scenario, simulate_fleet

AFD_DECODE = {"attention": {"hardware": "h100", "count": 2}, "ffn": {"hardware": "h100", "ep": 2},
              "link": "nvlink", "micro_batches": 2}
BASE = {
    "model": "mixtral-8x7b",
    "workload": {"num_requests": 60, "arrivals": {"kind": "poisson", "rate_per_s": 5},
                 "prompt_tokens": {"kind": "uniform", "low": 10, "high": 400},
                 "output_tokens": {"kind": "uniform", "low": 2, "high": 40}},
    "fleets": [{"name": "afd", "pools": {"prefill": {"hardware": "h100", "tp": 2}, "decode": AFD_DECODE}}],
}


def scenario_with(decode=None, prefill=None) -> Scenario:
    d = copy.deepcopy(BASE)
    pools = d["fleets"][0]["pools"]
    if decode is not None:
        pools["decode"] = decode
    if prefill is not None:
        pools["prefill"] = prefill
    return Scenario.from_dict(d, "s.yaml")


def test_an_afd_pool_parses_into_its_groups():
    fleet = scenario_with().fleets[0]
    pool = fleet.pools["decode"]
    assert pool.afd == AfdConfig(AttentionGroup("h100-sxm", replicas=2), FfnGroup("h100-sxm", ep=2), link="nvlink4",
                                 micro_batches=2)
    assert pool.hardware == "h100-sxm"  # the attention GPU: the pool's KV lives there
    assert fleet.mode == "disaggregated" and fleet.mode_label == "AFD"
    lpu = scenario_with({"attention": {"hardware": "h100"}, "ffn": {"hardware": "groq3-lp30", "count": 64}})
    assert lpu.fleets[0].pools["decode"].afd.ffn == FfnGroup("groq3-lp30", chips=64)
    gpus = scenario_with({"attention": {"hardware": "h100"}, "ffn": {"hardware": "h200", "count": 8, "tp": 2}})
    assert gpus.fleets[0].pools["decode"].afd.ffn == FfnGroup("h200", ep=4, tp=2)


@pytest.mark.parametrize("decode,prefill,message", [
    ({"attention": {"hardware": "h100"}}, None, r"decode\.ffn: an AFD pool needs both"),
    ({**AFD_DECODE, "tp": 2}, None, r"pools\.decode: tp of an AFD pool go under attention: or ffn:"),
    ({**AFD_DECODE, "attention": {"hardware": "h1000"}}, None, r"pools\.decode\.attention\.hardware: .*h1000"),
    ({**AFD_DECODE, "link": "warp"}, None, r"pools\.decode\.link: .*warp"),
    ({**AFD_DECODE, "micro_batches": 0}, None, r"pools\.decode\.micro_batches: expected an integer >= 1"),
    ({**AFD_DECODE, "ffn": {"hardware": "groq3-lp30", "ep": 4}}, None, r"decode\.ffn: groq3-lp30 is an LPU"),
    ({**AFD_DECODE, "ffn": {"hardware": "h100", "chips": 4}}, None, r"decode\.ffn\.chips: h100-sxm is a GPU"),
    ({**AFD_DECODE, "ffn": {"hardware": "h100", "count": 6, "ep": 4}}, None, r"decode\.ffn\.count: 6 GPUs must be"),
    ({**AFD_DECODE, "attention": {"hardware": "h100", "cnt": 2}}, None, r"decode\.attention: unknown key 'cnt'"),
    (None, AFD_DECODE, r"pools\.prefill: attention:/ffn: groups split a decode pool"),
])
def test_bad_afd_pools_name_the_key_and_the_fix(decode, prefill, message):
    with pytest.raises(ConfigError, match=r"s\.yaml.*" + message):
        scenario_with(decode, prefill)


def test_the_simulator_takes_kv_from_attention_and_prices_both_groups():
    from twinfer.afd.step_cost import AfdStepCost
    from twinfer.models import load_model

    scen = scenario_with()
    res = simulate_fleet(scen, scen.fleets[0], seed=0)
    s = res.summary
    assert s["completed"] == 60 and s["mode"] == "AFD"
    assert s["pool.decode.afd"] == "attention 2x h100-sxm tp1 + ffn 2x h100-sxm ep2 tp1 over nvlink4, 2 micro-batches"
    afd = AfdStepCost(load_model("mixtral-8x7b"), scen.fleets[0].pools["decode"].afd)
    per_replica = int(afd.attention.memory.kv_free_bytes // afd.attention.memory.kv_bytes_per_token)
    assert s["pool.decode.kv_capacity_tokens"] == 2 * per_replica
    h100 = get_hardware("h100").price_per_hour_usd
    assert s["price_per_hour_usd"] == pytest.approx((2 + 2 + 2) * h100)  # prefill tp2 + attention 2 + ffn 2
    assert s["devices"] == 6


def test_cli_refuses_a_bad_afd_pool_with_one_line(tmp_path, capsys):
    import yaml

    d = copy.deepcopy(BASE)
    d["fleets"][0]["pools"]["decode"] = {**AFD_DECODE, "ffn": {"hardware": "groq3-lp30", "chips": 3}}
    f = tmp_path / "afd.yaml"
    f.write_text(yaml.safe_dump(d))
    assert main(["simulate", str(f), "--no-bands"]) == 2
    err = capsys.readouterr().err
    assert "ffn.chips >=" in err and "Traceback" not in err


def test_the_factory_example_names_its_modes():
    from pathlib import Path

    from twinfer.sim import load_scenario

    scen = load_scenario(Path(__file__).resolve().parents[2] / "examples" / "factory_2026.yaml")
    assert [f.mode_label for f in scen.fleets] == ["aggregated", "disaggregated", "disaggregated", "AFD"]
    afd = scen.fleets[3].pools["decode"].afd
    assert afd.attention.hardware == "vr200" and afd.ffn.hardware == "groq3-lp30" and afd.link == "lpx-gpu"

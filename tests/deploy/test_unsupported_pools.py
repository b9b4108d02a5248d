"""Fleets deploy cannot write recipes for (AFD, wide EP, speculative pools): one clear error each, never commands
that silently drop what the simulation assumed."""

from __future__ import annotations

import json

import pytest

from twinfer.deploy.fleet import load_fleet
from twinfer.errors import ConfigError

AFD = {"attention": {"hardware": "vr200", "replicas": 8, "tp": 1}, "ffn": {"hardware": "groq3-lp30", "chips": None,
                                                                          "ep": 1, "tp": 1},
       "link": "lpx-gpu", "micro_batches": 2}


def test_a_simulated_afd_fleet_is_refused(tmp_path):
    doc = {"fleets": [{"fleet": "d"}], "inputs": {"model": {"name": "deepseek-v3"}, "fleets": {"d": {"pools": {
        "prefill": {"hardware": "vr200", "count": 1},
        "decode": {"hardware": "vr200", "count": 1, "afd": AFD}}}}}}
    (tmp_path / "summary.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"fleet 'd' has an attention/FFN-disaggregated \(AFD\) decode pool"):
        load_fleet(tmp_path)


def test_a_planned_afd_candidate_is_refused(tmp_path):
    doc = {"schema": "twinfer.plan/1", "model": "deepseek-v3", "candidates": [{"key": "k", "mode": "disaggregated", "pools": [
        {"role": "prefill", "hardware": "vr200", "count": 1},
        {"role": "decode", "hardware": "vr200", "count": 1, "afd": "attention 8x vr200 tp1 + ffn ..."}]}]}
    (tmp_path / "plan.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=r"fleet 'k' has an attention/FFN-disaggregated \(AFD\)"):
        load_fleet(tmp_path, "k")


@pytest.mark.parametrize(("extra", "message"), [({"ep": 8}, r"expert parallelism \(ep=8\)"),
                                                ({"speculative": {"method": "eagle", "k": 4, "acceptance": 0.8}},
                                                 "speculative pool")])
def test_ep_and_speculative_pools_are_refused(tmp_path, extra, message):
    doc = {"fleets": [{"fleet": "a"}], "inputs": {"model": {"name": "deepseek-v3"}, "fleets": {"a": {"pools": {
        "mixed": {"hardware": "vr200", "count": 4, **extra}}}}}}
    (tmp_path / "summary.json").write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=message):
        load_fleet(tmp_path)

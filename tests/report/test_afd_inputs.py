"""The recorded inputs of a run name an AFD pool's FFN chip and the link between its groups."""

from __future__ import annotations

from twinfer.report.html_inputs_doc import inputs_document
from twinfer.sim import Scenario
from twinfer.sim.run import build_scenario_workload, load_scenario_model


def test_afd_pool_inputs_carry_both_groups_hardware_and_the_link():
    scen = Scenario.from_dict({
        "model": "mixtral-8x7b",
        "workload": {"num_requests": 5, "arrivals": {"kind": "poisson", "rate_per_s": 1},
                     "prompt_tokens": {"kind": "fixed", "value": 100}, "output_tokens": {"kind": "fixed", "value": 5}},
        "fleets": [{"name": "afd", "pools": {
            "prefill": {"hardware": "h100", "tp": 2},
            "decode": {"attention": {"hardware": "h100", "count": 2}, "ffn": {"hardware": "groq3-lp30"},
                       "precision": "fp8"}}}],
    }, "s.yaml")
    doc = inputs_document(scen, load_scenario_model(scen), build_scenario_workload(scen, 0))
    assert {"h100-sxm", "groq3-lp30"} <= set(doc["hardware"])
    assert "lpx-gpu" in doc["links"]  # the default link to LPU experts
    assert doc["fleets"]["afd"]["pools"]["decode"]["afd"]["ffn"]["hardware"] == "groq3-lp30"

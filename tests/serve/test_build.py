"""Fleet plans: a scenario's fleet, a quick one-pool fleet, fixed latencies; the CLI's checks."""

from __future__ import annotations

import pytest

from twinfer.cli import main
from twinfer.cli.serve import is_loopback
from twinfer.errors import UnknownNameError
from twinfer.serve.build import fixed_plan

SCENARIO = {
    "name": "tiny",
    "model": "llama-3-8b",
    "workload": {"trace": "builtin:azure-conv-sample"},
    "fleets": [
        {"name": "one-h100", "pools": {"mixed": {"hardware": "h100"}}},
        {"name": "two-h100", "pools": {"mixed": {"hardware": "h100", "count": 2}}},
    ],
}


def test_scenario_plan_picks_the_named_fleet():
    from twinfer.serve.build import plan_from_scenario
    from twinfer.sim import Scenario

    scenario = Scenario.from_dict(SCENARIO)
    first = plan_from_scenario(scenario, None)
    second = plan_from_scenario(scenario, "two-h100")
    assert (
        first.model_name == "llama-3-8b" and first.context_tokens == 8192
    )  # Llama 3 8B config.json
    assert "one-h100" in first.label and "two-h100" in second.label
    assert len(second.make_sim().sim.instances) == 2
    with pytest.raises(UnknownNameError, match="one-h100, two-h100"):
        plan_from_scenario(scenario, "nope")


def test_fixed_plan_uses_the_model_context():
    plan = fixed_plan(ttft_s=0.1, itl_s=0.01, model="mistral-7b")
    assert plan.context_tokens == 32768  # Mistral 7B v0.1 config.json max_position_embeddings
    assert plan.make_sim().next_event_s() is None


@pytest.mark.parametrize(
    ("host", "loop"),
    [
        ("127.0.0.1", True),
        ("127.0.0.5", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("192.168.1.4", False),
        ("example.com", False),
    ],
)
def test_loopback_detection(host, loop):
    assert is_loopback(host) is loop


def test_cli_rejects_a_nonpositive_speed(capsys):
    assert main(["serve", "--fixed-ttft-ms", "10", "--speed", "0"]) == 2
    assert "--speed" in capsys.readouterr().err

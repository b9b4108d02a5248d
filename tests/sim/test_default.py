"""The built-in scenario is sized on the prices in effect, a hardware file's included."""

import json
import re

from twinfer.hardware import get_hardware, spec_table
from twinfer.sim.default import GPU_TP, default_scenario

GPU_PRICE = 1.5  # $/h per H100 in the file below (the preset's is different)
LPU_PRICE = 0.5  # $/h per TSP chip


def _repriced(tmp_path) -> str:
    """[gpu.h100-sxm] and [lpu.groq-tsp-v1] with the presets' figures at new prices."""
    gpu = {**spec_table(get_hardware("h100-sxm")), "price_per_hour_usd": GPU_PRICE}
    lpu = {**spec_table(get_hardware("groq-tsp-v1")), "price_per_hour_usd": LPU_PRICE,
           "microarch_based_on": "groq-tsp-v1"}
    path = tmp_path / "prices.yaml"
    path.write_text(json.dumps({"gpu": {"h100-sxm": gpu}, "lpu": {"groq-tsp-v1": lpu}}), encoding="utf-8")
    return str(path)


def _fleet_prices(scen) -> dict[str, float]:
    """$/h of each fleet: instances x chips per instance x the file's price per chip."""
    from twinfer.models import load_model
    from twinfer.sim.run import make_pool_cost

    model = load_model(scen.model)
    out = {}
    for fleet in scen.fleets:
        total = 0.0
        for pool in fleet.pools.values():
            chips = make_pool_cost(model, pool, extra_hardware=scen.extra_hardware()).resources().num_devices
            total += pool.count * chips * (GPU_PRICE if pool.hardware == "h100" else LPU_PRICE)
        out[fleet.name] = total
    return out


def test_a_hardware_file_reprices_the_budget_and_the_fleets(tmp_path):
    """Each fleet spends the stated budget up to less than one more unit; before, the note kept the presets' budget
    ($1,312/h) while the repriced fleets cost half of it."""
    scen, notes = default_scenario(hardware_file=_repriced(tmp_path))
    assert scen.hardware_file is not None and scen.extra_hardware() is not None
    (note,) = [n for n in notes if n.startswith("budget ")]
    budget = float(re.match(r"budget \$([\d,.]+)/h", note).group(1).replace(",", ""))
    assert "prices.yaml" in note
    unit = GPU_TP * GPU_PRICE
    prices = _fleet_prices(scen)
    for name, price in prices.items():
        assert price <= budget + 1e-9, (name, price, budget)
    # Fleets of whole GPU instances come within one instance of the budget.
    assert budget - prices["a) colocated H100"] < unit
    assert budget - prices["b) H100 -> H100"] < unit


def test_without_a_file_the_budget_is_the_presets(tmp_path):
    scen, notes = default_scenario()
    assert scen.hardware_file is None
    assert any("(prices are preset assumptions)" in n for n in notes)  # as before this change

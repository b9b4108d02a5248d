"""The report's autoscaling section: present only for autoscaled fleets, values cited from summary.json."""

from __future__ import annotations

from twinfer.report.html_autoscale import autoscale_section
from twinfer.report.html_sim import compare_table, fleet_entries

SUMMARY = {
    "fleets": [
        {"fleet": "plain", "slo_attainment": 1.0},
        {"fleet": "auto", "duration_s": 100.0, "slo_attainment": 0.95, "autoscale.policy": "dynamo",
         "autoscale.instance_hours": 0.05, "autoscale.static_instance_hours": 0.0833, "autoscale.cost_usd": 0.5,
         "autoscale.static_cost_usd": 0.833, "autoscale.static_slo_attainment": 0.99, "autoscale.moves": 1},
    ],
    "autoscale": {"auto": {"timeline": [{"t_s": 0.0, "prefill": 1, "decode": 2, "paid": 3},
                                        {"t_s": 40.0, "prefill": 1, "decode": 1, "paid": 3},
                                        {"t_s": 60.0, "prefill": 2, "decode": 1, "paid": 3}]}},
}


def test_the_section_compares_autoscaled_fleets_with_their_static_peak_and_plots_counts() -> None:
    sec = autoscale_section(SUMMARY, fleet_entries(SUMMARY), compare_table)
    assert sec is not None
    html = sec.html_after
    assert "auto" in html and "plain" not in html  # only autoscaled fleets get a column
    assert "static at peak: SLO attainment" in html and "/fleets/1/autoscale.static_slo_attainment" in html
    assert len(sec.figures) == 1
    data = sec.figures[0].spec["data"]
    by_name = {d["name"]: d for d in data}
    # step lines held to the end of the run (100 s)
    assert by_name["prefill serving"]["x"] == [0.0, 40.0, 60.0, 100.0]
    assert by_name["prefill serving"]["y"] == [1.0, 1.0, 2.0, 2.0]
    assert by_name["decode serving"]["y"] == [2.0, 1.0, 1.0, 1.0]
    assert by_name["decode serving"]["line"]["shape"] == "hv"


def test_no_section_without_an_autoscaled_fleet() -> None:
    summary = {"fleets": [SUMMARY["fleets"][0]]}
    assert autoscale_section(summary, fleet_entries(summary), compare_table) is None

"""The simulation report's prefix-cache section: shown, with cited cells, only when a fleet caches prefixes."""

from __future__ import annotations

from twinfer.report.html_sim import _prefix_section


def test_prefix_section_cites_each_fleets_numbers():
    fleets = [("plain", 0, {"fleet": "plain", "ttft_p50_s": 0.4}),
              ("cached", 1, {"fleet": "cached", "prefix_hit_rate": 0.081, "prefix_saved_prefill_s": 42.0,
                             "prefix_route_best_frac": 0.9, "pool.mixed.prefix_hit_rate": 0.081})]
    section = _prefix_section(fleets)
    assert section is not None and section.section_id == "prefix"
    html = section.html_after
    for key in ("prefix_hit_rate", "prefix_saved_prefill_s", "prefix_route_best_frac", "pool.mixed.prefix_hit_rate"):
        assert f'data-path="/fleets/1/{key}"' in html
    assert "prefix_tier_hit_tokens" not in html  # rows only for keys some fleet has
    assert [f.fig_id for f in section.figures] == ["bar-prefix-hit"]


def test_no_fleet_caches_no_section():
    assert _prefix_section([("plain", 0, {"fleet": "plain", "ttft_p50_s": 0.4})]) is None

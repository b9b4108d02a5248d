"""The simulation report shows LPU bands as cited low/high cells when summary.json has them."""

from __future__ import annotations

from twinfer.report.html_sim import lpu_band_table


def test_band_cells_cite_the_range_entries():
    fleets = [("gpu", 0, {"fleet": "gpu", "tpot_p50_s": 0.02}),
              ("lpu", 1, {"fleet": "lpu", "tpot_p50_s": 0.0035, "tpot_p50_s_range": [0.0031, 0.0041]})]
    html = lpu_band_table(fleets)
    assert 'data-path="/fleets/1/tpot_p50_s_range/0"' in html
    assert 'data-path="/fleets/1/tpot_p50_s_range/1"' in html
    assert "LPU band low" in html and "LPU band high" in html


def test_no_band_no_table():
    assert lpu_band_table([("gpu", 0, {"fleet": "gpu", "tpot_p50_s": 0.02})]) == ""

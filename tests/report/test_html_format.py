"""Formatting and provenance helpers: JSON Pointers, number display, cells that cite their source."""

from __future__ import annotations

import json

import pytest

from twinfer.report.html_format import (
    Cell,
    format_number,
    json_for_script,
    pointer,
    resolve_pointer,
    scalar_leaves,
    unit_of,
)


def test_pointer_round_trips_keys_with_slashes_and_tildes() -> None:
    doc = {"fleets": [{"a/b": {"x~y": 3.5}}]}
    ptr = pointer(("fleets", 0, "a/b", "x~y"))
    assert ptr == "/fleets/0/a~1b/x~0y"  # RFC 6901 section 3 escaping
    assert resolve_pointer(doc, ptr) == 3.5


@pytest.mark.parametrize(
    ("value", "text"),
    [(19366, "19,366"), (0.000123456, "1.235e-04"), (0.2134567, "0.2135"), (1234.5678, "1,235"),
     (27420.3, "27,420"), (123456.7, "123,500"), (999.96, "1,000"), (2.0, "2"), (0.1, "0.1"),
     (12.3456, "12.35"), (-27420.0, "-27,420"), (3.35e12, "3.350e+12"), (0.0, "0"), (None, "—"), (True, "true")],
)
def test_format_number_shows_four_significant_digits(value: object, text: str) -> None:
    assert format_number(value) == text


def test_number_cell_carries_exact_value_and_source() -> None:
    html = Cell(0.123456789, "summary.json", "/fleets/0/ttft_p50_s").html()
    assert 'data-value="0.123456789"' in html and 'data-path="/fleets/0/ttft_p50_s"' in html
    assert ">0.1235<" in html


def test_text_is_escaped() -> None:
    assert "<script>" not in Cell("<script>alert(1)</script>").html()
    assert "</script" not in json_for_script({"name": "</script><script>x()</script>"})
    assert json.loads(json_for_script({"a": "<&>"})) == {"a": "<&>"}


def test_scalar_leaves_skip_series_and_walk_lists_of_objects() -> None:
    doc = {"a": 1, "series": [1.0, 2.0], "pools": [{"u": 0.5}], "b": {"c": "x"}}
    assert scalar_leaves(doc) == [(("a",), 1), (("pools", 0, "u"), 0.5), (("b", "c"), "x")]


def test_unit_of_reads_the_key_suffix() -> None:
    assert unit_of("ttft_p99_s") == "s"
    assert unit_of("throughput_output_tok_s") == "tok/s"  # the simulator's name for a token rate
    assert unit_of("goodput_rps") == "req/s"
    assert unit_of("mode") == ""
    assert unit_of("kv_bytes") == "B"


@pytest.mark.parametrize(("key", "label"), [
    ("workload.arrivals.rate_per_s", "request rate (req/s)"), ("goodput_rps", "goodput (req/s)"),
    ("ttft_p99_s", "TTFT p99 (s)"), ("cost_per_m_output_tok_usd", "cost per M output tokens ($)"),
    ("fleets.0.pools.mixed.count", "mixed count"), ("slo_attainment", "SLO attainment"),
    ("fraction of requests ≤ x", "fraction of requests ≤ x"),
])
def test_axis_labels_are_words_with_units(key: str, label: str) -> None:
    from twinfer.report.html_format import axis_label

    assert axis_label(key) == label


def test_chart_axes_use_readable_titles_and_plain_hover_numbers() -> None:
    from twinfer.report.charts import line_figure

    layout = line_figure("t", "workload.arrivals.rate_per_s", "goodput_rps", [("a", [1, 2], [3, 27420.5])])["layout"]
    assert layout["xaxis"]["title"]["text"] == "request rate (req/s)"
    assert layout["yaxis"]["title"]["text"] == "goodput (req/s)"
    assert layout["yaxis"]["hoverformat"] == ",.4~r"  # d3: significant digits, never exponent notation

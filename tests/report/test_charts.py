"""Chart specs: valid plotly figures that plot the files' values unchanged."""

from __future__ import annotations

import numpy as np

from twinfer.report import charts


def _validate(spec: dict) -> None:
    """plotly's own validators reject unknown properties and wrong types."""
    import plotly.graph_objects as go

    go.Figure(spec)


def test_cdf_is_the_empirical_distribution() -> None:
    # Hand-counted: 4 finite values -> steps at 1/4, 2/4, 3/4, 4/4; NaN is left out.
    spec = charts.cdf_figure("t", "x", [("a", [3.0, 1.0, np.nan, 2.0, 2.0])])
    _validate(spec)
    (trace,) = spec["data"]
    assert trace["x"] == [1.0, 2.0, 2.0, 3.0]
    assert trace["y"] == [0.25, 0.5, 0.75, 1.0]
    assert trace["name"] == "a (n=4)"


def test_long_series_keep_ends_and_at_most_max_points() -> None:
    idx = charts.thin_indices(100_000)
    assert len(idx) <= charts.MAX_POINTS and idx[0] == 0 and idx[-1] == 99_999
    spec = charts.cdf_figure("t", "x", [("a", np.arange(100_000, dtype=float))])
    assert spec["data"][0]["x"][-1] == 99_999.0 and spec["data"][0]["y"][-1] == 1.0


def test_other_charts_are_valid_plotly() -> None:
    _validate(charts.line_figure("t", "x", "y", [("s", [0, 1], [2, 3])], step=True))
    _validate(charts.bar_figure("t", "y", ["a", "b"], [("g", [1.0, 2.0])]))
    _validate(charts.scatter_figure("t", "x", "y", x=[1, 2], y=[2, 1], labels=["p", "q"], color=[5.0, 6.0],
                                    color_title="W", frontier=[True, True]))
    _validate(charts.sram_figure("t", [0, 1], [1e8, 2e8], 2.3e8))


def test_cdf_axis_turns_log_when_fleets_are_orders_of_magnitude_apart() -> None:
    near = charts.cdf_figure("t", "x", [("a", [0.1, 0.2]), ("b", [0.3, 5.0])])
    far = charts.cdf_figure("t", "x", [("a", [0.1, 0.2]), ("b", [30.0, 400.0])])
    assert near["layout"]["xaxis"].get("type") is None
    assert far["layout"]["xaxis"]["type"] == "log"

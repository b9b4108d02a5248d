"""calibrate-lpu: recovers a known parameter set from measurements it generated, skips rows that do not compile."""

from __future__ import annotations

import json

import pytest

from twinfer.lpu.calibrate import Case, calibrate, calibration_json, load_measurements
from twinfer.lpu.chip import make_chip, params_from_values
from twinfer.lpu.microarch import shipped_sets

TRUTH = {"host_loop_s": 6e-4, "mxm_wide_install_factor": 2.0, "stage_sync_cycles": 1000,
         "sampling_ops_per_logit": 1, "mxm_ktile_acc_cycles": 0}

ROW = """
[[measurement]]
id = "{id}"
role = "{role}"
model = "{model}"
hardware = "groq-tsp-v1"
chips = {chips}
batch = 1
context = 1024
metric = "tokens_per_s_per_user"
value = {value}
tolerance_rel = 0.05
source = "synthetic"
"""


def _truth_value(model: str, chips: int) -> float:
    base = shipped_sets(calibrated=False)["groq-tsp-v1"]
    chip = make_chip("groq-tsp-v1", params=params_from_values(base.values))
    (m,) = load_measurements_from(ROW.format(id="x", role="fit", model=model, chips=chips, value=1.0))
    return Case(m, chip).predict(TRUTH)


def load_measurements_from(text: str, tmp=None):
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "m.toml"
        p.write_text(text, encoding="utf-8")
        return load_measurements(p)


def test_fit_recovers_a_known_set_and_reports_held_out_and_skipped_rows():
    rows = [("a", "fit", "llama-2-7b", 72), ("b", "fit", "llama-2-70b", 8), ("c", "held_out", "llama-2-7b", 40)]
    text = ""
    for rid, role, model, chips in rows:
        value = _truth_value(model, chips) if rid != "b" else 100.0  # b: 70B on 8 chips does not fit
        text += ROW.format(id=rid, role=role, model=model, chips=chips, value=value)
    cal = calibrate("groq-tsp-v1", load_measurements_from(text))
    assert [m.id for m, _ in cal.skipped] == ["b"]
    by_id = {r.meas.id: r for r in cal.rows}
    assert abs(by_id["a"].error) < 1e-9  # the truth is on the grid: the fit row is met exactly
    assert by_id["c"].inside_band  # the held-out row, made with the same truth, lies in the band
    assert cal.consistent_count > 1  # one speed cannot pin five parameters: the fit is not unique
    for k, v in TRUTH.items():
        lo, hi = cal.spans[k]
        assert lo <= v <= hi
    data = calibration_json([cal])
    assert json.dumps(data, sort_keys=True) == json.dumps(calibration_json([cal]), sort_keys=True)
    assert data["chips"]["groq-tsp-v1"]["skipped"][0]["id"] == "b"


def test_shipped_measurements_each_have_a_source_and_the_llmperf_decode_step():
    rows = load_measurements()
    assert all(r.source for r in rows)
    decode = [r for r in rows if r.metric == "decode_step_s"]
    # (end-to-end - TTFT) / (tokens - 1), not LLMPerf's inter_token_latency_s (5.32 ms, TTFT included).
    assert decode and decode[0].value == pytest.approx(3.74e-3, rel=0.01)
    assert {r.role for r in rows} == {"fit", "held_out"}


def test_a_bad_measurements_file_is_a_clear_error(tmp_path):
    from twinfer.errors import ConfigError

    p = tmp_path / "m.toml"
    p.write_text('[[measurement]]\nid = "x"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="measurement 1"):
        load_measurements(p)


def test_cli_writes_the_fit_as_json_and_reports_skipped_rows(tmp_path, capsys):
    from twinfer.cli import main

    text = ROW.format(id="a", role="fit", model="llama-2-7b", chips=72, value=700.0)
    text += ROW.format(id="b", role="held_out", model="llama-2-70b", chips=8, value=100.0)
    meas, out = tmp_path / "m.toml", tmp_path / "cal.json"
    meas.write_text(text, encoding="utf-8")
    assert main(["calibrate-lpu", "--measurements", str(meas), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "not unique" in printed and "skipped b" in printed
    data = json.loads(out.read_text(encoding="utf-8"))["chips"]["groq-tsp-v1"]
    assert data["rows"][0]["id"] == "a" and abs(data["rows"][0]["error"]) < 0.05
    assert set(data["fitted"]) <= set(data["consistent_sets"][0])


def test_cli_without_a_compiling_fit_row_is_a_clear_error(tmp_path, capsys):
    from twinfer.cli import main

    meas = tmp_path / "m.toml"
    meas.write_text(ROW.format(id="b", role="fit", model="llama-2-70b", chips=8, value=100.0), encoding="utf-8")
    assert main(["calibrate-lpu", "--measurements", str(meas)]) == 2
    assert "nothing to calibrate" in capsys.readouterr().err


def test_a_row_of_unknown_batch_spans_it_in_its_band():
    """batch_max widens a row's band to every batch in batch..batch_max (a bigger batch is slower per user),
    keeps the point prediction at ``batch``, and is refused where it makes no sense."""
    from twinfer.errors import ConfigError

    text = ROW.format(id="a", role="fit", model="llama-2-7b", chips=72, value=_truth_value("llama-2-7b", 72))
    known = ROW.format(id="h", role="held_out", model="llama-2-7b", chips=72, value=500.0)
    spans = known.replace("batch = 1", "batch = 1\nbatch_max = 8")
    fixed = {r.meas.id: r for r in calibrate("groq-tsp-v1", load_measurements_from(text + known)).rows}["h"]
    wide = {r.meas.id: r for r in calibrate("groq-tsp-v1", load_measurements_from(text + spans)).rows}["h"]
    assert wide.predicted == fixed.predicted and wide.band[1] == fixed.band[1]
    base = shipped_sets(calibrated=False)["groq-tsp-v1"]
    (m,) = load_measurements_from(spans)
    case = Case(m, make_chip("groq-tsp-v1", params=params_from_values(base.values)))
    assert wide.band[0] <= case.predict(TRUTH, 8) < case.predict(TRUTH) and wide.band[0] < fixed.band[0]
    with pytest.raises(ConfigError, match="batch_max"):
        load_measurements_from(known.replace("batch = 1", "batch = 4\nbatch_max = 2"))

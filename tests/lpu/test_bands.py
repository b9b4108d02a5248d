"""Uncertainty bands: contain the point value, widen with the parameter ranges, and reach compile --json."""

from __future__ import annotations

import json

from twinfer.lpu.analytic import AnalyticLpu
from twinfer.lpu.bands import step_bands
from twinfer.lpu.chip import make_chip
from twinfer.lpu.plan import make_plan
from twinfer.lpu.step_cost import native_precision
from twinfer.lpu.system import System
from twinfer.models import load_model
from twinfer.models.step import StepShape


def test_uncalibrated_band_spans_the_ends_of_the_ranges():
    chip = make_chip("groq3-lp30")
    model = load_model("llama-2-7b")
    prec = native_precision(chip.spec)
    plan = make_plan(model, chip, prec, chips=16, batch=1, ctx=512, tokens=1)
    shape = StepShape.decode([512])
    b = step_bands(model, chip, plan, prec, shape)
    assert not b.calibrated and b.sets == 2
    assert b.ratio_low <= 1.0 <= b.ratio_high
    # Every [U] cost grows with its parameter, so the high end of every range is the slow end.
    from dataclasses import replace

    slow = replace(chip, params=replace(chip.params, host_loop_s=1e-3, stage_sync_cycles=2000,
                                        sampling_ops_per_logit=16, mxm_ktile_acc_cycles=64,
                                        mxm_wide_install_factor=4.0, superlane_skew_cycles=40,
                                        mxm_install_cycles=40))
    point = AnalyticLpu(model, System(chip, 16), plan, prec).step_seconds(shape)
    high = AnalyticLpu(model, System(slow, 16), plan, prec).step_seconds(shape)
    assert b.ratio_high == high / point


def test_compile_json_carries_the_bands(capsys):
    from twinfer.cli import main

    assert main(["compile", "--model", "llama-2-7b", "--chips", "72", "--context", "512", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key, point in (("per_token_latency_s_range", "per_token_latency_s"),
                       ("tokens_per_s_per_user_range", "tokens_per_s_per_user"), ("ttft_s_range", "ttft_s"),
                       ("tokens_per_s_system_range", "tokens_per_s_system")):
        lo, hi = d[key]
        assert lo <= d[point] <= hi, key
    assert d["tokens_per_s_per_user_range"][0] < d["tokens_per_s_per_user_range"][1]

"""Fitting the GEMM efficiency curves: what `twinfer calibrate` writes must load back."""

from __future__ import annotations

import math

import numpy as np
import pytest

from twinfer.gpu import fit
from twinfer.gpu.efficiency import GEMM_COMBINE_P_MAX, default_efficiency
from twinfer.gpu.fit import GemmSample, fit_gemm
from twinfer.hardware import get_hardware


def test_a_runaway_combine_exponent_is_capped_at_what_the_loader_accepts(monkeypatch):
    """Noisy CPU timings once drove the p-norm exponent to 103, a file `estimate` then refused (it accepts
    [1, 100]). Whatever the optimiser returns, the fitted exponent stays loadable."""
    monkeypatch.setattr(fit, "nelder_mead", lambda loss, x0: np.array([math.log(0.5), math.log(0.5), -12.0, 20.0]))
    gpu = get_hardware("h100")
    samples = [GemmSample(256, 4096, 4096, 2.0 * (256 * 4096 * 2 + 4096 * 4096), 1e-4)]
    eff = fit_gemm(samples, gpu, default_efficiency(gpu.name))
    assert eff.gemm_combine_p == GEMM_COMBINE_P_MAX  # 1 + e^20 capped


def test_nelder_mead_steps_around_points_where_the_loss_overflows():
    """Where the loss raises OverflowError (x > 3) or is nan (x < -5), the simplex treats it as infinitely bad."""
    from twinfer.gpu.fit import nelder_mead

    def loss(x):
        if x[0] > 3:
            raise OverflowError("(x^100)")
        return math.nan if x[0] < -5 else (x[0] - 1.0) ** 2

    assert nelder_mead(loss, [2.5], step=1.0)[0] == pytest.approx(1.0, abs=1e-3)

"""Fit an LPU's uncertain ([U]) micro-architecture parameters to published measurements.

The measurements live in ``data/measurements.toml`` (each row with its
source); rows marked ``fit`` are fitted, rows marked ``held_out`` only
checked. Every prediction is the closed-form step model
(:class:`~twinfer.lpu.step_cost.AnalyticLpu`, equal to the compiled decode
schedule) plus the per-token loop costs, on a partition plan made once per
row: a trial parameter set costs a few formula evaluations, not a compile.

The search is a grid over each [U] parameter's range (``data/microarch.toml``).
The best set minimises the squared log residuals, each scaled by its row's
tolerance. The fit is not unique: a few per-user speeds cannot separate
on-chip costs from fixed per-token costs, so the result also keeps every set
whose residuals stay within each row's tolerance plus the best fit's own worst
residual (the structural error no parameter set removes). Those consistent
sets span the uncertainty bands; a row measured on a public API whose batch
is not known (``batch_max``) also spans that batch range. A row whose model does not compile yet (MoE
before the compiler supports it) is skipped with the reason and joins the fit
as soon as it compiles.
"""

from __future__ import annotations

import itertools
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from twinfer.errors import CapacityError, ConfigError
from twinfer.lpu.analytic import AnalyticLpu
from twinfer.lpu.chip import Chip, make_chip, override_params, params_from_values
from twinfer.lpu.layout import MAX_INSTRUCTIONS, candidate_plans
from twinfer.lpu.microarch import shipped_sets
from twinfer.lpu.plan import Plan, make_plan
from twinfer.lpu.step_cost import native_precision
from twinfer.lpu.system import System
from twinfer.models.ops import Precision
from twinfer.models.spec import ModelSpec
from twinfer.models.step import StepShape

METRICS = ("decode_step_s", "tokens_per_s_per_user", "ttft_s")
#: Grid points per fitted parameter (evenly spaced over its range); the rest take 2 (low, high).
GRID_POINTS: Mapping[str, int] = {"host_loop_s": 16, "mxm_wide_install_factor": 7, "stage_sync_cycles": 3,
                                  "cross_node_sync_cycles": 5}


@dataclass(frozen=True)
class Measurement:
    """One published figure: what was measured, on what, and where it comes from."""

    id: str
    role: str  # "fit" or "held_out"
    model: str
    hardware: str
    chips: int
    batch: int
    context: int
    metric: str
    value: float
    tolerance_rel: float
    source: str
    prompt: int = 550
    #: > batch when the measured service's batch is not known (a public API serving other users too): the
    #: band spans batch .. batch_max; the point prediction stays at ``batch``. 0: the batch is known.
    batch_max: int = 0

    @property
    def batches(self) -> tuple[int, ...]:
        """The batch of the point prediction, then the largest the band spans (if any)."""
        return (self.batch,) if self.batch_max <= self.batch else (self.batch, self.batch_max)


def load_measurements(path: str | Path | None = None) -> list[Measurement]:
    """Rows of a measurements file (default: the one shipped in the package)."""
    if path is None:
        text = resources.files("twinfer.lpu").joinpath("data").joinpath("measurements.toml").read_text(encoding="utf-8")
        origin = "twinfer/lpu/data/measurements.toml"
    else:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"measurements file {p} does not exist")
        text, origin = p.read_text(encoding="utf-8"), str(p)
    try:
        rows = tomllib.loads(text).get("measurement", [])
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{origin} is not valid TOML: {exc}") from None
    out = []
    for i, r in enumerate(rows):
        try:
            m = Measurement(**r)
        except TypeError as exc:
            raise ConfigError(f"{origin}: measurement {i + 1}: {exc}; see the file's header for the fields") from None
        if m.metric not in METRICS or m.role not in ("fit", "held_out"):
            raise ConfigError(f"{origin}: measurement {m.id!r}: metric must be one of {METRICS} and role fit or held_out")
        if m.batch_max and (m.batch_max < m.batch or m.metric == "ttft_s"):
            raise ConfigError(f"{origin}: measurement {m.id!r}: batch_max ({m.batch_max}) must be >= batch "
                              f"({m.batch}) and only on per-token metrics; drop it when the batch is known")
        out.append(m)
    return out


class Case:
    """One measurement's model and every layout (tensor split x stages) that fits, planned once.

    A prediction takes the layout the compiler would choose under the trial
    parameters (the lowest decode latency, :mod:`twinfer.lpu.layout`), so the
    fit sees the same layout choice ``twinfer compile`` makes. Layouts are
    planned for the largest batch the row may have run (``batch_max``).
    """

    def __init__(self, meas: Measurement, base_chip: Chip) -> None:
        from twinfer.models import load_model

        self.meas = meas
        self.model: ModelSpec = load_model(meas.model)
        self.base_chip = base_chip
        self.prec: Precision = native_precision(base_chip.spec)
        ctx, batch = max(meas.context, meas.prompt), max(meas.batches)
        self.plans: list[Plan] = [
            plan for plan, est in candidate_plans(self.model, base_chip, self.prec, chips=meas.chips, batch=batch,
                                                  ctx=ctx, tokens=batch)
            if est <= MAX_INSTRUCTIONS  # the layouts twinfer compile may choose
        ]
        if not self.plans:  # make_plan's own error names the chips needed
            make_plan(self.model, base_chip, self.prec, chips=meas.chips, batch=batch, ctx=ctx, tokens=batch)
        self.estimates = [AnalyticLpu(self.model, System(base_chip, p.num_chips), p, self.prec) for p in self.plans]

    def predict(self, overrides: Mapping[str, float], batch: int | None = None) -> float:
        """The metric this row measured, predicted with ``overrides`` applied to the base parameters
        (at ``batch`` sequences per step; default the row's own)."""
        chip = replace(self.base_chip, params=override_params(self.base_chip.params, overrides))
        m = self.meas
        dec = StepShape.decode([m.context] * (batch or m.batch))
        ests = [e.with_chip(chip) for e in self.estimates]
        step, best = min((e.step_seconds(dec), i) for i, e in enumerate(ests))
        if m.metric == "ttft_s":
            return ests[best].step_seconds(StepShape.prefill([m.prompt] * m.batch))
        return step if m.metric == "decode_step_s" else 1.0 / step


@dataclass(frozen=True)
class RowResult:
    """A measurement against the best fit and the band of the consistent sets."""

    meas: Measurement
    predicted: float
    band: tuple[float, float]

    @property
    def error(self) -> float:
        """Relative error of the best fit's prediction."""
        return (self.predicted - self.meas.value) / self.meas.value

    @property
    def inside_band(self) -> bool:
        """Whether the measured value lies in the band."""
        return self.band[0] <= self.meas.value <= self.band[1]


@dataclass(frozen=True)
class Calibration:
    """The fit of one chip: fitted values, consistent sets, per-row results and skipped rows."""

    hardware: str
    fitted: Mapping[str, float]
    consistent_sets: tuple[Mapping[str, float], ...]  # a few sets spanning the band (the best one first)
    consistent_count: int  # grid sets consistent with the fit rows
    spans: Mapping[str, tuple[float, float]]  # each parameter's range over all consistent sets
    rows: tuple[RowResult, ...]
    skipped: tuple[tuple[Measurement, str], ...]
    evaluations: int


def _grid(ranges: Mapping[str, tuple[float, float]], base: Mapping[str, float]) -> list[dict[str, float]]:
    axes = []
    for name, (lo, hi) in sorted(ranges.items()):
        n = GRID_POINTS.get(name, 2)
        vals = [lo + (hi - lo) * i / (n - 1) for i in range(n)]
        if isinstance(base[name], int):
            vals = sorted({int(round(v)) for v in vals})
        axes.append([(name, v) for v in vals])
    return [dict(combo) for combo in itertools.product(*axes)]


def _log_res(pred: float, meas: Measurement) -> float:
    return math.log(pred / meas.value)


def calibrate(hardware: str, measurements: Sequence[Measurement]) -> Calibration:
    """Fit ``hardware``'s [U] parameters to its ``fit`` rows; check the ``held_out`` rows."""
    base_set = shipped_sets(calibrated=False).get(hardware)
    if base_set is None:
        raise ConfigError(f"{hardware!r} has no parameter set in twinfer/lpu/data/microarch.toml to calibrate")
    base_chip = make_chip(hardware, params=params_from_values(base_set.values, base_set.sources))
    cases: list[Case] = []
    skipped: list[tuple[Measurement, str]] = []
    for m in measurements:
        if m.hardware != hardware:
            continue
        try:
            cases.append(Case(m, base_chip))
        except (ConfigError, CapacityError) as exc:
            skipped.append((m, str(exc)))
    fit = [c for c in cases if c.meas.role == "fit"]
    if not fit:
        raise ConfigError(f"no fit measurement for {hardware} compiles; nothing to calibrate")
    grid = _grid(base_set.ranges, base_set.values)
    preds = [[c.predict(s) for c in cases] for s in grid]
    fit_idx = [i for i, c in enumerate(cases) if c.meas.role == "fit"]

    def cost(row: list[float]) -> float:
        return sum((_log_res(row[i], cases[i].meas) / cases[i].meas.tolerance_rel) ** 2 for i in fit_idx)

    best = min(range(len(grid)), key=lambda k: cost(preds[k]))
    worst_best = max(abs(_log_res(preds[best][i], cases[i].meas)) for i in fit_idx)
    ok = [k for k in range(len(grid))
          if all(abs(_log_res(preds[k][i], cases[i].meas)) <= cases[i].meas.tolerance_rel + worst_best for i in fit_idx)]
    # A few sets span the band: the best, then for each row the consistent sets predicting lowest and highest.
    chosen = [best]
    for i in range(len(cases)):
        for k in (min(ok, key=lambda k: preds[k][i]), max(ok, key=lambda k: preds[k][i])):
            if k not in chosen:
                chosen.append(k)
    rows = []
    for i, c in enumerate(cases):
        vals = [preds[k][i] for k in ok] + [c.predict(grid[k], b) for b in c.meas.batches[1:] for k in ok]
        rows.append(RowResult(meas=c.meas, predicted=preds[best][i], band=(min(vals), max(vals))))
    spans = {n: (min(grid[k][n] for k in ok), max(grid[k][n] for k in ok)) for n in base_set.ranges}
    return Calibration(hardware=hardware, fitted=grid[best], consistent_sets=tuple(grid[k] for k in chosen),
                       consistent_count=len(ok), spans=spans, rows=tuple(rows), skipped=tuple(skipped),
                       evaluations=len(grid) * len(cases))


def _num(v: float) -> float | int:
    return v if isinstance(v, int) else float(f"{v:.6g}")


def calibration_json(cals: Sequence[Calibration]) -> dict[str, Any]:
    """The ``calibrated.json`` content the presets ship with (deterministic: sorted, rounded)."""
    chips: dict[str, Any] = {}
    for cal in cals:
        fit_ids = [r.meas.id for r in cal.rows if r.meas.role == "fit"]
        chips[cal.hardware] = {
            "source": "fit to " + ", ".join(fit_ids) + " (twinfer/lpu/data/measurements.toml)",
            "fitted": {k: _num(v) for k, v in sorted(cal.fitted.items())},
            "consistent_sets": [{k: _num(v) for k, v in sorted(s.items())} for s in cal.consistent_sets],
            "consistent_count": cal.consistent_count,
            "rows": [{"id": r.meas.id, "role": r.meas.role, "measured": r.meas.value, "predicted": _num(r.predicted),
                      "error": _num(r.error), "band": [_num(r.band[0]), _num(r.band[1])]} for r in cal.rows],
            "skipped": [{"id": m.id, "reason": why} for m, why in cal.skipped],
        }
    return {"generated_by": "twinfer calibrate-lpu", "chips": chips}

"""Sweep expansion: counts and contents by hand, dotted overrides, stable distinct ids."""

from __future__ import annotations

import subprocess
import sys

import pytest
from fake_runner import base_scenario

from twinfer.errors import ConfigError
from twinfer.plan.grid import apply_overrides, expand, load_sweep, parse_sweep, scenario_id


def test_grid_is_the_cartesian_product_last_key_fastest(make_sweep_file) -> None:
    spec = load_sweep(make_sweep_file(grid={"workload.rate": [2, 4, 8], "fleet.pools.0.count": [2, 4]}))
    jobs = expand(spec)
    got = [(j.scenario["workload"]["rate"], j.scenario["fleet"]["pools"][0]["count"]) for j in jobs]
    assert got == [(2, 2), (2, 4), (4, 2), (4, 4), (8, 2), (8, 4)]
    assert [j.index for j in jobs] == list(range(6))
    assert jobs[3].params == {"workload.rate": 4, "fleet.pools.0.count": 4}
    # the rest of the base is untouched and shared values are not aliased between jobs
    assert all(j.scenario["fleet"]["pools"][0]["hardware"] == "h100" for j in jobs)
    assert jobs[0].scenario["fleet"] is not jobs[1].scenario["fleet"]


def test_cases_cross_grid_cross_seeds(make_sweep_file) -> None:
    path = make_sweep_file(
        grid={"workload.rate": [1, 2, 3]},
        cases=[{"fleet.pools.0.hardware": "h100"}, {"fleet.pools.0.hardware": "h200"}],
        seeds=[0, 7],
    )
    spec = load_sweep(path)
    jobs = expand(spec)
    assert len(jobs) == 2 * 3 * 2 == spec.size()
    assert [(j.scenario["fleet"]["pools"][0]["hardware"], j.scenario["workload"]["rate"], j.seed) for j in jobs[:4]] == [
        ("h100", 1, 0), ("h100", 1, 7), ("h100", 2, 0), ("h100", 2, 7)
    ]
    assert {j.scenario["fleet"]["pools"][0]["hardware"] for j in jobs[6:]} == {"h200"}


def test_list_of_cases_without_grid(make_sweep_file) -> None:
    jobs = expand(load_sweep(make_sweep_file(cases=[{"workload.rate": 5}, {"workload.extra.new_key": "x"}])))
    assert len(jobs) == 2
    assert jobs[0].scenario["workload"] == {"rate": 5}
    assert jobs[1].scenario["workload"] == {"rate": 1.0, "extra": {"new_key": "x"}}  # missing mappings are created


def test_ids_are_distinct_and_ignore_key_order() -> None:
    a = {"x": 1, "y": {"p": [1, 2], "q": "z"}}
    b = {"y": {"q": "z", "p": [1, 2]}, "x": 1}
    assert scenario_id(a, 0) == scenario_id(b, 0)
    assert scenario_id(a, 0) != scenario_id(a, 1)
    assert scenario_id(a, 0) != scenario_id({**a, "x": 2}, 0)
    assert len(scenario_id(a, 0)) == 16 and int(scenario_id(a, 0), 16) >= 0


def test_ids_are_stable_across_processes(make_sweep_file) -> None:
    path = make_sweep_file(grid={"workload.rate": [1, 2, 3, 4]}, seeds=[0, 1])
    here = [j.scenario_id for j in expand(load_sweep(path))]
    code = (
        "import sys; from twinfer.plan.grid import expand, load_sweep;"
        "print(' '.join(j.scenario_id for j in expand(load_sweep(sys.argv[1]))))"
    )
    # a fresh interpreter has a different hash() seed: the ids must not depend on it
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == here
    assert len(set(here)) == 8


def test_base_path_is_read_relative_to_the_sweep_file(tmp_path) -> None:
    import yaml

    (tmp_path / "sc").mkdir()
    (tmp_path / "sc" / "base.yaml").write_text(yaml.safe_dump(base_scenario()), encoding="utf-8")
    (tmp_path / "sw.yaml").write_text(yaml.safe_dump({"base": "sc/base.yaml", "grid": {"workload.rate": [3]}}))
    spec = load_sweep(tmp_path / "sw.yaml")
    assert spec.base_dir == str((tmp_path / "sc").resolve())
    assert expand(spec)[0].scenario["workload"]["rate"] == 3


@pytest.mark.parametrize(
    "raw, needle",
    [
        ({"grid": {"a": [1]}}, "'base' is missing"),
        ({"base": {}, "grid": {"a": []}}, "non-empty list"),
        ({"base": {}, "grid": {"a": [1]}, "cases": [{"a": 2}]}, "set each key in one place"),
        ({"base": {}, "gird": {"a": [1]}}, "unknown keys"),
        ({"base": {}, "seed": 1, "seeds": [1]}, "not both"),
        ({"base": {}, "cases": [{"a": 1}, {"a": 1}]}, "same scenario and seed"),
    ],
)
def test_bad_sweeps_say_what_is_wrong(raw, needle) -> None:
    with pytest.raises(ConfigError, match=needle):
        expand(parse_sweep(raw))


def test_override_errors_name_the_key() -> None:
    base = {"pools": [{"count": 1}], "rate": 2}
    with pytest.raises(ConfigError, match=r"index 3 is out of range"):
        apply_overrides(base, {"pools.3.count": 2})
    with pytest.raises(ConfigError, match=r"needs an integer"):
        apply_overrides(base, {"pools.first.count": 2})
    with pytest.raises(ConfigError, match=r"'rate' is a int"):
        apply_overrides(base, {"rate.value": 2})
    assert apply_overrides(base, {"pools.-1.count": 5})["pools"][0]["count"] == 5
    assert base["pools"][0]["count"] == 1  # the base is not modified

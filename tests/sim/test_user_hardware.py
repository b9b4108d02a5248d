"""A chip defined in a user hardware file reaches simulate, sweep and plan (not only compile and estimate)."""

from __future__ import annotations

import json

import pytest
import yaml

from twinfer.cli import main
from twinfer.errors import ConfigError
from twinfer.sim.scenario import Scenario


def user_lpu_file() -> dict:
    """A TSP-shaped user LPU (TSP v1's figures) with its own price (2.5 $/chip-hour, the preset's is 1.0) and a
    2 ms host loop per token; tests/lpu/test_microarch.py reads a hand-written TOML of the same kind."""
    from twinfer.hardware import get_hardware, spec_table

    body = {**spec_table(get_hardware("groq-tsp-v1")), "price_per_hour_usd": 2.5,
            "microarch_based_on": "groq-tsp-v1",
            "microarch": {"host_loop_s": {"value": 0.002, "source": "my lab's runtime, measured"}}}
    return {"lpu": {"my-tsp": body}}


CHIPS = 72


def _assert_user_price(price_per_hour_usd: float) -> None:
    """The chips the layout uses (at most the 72 given, enough for 7B's 6.7 GB of int8 weights in 220 MB of
    SRAM each: more than 30) at the file's 2.5 $/h each, not the preset's 1.0."""
    chips = price_per_hour_usd / 2.5
    assert chips == int(chips) and 30 < chips <= CHIPS


def _scenario(hardware_file: str | None = None) -> dict:
    d = {
        "name": "user-lpu",
        "model": "llama-2-7b",
        "workload": {"arrivals": {"kind": "poisson", "rate_per_s": 2.0}, "num_requests": 12,
                     "prompt_tokens": {"kind": "fixed", "value": 64}, "output_tokens": {"kind": "fixed", "value": 8}},
        "slo": {"ttft_s": 5.0, "tpot_s": 1.0},
        "fleets": [{"name": "lpu", "pools": {"mixed": {"hardware": "my-tsp", "chips": CHIPS}}}],
    }
    if hardware_file is not None:
        d["hardware_file"] = hardware_file
    return d


@pytest.fixture
def hw_file(tmp_path):
    path = tmp_path / "my_hw.yaml"
    path.write_text(json.dumps(user_lpu_file()), encoding="utf-8")
    return path


def test_simulate_prices_and_times_the_user_lpu(tmp_path, hw_file, capsys):
    scen = tmp_path / "scen.yaml"
    scen.write_text(yaml.safe_dump(_scenario()), encoding="utf-8")
    assert main(["simulate", str(scen), "--hardware-file", str(hw_file), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["fleets"][0]
    _assert_user_price(summary["price_per_hour_usd"])
    assert summary["tpot_p50_s"] >= 0.002  # the user's 2 ms host loop is in every decode step
    lo, hi = summary["tpot_p50_s_range"]  # the user LPU gets its uncertainty band too
    assert lo <= summary["tpot_p50_s"] <= hi


def test_a_scenario_names_its_hardware_file_relative_to_itself(tmp_path, hw_file, capsys):
    scen = tmp_path / "scen.yaml"
    scen.write_text(yaml.safe_dump(_scenario(hardware_file=hw_file.name)), encoding="utf-8")
    assert main(["simulate", str(scen), "--json", "--no-bands"]) == 0
    _assert_user_price(json.loads(capsys.readouterr().out)["fleets"][0]["price_per_hour_usd"])


def test_without_the_file_the_chip_is_an_error_that_names_it(tmp_path):
    scen = tmp_path / "scen.yaml"
    scen.write_text(yaml.safe_dump(_scenario()), encoding="utf-8")
    assert main(["simulate", str(scen), "--no-bands"]) == 2
    with pytest.raises(ConfigError, match="hardware_file"):
        Scenario.from_dict(_scenario(hardware_file="missing.toml"), base_dir=tmp_path)


def test_sweep_runs_every_scenario_on_the_user_lpu(tmp_path, hw_file):
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "s", "base": _scenario(), "grid": {"workload.num_requests": [6, 12]}}),
                     encoding="utf-8")
    out = tmp_path / "out"
    assert main(["sweep", str(sweep), "--out", str(out), "--workers", "1", "--hardware-file", str(hw_file)]) == 0
    import duckdb

    rows = duckdb.sql(f"SELECT status, price_per_hour_usd FROM read_parquet('{out}/*.parquet')").fetchall()
    assert len(rows) == 2 and all(s == "ok" for s, _ in rows)
    for _, price in rows:
        _assert_user_price(price)


def test_plan_searches_the_user_lpu(tmp_path, hw_file):
    from twinfer.plan.planner import prune, scenario_for
    from twinfer.plan.runner import run_scenario
    from twinfer.plan.space import parse_plan

    raw = {"name": "p", "model": "llama-2-7b", "workload": _scenario()["workload"], "target_rate_per_s": 2.0,
           "slo": {"ttft_s": 5.0, "tpot_s": 1.0}, "hardware": ["my-tsp"], "hardware_file": hw_file.name,
           "search": {"modes": ["aggregated"], "lpu_chips": [CHIPS], "max_instances_per_pool": 1}}
    spec = parse_plan(raw, base_dir=tmp_path)
    report = prune(spec)
    assert report.survivors, report.reasons
    cand, rate = report.survivors[0]
    summary = run_scenario(scenario_for(spec, cand, rate), seed=0)
    _assert_user_price(summary["price_per_hour_usd"])


def test_an_afd_pool_takes_its_experts_on_a_user_lpu(tmp_path, capsys):
    """An AFD decode pool whose FFN group is a chip from the user's file (LP30's figures at 3 $/chip-hour)
    parses, simulates, and is priced at the file's price."""
    from twinfer.hardware import get_hardware, spec_table

    body = {**spec_table(get_hardware("groq3-lp30")), "price_per_hour_usd": 3.0, "microarch_based_on": "groq3-lp30"}
    hw = tmp_path / "my_lpx.yaml"
    hw.write_text(json.dumps({"lpu": {"my-lp30": body}}), encoding="utf-8")
    scen = {
        "name": "afd-user", "model": "mixtral-8x7b", "hardware_file": hw.name,
        "workload": {"arrivals": {"kind": "poisson", "rate_per_s": 2.0}, "num_requests": 8,
                     "prompt_tokens": {"kind": "fixed", "value": 64}, "output_tokens": {"kind": "fixed", "value": 8}},
        "slo": {"ttft_s": 5.0, "tpot_s": 1.0},
        "fleets": [{"name": "afd", "kv_link": {"name": "ib-ndr"}, "pools": {
            "prefill": {"hardware": "h100", "tp": 4, "precision": "fp8"},
            "decode": {"attention": {"hardware": "h100", "count": 2}, "ffn": {"hardware": "my-lp30"},
                       "link": "lpx-gpu", "precision": "fp8"}}}],
    }
    path = tmp_path / "scen.yaml"
    path.write_text(yaml.safe_dump(scen), encoding="utf-8")
    assert main(["simulate", str(path), "--json", "--no-bands"]) == 0
    fleet = json.loads(capsys.readouterr().out)["fleets"][0]
    assert fleet["mode"] == "AFD" and "my-lp30" in fleet["pool.decode.afd"]
    # 4 + 2 H100s at the preset's 2.99 $/h, the rest LP30-shaped chips at the file's 3.00 (not the preset's 2.00)
    chips = (fleet["price_per_hour_usd"] - 6 * get_hardware("h100").price_per_hour_usd) / 3.0
    assert chips == pytest.approx(round(chips)) and chips >= 1
    without = {**scen}
    without.pop("hardware_file")
    with pytest.raises(ConfigError, match="my-lp30"):
        Scenario.from_dict(without, base_dir=tmp_path)


def test_a_sweep_with_an_unknown_chip_stops_before_running(tmp_path, capsys):
    """Without the hardware file the sweep's scenarios name a chip that does not exist: exit 2 up front, naming
    the key, rather than running every scenario into a recorded failure."""
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(yaml.safe_dump({"name": "s", "base": _scenario(), "grid": {"workload.num_requests": [6, 12]}}),
                     encoding="utf-8")
    assert main(["sweep", str(sweep), "--out", str(tmp_path / "out"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "pools.mixed.hardware" in err and "my-tsp" in err
    assert not (tmp_path / "out").exists()


def _h100_file(tmp_path, name: str) -> str:
    """A file with an H100 (the preset's figures) at 1.50 $/h under ``name``."""
    from twinfer.hardware import get_hardware, spec_table

    path = tmp_path / "h100.yaml"
    path.write_text(json.dumps({"gpu": {name: {**spec_table(get_hardware("h100-sxm")), "price_per_hour_usd": 1.5,
                                               "mem_bw_bytes_per_s": 2.0e12}}}), encoding="utf-8")
    return str(path)


def _two_h100_names() -> dict:
    """One fleet on `h100`, one on `h100-sxm`: the same physical chip under two of its names."""
    d = _scenario()
    d["fleets"] = [{"name": name, "pools": {"mixed": {"hardware": name, "tp": 1}}} for name in ("h100", "h100-sxm")]
    return d


def test_a_replaced_preset_is_one_chip_in_simulate_under_all_its_names(tmp_path, capsys):
    """[gpu.h100-sxm] at 1.50 $/h and 2 TB/s: fleets on `h100` and `h100-sxm` cost and run the same, at the file's
    price, and the run says (and records) that the file replaced the preset."""
    scen = tmp_path / "scen.yaml"
    scen.write_text(yaml.safe_dump({**_two_h100_names(), "hardware_file": _h100_file(tmp_path, "h100-sxm")}))
    assert main(["simulate", str(scen), "--json", "--no-bands"]) == 0
    out = json.loads(capsys.readouterr().out)
    a, b = out["fleets"]
    assert a["price_per_hour_usd"] == b["price_per_hour_usd"] == 1.5
    assert a["tpot_p50_s"] == b["tpot_p50_s"]
    assert any("replaces the preset h100-sxm" in n for n in out["notes"])


def test_the_printed_replacement_note_names_the_table(tmp_path, capsys):
    """The table output prints the note as estimate does, `[gpu.h100-sxm] replaces ...` (not read as markup)."""
    scen = tmp_path / "scen.yaml"
    scen.write_text(yaml.safe_dump({**_two_h100_names(), "hardware_file": _h100_file(tmp_path, "h100-sxm")}))
    assert main(["simulate", str(scen), "--no-bands"]) == 0
    assert "h100.yaml: [gpu.h100-sxm] replaces the preset h100-sxm" in capsys.readouterr().out


def test_an_alias_named_entry_stops_simulate_and_estimate_with_one_line(tmp_path, capsys):
    """[gpu.h100] is refused before anything runs: exit 2, one line naming the canonical name, no traceback."""
    path = _h100_file(tmp_path, "h100")
    scen = tmp_path / "scen.yaml"
    scen.write_text(yaml.safe_dump({**_two_h100_names(), "hardware_file": path}))
    for argv in (["simulate", str(scen), "--no-bands"],
                 ["estimate", "--model", "llama-2-7b", "--hardware", "h100", "--hardware-file", path]):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert "[gpu.h100-sxm]" in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_estimate_gives_one_answer_for_every_name_of_a_replaced_preset(tmp_path, capsys):
    path = _h100_file(tmp_path, "h100-sxm")
    tpot = {}
    for name in ("h100", "h100-sxm", "h100-sxm5"):
        assert main(["estimate", "--model", "llama-2-7b", "--hardware", name, "--hardware-file", path, "--json"]) == 0
        captured = capsys.readouterr()
        tpot[name] = json.loads(captured.out)["tpot_s"]
        assert "note:" in captured.err and "replaces the preset h100-sxm" in captured.err
    assert main(["estimate", "--model", "llama-2-7b", "--hardware", "h100", "--json"]) == 0
    preset = json.loads(capsys.readouterr().out)["tpot_s"]
    assert len(set(tpot.values())) == 1 and tpot["h100"] > preset  # 2.0 TB/s is slower than the preset's 3.35


def test_a_sweep_says_which_preset_its_hardware_file_replaces(tmp_path, capsys):
    """The same note as simulate and estimate, from the flag and from the sweep's own base."""
    path = _h100_file(tmp_path, "h100-sxm")
    base = {**_scenario(), "fleets": [{"name": "f", "pools": {"mixed": {"hardware": "h100", "tp": 1}}}]}
    for i, (flag, in_base) in enumerate(((["--hardware-file", path], {}), ([], {"hardware_file": path}))):
        sweep = tmp_path / f"sweep{i}.yaml"
        sweep.write_text(yaml.safe_dump({"name": "s", "base": {**base, **in_base},
                                         "grid": {"workload.num_requests": [6]}}), encoding="utf-8")
        assert main(["sweep", str(sweep), "--out", str(tmp_path / f"out{i}"), "--workers", "1", *flag]) == 0
        assert "replaces the preset h100-sxm" in capsys.readouterr().err

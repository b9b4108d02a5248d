"""User chips in `twinfer deploy`: a user GPU deploys (from --hardware-file, a plan's hardware_file or a simulation's
recorded specs); a fleet on LPU chips only, a user's included, is refused with one line."""

from __future__ import annotations

import json

import pytest
import yaml

from twinfer.cli import main
from twinfer.deploy import load_fleet, render
from twinfer.errors import ConfigError
from twinfer.hardware import get_hardware, load_hardware_file, spec_table


def _write(path, doc) -> str:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


@pytest.fixture
def gpu_file(tmp_path) -> str:
    """my-gpu: an H100's figures with 4 GPUs per NVLink domain (the preset has 8)."""
    body = {**spec_table(get_hardware("h100-sxm")), "scale_up_gpus": 4}
    return _write(tmp_path / "my_gpu.yaml", {"gpu": {"my-gpu": body}})


@pytest.fixture
def lpu_file(tmp_path) -> str:
    body = {**spec_table(get_hardware("groq-tsp-v1")), "microarch_based_on": "groq-tsp-v1"}
    return _write(tmp_path / "my_lpu.yaml", {"lpu": {"my-tsp": body}})


def _plan(tmp_path, pool: dict, hardware_file: str | None = None):
    doc = {"schema": "twinfer.plan/1", "model": "llama-2-7b", "recommended": {"key": "k"},
           "candidates": [{"key": "k", "mode": "aggregated", "pools": [{"role": "mixed", "count": 2, **pool}]}]}
    if hardware_file is not None:
        doc["hardware_file"] = hardware_file
    _write(tmp_path / "plan.json", doc)
    return tmp_path


def test_a_user_gpu_needs_its_file_and_then_deploys_with_its_node_size(tmp_path, gpu_file):
    plan = _plan(tmp_path, {"hardware": "my-gpu", "tp": 8})
    with pytest.raises(ConfigError, match=r"'my-gpu', which is not in the presets; pass .* --hardware-file"):
        load_fleet(plan)
    fleet = load_fleet(plan, extra=load_hardware_file(gpu_file))
    (pool,) = fleet.pools
    assert (pool.kind, pool.gpus_per_node, pool.user_chip) == ("gpu", 4, True)
    files = render(fleet, "vllm")
    words = files["launch/mixed.sh"].split()
    assert words[words.index("--tensor-parallel-size") + 1] == "8"
    readme = files["README.md"]
    assert "more than one my-gpu node holds (4)" in readme and f"a chip from {gpu_file}" in readme


def test_a_plan_that_searched_with_a_hardware_file_deploys_without_the_flag(tmp_path, gpu_file):
    fleet = load_fleet(_plan(tmp_path, {"hardware": "my-gpu", "tp": 2}, hardware_file=gpu_file))
    assert fleet.pools[0].gpus_per_node == 4 and fleet.hardware_from == gpu_file
    _plan(tmp_path, {"hardware": "my-gpu", "tp": 2}, hardware_file=str(tmp_path / "moved.yaml"))
    with pytest.raises(ConfigError, match="the plan's hardware_file: .*moved.yaml does not exist; pass the file"):
        load_fleet(tmp_path)


def _user_gpu_scenario(tmp_path, hardware_file: str) -> str:
    scen = {"name": "user-gpu", "model": "llama-2-7b", "hardware_file": hardware_file,
            "workload": {"arrivals": {"kind": "poisson", "rate_per_s": 2.0}, "num_requests": 6,
                         "prompt_tokens": {"kind": "fixed", "value": 64}, "output_tokens": {"kind": "fixed", "value": 8}},
            "slo": {"ttft_s": 5.0, "tpot_s": 1.0},
            "fleets": [{"name": "mine", "pools": {"mixed": {"hardware": "my-gpu", "tp": 2, "count": 3}}}]}
    path = tmp_path / "scen.yaml"
    path.write_text(yaml.safe_dump(scen), encoding="utf-8")
    return str(path)


def test_a_simulation_on_a_user_gpu_deploys_from_its_recorded_specs(tmp_path, gpu_file, capsys):
    """simulate --out records my-gpu's spec; deploy reads it back without the file (which may be gone by then)."""
    out = tmp_path / "sim"
    assert main(["simulate", _user_gpu_scenario(tmp_path, gpu_file), "--out", str(out), "--no-bands"]) == 0
    (tmp_path / "my_gpu.yaml").unlink()
    assert main(["deploy", str(out), "--engine", "sglang", "-o", str(tmp_path / "deploy")]) == 0
    capsys.readouterr()
    deployed = json.loads((tmp_path / "deploy" / "fleet.json").read_text())
    (pool,) = deployed["pools"]
    assert (pool["hardware"], pool["count"], pool["tp"], pool["gpus_per_node"]) == ("my-gpu", 3, 2, 4)
    assert "summary.json (inputs.hardware)" in deployed["hardware_from"]


def test_a_hardware_file_that_makes_a_simulated_gpu_an_lpu_is_refused(tmp_path, gpu_file):
    doc = {"fleets": [{"fleet": "a"}], "inputs": {"model": {"name": "llama-2-7b"}, "fleets": {"a": {"pools": {
        "mixed": {"hardware": "my-tsp", "kind": "gpu", "count": 1, "tp": 1}}}}}}
    _write(tmp_path / "summary.json", doc)
    lpu = {**spec_table(get_hardware("groq-tsp-v1")), "microarch_based_on": "groq-tsp-v1"}
    hw = load_hardware_file(_write(tmp_path / "hw.yaml", {"lpu": {"my-tsp": lpu}}))
    with pytest.raises(ConfigError, match="ran 'my-tsp' as GPU, but the hardware given defines it as LPU"):
        load_fleet(tmp_path, extra=hw)


@pytest.mark.parametrize("engine", ["vllm", "dynamo"])
def test_a_fleet_on_a_user_lpu_only_is_refused_in_one_line(tmp_path, lpu_file, capsys, engine):
    plan = _plan(tmp_path, {"hardware": "my-tsp", "tp": 1, "chips": 72})
    out = tmp_path / "deploy"
    assert main(["deploy", str(plan), "--engine", engine, "--hardware-file", lpu_file, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "runs on LPU chips only (mixed on my-tsp)" in err and "serves GPUs" in err and engine in err
    assert not out.exists()


def test_a_replaced_preset_deploys_with_the_users_figures(tmp_path, capsys):
    """[gpu.h100-sxm] with 4 GPUs per node: a pool on `h100` gets the file's node size and the user-chip note."""
    path = _write(tmp_path / "h100.yaml", {"gpu": {"h100-sxm": {**spec_table(get_hardware("h100-sxm")),
                                                                "scale_up_gpus": 4}}})
    fleet = load_fleet(_plan(tmp_path, {"hardware": "h100", "tp": 8}), extra=load_hardware_file(path))
    assert (fleet.pools[0].gpus_per_node, fleet.pools[0].user_chip) == (4, True)
    preset = load_fleet(tmp_path)
    assert (preset.pools[0].gpus_per_node, preset.pools[0].user_chip) == (8, False)


def test_a_recorded_spec_from_another_version_still_deploys(tmp_path):
    """inputs.hardware as simulate writes it (sources, kind ...) plus a field this version lacks: read, field dropped."""
    import dataclasses

    spec = dataclasses.replace(get_hardware("h100-sxm"), name="my-gpu", scale_up_gpus=2)
    record = {**json.loads(json.dumps(dataclasses.asdict(spec))), "hbm_stacks": 5}
    doc = {"fleets": [{"fleet": "a"}], "inputs": {"model": {"name": "llama-2-7b"}, "hardware": {"my-gpu": record},
                                                  "fleets": {"a": {"pools": {"mixed": {
                                                      "hardware": "my-gpu", "kind": "gpu", "count": 1, "tp": 4}}}}}}
    _write(tmp_path / "summary.json", doc)
    (pool,) = load_fleet(tmp_path).pools
    assert (pool.gpus_per_node, pool.user_chip) == (2, True)
    assert "more than one my-gpu node holds (2)" in render(load_fleet(tmp_path), "vllm")["README.md"]

"""Generated artefacts name the model and its parallelism, parse as YAML, and pass the option tables."""

from __future__ import annotations

import shlex

import pytest
import yaml

from twinfer.cli import main
from twinfer.deploy import load_fleet, render
from twinfer.deploy.schema import validate_command


def _command_of(script: str) -> list[str]:
    return shlex.split(script.splitlines()[-1].removeprefix("exec "))


@pytest.mark.parametrize("engine", ["vllm", "sglang", "dynamo"])
def test_aggregated_plan_renders_for_every_engine(plan_dir, engine):
    files = render(load_fleet(plan_dir), engine)
    docs = list(yaml.safe_load_all(files["k8s.yaml"]))
    script = next(v for k, v in files.items() if k.endswith(".sh") and "frontend" not in k)
    words = _command_of(script)
    assert "meta-llama/Meta-Llama-3-70B" in words  # the preset's Hugging Face repository
    assert ("4" in words) and any(w in words for w in ("--tensor-parallel-size", "--tp-size"))
    if engine == "dynamo":
        (graph,) = docs
        assert graph["kind"] == "DynamoGraphDeployment"
        worker = graph["spec"]["services"]["VllmWorker"]
        assert worker["replicas"] == 2 and worker["resources"]["limits"]["gpu"] == "4"
    else:
        deployment, service = docs
        assert deployment["spec"]["replicas"] == 2 and service["kind"] == "Service"
        limits = deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == 4
    assert "128" in words  # the plan's batch cap reaches the engine


def test_disaggregated_vllm_uses_the_nixl_connector_and_says_it_needs_a_proxy(plan_dir):
    files = render(load_fleet(plan_dir, "disagg[1x h100 tp4 -> 2x h200 tp8]"), "vllm")
    for role, tp in (("prefill", "4"), ("decode", "8")):
        words = _command_of(files[f"launch/{role}.sh"])
        assert words[:2] == ["vllm", "serve"] and validate_command("vllm serve", words[2:]) == []
        assert '{"kv_connector": "NixlConnector", "kv_role": "kv_both"}' in words
        assert words[words.index("--tensor-parallel-size") + 1] == tp
    assert "proxy" in files["README.md"]


def test_dynamo_disaggregated_graph_has_prefill_and_decode_workers(plan_dir):
    files = render(load_fleet(plan_dir, "disagg[1x h100 tp4 -> 2x h200 tp8]"), "dynamo")
    graph = yaml.safe_load(files["k8s.yaml"])["spec"]["services"]
    assert set(graph) == {"Frontend", "VllmPrefillWorker", "VllmDecodeWorker"}
    assert "--is-prefill-worker" in graph["VllmPrefillWorker"]["extraPodSpec"]["mainContainer"]["args"]
    assert graph["VllmDecodeWorker"]["replicas"] == 2
    assert yaml.safe_load(files["dynamo/decode-worker.yaml"])["gpus_per_replica"] == 8


def test_lpu_pool_gets_a_note_not_a_file(plan_dir):
    files = render(load_fleet(plan_dir, "disagg[1x h100 tp8 -> 1x groq-tsp-v1]"), "vllm")
    assert "launch/decode.sh" not in files and "launch/prefill.sh" in files
    assert "cannot serve it" in files["README.md"] and "no engine connector" in files["README.md"]
    assert "--kv-transfer-config" not in files["launch/prefill.sh"]  # nothing to connect to


def test_fp8_fleet_sets_quantisation_and_kv_dtype(sim_dir):
    files = render(load_fleet(sim_dir, "colocated"), "sglang")
    words = _command_of(files["launch/mixed.sh"])
    assert words[words.index("--kv-cache-dtype") + 1] == "fp8_e4m3" and "--quantization" in words
    assert words[words.index("--model-path") + 1] == "meta-llama/Meta-Llama-3-8B"


def test_cli_writes_the_files(plan_dir, tmp_path, capsys):
    out = tmp_path / "deploy"
    assert main(["deploy", str(plan_dir), "--engine", "dynamo", "-o", str(out)]) == 0
    assert (out / "k8s.yaml").is_file() and (out / "dynamo" / "mixed-worker.sh").stat().st_mode & 0o111
    assert main(["deploy", str(plan_dir), "--engine", "tgi", "-o", str(out)]) == 2
    assert "unknown deploy engine 'tgi'" in capsys.readouterr().err

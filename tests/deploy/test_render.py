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


def _with_tiers(sim_dir):
    """sim_dir's summary with the split fleet's prefill prefix cache offloading to host DRAM and a Mooncake store."""
    import json

    path = sim_dir / "summary.json"
    doc = json.loads(path.read_text())
    doc["inputs"]["fleets"]["split"]["prefix_cache"] = {
        "prefill": {"blocks": None, "tiers": ["h100-host-dram", "mooncake-store"], "key": "prefix_cache"}}
    path.write_text(json.dumps(doc))
    return sim_dir


@pytest.mark.parametrize(("engine", "recipe"), [("vllm", "LMCacheConnectorV1"), ("sglang", "--enable-hierarchical-cache"),
                                                ("dynamo", "KVBM")])
def test_offload_tiers_the_files_do_not_configure_get_a_note_saying_what_to_set_up(sim_dir, engine, recipe):
    """Before, deploy dropped the tiers without a word; the commands still configure none (no tier flag in them)."""
    files = render(load_fleet(_with_tiers(sim_dir), "split"), engine)
    readme = files["README.md"]
    assert "The prefill pool's prefix cache offloads to h100-host-dram, mooncake-store" in readme
    assert recipe in readme and "configure no offload tier or shared store" in readme
    assert "The shared tier (mooncake-store) is a service of its own" in readme
    scripts = " ".join(text for rel, text in files.items() if rel.endswith(".sh"))
    assert "hierarchical" not in scripts and "LMCache" not in scripts


def test_a_fleet_without_tiers_gets_no_tier_note(sim_dir):
    readme = render(load_fleet(_with_tiers(sim_dir), "colocated"), "vllm")["README.md"]
    assert "offloads to" not in readme


def test_the_cli_prints_the_notes(sim_dir, tmp_path, capsys):
    assert main(["deploy", str(_with_tiers(sim_dir)), "--fleet", "split", "--engine", "sglang",
                 "-o", str(tmp_path / "d")]) == 0
    err = capsys.readouterr().err
    assert "note: The prefill pool's prefix cache offloads to h100-host-dram, mooncake-store" in err
    assert "note: SGLang's prefill and decode servers sit behind its router" in err

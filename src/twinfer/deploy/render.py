"""Turn a fleet into deployable files for vLLM, SGLang or NVIDIA Dynamo (text only; the CLI writes them)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import asdict

import yaml

from twinfer.deploy.commands import (
    SGLANG_PORT,
    VLLM_PORT,
    dynamo_frontend_args,
    dynamo_worker_args,
    sglang_args,
    vllm_args,
)
from twinfer.deploy.fleet import DeployFleet, DeployPool
from twinfer.deploy.manifests import IMAGES, dynamo_graph, pool_deployment
from twinfer.deploy.schema import option_tables, validate_command
from twinfer.errors import ConfigError

#: Engines ``twinfer deploy`` writes for.
DEPLOY_ENGINES = ("vllm", "sglang", "dynamo")

_Builder = Callable[[DeployPool, str, bool], tuple[str, list[str]]]
_BUILDERS: dict[str, tuple[_Builder, int]] = {"vllm": (vllm_args, VLLM_PORT), "sglang": (sglang_args, SGLANG_PORT),
                                              "dynamo": (dynamo_worker_args, VLLM_PORT)}


def _checked(command: str, args: list[str]) -> list[str]:
    problems = validate_command(command, args)
    if problems:
        source = option_tables()[command]["source"] if command in option_tables() else "?"
        raise ConfigError(f"the generated `{command}` command is not valid for {source}: {'; '.join(problems)}")
    return [*command.split(), *args]


def _model_id(model: str) -> str:
    from twinfer.models.registry import preset_repository

    return preset_repository(model) or model


#: Per engine, what provides the offload tiers and shared store under a prefix cache (none is configured here).
_TIER_RECIPES = {
    "vllm": "vLLM: LMCache's connector (--kv-transfer-config '{\"kv_connector\":\"LMCacheConnectorV1\","
            "\"kv_role\":\"kv_both\"}', its local CPU and disk backends sized by LMCACHE_* settings, a Mooncake "
            "store as its remote backend; in a prefill/decode deployment, beside the NIXL connector through vLLM's "
            "MultiConnector)",
    "sglang": "SGLang: HiCache (--enable-hierarchical-cache, host memory by --hicache-size; a Mooncake store by "
              "--hicache-storage-backend mooncake)",
    "dynamo": "Dynamo's vLLM workers: its KV block manager (KVBM), or LMCache's connector as for vLLM",
}


def _tier_note(role: str, tiers: tuple[str, ...], engine: str) -> str:
    from twinfer.kvcache.tiers import load_tiers

    known = load_tiers()
    shared = [t for t in tiers if t in known and known[t].shared]
    store = (f" The shared tier ({', '.join(shared)}) is a service of its own (Mooncake's master and store servers) "
             "that every instance must reach." if shared else "")
    return (f"The {role} pool's prefix cache offloads to {', '.join(tiers)} in the simulation, but the generated "
            "files configure no offload tier or shared store: the engine keeps only its on-GPU prefix cache, so "
            "prefixes the simulation reloaded from those tiers are prefilled again. To match it, set up "
            f"{_TIER_RECIPES[engine]}.{store}")


def deploy_notes(fleet: DeployFleet, engine: str) -> list[str]:
    """What the generated files leave to the operator (README's Notes; the CLI prints them too)."""
    notes = []
    for pool in fleet.pools:
        if pool.kind != "gpu":
            notes.append(f"The {pool.role} pool runs on {pool.hardware} (an LPU, {pool.chips or 'auto'} chips per "
                         f"instance): {engine} cannot serve it, so no file is written for it. Provision it with the "
                         "LPU vendor's runtime; twinfer's figures for it come from the virtual LPU.")
            continue
        per_node = pool.gpus_per_node or 8
        if pool.gpus_per_instance > per_node:
            notes.append(f"The {pool.role} pool needs {pool.gpus_per_instance} GPUs per instance, more than one "
                         f"{pool.hardware} node holds ({per_node}): run each instance across nodes (vLLM/SGLang "
                         "multi-node with Ray or a LeaderWorkerSet); the single-pod manifest assumes one node.")
        if pool.user_chip:
            notes.append(f"The {pool.role} pool runs on {pool.hardware}, a chip from {fleet.hardware_from}, not a "
                         "twinfer preset: the manifests request `nvidia.com/gpu`; change the resource name if it "
                         "is not an NVIDIA GPU, and check that the engine supports it.")
    kinds = {p.role: p.kind for p in fleet.pools}
    if fleet.mode == "disaggregated" and "gpu" in kinds.values() and "lpu" in kinds.values():
        notes.append("Prefill and decode run on different silicon: no engine connector moves KV from a GPU "
                     "engine to an LPU, so the GPU pool is written as a stand-alone server.")
    elif fleet.mode == "disaggregated" and engine == "vllm":
        notes.append("vLLM's prefill and decode servers need a proxy that sends each request to a prefill "
                     "server with max_tokens=1 and then to a decode server (vLLM examples: "
                     "disaggregated_serving/disagg_proxy_server.py); or deploy with --engine dynamo.")
    elif fleet.mode == "disaggregated" and engine == "sglang":
        notes.append("SGLang's prefill and decode servers sit behind its router: `python -m sglang_router."
                     "launch_router --pd-disaggregation --prefill http://PREFILL:30000 --decode http://DECODE:30000`.")
    gpu_roles = {p.role for p in fleet.pools if p.kind == "gpu"}
    notes += [_tier_note(role, tiers, engine) for role, tiers in fleet.prefix_tiers if role in gpu_roles]
    return notes


def render(fleet: DeployFleet, engine: str) -> dict[str, str]:
    """The files (relative path -> text) that deploy ``fleet`` with ``engine`` (vllm, sglang or dynamo)."""
    if engine not in DEPLOY_ENGINES:
        raise ConfigError(f"unknown deploy engine {engine!r}; use one of {', '.join(DEPLOY_ENGINES)}")
    gpu_pools = [p for p in fleet.pools if p.kind == "gpu"]
    if not gpu_pools:
        chips = ", ".join(f"{p.role} on {p.hardware}" for p in fleet.pools)
        raise ConfigError(f"fleet {fleet.name!r} runs on LPU chips only ({chips}): {engine} (like every engine "
                          f"twinfer deploys for: {', '.join(DEPLOY_ENGINES)}) serves GPUs, so there is nothing to "
                          "write; provision LPUs with the vendor's runtime, or deploy a fleet with a GPU pool")
    model_id = _model_id(fleet.model)
    disagg = fleet.mode == "disaggregated" and len(gpu_pools) == len(fleet.pools)
    builder, port = _BUILDERS[engine]
    files: dict[str, str] = {}
    commands = {p.role: (p, _checked(*builder(p, model_id, disagg))) for p in gpu_pools}
    if engine == "dynamo":
        frontend = _checked(*dynamo_frontend_args(disagg))
        files["dynamo/frontend.sh"] = _script(frontend)
        for role, (pool, command) in commands.items():
            files[f"dynamo/{role}-worker.sh"] = _script(command)
            files[f"dynamo/{role}-worker.yaml"] = yaml.safe_dump(
                {"role": role, "replicas": pool.count, "gpus_per_replica": pool.gpus_per_instance,
                 "hardware": pool.hardware, "command": command}, sort_keys=False)
        manifests = [dynamo_graph(fleet, commands, frontend)] if commands else []
    else:
        manifests = []
        for role, (pool, command) in commands.items():
            files[f"launch/{role}.sh"] = _script(command)
            manifests += pool_deployment(fleet, pool, engine, command, port)
    if manifests:
        files["k8s.yaml"] = yaml.safe_dump_all(manifests, sort_keys=False)
    files["fleet.json"] = json.dumps(asdict(fleet), indent=1) + "\n"
    files["README.md"] = _readme(fleet, engine, model_id, commands, deploy_notes(fleet, engine), sorted(files))
    return files


def _script(command: list[str]) -> str:
    return "#!/bin/sh\n# Generated by `twinfer deploy`; one instance of the pool.\nexec " + shlex.join(command) + "\n"


def _readme(fleet: DeployFleet, engine: str, model_id: str, commands: dict[str, tuple[DeployPool, list[str]]],
            notes: list[str], paths: list[str]) -> str:
    lines = [f"# {fleet.name}: {engine} deployment", "",
             f"Model `{fleet.model}` (weights: `{model_id}`), {fleet.mode}, from `{fleet.source}`.", "",
             "| pool | hardware | instances | tp | pp | GPUs each | max seqs | max tokens/step | weights | KV |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for p in fleet.pools:
        lines.append(f"| {p.role} | {p.hardware} ({p.kind}) | {p.count} | {p.tp} | {p.pp} | "
                     f"{p.gpus_per_instance if p.kind == 'gpu' else '-'} | {p.max_num_seqs} | "
                     f"{p.max_num_batched_tokens or 'engine default'} | {p.weights_dtype} | {p.kv_cache_dtype} |")
    lines += ["", "## Launch", ""]
    for role, (_, command) in commands.items():
        lines += [f"{role} (each instance):", "", "```sh", shlex.join(command), "```", ""]
    if "k8s.yaml" in paths:
        lines += [f"Kubernetes: `kubectl apply -f k8s.yaml` (image {IMAGES[engine]}"
                  + ("; needs the Dynamo operator" if engine == "dynamo" else "") + ").", ""]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    lines += ["Every command was checked against the engine's documented options "
              "(twinfer/deploy/engine_options.json names the version).", "", "Files: " + ", ".join(paths), ""]
    return "\n".join(lines)

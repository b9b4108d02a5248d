"""Kubernetes manifests: one Deployment + Service per pool (vLLM, SGLang), or a Dynamo graph (DynamoGraphDeployment)."""

from __future__ import annotations

import re
from typing import Any

from twinfer.deploy.fleet import DeployFleet, DeployPool

#: Container images per engine, at the versions the option tables were copied from (engine_options.json).
IMAGES = {
    "vllm": "vllm/vllm-openai:v0.11.0",
    "sglang": "lmsysorg/sglang:v0.5.3-cu126",
    "dynamo": "nvcr.io/nvidia/ai-dynamo/vllm-runtime:0.6.0",
}


def k8s_name(text: str) -> str:
    """A DNS-1123 name (lower case, digits, '-') from a fleet or pool name."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9-]", "-", text.lower())).strip("-")[:50] or "twinfer"


def pool_deployment(fleet: DeployFleet, pool: DeployPool, engine: str, command: list[str],
                    port: int) -> list[dict[str, Any]]:
    """A Deployment (``pool.count`` replicas, tp x pp GPUs each) and its Service, for vLLM or SGLang."""
    name = k8s_name(f"{fleet.name}-{pool.role}")
    labels = {"app.kubernetes.io/name": name, "twinfer/role": pool.role, "twinfer/engine": engine}
    container = {
        "name": engine, "image": IMAGES[engine], "command": command[:1], "args": command[1:],
        "ports": [{"containerPort": port, "name": "http"}],
        "resources": {"limits": {"nvidia.com/gpu": pool.gpus_per_instance}},
        "volumeMounts": [{"name": "dshm", "mountPath": "/dev/shm"}],
    }
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"replicas": pool.count, "selector": {"matchLabels": {"app.kubernetes.io/name": name}},
                 "template": {"metadata": {"labels": dict(labels)},
                              "spec": {"containers": [container],
                                       "volumes": [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]}}},
    }
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "labels": dict(labels)},
        "spec": {"selector": {"app.kubernetes.io/name": name}, "ports": [{"port": port, "targetPort": port, "name": "http"}]},
    }
    return [deployment, service]


def dynamo_graph(fleet: DeployFleet, workers: dict[str, tuple[DeployPool, list[str]]],
                 frontend: list[str]) -> dict[str, Any]:
    """A DynamoGraphDeployment: the frontend plus one worker service per GPU pool (Dynamo's k8s operator CRD)."""
    ns = k8s_name(fleet.name)

    def service(component: str, replicas: int, command: list[str], gpus: int | None, sub: str | None) -> dict:
        spec: dict[str, Any] = {
            "dynamoNamespace": ns, "componentType": component, "replicas": replicas,
            "extraPodSpec": {"mainContainer": {"image": IMAGES["dynamo"], "workingDir": "/workspace",
                                               "command": command[:3], "args": command[3:]}},
        }
        if sub:
            spec["subComponentType"] = sub
        if gpus:
            spec["resources"] = {"limits": {"gpu": str(gpus)}}
        return spec

    services = {"Frontend": service("frontend", 1, frontend, None, None)}
    for role, (pool, command) in workers.items():
        title = {"mixed": "VllmWorker", "prefill": "VllmPrefillWorker", "decode": "VllmDecodeWorker"}[role]
        services[title] = service("worker", pool.count, command, pool.gpus_per_instance,
                                  None if role == "mixed" else role)
    return {"apiVersion": "nvidia.com/v1alpha1", "kind": "DynamoGraphDeployment",
            "metadata": {"name": ns}, "spec": {"services": services}}

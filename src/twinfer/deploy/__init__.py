"""Deployable artefacts from a plan or a simulated fleet: engine launch commands, Dynamo graphs, Kubernetes manifests.

:func:`load_fleet` reads the recommended (or a named) fleet from ``plan.json``
(``twinfer plan``) or ``summary.json`` (``twinfer simulate --out``);
:func:`render` turns it into files for vLLM, SGLang or NVIDIA Dynamo, each
launch command checked against the engine's documented options
(:mod:`twinfer.deploy.schema`). Writing the files is the CLI's job.
"""

from twinfer.deploy.fleet import DeployFleet, DeployPool, load_fleet
from twinfer.deploy.render import DEPLOY_ENGINES, deploy_notes, render

__all__ = ["DEPLOY_ENGINES", "DeployFleet", "DeployPool", "deploy_notes", "load_fleet", "render"]

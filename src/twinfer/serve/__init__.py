"""OpenAI-compatible emulation server paced by a simulated fleet (``twinfer serve``).

Modules: :mod:`pacing` (a fleet simulation run in real time on the asyncio
loop), :mod:`fixed` (a fixed-latency fake fleet), :mod:`sim_fleet` (the
twinfer simulator as a paced fleet), :mod:`protocol` and :mod:`responses`
(OpenAI request validation, error objects, response shapes), :mod:`text`
(synthetic answers, prompt token counting), :mod:`metrics` (Prometheus text),
:mod:`app` (the FastAPI app). Importing this package imports no web framework.
"""

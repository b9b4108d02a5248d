"""Factories for the serve tests: a linear fake step cost and small twinfer.sim fleets."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LinearCost:
    """A fake step-cost model: fixed + per-token time per step (a StepCostModel)."""

    fixed_s: float = 0.02
    per_token_s: float = 1e-4
    kv_tokens: int = 100_000
    max_seqs: int = 64

    def step_time_s(self, shape) -> float:
        return self.fixed_s + self.per_token_s * shape.total_tokens

    def resources(self):
        from twinfer.perf.base import InstanceResources

        return InstanceResources("fake", 1, self.kv_tokens, self.max_seqs, 1.0, 100.0, 500.0)


def make_cluster(
    cost=None,
    *,
    count: int = 1,
    max_batch_seqs: int | None = None,
    policy: str = "chunked",
    decode_count: int = 0,
    track_tokens: bool = True,
):
    """A twinfer.sim fleet: aggregated, or prefill -> decode when ``decode_count`` > 0."""
    from twinfer.sim.cluster import FleetSim, LinkSetup, PoolSetup
    from twinfer.sim.scheduler import BatchingConfig

    cost = cost or LinearCost()
    batching = BatchingConfig(policy=policy, max_batch_seqs=max_batch_seqs)
    if decode_count:
        pools = [
            PoolSetup("prefill", cost, count, batching),
            PoolSetup("decode", cost, decode_count, batching),
        ]
        link = LinkSetup(bw_bytes_per_s=50e9, latency_s=1e-3)
    else:
        pools, link = [PoolSetup("mixed", cost, count, batching)], None
    return FleetSim(
        pools, kv_bytes_per_token=131072, num_layers=32, link=link, track_tokens=track_tokens
    )


def main(argv: list[str] | None = None) -> None:
    """Serve a fake-cost simulated fleet on 127.0.0.1 (for timing tests in a separate process)."""
    import argparse

    import uvicorn

    from twinfer.serve.app import ServeConfig, create_app
    from twinfer.serve.sim_fleet import SimulatedFleet

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--fixed-s", type=float, default=0.02)
    parser.add_argument("--per-token-s", type=float, default=1e-4)
    parser.add_argument("--max-batch-seqs", type=int, default=None)
    args = parser.parse_args(argv)
    cost = LinearCost(fixed_s=args.fixed_s, per_token_s=args.per_token_s)
    config = ServeConfig(
        model_name="sim-model", context_tokens=8192, speed=args.speed, fleet_label="fake"
    )
    app = create_app(
        config, lambda: SimulatedFleet(make_cluster(cost, max_batch_seqs=args.max_batch_seqs))
    )
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()

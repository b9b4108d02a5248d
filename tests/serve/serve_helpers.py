"""Factories for the serve tests: a linear fake step cost and small twinfer.sim fleets."""

from __future__ import annotations

import socket
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


def write_tiny_llama(
    folder, *, vocab: int = 128, hidden: int = 64, layers: int = 2, seed: int = 0
) -> None:
    """A random 2-layer Llama checkpoint (config.json + model.safetensors) written with numpy only.

    Weights are N(0, 0.3) (std 0.3 keeps greedy decoding of a random model from collapsing onto one
    token, shared/reference/tooling-notes.md) and bf16-representable, stored as float32.
    """
    import json

    import numpy as np
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    heads, kv_heads, head_dim, inter = 4, 2, hidden // 4, 2 * hidden

    def w(*shape):
        x = (rng.standard_normal(shape) * 0.3).astype(np.float32)
        return (x.view(np.uint32) & np.uint32(0xFFFF0000)).view(
            np.float32
        )  # truncate to bf16 values

    tensors = {
        "model.embed_tokens.weight": w(vocab, hidden),
        "lm_head.weight": w(vocab, hidden),
        "model.norm.weight": 1 + w(hidden),
    }
    for i in range(layers):
        p = f"model.layers.{i}"
        tensors |= {
            f"{p}.input_layernorm.weight": 1 + w(hidden), f"{p}.post_attention_layernorm.weight": 1 + w(hidden),
            f"{p}.self_attn.q_proj.weight": w(heads * head_dim, hidden),
            f"{p}.self_attn.k_proj.weight": w(kv_heads * head_dim, hidden),
            f"{p}.self_attn.v_proj.weight": w(kv_heads * head_dim, hidden),
            f"{p}.self_attn.o_proj.weight": w(hidden, heads * head_dim),
            f"{p}.mlp.gate_proj.weight": w(inter, hidden), f"{p}.mlp.up_proj.weight": w(inter, hidden),
            f"{p}.mlp.down_proj.weight": w(hidden, inter),
        }  # fmt: skip
    save_file(tensors, str(folder / "model.safetensors"))
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden,
        "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "vocab_size": vocab, "max_position_embeddings": 256,
        "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": False, "torch_dtype": "float32",
    }  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))


def bound_socket() -> socket.socket:
    """A socket already bound to a free port on 127.0.0.1, for ``uvicorn.Server.run(sockets=[...])``.

    Binding here (rather than picking a port and letting uvicorn bind it later) leaves no window in
    which another process could take the port.
    """
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    return s


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (for a server in another process, which must bind it itself)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

"""``twinfer serve``: an OpenAI-compatible endpoint that answers with a simulated fleet's latency."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def is_loopback(host: str) -> bool:
    """Whether ``host`` binds only the loopback interface."""
    import ipaddress

    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def serve_command(
    scenario: Annotated[
        Path | None,
        typer.Argument(
            help="Scenario YAML (the `twinfer simulate` schema); default: the built-in scenario."
        ),
    ] = None,
    fleet: Annotated[
        str | None, typer.Option(help="Fleet of the scenario to emulate (default: its first).")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Instead of a scenario: model preset or config.json of a one-pool fleet."
        ),
    ] = None,
    hardware: Annotated[
        str, typer.Option(help="With --model: hardware preset of each instance.")
    ] = "h100",
    tp: Annotated[int, typer.Option(help="With --model: tensor-parallel GPUs per instance.")] = 1,
    instances: Annotated[int, typer.Option(help="With --model: instances in the pool.")] = 1,
    max_batch_seqs: Annotated[
        int | None, typer.Option(help="With --model: sequences per step cap.")
    ] = None,
    fixed_ttft_ms: Annotated[
        float | None, typer.Option(help="No simulator: every request gets this TTFT (ms) ...")
    ] = None,
    fixed_itl_ms: Annotated[
        float, typer.Option(help="... and this time between tokens (ms).")
    ] = 20.0,
    speed: Annotated[float, typer.Option(help="Simulated seconds per wall second.")] = 1.0,
    host: Annotated[
        str,
        typer.Option(help="Address to bind; beyond loopback anyone on the network can call it."),
    ] = ("127.0.0.1"),
    port: Annotated[int, typer.Option(help="TCP port.", min=1, max=65535)] = 8000,
    model_dir: Annotated[
        Path | None,
        typer.Option(
            help="Model folder (config.json + safetensors [+ tokenizer.json]): real tokens, exact counts."
        ),
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            help="Folder with tokenizer.json (or the file) for exact prompt token counts."
        ),
    ] = None,
    served_model_name: Annotated[
        str | None, typer.Option(help="Model id clients use (default: the model's).")
    ] = None,
    max_queue: Annotated[
        int | None, typer.Option(help="Answer 429 when this many requests wait for a first token.")
    ] = None,
    max_body_bytes: Annotated[int, typer.Option(help="Larger request bodies get 413.")] = 4
    * 1024
    * 1024,
    chat_default_max_tokens: Annotated[
        int, typer.Option(help="Chat max_tokens when a client sends none.")
    ] = 256,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    api_key: Annotated[
        str | None,
        typer.Option(envvar="TWINFER_API_KEY", show_envvar=True,
                     help="Require 'Authorization: Bearer KEY' on every request but /health (401 otherwise); "
                          "needed when --host is not loopback."),
    ] = None,
    insecure_no_auth: Annotated[
        bool, typer.Option(help="Serve beyond loopback without --api-key (anyone who can reach it may call it).")
    ] = False,
    header_timeout_s: Annotated[
        float, typer.Option(help="Close a connection whose request headers take longer than this (s).")
    ] = 10.0,
    keep_alive_s: Annotated[float, typer.Option(help="Close idle keep-alive connections after this (s).")] = 5.0,
    body_timeout_s: Annotated[
        float, typer.Option(help="Answer 408 when a request body takes longer than this to arrive (s).")
    ] = 30.0,
    max_connections: Annotated[
        int, typer.Option(help="Concurrent connections and requests; beyond it requests get 503.")
    ] = 1024,
) -> None:
    """Serve /v1/completions, /v1/chat/completions, /v1/models and /metrics, paced by a simulated fleet.

    Point any OpenAI client at it: base_url="http://127.0.0.1:8000/v1", any api_key (the --api-key one
    when the server was given one).
    Each request joins the simulated fleet in real time (x --speed); its first token
    is sent at the simulated TTFT and each later token at the simulated times.
    """
    from twinfer.errors import ConfigError
    from twinfer.serve import build
    from twinfer.serve.text import find_tokenizer, make_counter

    _check_ranges(fixed_ttft_ms=fixed_ttft_ms, fixed_itl_ms=fixed_itl_ms, speed=speed, tp=tp, instances=instances,
                  max_batch_seqs=max_batch_seqs, max_queue=max_queue, max_body_bytes=max_body_bytes,
                  chat_default_max_tokens=chat_default_max_tokens, header_timeout_s=header_timeout_s,
                  keep_alive_s=keep_alive_s, max_connections=max_connections, body_timeout_s=body_timeout_s)
    check_auth(host, api_key, insecure_no_auth)
    if log_level.lower() not in LOG_LEVELS:
        raise ConfigError(f"--log-level {log_level!r}: use one of {', '.join(LOG_LEVELS)}")
    if fixed_ttft_ms is not None:
        plan = build.fixed_plan(
            ttft_s=fixed_ttft_ms / 1e3, itl_s=fixed_itl_ms / 1e3, model=model or "llama-3-8b"
        )
    elif model is not None:
        plan = build.quick_plan(
            model=model,
            hardware=hardware,
            tp=tp,
            instances=instances,
            max_batch_seqs=max_batch_seqs,
        )
    else:
        plan = build.scenario_plan(scenario, fleet)

    tokenizer_path = find_tokenizer(tokenizer) or find_tokenizer(model_dir)
    if tokenizer is not None and tokenizer_path is None:
        raise ConfigError(f"--tokenizer {tokenizer}: no tokenizer.json there")
    counter = make_counter(tokenizer_path)
    text_source = None
    if model_dir is not None:
        from twinfer.serve.model_text import ModelTextSource

        text_source = ModelTextSource.open(model_dir, tokenizer_path)
    _run(
        plan,
        counter=counter,
        text_source=text_source,
        speed=speed,
        host=host,
        port=port,
        served_model_name=served_model_name,
        max_queue=max_queue,
        max_body_bytes=max_body_bytes,
        chat_default_max_tokens=chat_default_max_tokens,
        log_level=log_level,
        limits={"api_key": api_key, "header_timeout_s": header_timeout_s, "keep_alive_s": keep_alive_s,
                "max_connections": max_connections},
        body_timeout_s=body_timeout_s,
    )


def _check_ranges(**values: float | None) -> None:
    """Refuse NaN, negative or absurd option values (None: not given) before anything starts."""
    from twinfer.cli import checks

    for name, (low, high, low_open) in _RANGES.items():
        checks.number_in_range(f"--{name.replace('_', '-')}", values[name], low, high, low_open=low_open)


#: Accepted ranges of numeric options: (low, high, low excluded).
_RANGES = {
    "fixed_ttft_ms": (0.0, 3.6e6, False), "fixed_itl_ms": (0.0, 3.6e6, False), "speed": (0.0, 1e6, True),
    "tp": (1, 1024, False), "instances": (1, 10_000, False), "max_batch_seqs": (1, 1_000_000, False),
    "max_queue": (0, 10_000_000, False), "max_body_bytes": (1, 1 << 30, False),
    "chat_default_max_tokens": (1, 10_000_000, False), "header_timeout_s": (0.0, 3600.0, True),
    "keep_alive_s": (0.0, 3600.0, True), "max_connections": (1, 1_000_000, False),
    "body_timeout_s": (0.0, 3600.0, True),
}


def check_auth(host: str, api_key: str | None, insecure_no_auth: bool) -> None:
    """Beyond loopback the server needs --api-key, unless --insecure-no-auth says otherwise."""
    from twinfer.errors import ConfigError

    if api_key is not None and not api_key.strip():
        raise ConfigError("--api-key: the key is empty; give a secret string (or leave the option out)")
    if not is_loopback(host) and api_key is None and not insecure_no_auth:
        raise ConfigError(f"--host {host}: anyone on the network could call the server; give --api-key KEY "
                          "(or set TWINFER_API_KEY), or pass --insecure-no-auth to serve without a key")


def _check_port_free(host: str, port: int) -> None:
    """Fail with one clear message (exit 2) when ``host:port`` cannot be bound, before printing that we serve."""
    import socket

    from twinfer.errors import ConfigError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; "
                              "choose another --port or stop what uses it") from None


def _run(
    plan,
    *,
    counter,
    text_source,
    speed,
    host,
    port,
    served_model_name,
    max_queue,
    max_body_bytes,
    chat_default_max_tokens,
    log_level,
    limits,
    body_timeout_s,
) -> None:  # type: ignore[no-untyped-def]
    import uvicorn

    from twinfer.serve.app import ServeConfig, create_app
    from twinfer.serve.limits import uvicorn_config

    if not is_loopback(host) and not limits["api_key"]:
        typer.echo(
            f"warning: binding {host} without --api-key (--insecure-no-auth): anyone who can reach this "
            "address can call it",
            err=True,
        )
    config = ServeConfig(
        model_name=served_model_name or plan.model_name,
        context_tokens=plan.context_tokens,
        speed=speed,
        max_queue=max_queue,
        max_body_bytes=max_body_bytes,
        chat_default_max_tokens=chat_default_max_tokens,
        fleet_label=plan.label,
        body_timeout_s=body_timeout_s,
    )
    _check_port_free(host, port)
    app = create_app(config, plan.make_sim, counter=counter, text_source=text_source)
    typer.echo(
        f"twinfer serve: model {config.model_name!r} on {plan.label}, speed x{speed}, prompt tokens by "
        f"{counter.method}\n  OpenAI base_url: http://{host}:{port}/v1   metrics: http://{host}:{port}/metrics",
        err=True,
    )
    uvicorn.Server(uvicorn_config(app, host=host, port=port, log_level=log_level, **limits)).run()


def register(app: typer.Typer) -> None:
    """Add ``twinfer serve`` to ``app``."""
    app.command("serve")(serve_command)

"""Fixtures for the emulation server: a live uvicorn server on 127.0.0.1 in a background thread."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from serve_helpers import bound_socket, free_port

from twinfer.serve.app import ServeConfig, create_app
from twinfer.serve.fixed import FixedLatencySim
from twinfer.serve.pacing import FleetSim


@dataclass
class LiveServer:
    """A running server: its base URL and the app (to read metrics and state)."""

    url: str
    app: object

    @property
    def base_url(self) -> str:
        """The OpenAI client's base_url."""
        return self.url + "/v1"


@pytest.fixture
def start_server() -> Iterator[Callable[..., LiveServer]]:
    """Factory: start a server for (config, make_sim); every server is stopped at teardown."""
    import uvicorn

    running: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(
        config: ServeConfig, make_sim: Callable[[], FleetSim], **kwargs: object
    ) -> LiveServer:
        app = create_app(config, make_sim, **kwargs)
        sock = bound_socket()
        port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.01)
        running.append((server, thread))
        return LiveServer(url=f"http://127.0.0.1:{port}", app=app)

    yield start
    for server, thread in running:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def subprocess_server() -> Iterator[Callable[..., str]]:
    """Factory: run ``serve_helpers.py ARGS --port P`` in its own process (no GIL shared with the
    test's clients, so timings are the server's own); returns its URL once /health answers."""
    import subprocess
    import sys
    from pathlib import Path

    import httpx

    procs: list[subprocess.Popen] = []

    def start(*args: str) -> str:
        port = free_port()
        script = Path(__file__).with_name("serve_helpers.py")
        proc = subprocess.Popen([sys.executable, str(script), "--port", str(port), *args])
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError("the server process did not start")
            time.sleep(0.05)

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def fixed_server(start_server: Callable[..., LiveServer]) -> LiveServer:
    """A server on a fixed-latency fake fleet: TTFT 50 ms, 10 ms between tokens, 4k context."""
    config = ServeConfig(model_name="fake-model", context_tokens=4096, max_body_bytes=64 * 1024)
    return start_server(config, lambda: FixedLatencySim(ttft_s=0.05, itl_s=0.01))

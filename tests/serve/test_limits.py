"""Connection limits: a client that sends half a request's headers is disconnected after the deadline."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
from serve_helpers import bound_socket

from twinfer.serve.app import ServeConfig, create_app
from twinfer.serve.fixed import FixedLatencySim
from twinfer.serve.limits import header_timeout_protocol, uvicorn_config

HEADER_TIMEOUT_S = 0.5
BODY_TIMEOUT_S = 0.7


def _protocols():
    from uvicorn.protocols.http.h11_impl import H11Protocol

    bases = [H11Protocol]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
        bases.append(HttpToolsProtocol)
    except ImportError:
        pass
    return bases


@pytest.fixture(params=_protocols(), ids=lambda c: c.__name__)
def server(request):
    import uvicorn

    app = create_app(ServeConfig(model_name="m", context_tokens=4096, body_timeout_s=BODY_TIMEOUT_S),
                     lambda: FixedLatencySim(ttft_s=0.01, itl_s=0.001))
    sock = bound_socket()
    port = sock.getsockname()[1]
    config = uvicorn_config(app, host="127.0.0.1", port=port, header_timeout_s=HEADER_TIMEOUT_S, keep_alive_s=5,
                            log_level="warning")
    config.http = header_timeout_protocol(HEADER_TIMEOUT_S, base=request.param)
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    yield port
    srv.should_exit = True
    thread.join(timeout=10)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1024) == b""
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True


def _whole_response(sock: socket.socket) -> bytes:
    """Read one HTTP response: its headers, then Content-Length bytes of body (TCP may split them)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(4096)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.mark.timeout(30)
def test_partial_headers_are_disconnected(server) -> None:
    socks = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", server))
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: appli")
        socks.append(s)
    start = time.monotonic()
    assert all(_closed_within(s, 10 * HEADER_TIMEOUT_S + 2) for s in socks)
    assert time.monotonic() - start < 10 * HEADER_TIMEOUT_S + 2
    for s in socks:
        s.close()


@pytest.mark.timeout(30)
def test_a_silent_connection_is_disconnected(server) -> None:
    with socket.create_connection(("127.0.0.1", server)) as s:
        assert _closed_within(s, 5.0)


@pytest.mark.timeout(30)
def test_complete_requests_and_slow_streams_are_not_cut(server) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{server}") as client:
        for _ in range(3):  # kept-alive requests, each well inside the header deadline
            r = client.post("/v1/completions", json={"model": "m", "prompt": "hi", "max_tokens": 3})
            assert r.status_code == 200
            time.sleep(HEADER_TIMEOUT_S * 1.5)  # idle longer than the header deadline: keep-alive rules here
        # a streamed answer that lasts longer than the header deadline is not cut either
        with client.stream("POST", "/v1/completions", json={"model": "m", "prompt": "hi", "max_tokens": 900,
                                                             "stream": True}) as r:
            assert r.status_code == 200
            lines = [line for line in r.iter_lines() if line]
        assert lines[-1] == "data: [DONE]" and len(lines) > 900  # every token arrived, then the end marker


@pytest.mark.timeout(30)
def test_a_stalled_body_gets_408(server) -> None:
    with socket.create_connection(("127.0.0.1", server)) as s:
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 100\r\n\r\n{\"model\": ")
        s.settimeout(10)
        start = time.monotonic()
        answer = _whole_response(s)
        assert answer.startswith(b"HTTP/1.1 408") and b"request_timeout" in answer
        assert time.monotonic() - start < 5


def _status_within(port: int, body: dict, status: int, seconds: float) -> bool:
    """Whether a completion request gets ``status`` within ``seconds`` (retried every 50 ms)."""
    deadline = time.monotonic() + seconds
    while True:
        if httpx.post(f"http://127.0.0.1:{port}/v1/completions", json=body).status_code == status:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@pytest.mark.timeout(30)
def test_beyond_the_connection_cap_requests_get_503() -> None:
    import uvicorn

    app = create_app(ServeConfig(model_name="m", context_tokens=4096), lambda: FixedLatencySim(ttft_s=0.01, itl_s=0.001))
    sock = bound_socket()
    port = sock.getsockname()[1]
    srv = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port, max_connections=2, log_level="error"))
    thread = threading.Thread(target=srv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not srv.started:
        assert thread.is_alive()
        time.sleep(0.01)
    try:
        body = {"model": "m", "prompt": "hi", "max_tokens": 1}
        assert httpx.post(f"http://127.0.0.1:{port}/v1/completions", json=body).status_code == 200
        held = [socket.create_connection(("127.0.0.1", port)) for _ in range(2)]  # two idle connections
        # the server registers (and later drops) connections asynchronously: poll, with a generous deadline
        assert _status_within(port, body, 503, seconds=10)
        busy = httpx.post(f"http://127.0.0.1:{port}/v1/completions", json=body)  # OpenAI's error object, not text
        assert busy.status_code == 503 and busy.json()["error"]["code"] == "server_busy"
        assert busy.headers["retry-after"] == "1" and busy.headers["connection"] == "close"
        for s in held:
            s.close()
        assert _status_within(port, body, 200, seconds=10)
    finally:
        srv.should_exit = True
        thread.join(timeout=10)

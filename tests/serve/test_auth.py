"""`twinfer serve --api-key`: requests without the bearer key get OpenAI's 401; /health stays open."""

from __future__ import annotations

import threading
import time

import httpx
import pytest
from serve_helpers import bound_socket

from twinfer.cli import main
from twinfer.cli.serve import check_auth
from twinfer.errors import ConfigError
from twinfer.serve.app import ServeConfig, create_app
from twinfer.serve.fixed import FixedLatencySim
from twinfer.serve.limits import uvicorn_config

KEY = "sk-test-3f9a"


@pytest.fixture
def keyed_server():
    """A live server (fixed latency) run exactly as `twinfer serve --api-key KEY` configures uvicorn."""
    import uvicorn

    app = create_app(ServeConfig(model_name="m", context_tokens=4096), lambda: FixedLatencySim(ttft_s=0.01, itl_s=0.001))
    sock = bound_socket()
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, host="127.0.0.1", port=port, api_key=KEY, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


BODY = {"model": "m", "prompt": "hello", "max_tokens": 2}


@pytest.mark.parametrize("headers,phrase", [
    ({}, "didn't provide an API key"),
    ({"Authorization": "Bearer wrong"}, "Incorrect API key"),
    ({"Authorization": f"Basic {KEY}"}, "didn't provide an API key"),
    ({"Authorization": f"Bearer {KEY}x"}, "Incorrect API key"),
], ids=["none", "wrong", "not-bearer", "longer"])
def test_requests_without_the_key_get_401(keyed_server, headers, phrase) -> None:
    for method, path in (("POST", "/v1/completions"), ("GET", "/v1/models"), ("GET", "/metrics")):
        r = httpx.request(method, keyed_server + path, json=BODY if method == "POST" else None, headers=headers)
        assert r.status_code == 401
        err = r.json()["error"]
        assert phrase in err["message"] and err["code"] == "invalid_api_key"
        assert err["type"] == "invalid_request_error"


def test_the_key_lets_requests_through_and_health_is_open(keyed_server) -> None:
    ok = httpx.post(keyed_server + "/v1/completions", json=BODY, headers={"Authorization": f"Bearer {KEY}"})
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 2
    assert httpx.get(keyed_server + "/health").status_code == 200


def test_the_openai_client_sees_an_authentication_error(keyed_server) -> None:
    openai = pytest.importorskip("openai")
    bad = openai.OpenAI(base_url=keyed_server + "/v1", api_key="nope", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.completions.create(model="m", prompt="hi", max_tokens=1)
    good = openai.OpenAI(base_url=keyed_server + "/v1", api_key=KEY, max_retries=0)
    assert good.completions.create(model="m", prompt="hi", max_tokens=1).usage.completion_tokens == 1


def test_beyond_loopback_a_key_is_required() -> None:
    check_auth("127.0.0.1", None, False)
    check_auth("::1", None, False)
    check_auth("0.0.0.0", KEY, False)
    check_auth("0.0.0.0", None, True)
    with pytest.raises(ConfigError, match="--api-key"):
        check_auth("0.0.0.0", None, False)
    with pytest.raises(ConfigError, match="empty"):
        check_auth("127.0.0.1", " ", False)


def test_the_cli_refuses_a_public_host_without_a_key(capsys, monkeypatch) -> None:
    monkeypatch.delenv("TWINFER_API_KEY", raising=False)
    assert main(["serve", "--fixed-ttft-ms", "5", "--host", "0.0.0.0"]) == 2
    assert "--insecure-no-auth" in capsys.readouterr().err

"""Bad input gets OpenAI's error object and status; a client leaving mid-stream is cancelled."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest


def post(server, path: str, body: bytes | dict, **kwargs) -> httpx.Response:
    """POST raw bytes or a JSON object to ``server``."""
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(
        server.url + path,
        content=content,
        headers={"content-type": "application/json"},
        timeout=10,
        **kwargs,
    )


def assert_error(resp: httpx.Response, status: int, param: str | None = None) -> dict:
    """The response is OpenAI's error object with ``status`` (and ``param``)."""
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if param is not None:
        assert error["param"] == param
    return error


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1/completions", b"{not json", None),
        ("/v1/completions", b"[1, 2]", None),
        (
            "/v1/completions",
            {"model": "fake-model", "prompt": "x", "max_tokens": "ten"},
            "max_tokens",
        ),
        (
            "/v1/completions",
            {"model": "fake-model", "prompt": "x", "max_tokens": 2.5},
            "max_tokens",
        ),
        ("/v1/completions", {"model": "fake-model", "prompt": 42}, "prompt"),
        ("/v1/completions", {"model": "fake-model"}, "prompt"),
        ("/v1/completions", {"model": 7, "prompt": "x"}, "model"),
        ("/v1/completions", {"model": "fake-model", "prompt": "x", "stream": "yes"}, "stream"),
        (
            "/v1/completions",
            {"model": "fake-model", "prompt": "x", "temperature": "hot"},
            "temperature",
        ),
        (
            "/v1/completions",
            {"model": "fake-model", "prompt": "x", "temperature": 3},
            "temperature",
        ),
        ("/v1/completions", {"model": "fake-model", "prompt": "x", "stop": 5}, "stop"),
        (
            "/v1/completions",
            {"model": "fake-model", "prompt": "x", "stream_options": {"include_usage": True}},
            "stream_options",
        ),
        ("/v1/chat/completions", {"model": "fake-model", "messages": "hi"}, "messages"),
        ("/v1/chat/completions", {"model": "fake-model", "messages": []}, "messages"),
        (
            "/v1/chat/completions",
            {"model": "fake-model", "messages": [{"role": "wizard", "content": "x"}]},
            "messages[0].role",
        ),
        (
            "/v1/chat/completions",
            {"model": "fake-model", "messages": [{"role": "user", "content": 3}]},
            "messages[0].content",
        ),
    ],
)
def test_bad_input_is_400(fixed_server, path, body, param):
    error = assert_error(post(fixed_server, path, body), 400, param)
    assert error["type"] == "invalid_request_error"


@pytest.mark.parametrize("value", [0, -5])
def test_nonpositive_max_tokens_is_400(fixed_server, value):
    body = {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "x"}],
        "max_tokens": value,
    }
    assert_error(post(fixed_server, "/v1/chat/completions", body), 400, "max_tokens")


def test_max_tokens_beyond_context_is_400(fixed_server):
    # 4096-token context; the 1-token prompt leaves 4095 for the answer
    body = {"model": "fake-model", "prompt": "abc", "max_tokens": 4095, "stream": True}
    with httpx.stream("POST", fixed_server.url + "/v1/completions", json=body, timeout=10) as ok:
        assert ok.status_code == 200  # admitted; we hang up at once
    error = assert_error(
        post(
            fixed_server,
            "/v1/completions",
            {"model": "fake-model", "prompt": "abc", "max_tokens": 4096},
        ),
        400,
        "max_tokens",
    )
    assert error["code"] == "context_length_exceeded"
    assert_error(
        post(
            fixed_server,
            "/v1/completions",
            {"model": "fake-model", "prompt": "abc", "max_tokens": 10**12},
        ),
        400,
        "max_tokens",
    )


def test_oversize_body_is_413(fixed_server):
    body = {"model": "fake-model", "prompt": "x" * (70 * 1024), "max_tokens": 1}  # limit is 64 KiB
    error = assert_error(post(fixed_server, "/v1/completions", body), 413)
    assert error["code"] == "request_too_large"


def test_unknown_path_and_model_are_404(fixed_server):
    assert_error(httpx.get(fixed_server.url + "/v1/nothing-here"), 404)
    assert_error(
        post(fixed_server, "/v1/completions", {"model": "nope", "prompt": "x"}), 404, "model"
    )


async def _stream_all(url: str, max_tokens: int) -> int:
    """Stream one chat completion to the end; returns the number of content chunks."""
    body = {
        "model": "fake-model",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": max_tokens,
        "stream": True,
    }
    count = 0
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("POST", url + "/v1/chat/completions", json=body) as resp,
    ):
        assert resp.status_code == 200
        async for line in resp.aiter_lines():
            if line.startswith("data: {") and '"content":"' in line and '"content":""' not in line:
                count += 1
            if line == "data: [DONE]":
                return count
    raise AssertionError("stream ended without [DONE]")


async def _leave_mid_stream(url: str) -> None:
    """Start a long stream, read two chunks, and hang up."""
    body = {"model": "fake-model", "prompt": "long", "max_tokens": 3000, "stream": True}
    async with (
        httpx.AsyncClient(timeout=30) as http,
        http.stream("POST", url + "/v1/completions", json=body) as r,
    ):
        seen = 0
        async for line in r.aiter_lines():
            seen += line.startswith("data: ")
            if seen == 2:
                break


async def _leave_before_answer(url: str) -> None:
    """Ask for a long non-streamed answer (30 s) and give up after 1 s of waiting for it."""
    body = {"model": "fake-model", "prompt": "slow", "max_tokens": 3000}
    async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=1.0)) as http:  # connect may be slow under load
        with pytest.raises(httpx.ReadTimeout):
            await http.post(url + "/v1/completions", json=body)


def asyncio_tasks(server) -> float:
    """The server's asyncio task count, from /metrics."""
    text = httpx.get(server.url + "/metrics").text
    return float(next(line.split()[1] for line in text.splitlines() if line.startswith("twinfer_asyncio_tasks ")))


def test_disconnects_cancel_in_the_fleet_while_others_are_served(fixed_server):
    tasks_before = asyncio_tasks(fixed_server)

    async def main():
        leavers = [_leave_mid_stream(fixed_server.url) for _ in range(4)]
        leavers += [_leave_before_answer(fixed_server.url) for _ in range(2)]
        stayers = [_stream_all(fixed_server.url, 20) for _ in range(6)]
        results = await asyncio.gather(*stayers, *leavers)
        assert results[:6] == [20] * 6

    asyncio.run(main())
    fleet = fixed_server.app.state.fleet()
    deadline = time.monotonic() + 5
    while fleet.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fleet.in_flight == 0  # 3000-token answers would run 30 s: they were cancelled
    assert fixed_server.app.state.metrics.cancelled == 6
    assert asyncio_tasks(fixed_server) <= tasks_before  # nothing leaked on the server's loop
    # and the server still answers
    ok = post(
        fixed_server, "/v1/completions", {"model": "fake-model", "prompt": "after", "max_tokens": 2}
    )
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 2


def test_metrics_count_requests_and_tokens(fixed_server):
    for _ in range(3):
        post(
            fixed_server,
            "/v1/completions",
            {"model": "fake-model", "prompt": "abcd", "max_tokens": 3},
        )
    post(fixed_server, "/v1/completions", {"model": "nope", "prompt": "x"})
    text = httpx.get(fixed_server.url + "/metrics").text
    lines = dict(line.rsplit(" ", 1) for line in text.splitlines() if not line.startswith("#"))
    assert lines['twinfer_requests_total{endpoint="/v1/completions",status="200"}'] == "3"
    assert lines['twinfer_requests_total{endpoint="/v1/completions",status="404"}'] == "1"
    assert (
        lines["twinfer_completion_tokens_total"] == "9"
        and lines["twinfer_prompt_tokens_total"] == "3"
    )
    assert lines["twinfer_time_to_first_token_seconds_count"] == "3"
    assert lines["twinfer_inter_token_latency_seconds_count"] == "6"
    assert lines['twinfer_time_to_first_token_seconds_bucket{le="+Inf"}'] == "3"
    assert lines["twinfer_queue_length"] == "0" and lines["twinfer_requests_in_flight"] == "0"

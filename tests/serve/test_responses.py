"""Response shapes and stop-sequence scanning, without a server."""

from __future__ import annotations

import json

import pytest

from twinfer.serve.protocol import GenerationRequest
from twinfer.serve.responses import DeltaChunks, Envelope, StopScanner, chunk


def make_req(kind: str, include_usage: bool = False) -> GenerationRequest:
    return GenerationRequest(
        kind=kind,
        model="m",
        prompt_text="p",
        prompt_tokens=3,
        max_tokens=5,
        stream=True,
        include_usage=include_usage,
        stop=(),
        temperature=1.0,
    )


@pytest.mark.parametrize("kind", ["chat", "completion"])
@pytest.mark.parametrize("include_usage", [False, True])
def test_delta_template_equals_the_dict_path(kind, include_usage):
    req, env = make_req(kind, include_usage), Envelope(id="x-1", created=5, model="m")
    fast = DeltaChunks(req, env)
    for piece in [" word", "", 'quote " and \\ back', "naïve ☃", "\n"]:
        assert fast(piece) == chunk(req, env, text=piece)
        body = json.loads(fast(piece)[len(b"data: ") :])
        got = (
            body["choices"][0]["delta"]["content"] if kind == "chat" else body["choices"][0]["text"]
        )
        assert got == piece


def test_stop_scanner_holds_back_a_possible_stop_prefix():
    scan = StopScanner(["END"])
    assert scan.feed("abc E") == ("abc ", False)  # "E" may start "END"
    assert scan.feed("N") == ("", False)
    assert scan.feed("D tail") == ("", True)
    assert scan.text == "abc "


def test_stop_scanner_releases_held_text_when_it_is_not_a_stop():
    scan = StopScanner(["END"])
    assert scan.feed("x EN") == ("x ", False)
    assert scan.feed("ow") == ("ENow", False)
    assert scan.flush() == ""


def test_stop_scanner_without_stops_passes_everything():
    scan = StopScanner([])
    assert scan.feed("E") == ("E", False)

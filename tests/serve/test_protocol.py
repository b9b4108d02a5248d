"""Request validation: parameters that change an answer's shape are refused, harmless ones pass."""

from __future__ import annotations

import pytest

from twinfer.serve.protocol import ApiError, parse_generation
from twinfer.serve.text import ApproxTokenCounter


def _parse(kind: str, **extra):
    body = {"model": "m", "max_tokens": 4, **extra}
    body.update({"messages": [{"role": "user", "content": "hi"}]} if kind == "chat" else {"prompt": "hi"})
    return parse_generation(body, kind, models={"m": 4096}, counter=ApproxTokenCounter(), chat_default_max_tokens=8)


REFUSED = [
    ("chat", "tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
    ("chat", "tool_choice", "auto"),
    ("chat", "functions", [{"name": "f"}]),
    ("chat", "logprobs", True),
    ("chat", "top_logprobs", 3),
    ("chat", "response_format", {"type": "json_object"}),
    ("completion", "logprobs", 2),
    ("completion", "echo", True),
    ("completion", "suffix", "end"),
]


@pytest.mark.parametrize("kind,key,value", REFUSED, ids=[f"{k}-{p}" for k, p, _ in REFUSED])
def test_unsupported_parameters_get_a_400_naming_them(kind, key, value) -> None:
    with pytest.raises(ApiError) as info:
        _parse(kind, **{key: value})
    assert info.value.status == 400 and info.value.param == key
    assert info.value.code == "unsupported_parameter" and f"'{key}'" in info.value.message


@pytest.mark.parametrize("extra", [
    {"logprobs": False}, {"logprobs": None}, {"tools": []}, {"tool_choice": "none"},
    {"response_format": {"type": "text"}}, {"seed": 3, "top_p": 0.5, "presence_penalty": 0.1},
], ids=["logprobs-false", "logprobs-null", "no-tools", "tool-choice-none", "text-format", "sampling"])
def test_not_asking_for_them_passes(extra) -> None:
    assert _parse("chat", **extra).max_tokens == 4

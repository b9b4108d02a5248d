"""OpenAI response bodies and stream chunks, and stop-sequence scanning.

Shapes follow the OpenAI API reference for ``text_completion``,
``chat.completion`` and ``chat.completion.chunk`` objects; with
``stream_options.include_usage`` every chunk carries ``"usage": null`` and a
last chunk with empty ``choices`` carries the usage.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twinfer.serve.protocol import GenerationRequest


@dataclass(frozen=True)
class Envelope:
    """Fields every object of one response shares."""

    id: str
    created: int  # Unix seconds
    model: str


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """OpenAI's usage object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def full_response(
    req: GenerationRequest, env: Envelope, text: str, finish: str, completion_tokens: int
) -> dict:
    """The non-streaming response body."""
    if req.kind == "chat":
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": text, "refusal": None},
            "logprobs": None,
            "finish_reason": finish,
        }
        obj = "chat.completion"
    else:
        choice = {"text": text, "index": 0, "logprobs": None, "finish_reason": finish}
        obj = "text_completion"
    body = _body(env, obj, choice)
    body["usage"] = usage(req.prompt_tokens, completion_tokens)
    return body


def _body(env: Envelope, obj: str, choice: dict[str, Any]) -> dict[str, Any]:
    """The fields every response and stream chunk share, around its one choice."""
    return {
        "id": env.id,
        "object": obj,
        "created": env.created,
        "model": env.model,
        "system_fingerprint": None,
        "choices": [choice],
    }


def sse(obj: dict) -> bytes:
    """One server-sent event carrying ``obj`` as JSON."""
    return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def chunk(
    req: GenerationRequest,
    env: Envelope,
    *,
    text: str | None = None,
    role: bool = False,
    finish: str | None = None,
) -> bytes:
    """One stream chunk with a text delta (or the role opener, or the finish marker)."""
    if req.kind == "chat":
        delta: dict[str, Any] = {}
        if role:
            delta = {"role": "assistant", "content": ""}
        elif text is not None:
            delta = {"content": text}
        choice: dict[str, Any] = {
            "index": 0,
            "delta": delta,
            "logprobs": None,
            "finish_reason": finish,
        }
        obj = "chat.completion.chunk"
    else:
        choice = {"text": text or "", "index": 0, "logprobs": None, "finish_reason": finish}
        obj = "text_completion"
    body = _body(env, obj, choice)
    if req.include_usage:
        body["usage"] = None
    return sse(body)


class DeltaChunks:
    """Fast text-delta chunks of one response: the JSON around the text is serialised once.

    ``DeltaChunks(req, env)(piece) == chunk(req, env, text=piece)``, byte for byte,
    at the cost of one ``json.dumps`` of the piece (the per-token path of a stream).
    """

    _MARK = "\x00twinfer-delta\x00"

    def __init__(self, req: GenerationRequest, env: Envelope) -> None:
        whole = chunk(req, env, text=self._MARK)
        encoded = json.dumps(self._MARK).encode()
        self._prefix, self._suffix = whole.split(encoded)

    def __call__(self, piece: str) -> bytes:
        return self._prefix + json.dumps(piece).encode() + self._suffix


def usage_chunk(req: GenerationRequest, env: Envelope, completion_tokens: int) -> bytes:
    """The last chunk when ``include_usage``: empty choices, the usage object."""
    obj = "chat.completion.chunk" if req.kind == "chat" else "text_completion"
    return sse(
        {
            "id": env.id,
            "object": obj,
            "created": env.created,
            "model": env.model,
            "system_fingerprint": None,
            "choices": [],
            "usage": usage(req.prompt_tokens, completion_tokens),
        }
    )


class StopScanner:
    """Feeds token text and says what may be sent, holding back a possible stop-sequence prefix.

    The answer ends before the first occurrence of any stop sequence (OpenAI:
    "The returned text will not contain the stop sequence").
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(stops)
        self.text = ""
        self.sent = 0  # characters of ``text`` already released

    def feed(self, piece: str) -> tuple[str, bool]:
        """Append ``piece``; returns (text to send now, whether a stop sequence was hit)."""
        self.text += piece
        if not self.stops:
            out, self.sent = self.text[self.sent :], len(self.text)
            return out, False
        hits = [i for i in (self.text.find(s, self.sent) for s in self.stops) if i >= 0]
        if hits:
            end = min(hits)
            out = self.text[self.sent : end]
            self.text = self.text[:end]
            self.sent = end
            return out, True
        hold = 0
        for s in self.stops:
            for k in range(min(len(s) - 1, len(self.text) - self.sent), 0, -1):
                if self.text.endswith(s[:k]):
                    hold = max(hold, k)
                    break
        end = len(self.text) - hold
        out, self.sent = self.text[self.sent : end], end
        return out, False

    def flush(self) -> str:
        """Release whatever is held back (the answer ended without a stop)."""
        out, self.sent = self.text[self.sent :], len(self.text)
        return out

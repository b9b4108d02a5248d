"""Delivering a paced answer: token texts, the event stream, the whole-body answer, request traces.

The app (:mod:`twinfer.serve.app`) admits a request to the real-time fleet;
this module turns the fleet's paced token events into what the client sees:
text per token (synthetic words or a model's tokens), stop-sequence handling,
server-sent events that notice a departed client at once, or one JSON body.
Every path cancels the request in the fleet when it ends early.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from twinfer.serve.metrics import ServerMetrics
from twinfer.serve.pacing import PacedRequest
from twinfer.serve.protocol import GenerationRequest
from twinfer.serve.responses import (
    DONE,
    DeltaChunks,
    Envelope,
    StopScanner,
    chunk,
    full_response,
    usage_chunk,
)
from twinfer.serve.text import DEFAULT_FILLER, FillerWords, SyntheticText, request_seed


class TokenTexts(Protocol):
    """The text of one request's tokens, by index (awaited: a model may still be computing it)."""

    async def get(self, index: int) -> str:
        """Text of token ``index``."""
        ...

    def close(self) -> None:
        """The request is over; stop producing text."""
        ...


class SyntheticTokens:
    """Deterministic synthetic words (twinfer.serve.text.SyntheticText), available at once."""

    def __init__(self, req: GenerationRequest, words: FillerWords = DEFAULT_FILLER) -> None:
        self._text = SyntheticText(
            request_seed(req.kind, req.prompt_text, str(req.max_tokens)),
            req.max_tokens,
            leading_space=req.kind != "chat",
            words=words,
        )

    async def get(self, index: int) -> str:
        """Word ``index`` of the answer."""
        return self._text.token(index)

    def close(self) -> None:
        """Nothing to stop."""


class TextSource(Protocol):
    """Where token text comes from (synthetic words, or a model: twinfer.serve.model_text)."""

    def start(self, req: GenerationRequest) -> TokenTexts:
        """The token texts of ``req``."""
        ...


class SyntheticTextSource:
    """The default: deterministic synthetic words, each one token as the server counts tokens."""

    def __init__(self, words: FillerWords = DEFAULT_FILLER) -> None:
        self.words = words

    def start(self, req: GenerationRequest) -> TokenTexts:
        """The token texts of ``req``."""
        return SyntheticTokens(req, self.words)


@dataclass
class RequestTrace:
    """What the server recorded about one request (for tests and the soak benchmark)."""

    arrival_s: float
    prompt_tokens: int
    max_tokens: int
    token_times_s: list[float]
    finish_reason: str | None = None
    cancelled: bool = False
    admit_wall_s: float = 0.0  # wall time from the handler's start to admission into the fleet
    arrival_lag_wall_s: float = 0.0  # simulated arrival after the handler's start (0: fully backdated)
    first_token_late_s: float | None = None  # wall delay of the first token past its simulated time
    max_token_late_s: float = 0.0  # worst such delay over the request's tokens


class PacedStream(StreamingResponse):
    """Server-sent events that stop, and cancel the request, the moment the client goes away.

    Unlike Starlette's StreamingResponse under ASGI 2.4 (which notices a gone
    client only at its next write), this watches for ``http.disconnect`` while
    waiting for the next token, so the simulated fleet frees the slot at once.
    """

    def __init__(self, body: AsyncIterator[bytes], headers: dict[str, str]) -> None:
        super().__init__(body, status_code=200, headers=headers, media_type="text/event-stream")
        self._body = body

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def stream() -> None:
            await send(
                {
                    "type": "http.response.start",
                    "status": self.status_code,
                    "headers": self.raw_headers,
                }
            )
            async for data in self.body_iterator:
                await send({"type": "http.response.body", "body": data, "more_body": True})
            await send({"type": "http.response.body", "body": b"", "more_body": False})

        async def disconnected() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        streamer = asyncio.ensure_future(stream())
        watcher = asyncio.ensure_future(disconnected())
        try:
            await asyncio.wait({streamer, watcher}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (streamer, watcher):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await streamer
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await watcher
            await self._body.aclose()  # type: ignore[attr-defined]
        if streamer.done() and not streamer.cancelled():
            exc = streamer.exception()
            if exc is not None and not isinstance(
                exc, OSError
            ):  # OSError: the client left mid-write
                raise exc


async def token_pieces(
    req: GenerationRequest,
    paced: PacedRequest,
    token_text: TokenTexts,
    started: float,
    metrics: ServerMetrics,
    trace: RequestTrace,
) -> AsyncIterator[tuple[str, bool]]:
    """(text to send, stop hit) per paced token; cancels the fleet request on stop or exit."""
    loop = asyncio.get_running_loop()
    scanner = StopScanner(req.stop)
    last_wall = started
    try:
        async for event in paced.tokens():
            now = loop.time()
            (metrics.itl if event.index else metrics.ttft).observe(now - last_wall)
            last_wall = now
            late = now - paced.wall_at(event.time_s)
            metrics.lateness.observe(late)
            if event.index == 0:
                trace.first_token_late_s = late
            trace.max_token_late_s = max(trace.max_token_late_s, late)
            metrics.completion_tokens += 1
            piece, stopped = scanner.feed(await token_text.get(event.index))
            if stopped:
                trace.finish_reason = "stop"
                yield piece, True
                return
            if event.last:
                trace.finish_reason = "length"
                piece += scanner.flush()
            yield piece, False
    finally:
        token_text.close()
        if not paced.done:  # stop sequence hit, client gone, or server shutting down
            paced.cancel()
            metrics.cancelled += 1
        trace.cancelled = trace.finish_reason is None


async def sse_body(
    req: GenerationRequest,
    env: Envelope,
    tokens: AsyncIterator[tuple[str, bool]],
    trace: RequestTrace,
) -> AsyncIterator[bytes]:
    """The event stream: role opener with the first token, deltas, finish, usage, [DONE]."""
    count = 0
    delta = DeltaChunks(req, env)
    try:
        async for piece, _stopped in tokens:
            out = b""
            if count == 0 and req.kind == "chat":
                out += chunk(req, env, role=True)
            count += 1
            if piece:
                out += delta(piece)
            if out:
                yield out
        # the finish chunk: empty delta (chat) or empty text (completions)
        tail = chunk(req, env, finish=trace.finish_reason or "length")
        if req.include_usage:
            tail += usage_chunk(req, env, count)
        yield tail + DONE
    finally:
        await tokens.aclose()  # type: ignore[attr-defined]


async def full_body(
    request: Request,
    req: GenerationRequest,
    env: Envelope,
    tokens: AsyncIterator[tuple[str, bool]],
    trace: RequestTrace,
    headers: dict[str, str],
) -> Response:
    """Collect the whole answer, cancelling it in the fleet if the client disconnects first."""

    async def collect() -> tuple[str, int]:
        pieces, count = [], 0
        async for piece, _stopped in tokens:
            pieces.append(piece)
            count += 1
        return "".join(pieces), count

    async def disconnected() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass

    collector = asyncio.ensure_future(collect())
    watcher = asyncio.ensure_future(disconnected())
    try:
        await asyncio.wait({collector, watcher}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not collector.done():
            collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        with contextlib.suppress(asyncio.CancelledError):
            await collector
        await tokens.aclose()  # type: ignore[attr-defined]
    if collector.cancelled():
        return Response(
            status_code=499
        )  # client closed request (nginx's convention); nobody reads it
    text, count = collector.result()
    return JSONResponse(
        full_response(req, env, text, trace.finish_reason or "length", count), headers=headers
    )

"""The OpenAI-compatible emulation server: a FastAPI app paced by a real-time simulated fleet.

Each generation request is validated (OpenAI error objects on mistakes),
admitted to the :class:`~twinfer.serve.pacing.RealtimeFleet` (429 when its
queue is full), and answered token by token as the fleet's simulated clock,
running at ``speed`` x wall time, produces them. A client that disconnects is
cancelled in the simulation at once, freeing its batch slot and KV cache.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from twinfer.errors import CapacityError
from twinfer.serve.delivery import (
    PacedStream,
    RequestTrace,
    SyntheticTextSource,
    TextSource,
    full_body,
    sse_body,
    token_pieces,
)
from twinfer.serve.metrics import CONTENT_TYPE, ServerMetrics
from twinfer.serve.pacing import FleetSim, QueueFullError, RealtimeFleet
from twinfer.serve.protocol import ApiError, GenerationRequest, parse_generation, parse_json_object
from twinfer.serve.responses import (
    Envelope,
)
from twinfer.serve.text import ApproxTokenCounter, TokenCounter, filler_words

#: Bodies larger than this are parsed and token-counted in a worker thread when a tokenizer counts.
OFFLOAD_BODY_BYTES = 2048


@dataclass(frozen=True)
class ServeConfig:
    """How the server behaves; the fleet itself comes from a FleetSim factory."""

    model_name: str  # the name clients pass as ``model``
    context_tokens: int  # the model's context length (prompt + completion limit)
    speed: float = 1.0  # simulated seconds per wall second
    max_queue: int | None = None  # waiting requests before 429 (None: queue without limit)
    max_body_bytes: int = 4 * 1024 * 1024  # bodies above this get 413 before parsing
    chat_default_max_tokens: int = 256  # chat max_tokens when the client gives none
    trace_requests: int = 4096  # recent requests kept for GET /twinfer/requests/{id}
    fleet_label: str = "fixed-latency"  # what paces the tokens (sent in x-twinfer-fleet)
    body_timeout_s: float = 30.0  # a request body not fully received by then gets 408 (stalled clients)


def create_app(
    config: ServeConfig,
    make_sim: Callable[[], FleetSim],
    *,
    counter: TokenCounter | None = None,
    text_source: TextSource | None = None,
) -> FastAPI:
    """The FastAPI app; ``make_sim`` builds the fleet when the server's loop starts."""
    counter_: TokenCounter = counter or ApproxTokenCounter()
    # Synthetic answers are made of pieces that count one token each under counter_, so the text a
    # client receives tokenizes to the completion_tokens the usage reports.
    source: TextSource = text_source or SyntheticTextSource(filler_words(counter_))
    models = {config.model_name: config.context_tokens}
    traces: collections.OrderedDict[str, RequestTrace] = collections.OrderedDict()
    state: dict[str, Any] = {"fleet": None, "next_id": 0, "created": int(time.time())}

    def fleet() -> RealtimeFleet:
        if state["fleet"] is None:  # first request on this loop (also when lifespan is skipped)
            state["fleet"] = RealtimeFleet(
                make_sim(), speed=config.speed, max_queue=config.max_queue
            )
        return state["fleet"]

    metrics = ServerMetrics(
        gauges={
            "twinfer_queue_length": (
                "Requests waiting for their first token in the simulated fleet.",
                lambda: fleet().queue_length,
            ),
            "twinfer_requests_in_flight": (
                "Requests admitted and not finished.",
                lambda: fleet().in_flight,
            ),
            "twinfer_simulated_time_seconds": (
                "The simulated fleet's clock.",
                lambda: fleet().sim_now(),
            ),
            "twinfer_asyncio_tasks": (
                "Tasks alive on the server's event loop (a leak shows as growth while idle).",
                lambda: len(asyncio.all_tasks()),
            ),
        }
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        fleet()
        yield
        fleet().close()
        parse_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="twinfer emulation server", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.metrics = metrics
    app.state.fleet = fleet

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        err = ApiError(
            exc.status_code, str(exc.detail), code="not_found" if exc.status_code == 404 else None
        )
        return JSONResponse(err.body(), status_code=exc.status_code)

    @app.get("/v1/models")
    async def list_models() -> dict:
        return {
            "object": "list",
            "data": [
                {"id": name, "object": "model", "created": state["created"], "owned_by": "twinfer"}
                for name in models
            ],
        }

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/twinfer/requests")
    async def request_traces() -> dict:
        """Recent requests (arrival order) with their simulated arrival and token times."""
        return {"speed": config.speed, "data": [{"id": k, **t.__dict__} for k, t in traces.items()]}

    @app.get("/twinfer/requests/{request_id}")
    async def request_trace(request_id: str) -> dict:
        trace = traces.get(request_id)
        if trace is None:
            raise ApiError(404, f"No recent request with id {request_id!r}.", code="not_found")
        return {"id": request_id, **trace.__dict__, "speed": config.speed}

    parse_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="twinfer-parse")

    def parse(raw: bytes, kind: Literal["completion", "chat"]) -> GenerationRequest:
        return parse_generation(
            parse_json_object(raw),
            kind,
            models=models,
            counter=counter_,
            chat_default_max_tokens=config.chat_default_max_tokens,
        )

    async def read_body(request: Request) -> bytes:
        too_big = ApiError(
            413, f"Request body exceeds {config.max_body_bytes} bytes.", code="request_too_large"
        )
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > config.max_body_bytes:
            raise too_big
        parts, size = [], 0
        try:
            async with asyncio.timeout(config.body_timeout_s):
                async for part in request.stream():
                    size += len(part)
                    if size > config.max_body_bytes:
                        raise too_big
                    parts.append(part)
        except TimeoutError:
            raise ApiError(408, f"The request body did not arrive within {config.body_timeout_s:g} s.",
                           code="request_timeout") from None
        return b"".join(parts)

    async def generate(request: Request, kind: Literal["completion", "chat"]) -> Response:
        endpoint = "/v1/chat/completions" if kind == "chat" else "/v1/completions"
        started = asyncio.get_running_loop().time()
        try:
            raw = await read_body(request)
            if len(raw) > OFFLOAD_BODY_BYTES and not isinstance(counter_, ApproxTokenCounter):
                # a tokenizer takes ~2 ms per 1k tokens here: keep the loop free for other streams
                req = await asyncio.get_running_loop().run_in_executor(parse_pool, parse, raw, kind)
            else:
                req = parse(raw, kind)
            try:
                paced = fleet().submit(req.prompt_tokens, req.max_tokens, arrived_wall=started)
            except QueueFullError as exc:
                raise ApiError(
                    429, f"{exc}; retry later.", type="rate_limit_error", code="rate_limit_exceeded"
                ) from exc
            except CapacityError as exc:  # larger than one instance's KV cache
                raise ApiError(
                    400, str(exc), param="max_tokens", code="context_length_exceeded"
                ) from exc
        except ApiError as exc:
            metrics.count_request(endpoint, exc.status)
            raise
        metrics.prompt_tokens += req.prompt_tokens
        state["next_id"] += 1
        prefix = "chatcmpl" if kind == "chat" else "cmpl"
        env = Envelope(
            id=f"{prefix}-twinfer{state['next_id']:08x}", created=int(time.time()), model=req.model
        )
        trace = RequestTrace(
            paced.arrival_s, req.prompt_tokens, req.max_tokens, paced.token_times_s
        )
        trace.admit_wall_s = asyncio.get_running_loop().time() - started
        trace.arrival_lag_wall_s = paced.wall_at(paced.arrival_s) - started
        traces[env.id] = trace
        while len(traces) > config.trace_requests:
            traces.popitem(last=False)
        headers = {
            "x-twinfer-request-id": env.id,
            "x-twinfer-fleet": config.fleet_label,
            "x-twinfer-prompt-token-count": counter_.method,
            "x-twinfer-prompt-tokens": str(req.prompt_tokens),
            "x-twinfer-arrival-s": repr(paced.arrival_s),
        }
        tokens = token_pieces(req, paced, source.start(req), started, metrics, trace)
        metrics.count_request(endpoint, 200)
        if req.stream:
            return PacedStream(sse_body(req, env, tokens, trace), headers=headers)
        return await full_body(request, req, env, tokens, trace, headers)

    @app.post("/v1/completions")
    async def completions(request: Request) -> Response:
        return await generate(request, "completion")

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        return await generate(request, "chat")

    return app

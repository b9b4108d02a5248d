"""Bearer-token authentication for the emulation server, answered with OpenAI's 401 error objects.

``twinfer serve --api-key KEY`` (or ``TWINFER_API_KEY``, read by the CLI) wraps the
app in :class:`BearerAuth`: every request but ``GET /health`` must carry
``Authorization: Bearer KEY``. The messages follow OpenAI's own 401 answers, so
clients show the usual "invalid API key" error.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

#: Paths answered without a key (load balancers probe them).
OPEN_PATHS = frozenset({"/health"})


def _error(message: str) -> bytes:
    return json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                 "code": "invalid_api_key"}}).encode("utf-8")


def bearer_token(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The token of the first ``Authorization: Bearer ...`` header, or None."""
    for name, value in headers:
        if name.lower() == b"authorization":
            scheme, _, token = value.decode("latin-1").strip().partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


class BearerAuth:
    """ASGI middleware: refuse HTTP requests whose bearer token is not ``api_key`` (401, OpenAI style).

    A pure ASGI wrapper (not Starlette's BaseHTTPMiddleware) so streamed responses
    pass through untouched.
    """

    def __init__(self, app: Any, api_key: str) -> None:
        if not api_key:
            raise ValueError("api_key must be a non-empty string")
        self.app = app
        self._key = api_key.encode("utf-8")

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope.get("headers") or [])
        if token is not None and hmac.compare_digest(token.encode("utf-8"), self._key):
            await self.app(scope, receive, send)
            return
        if token is None:
            message = ("You didn't provide an API key. You need to provide your API key in an Authorization "
                       "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")
        else:
            message = "Incorrect API key provided. Use the key given to `twinfer serve --api-key`."
        body = _error(message)
        await send({"type": "http.response.start", "status": 401, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"www-authenticate", b'Bearer realm="twinfer"')]})
        await send({"type": "http.response.body", "body": body})

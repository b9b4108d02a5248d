"""Connection limits uvicorn does not have: a deadline for a request's headers, an OpenAI-style busy answer.

uvicorn closes idle keep-alive connections (``timeout_keep_alive``) but waits
forever for the rest of a request's headers, so clients that send half a
request (on purpose, "slowloris", or by a bug) hold their connections open
indefinitely. :func:`header_timeout_protocol` wraps uvicorn's HTTP protocol class
so a connection that starts a request and has not completed its headers within
``header_timeout_s`` is closed. Requests whose headers arrived are not affected
(their bodies and streamed responses take as long as they take).

Past ``max_connections`` open connections, the same protocol answers every
request of a new connection with a 503 carrying OpenAI's error object
(``code: server_busy``, ``Retry-After: 1``) and closes it; uvicorn's own
``limit_concurrency`` would answer in plain text.
"""

from __future__ import annotations

import json
from typing import Any

_BUSY = json.dumps({"error": {"message": "The server has too many open connections; retry shortly.",
                              "type": "server_error", "param": None, "code": "server_busy"}}).encode("utf-8")


async def _busy(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """ASGI app answering 503 with OpenAI's error object, closing the connection."""
    await send({"type": "http.response.start", "status": 503, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(_BUSY)).encode()),
        (b"retry-after", b"1"), (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": _BUSY})


def _uvicorn_http_class() -> type:
    """The HTTP protocol class uvicorn's ``http="auto"`` picks: httptools when installed, else h11."""
    try:
        import httptools  # noqa: F401
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        return HttpToolsProtocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol


def header_timeout_protocol(header_timeout_s: float, base: type | None = None,
                            max_connections: int | None = None) -> type:
    """A subclass of uvicorn's HTTP protocol (``base``, default: the one uvicorn would use) that closes
    connections whose request headers are not complete ``header_timeout_s`` after the request began
    (after the connection opened, or after the first bytes of a later keep-alive request), and answers
    the requests of a connection beyond ``max_connections`` with a JSON 503 (see the module docstring)."""
    base = base or _uvicorn_http_class()

    class HeaderTimeoutProtocol(base):  # type: ignore[valid-type,misc]
        _header_timer: Any = None

        def connection_made(self, transport: Any) -> None:
            super().connection_made(transport)
            if max_connections is not None and len(self.connections) > max_connections:
                self.app = _busy  # this connection's requests only
            self._arm()

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and self._between_requests():
                self._arm()  # the first bytes of a new request on a kept-alive connection
            super().data_received(data)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        # uvicorn sets ``self.cycle`` when a request's headers are complete: that ends the deadline.
        @property
        def cycle(self) -> Any:
            return self.__dict__.get("_cycle")

        @cycle.setter
        def cycle(self, value: Any) -> None:
            self.__dict__["_cycle"] = value
            if value is not None:
                self._disarm()

        def _between_requests(self) -> bool:
            cycle = self.cycle
            return cycle is None or bool(getattr(cycle, "response_complete", False))

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(header_timeout_s, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self._between_requests() and not self.transport.is_closing():
                self.transport.close()

    HeaderTimeoutProtocol.__name__ = f"HeaderTimeout{base.__name__}"
    return HeaderTimeoutProtocol


def uvicorn_config(app: Any, *, host: str, port: int, api_key: str | None = None, header_timeout_s: float = 10.0,
                   keep_alive_s: float = 5.0, max_connections: int = 1024, log_level: str = "info") -> Any:
    """The uvicorn Config ``twinfer serve`` runs: ``app`` behind the bearer-key check (when ``api_key``),
    the header deadline, the keep-alive timeout and a cap on concurrent connections (503 beyond it)."""
    import uvicorn

    from twinfer.serve.auth import BearerAuth

    return uvicorn.Config(
        BearerAuth(app, api_key) if api_key else app, host=host, port=port, log_level=log_level,
        http=header_timeout_protocol(header_timeout_s, max_connections=max_connections),
        timeout_keep_alive=max(1, round(keep_alive_s)), timeout_graceful_shutdown=3, lifespan="on")

"""How the service meets slow and idle clients: uvicorn with a connection cap
(``limit_concurrency``: beyond ``max_connections`` open connections new requests get 503) and
keep-alive timeout, plus the two read timeouts uvicorn lacks:

- a **header deadline** (:func:`timed_protocol`): a connection must finish a request's
  headers within ``header_timeout_s`` of opening, or of the previous response, else it is
  closed. uvicorn only times idle keep-alive connections, and restarts even that timer on
  every byte, so a client that never finishes its headers was held forever.
- a **body timeout** (:class:`BodyTimeoutMiddleware`): while the service waits for the next
  chunk of a request body, at most ``body_timeout_s``, then 408 ``request_timeout`` and the
  connection closes. Time spent computing is not counted: only waits on the client.

(hypercorn has a ``read_timeout``, but no connection cap, and moving servers would change
every deployment; these two small pieces keep uvicorn.)"""

from __future__ import annotations

import asyncio
import copy
import sys
from typing import Any

from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.config import Settings
from app.errors import error_response

SWITCH_INTERVAL_S = 0.001
"""The serving process's GIL switch interval (:func:`sys.setswitchinterval`; Python's
default is 5 ms)."""


class BodyTimeout(HTTPException):
    """The client stopped sending its body; answered 408 and the connection closed."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            408,
            f"the request body stalled for more than {seconds:g} s",
            headers={"Connection": "close"},
        )


class BodyTimeoutMiddleware:
    """Bounds each wait for the next body chunk by ``seconds`` (408 beyond it). Once the body
    is complete, ``receive`` passes through untimed (it then only reports a disconnect)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False
        started = False

        async def timed_receive() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
            except TimeoutError:
                raise BodyTimeout(self.seconds) from None
            if message["type"] != "http.request" or not message.get("more_body", False):
                body_done = True
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, timed_receive, tracked_send)
        except BodyTimeout as exc:  # raised outside the routes (the body-limit middleware)
            if started:
                raise
            response = error_response(408, "request_timeout", str(exc.detail))
            response.headers.update(exc.headers or {})
            await response(scope, receive, send)


class _HeaderDeadline:
    """Mixed into a uvicorn HTTP protocol: closes a connection whose request headers are not
    complete ``header_timeout`` seconds after it opened or after the previous response."""

    header_timeout: float
    # Set by the uvicorn protocol this is mixed into.
    cycle: Any
    loop: asyncio.AbstractEventLoop
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._awaited_after = self.cycle  # headers are complete once a new cycle exists
        self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        if self._header_timer is not None and self.cycle is not self._awaited_after:
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]


def timed_protocol(header_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's HTTP protocol (httptools when installed, else h11, as its ``auto`` picks)
    with the header deadline."""
    base: type[asyncio.Protocol]
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

        base = HttpToolsProtocol
    except ImportError:  # pragma: no cover - uvicorn[standard] brings httptools
        from uvicorn.protocols.http.h11_impl import H11Protocol

        base = H11Protocol
    name = f"HeaderDeadline{base.__name__}"
    return type(name, (_HeaderDeadline, base), {"header_timeout": header_timeout})


def run(service: FastAPI, settings: Settings, log_level: str) -> None:
    """Serve ``service`` on ``settings.host:port`` with the connection cap and read timeouts,
    draining on SIGTERM (:class:`app.shutdown.DrainingServer`); the service's own loggers
    (``app.*``) print through uvicorn's handler, at the same level."""
    import uvicorn

    from app.shutdown import DrainingServer

    # Threads parsing an import or embedding hold the GIL for up to the switch interval each
    # time the event loop asks for it (Python's default is 5 ms). The compute threads spend
    # their time in numpy and torch, outside the GIL, so the extra hand-overs cost them
    # nothing measurable. The longer holds were full garbage collections, now kept short by
    # app.engine.freeze_heap (docs/api.md "Bounded work").
    sys.setswitchinterval(SWITCH_INTERVAL_S)

    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    log_config["loggers"]["app"] = {"handlers": ["default"], "level": log_level.upper()}
    config = uvicorn.Config(
        service,
        host=settings.host,
        port=settings.port,
        log_level=log_level,
        log_config=log_config,
        http=timed_protocol(settings.header_timeout_s),
        limit_concurrency=settings.max_connections,
        timeout_keep_alive=settings.keep_alive_s,
    )
    DrainingServer(config, service.state.shutdown).run()

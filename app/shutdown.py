"""A bounded graceful shutdown. On SIGTERM (see ``app.cli``) the server drains: requests in
flight finish, new ones answer 503 ``shutting_down`` with ``Retry-After`` (``/ready`` answers
503, ``/health`` stays up), the job worker claims nothing more and hands its running job back
at the next chunk boundary; then the server closes, and whatever still runs when
``shutdown_timeout_s`` ends is handed back where it is, so the process exits in time."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from types import FrameType

import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from app.errors import error_response

RETRY_AFTER_SECONDS = 5
_ALWAYS_ANSWERED = {"/health", "/ready"}


class Shutdown:
    """The drain: when it began, its deadline, and the requests still in flight."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.deadline: float | None = None
        self._in_flight = 0
        self._lock = threading.Lock()
        self._began = threading.Event()
        self.on_begin: list[Callable[[], None]] = []
        self.settled_when: list[Callable[[], bool]] = []

    @property
    def draining(self) -> bool:
        return self._began.is_set()

    def remaining(self) -> float:
        """Seconds left until the deadline (the whole timeout before the drain began)."""
        if self.deadline is None:
            return self.timeout
        return max(self.deadline - time.monotonic(), 0.0)

    def begin(self) -> None:
        if self._began.is_set():
            return
        self.deadline = time.monotonic() + self.timeout
        self._began.set()
        for callback in self.on_begin:
            callback()

    def settled(self) -> bool:
        with self._lock:
            idle = self._in_flight == 0
        return idle and all(check() for check in self.settled_when)

    def wait_settled(self, poll: float = 0.05) -> None:
        """Until nothing is in flight and every ``settled_when`` holds, or the deadline."""
        while not self.settled() and self.remaining() > 0:
            time.sleep(poll)

    def enter(self) -> None:
        with self._lock:
            self._in_flight += 1

    def leave(self) -> None:
        with self._lock:
            self._in_flight -= 1


class ShutdownMiddleware:
    """Counts the requests in flight; while draining, answers new ones 503 at once."""

    def __init__(self, app: ASGIApp, shutdown: Shutdown) -> None:
        self.app = app
        self.shutdown = shutdown

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.shutdown.draining and scope["path"] not in _ALWAYS_ANSWERED:
            refused = error_response(503, "shutting_down", "the server is shutting down")
            refused.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
            await refused(scope, receive, send)
            return
        self.shutdown.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.shutdown.leave()


class DrainingServer(uvicorn.Server):
    """uvicorn that drains on SIGTERM before it closes, all within the shutdown timeout; a
    second signal (or SIGINT) stops as uvicorn does."""

    def __init__(self, config: uvicorn.Config, shutdown: Shutdown) -> None:
        super().__init__(config)
        self.shutdown_state = shutdown

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self.shutdown_state.draining:
            super().handle_exit(sig, frame)
            return
        self.shutdown_state.begin()

        def close_when_drained() -> None:
            self.shutdown_state.wait_settled()
            # uvicorn's own wait for connections gets what is left of the timeout.
            self.config.timeout_graceful_shutdown = max(int(self.shutdown_state.remaining()), 1)
            uvicorn.Server.handle_exit(self, sig, frame)

        threading.Thread(target=close_when_drained, name="drain", daemon=True).start()

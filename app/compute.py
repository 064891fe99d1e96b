"""The bridge from a request to the engine's executor: a route's blocking work runs in the
read or write lane, bounded by the request deadline, and is cancelled when the client closes
its connection (queued work is dropped, running work stops at its next step boundary)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request
from starlette.types import Receive

from app.deps import EngineDep, MetricsDep
from app.engine import ClientGone
from app.errors import ApiError

T = TypeVar("T")


async def client_gone(receive: Receive) -> None:
    """Return when the client disconnects (the body was read already: the server's next
    message is the disconnect, also sent once the response is complete)."""
    while (await receive())["type"] != "http.disconnect":
        pass


class Compute:
    """Runs one request's blocking work on the engine (``read``: selections; ``write``:
    upserts, deletes, pool creation, calibration requests)."""

    def __init__(self, request: Request, engine: EngineDep, metrics: MetricsDep) -> None:
        self.request = request
        self.engine = engine
        self.metrics = metrics

    async def read(self, function: Callable[..., T], *args: Any) -> T:
        return await self._run("read", function, *args)

    async def write(self, function: Callable[..., T], *args: Any) -> T:
        return await self._run("write", function, *args)

    async def batched(self, submit: Callable[..., Awaitable[T]], name: str, request: Any) -> T:
        """``submit(name, request, gone=...)``: a read that the engine's batcher groups with
        others (app/batching.py), under the same deadline and disconnect rules."""
        return await self._guard(lambda gone: submit(name, request, gone=gone))

    async def _run(self, lane: str, function: Callable[..., T], *args: Any) -> T:
        return await self._guard(lambda gone: self.engine.run(lane, function, *args, gone=gone))

    async def _guard(self, start: Callable[[Callable[[], Awaitable[None]]], Awaitable[T]]) -> T:
        def gone() -> Awaitable[None]:
            return client_gone(self.request.receive)

        try:
            return await start(gone)
        except ClientGone as exc:
            self.metrics.stopped.labels("disconnect").inc()
            # Nobody reads the answer; 499 (a client closed request) marks it in the metrics.
            raise ApiError(499, "client_closed", "the client closed the connection") from exc
        except ApiError as exc:
            if exc.type == "timeout":
                self.metrics.stopped.labels("timeout").inc()
            raise


async def get_compute(request: Request, engine: EngineDep, metrics: MetricsDep) -> Compute:
    return Compute(request, engine, metrics)


ComputeDep = Annotated[Compute, Depends(get_compute)]

"""The FastAPI application: :func:`create_app` wires settings, engine, job worker,
metrics, error handlers and routers; the lifespan opens the store at startup and loads the
model in the background (``/ready`` answers 503 until it is loaded)."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import app
from app.config import Settings, get_settings
from app.engine import Engine
from app.errors import error_response, install_error_handlers
from app.jobs import JobWorker
from app.metrics import Metrics, MetricsMiddleware
from app.routes import ROUTERS

DESCRIPTION = (
    "Few-shot demonstration selection by Maximum Mean Discrepancy: store pools of "
    "demonstrations, and for a query (or a target distribution) get the k examples whose "
    "distribution is closest to it, with the MMD bounds and a ready prompt. Every error "
    'answers `{"error": {"type", "message", "detail"}}`.'
)


def operation_id(route: APIRoute) -> str:
    """``tag-name`` operation ids from each route's short ``name`` (``pools-create``,
    ``selection-select``): generators group operations by tag, so they read as
    ``pools.create`` in a generated client."""
    return f"{route.tags[0]}-{route.name}"


class BodyLimitMiddleware:
    """Reads the request body up to its limit (``max_import_bytes`` for imports,
    ``max_body_bytes`` otherwise) and answers 413 beyond it, before any parsing."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    def _limit(self, path: str) -> int:
        if path.endswith("/imports"):
            return self.settings.max_import_bytes
        return self.settings.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in {"GET", "HEAD", "DELETE", "OPTIONS"}:
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope["path"])
        too_large = error_response(413, "payload_too_large", f"the body exceeds {limit} bytes")
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_large(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > limit:
                await too_large(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: :func:`get_settings`)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(service: FastAPI) -> AsyncIterator[None]:
        engine = Engine(settings)
        jobs = JobWorker(engine)
        service.state.engine = engine
        service.state.jobs = jobs
        service.state.metrics.bind_pool_sizes(engine.store.pool_sizes)
        jobs.start()
        threading.Thread(target=engine.start, name="load-models", daemon=True).start()
        try:
            yield
        finally:
            jobs.stop()
            engine.close()

    service = FastAPI(
        title="mmdshot",
        version=app.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    service.dependency_overrides[get_settings] = lambda: settings
    service.state.metrics = Metrics()
    install_error_handlers(service)
    for router in ROUTERS:
        service.include_router(router)
    service.add_middleware(BodyLimitMiddleware, settings=settings)
    service.add_middleware(MetricsMiddleware, metrics=service.state.metrics)
    return service


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI document; it does not depend on the settings."""
    return create_app(Settings()).openapi()


def openapi_text() -> str:
    """``openapi.json`` as committed: indented, keys in order, a final newline."""
    return json.dumps(openapi_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

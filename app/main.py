"""The FastAPI application: :func:`create_app` wires settings, engine, job worker,
metrics, error handlers and routers; the lifespan opens the store at startup and loads the
model in the background (``/ready`` answers 503 until it is loaded)."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import app
from app.auth import ApiKeys
from app.config import Settings, get_settings
from app.engine import Engine
from app.errors import ERROR_DESCRIPTIONS, error_response, install_error_handlers
from app.jobs import JobWorker
from app.metrics import Metrics, MetricsMiddleware
from app.prefixes import Traffic
from app.routes import ROUTERS
from app.server import BodyTimeoutMiddleware
from app.shutdown import Shutdown, ShutdownMiddleware

CONSOLE = Path(__file__).parent / "console"  # static HTML, JS and CSS (package data)

DESCRIPTION = (
    "Few-shot demonstration selection by Maximum Mean Discrepancy: store pools of "
    "demonstrations, and for a query (or a target distribution) get the k examples whose "
    "distribution is closest to it, with the MMD bounds and a ready prompt. Every error "
    'answers `{"error": {"type", "message", "detail"}}`.'
)


def operation_id(route: APIRoute) -> str:
    """``tag-name`` operation ids from each route's short ``name`` (``pools-create``,
    ``selection-select``): generators group operations by tag, so they read as
    ``pools.create`` in a generated client. Untagged routes (/docs, /redoc, /console) are
    not in the schema."""
    return f"{route.tags[0] if route.tags else 'untagged'}-{route.name}"


class BodyLimitMiddleware:
    """Reads the request body up to ``max_body_bytes`` and answers 413 beyond it, before any
    parsing (imports excepted: they stream to the spool)."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Import bodies stream to the spool; their route checks their size as they arrive.
        if (
            scope["type"] != "http"
            or scope["method"] in {"GET", "HEAD", "DELETE", "OPTIONS"}
            or scope["path"].endswith("/imports")
        ):
            await self.app(scope, receive, send)
            return
        limit = self.settings.max_body_bytes
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


def _redoc() -> HTMLResponse:
    """ReDoc from the packaged bundle. Its side menu shows a logo from cdn.redoc.ly (with a
    fallback when it fails); the page's Content-Security-Policy keeps images on this origin,
    so the browser never asks for it."""
    page = get_redoc_html(
        openapi_url="/openapi.json",
        title="mmdshot - ReDoc",
        redoc_js_url="/static-offline-docs/redoc.standalone.js",
        redoc_favicon_url="/static-offline-docs/favicon.png",
        with_google_fonts=False,
    )
    page.headers["Content-Security-Policy"] = "img-src 'self' data:"
    return page


def create_app(settings: Settings | None = None) -> FastAPI:
    """The service for ``settings`` (default: :func:`get_settings`)."""
    settings = settings or get_settings()
    shutdown = Shutdown(settings.shutdown_timeout_s)

    @asynccontextmanager
    async def lifespan(service: FastAPI) -> AsyncIterator[None]:
        service.state.api_keys.log_summary()
        engine = Engine(settings)
        jobs = JobWorker(engine)
        service.state.engine = engine
        service.state.jobs = jobs
        service.state.metrics.bind_pool_sizes(engine.store.pool_sizes)
        service.state.metrics.bind_batching(engine.batch_counts)
        shutdown.on_begin.append(jobs.begin_shutdown)
        shutdown.settled_when.append(lambda: jobs.idle)
        jobs.start()
        threading.Thread(target=engine.start, name="load-models", daemon=True).start()
        try:
            yield
        finally:
            jobs.stop(shutdown.remaining())
            engine.close()

    # Swagger UI (/docs) and ReDoc (/redoc, below) from the assets fastapi-offline ships.
    service = FastAPIOffline(
        redoc_url=None,
        title="mmdshot",
        version=app.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    service.state.settings = settings
    service.state.metrics = Metrics(pool_labels=settings.metrics_require_key)
    service.state.api_keys = ApiKeys(settings.api_key_entries)
    service.state.shutdown = shutdown
    service.state.traffic = Traffic(settings.traffic_sample)
    install_error_handlers(service)
    for router in ROUTERS:
        service.include_router(router)

    def openapi() -> dict[str, Any]:
        if service.openapi_schema is None:
            schema = declare_transport_errors(FastAPI.openapi(service))
            service.openapi_schema = declare_links(schema)
        return service.openapi_schema

    service.openapi = openapi  # type: ignore[method-assign]
    service.add_api_route("/redoc", _redoc, include_in_schema=False)
    service.add_api_route(
        "/console", lambda: RedirectResponse("/console/"), include_in_schema=False
    )
    service.mount("/console/", StaticFiles(directory=CONSOLE, html=True), name="console")
    service.add_middleware(BodyLimitMiddleware, settings=settings)
    service.add_middleware(BodyTimeoutMiddleware, seconds=settings.body_timeout_s)
    if settings.cors_origins:
        service.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["*"],
            expose_headers=["Location", "Retry-After"],
        )
    service.add_middleware(MetricsMiddleware, metrics=service.state.metrics)
    service.add_middleware(ShutdownMiddleware, shutdown=shutdown)
    return service


_POOL = {"pool": "$response.body#/name"}
_SAME_POOL = {"pool": "$request.path.pool"}
_JOB = {"job_id": "$response.body#/id"}
_PREFIX = {**_SAME_POOL, "name": "$response.body#/name"}
# OpenAPI links: what a response lets a client (or schemathesis' stateful phase) do next,
# as (operation, status) -> {link name: (target operation, its parameters)}.
LINKS: dict[tuple[str, str], dict[str, tuple[str, dict[str, str]]]] = {
    ("pools-create", "201"): {
        "get": ("pools-get", _POOL),
        "upsert": ("examples-upsert", _POOL),
        "import": ("imports-create", _POOL),
        "list-examples": ("examples-list", _POOL),
        "select": ("selection-select", _POOL),
        "select-batch": ("selection-select_batch", _POOL),
        "calibrate": ("pools-calibrate", _POOL),
        "create-prefix": ("prefixes-create", _POOL),
        "delete": ("pools-delete", _POOL),
    },
    ("prefixes-create", "201"): {
        "get": ("prefixes-get", _PREFIX),
        "rebuild": ("prefixes-rebuild", _PREFIX),
        "delete": ("prefixes-delete", _PREFIX),
    },
    ("examples-upsert", "200"): {
        "get": ("examples-get", {**_SAME_POOL, "example_id": "$response.body#/inserted/0"}),
        "delete": ("examples-delete", {**_SAME_POOL, "example_id": "$response.body#/inserted/0"}),
        "select": ("selection-select", _SAME_POOL),
        "list": ("examples-list", _SAME_POOL),
    },
    ("examples-list", "200"): {
        "next-page": ("examples-list", {**_SAME_POOL, "cursor": "$response.body#/next_cursor"}),
        "get": ("examples-get", {**_SAME_POOL, "example_id": "$response.body#/examples/0/id"}),
    },
    ("imports-create", "202"): {"job": ("imports-get", _JOB)},
    ("pools-calibrate", "202"): {"job": ("imports-get", _JOB)},
}


def declare_links(schema: dict[str, Any]) -> dict[str, Any]:
    """Add :data:`LINKS` to the responses they start from."""
    operations = {
        operation["operationId"]: operation
        for methods in schema["paths"].values()
        for operation in methods.values()
    }
    for (source, status), links in LINKS.items():
        response = operations[source]["responses"][status]
        response["links"] = {
            name: {"operationId": target, "parameters": parameters}
            for name, (target, parameters) in links.items()
        }
    return schema


def declare_transport_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Every operation that takes a body can answer 400 (not JSON, not UTF-8, nested too
    deeply) and 408 (the body stalled): declared once here rather than on each route."""
    body_error = {"$ref": "#/components/schemas/ErrorBody"}
    for operations in schema["paths"].values():
        for operation in operations.values():
            if "requestBody" not in operation:
                continue
            for status in (400, 408):
                operation["responses"].setdefault(
                    str(status),
                    {
                        "description": ERROR_DESCRIPTIONS[status],
                        "content": {"application/json": {"schema": body_error}},
                    },
                )
    return schema


def openapi_schema() -> dict[str, Any]:
    """The OpenAPI document; it does not depend on the settings."""
    return create_app(Settings()).openapi()


def openapi_text() -> str:
    """``openapi.json`` as committed: indented, keys in order, a final newline."""
    return json.dumps(openapi_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

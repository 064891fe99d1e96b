"""One JSON error body for every failure, and the mapping of library errors to status codes.

Every error answers ``{"error": {"type": ..., "message": ..., "detail": ...}}``:
400 ``bad_request`` (a body that is not JSON, not UTF-8 or nested too deeply), 422 invalid
input (``validation_error``, ``invalid_input``, ``unknown_kernel``, ``response_too_large``),
401 ``unauthorized`` (no or an unknown API key), 403 ``forbidden`` (a read key on a write route),
404 ``not_found``, 405 ``method_not_allowed`` (with ``Allow``), 408 ``request_timeout``, 409
``conflict`` and ``infeasible_constraint`` (the constraints cannot be met by this pool), 413
``payload_too_large``, 415 ``unsupported_media_type``, 422 ``too_costly`` (over the cost budget),
429 ``overloaded``, 503 ``not_ready``, ``timeout`` (past the request deadline),
``embedding_unavailable`` (the remote embedding server is down) and ``shutting_down``, 507
``storage_full``; anything unexpected is a 500 ``internal`` without internals in the body.
Every 429 and 503 carries ``Retry-After``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from selector.errors import (
    DeviceUnavailableError,
    EmbeddingModelError,
    InfeasibleConstraintError,
    InvalidInputError,
    SelectionCancelled,
    SelectorError,
    UnknownKernelError,
)

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error with its HTTP status, a machine-readable ``type`` and a human message."""

    def __init__(
        self,
        status: int,
        type_: str,
        message: str,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.type = type_
        self.message = message
        self.detail = detail
        self.headers = headers


def not_found(what: str, name: str) -> ApiError:
    """404 for a missing pool, example or job."""
    return ApiError(404, "not_found", f"{what} {name!r} does not exist", {what: name})


def storage_full(message: str) -> ApiError:
    """507 for a write that found no space (the disk, or the store's configured cap)."""
    return ApiError(507, "storage_full", message)


RETRY_AFTER_S = 1
"""``Retry-After`` of a 429 or 503 that names none of its own."""


def error_response(
    status: int,
    type_: str,
    message: str,
    detail: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The one error body; a 429 or 503 always carries ``Retry-After``."""
    body = {"error": {"type": type_, "message": message, "detail": jsonable_encoder(detail)}}
    headers = dict(headers or {})
    if status in (429, 503):
        headers.setdefault("Retry-After", str(RETRY_AFTER_S))
    return JSONResponse(status_code=status, content=body, headers=headers)


def from_embedding_error(exc: Exception) -> ApiError:
    """503 ``embedding_unavailable``: the remote embedding server did not answer (after its
    retries); nothing of the request was stored."""
    return ApiError(503, "embedding_unavailable", str(exc))


async def _embedding_error(request: Request, exc: Exception) -> JSONResponse:
    return await _api_error(request, from_embedding_error(exc))


def from_selector_error(exc: SelectorError) -> ApiError:
    """Map a library error to its status code and type."""
    if isinstance(exc, UnknownKernelError):
        return ApiError(422, "unknown_kernel", exc.message, exc.detail)
    if isinstance(exc, InvalidInputError):
        return ApiError(422, "invalid_input", exc.message, exc.detail)
    if isinstance(exc, InfeasibleConstraintError):
        return ApiError(409, "infeasible_constraint", exc.message, exc.detail)
    if isinstance(exc, DeviceUnavailableError | EmbeddingModelError):
        return ApiError(503, "not_ready", exc.message, exc.detail)
    if isinstance(exc, SelectionCancelled):
        return ApiError(503, "timeout", "the request was stopped before it finished")
    return ApiError(500, "internal", "selection failed", None)


_STATUS_TYPES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


def require_media_type(*accepted: str) -> Callable[[Request], Awaitable[None]]:
    """A route dependency: 415 unless the request's content type (parameters such as
    ``charset`` aside) is one of ``accepted``. A missing type is refused too, so no browser
    form or text post from another site gets in."""

    async def check(request: Request) -> None:
        given = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if given not in accepted:
            raise ApiError(
                415,
                "unsupported_media_type",
                f"send the body as {' or '.join(accepted)}, not {given or 'no content type'}",
                {"accepted": list(accepted)},
            )

    return check


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.type, exc.message, exc.detail, exc.headers)


async def _selector_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SelectorError)
    return await _api_error(request, from_selector_error(exc))


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {
            "loc": list(problem.get("loc", ())),
            "msg": problem.get("msg"),
            "type": problem.get("type"),
        }
        for problem in exc.errors()
    ]
    first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    return error_response(422, "validation_error", f"{where}: {first['msg']}", problems)


def _leaf_routes(routes: Iterable[Any]) -> Iterator[Any]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's included routers
        yield from _leaf_routes(included.routes) if included is not None else [route]


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path (each route answers 405 with
    its own methods only, so ``GET /v1/pools`` and ``POST /v1/pools`` each omit the other)."""
    methods: set[str] = set()
    for route in _leaf_routes(request.app.router.routes):
        if route.matches(request.scope)[0] is not Match.NONE:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    type_ = _STATUS_TYPES.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = ", ".join(allowed_methods(request))
    return error_response(exc.status_code, type_, str(exc.detail), None, headers)


async def _too_deep(_: Request, exc: Exception) -> JSONResponse:
    # Parsing a body nested thousands of levels deep exhausts the recursion limit.
    return error_response(400, "bad_request", "the body is nested too deeply", None)


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(500, "internal", "internal server error", None)


def install_error_handlers(app: FastAPI) -> None:
    """Route every exception through the one error body."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(SelectorError, _selector_error)
    from app.embedders import EmbeddingUnavailable  # it raises ApiError: imported late

    app.add_exception_handler(EmbeddingUnavailable, _embedding_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RecursionError, _too_deep)
    app.add_exception_handler(Exception, _unexpected)


ERROR_DESCRIPTIONS = {
    400: "The body is not valid JSON, not UTF-8, or nested too deeply (bad_request)",
    401: "No or an unknown API key (only when the service has keys)",
    403: "A read-only API key on a write route",
    408: "The body did not arrive in time (request_timeout)",
    415: "The body's content type is not accepted (unsupported_media_type)",
    404: "Unknown pool, example or job",
    409: "Conflict: the pool exists, or the constraints cannot be met (infeasible_constraint)",
    413: "The body is too large",
    422: "Invalid input, or a response over its size limit (response_too_large), or over the "
    "cost budget (too_costly)",
    429: "Overloaded (a queue is full); retry after Retry-After seconds",
    503: "Not ready (not_ready), past the request deadline (timeout), the embedding server "
    "down (embedding_unavailable) or stopping (shutting_down); retry after Retry-After seconds",
    507: "Out of storage space (storage_full); nothing was written",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error statuses, all with the one error body."""
    from app.schemas import ErrorBody

    return {
        status: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[status]}
        for status in statuses
    }

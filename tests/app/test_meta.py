"""Health, readiness, info, metrics, the OpenAPI artifact and the bounded executor."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import openapi_schema, openapi_text
from tests.app.conftest import REPO, assert_error
from tests.app.test_auth import READ_ROUTES


class _AnyText:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and bool(other)


ANY_TEXT = _AnyText()


def test_health_ready_info(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["ready"] is True
    info = client.get("/v1/info").json()
    assert info["model"] == "hashing-64" and info["dimension"] == 64
    assert info["kernels"] == ["softmax", "rbf", "laplace", "cosine"]
    assert info["limits"]["max_upsert_batch"] == 100
    assert info["auth"] == "none"


def test_metrics(client: httpx.Client, pool: str) -> None:
    client.post(f"/v1/pools/{pool}/select", json={"query": "cars", "k": 2})
    text = client.get("/metrics").text
    assert (
        'mmdshot_requests_total{method="POST",route="/v1/pools/{pool}/select",status="200"}' in text
    )
    assert 'mmdshot_selection_seconds_count{endpoint="pool"}' in text
    assert pool not in text  # pool names only behind the metrics key


def test_metrics_pool_labels_only_when_asked() -> None:
    from app.metrics import Metrics

    labelled, plain = Metrics(pool_labels=True), Metrics()
    for metrics in (labelled, plain):
        metrics.bind_pool_sizes(lambda: {"tenant-pool": 60})
    assert b'mmdshot_pool_examples{pool="tenant-pool"} 60.0' in labelled.render()
    assert b"tenant-pool" not in plain.render()


def test_unknown_routes_and_methods(client: httpx.Client) -> None:
    assert_error(client.get("/nowhere"), 404, "not_found")
    assert_error(client.put("/health"), 405, "method_not_allowed")


def test_openapi_matches_committed_file() -> None:
    committed = (REPO / "openapi.json").read_text()
    assert committed == openapi_text(), (
        "openapi.json is stale: run `mmdshot openapi > openapi.json`"
    )


# The operation ids the generated clients are named by (a rename breaks their callers).
OPERATION_IDS = {
    ("get", "/health"): "meta-health",
    ("get", "/ready"): "meta-ready",
    ("get", "/v1/info"): "meta-info",
    ("get", "/metrics"): "meta-metrics",
    ("post", "/v1/pools"): "pools-create",
    ("get", "/v1/pools"): "pools-list",
    ("get", "/v1/pools/{pool}"): "pools-get",
    ("delete", "/v1/pools/{pool}"): "pools-delete",
    ("post", "/v1/pools/{pool}/calibrate"): "pools-calibrate",
    ("post", "/v1/pools/{pool}/examples"): "examples-upsert",
    ("get", "/v1/pools/{pool}/examples"): "examples-list",
    ("get", "/v1/pools/{pool}/examples/{example_id}"): "examples-get",
    ("delete", "/v1/pools/{pool}/examples/{example_id}"): "examples-delete",
    ("post", "/v1/pools/{pool}/imports"): "imports-create",
    ("get", "/v1/jobs/{job_id}"): "imports-get",
    ("post", "/v1/jobs/{job_id}/cancel"): "imports-cancel",
    ("post", "/v1/jobs/{job_id}/resume"): "imports-resume",
    ("post", "/v1/pools/{pool}/select"): "selection-select",
    ("post", "/v1/pools/{pool}/select/batch"): "selection-select_batch",
    ("post", "/v1/select"): "selection-select_inline",
    ("post", "/v1/pools/{pool}/prefixes"): "prefixes-create",
    ("get", "/v1/pools/{pool}/prefixes"): "prefixes-list",
    ("get", "/v1/pools/{pool}/prefixes/{name}"): "prefixes-get",
    ("delete", "/v1/pools/{pool}/prefixes/{name}"): "prefixes-delete",
    ("post", "/v1/pools/{pool}/prefixes/{name}/rebuild"): "prefixes-rebuild",
}


def test_openapi_operations_have_ids_security_and_error_bodies() -> None:
    schema = openapi_schema()
    operations = {
        (method, path): operation
        for path, methods in schema["paths"].items()
        for method, operation in methods.items()
    }
    assert {key: op["operationId"] for key, op in operations.items()} == OPERATION_IDS
    assert schema["components"]["securitySchemes"] == {
        "HTTPBearer": {"type": "http", "scheme": "bearer", "description": ANY_TEXT}
    }
    for (method, path), operation in operations.items():
        errors = {status for status in operation["responses"] if status.startswith(("4", "5"))}
        for status in errors - ({"503"} if path == "/ready" else set()):
            ref = operation["responses"][status]["content"]["application/json"]["schema"]
            assert ref["$ref"].endswith("/ErrorBody"), (path, method, status)
        if path in ("/health", "/ready"):
            assert "security" not in operation and "401" not in errors, path
            continue
        # Every other route takes the bearer key and documents its refusals.
        assert operation["security"] == [{"HTTPBearer": []}], path
        assert "401" in errors, (path, method)
        writes = (method.upper(), path) not in READ_ROUTES and path.startswith("/v1/")
        assert ("403" in errors) == writes, (path, method)
    assert "HTTPValidationError" not in json.dumps(schema)


def test_served_schema_is_the_committed_one(client: httpx.Client) -> None:
    assert client.get("/openapi.json").json() == json.loads((REPO / "openapi.json").read_text())


def test_cli_openapi_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    assert main(["openapi"]) == 0
    assert capsys.readouterr().out == Path(REPO / "openapi.json").read_text()


def response_schemas(schema: dict[str, Any]) -> set[str]:
    """Every component a 2xx response reaches, through $refs."""
    components = schema["components"]["schemas"]
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                name = ref.rsplit("/", 1)[1]
                if name not in found:
                    found.add(name)
                    walk(components[name])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for operations in schema["paths"].values():
        for operation in operations.values():
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    walk(response)
    return found


def test_every_response_field_is_described() -> None:
    schema = json.loads((REPO / "openapi.json").read_text())
    reached = response_schemas(schema)
    assert {"PoolSelection", "Selection", "Subset", "BaselineScore", "Job", "PoolInfo"} <= reached
    components = schema["components"]["schemas"]
    undescribed = [
        f"{name}.{field}"
        for name in sorted(reached)
        for field, spec in components[name].get("properties", {}).items()
        if not spec.get("description")
    ]
    assert undescribed == []


def test_routes_read_the_apps_own_settings_without_dependency_overrides(tmp_path: Path) -> None:
    """``create_app(settings)`` hands its settings to the routes through the app's state, not a
    dependency override: with any override FastAPI rebuilds every dependant on every request
    (without one, 1.33x the selections/s at concurrency 32 over HTTP, docs/benchmarks.md)."""
    from fastapi.testclient import TestClient
    from pydantic import SecretStr

    from app.config import Settings
    from app.main import create_app

    settings = Settings(
        data_dir=tmp_path, api_keys=SecretStr("key-" + "a" * 24), metrics_require_key=True
    )
    service = create_app(settings)
    assert service.dependency_overrides == {}
    client = TestClient(service)  # no lifespan: /metrics needs no engine
    assert_error(client.get("/metrics"), 401)
    assert client.get("/metrics", headers={"Authorization": f"Bearer key-{'a' * 24}"}).is_success


def test_every_dependency_is_a_coroutine() -> None:
    """No route dependency runs on FastAPI's thread pool: a plain function or class dependency
    costs a thread hop per request, and none of the service's blocks."""
    from fastapi.dependencies.models import Dependant
    from fastapi.dependencies.utils import _is_coroutine_callable
    from fastapi.routing import APIRoute, iter_route_contexts

    from app.config import Settings
    from app.main import create_app

    def calls(dependant: Dependant) -> Iterator[Any]:
        for sub in dependant.dependencies:
            yield sub.call
            yield from calls(sub)

    routes = [
        context.original_route
        for context in iter_route_contexts(create_app(Settings()).routes)
        if isinstance(context.original_route, APIRoute)
    ]
    found = {call for route in routes for call in calls(route.dependant)}
    assert len(found) >= 8  # the walk reached the auth, engine and compute dependencies
    plain = sorted(
        getattr(call, "__qualname__", repr(call))
        for call in found
        if not _is_coroutine_callable(call)
    )
    assert plain == []

"""Health, readiness, info, metrics, the OpenAPI artifact and the bounded executor."""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.engine import BoundedExecutor
from app.errors import ApiError
from app.main import openapi_schema, openapi_text
from tests.app.conftest import REPO, assert_error


def test_health_ready_info(client: httpx.Client) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json()["ready"] is True
    info = client.get("/v1/info").json()
    assert info["model"] == "hashing-64" and info["dimension"] == 64
    assert info["kernels"] == ["softmax", "rbf", "laplace", "cosine"]
    assert info["limits"]["max_upsert_batch"] == 100


def test_metrics(client: httpx.Client, pool: str) -> None:
    client.post(f"/v1/pools/{pool}/select", json={"query": "cars", "k": 2})
    text = client.get("/metrics").text
    assert (
        'mmdshot_requests_total{method="POST",route="/v1/pools/{pool}/select",status="200"}' in text
    )
    assert 'mmdshot_selection_seconds_count{endpoint="pool"}' in text
    assert f'mmdshot_pool_examples{{pool="{pool}"}} 60.0' in text


def test_unknown_routes_and_methods(client: httpx.Client) -> None:
    assert_error(client.get("/nowhere"), 404, "not_found")
    assert_error(client.put("/health"), 405, "method_not_allowed")


def test_openapi_matches_committed_file() -> None:
    committed = (REPO / "openapi.json").read_text()
    assert committed == openapi_text(), (
        "openapi.json is stale: run `mmdshot openapi > openapi.json`"
    )


def test_openapi_operations_have_tags_ids_and_error_bodies() -> None:
    schema = openapi_schema()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            (tag,) = operation["tags"]
            assert operation["operationId"].startswith(f"{tag}-"), (path, method)
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path != "/ready":
                    ref = response["content"]["application/json"]["schema"]["$ref"]
                    assert ref.endswith("/ErrorBody"), (path, method, status)
    assert "HTTPValidationError" not in json.dumps(schema)


def test_served_schema_is_the_committed_one(client: httpx.Client) -> None:
    assert client.get("/openapi.json").json() == json.loads((REPO / "openapi.json").read_text())


def test_bounded_executor_refuses_when_full() -> None:
    release = threading.Event()
    executor = BoundedExecutor(workers=1, queue=0)

    async def scenario() -> None:
        running = asyncio.ensure_future(executor.run(release.wait))
        await asyncio.sleep(0.05)
        with pytest.raises(ApiError) as refused:
            await executor.run(release.wait)
        assert refused.value.status == 429
        release.set()
        assert await running is True

    asyncio.run(scenario())
    executor.shutdown()


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

"""Health, readiness, info, metrics, the OpenAPI artifact and the bounded executor."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

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


def test_cli_openapi_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main

    assert main(["openapi"]) == 0
    assert capsys.readouterr().out == Path(REPO / "openapi.json").read_text()

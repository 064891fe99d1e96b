"""Hostile and extreme input over the real HTTP interface (issue 13): each request here once
answered 500, held the service or exposed its internals; now each answers a 4xx JSON error
(or is refused by the server) before any work."""

from __future__ import annotations

import base64
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.config import Settings
from app.main import openapi_schema
from app.schemas import MAX_UPSERT_BATCH, ExamplesUpsert
from tests.app.conftest import NDJSON, Server, assert_error, make_examples, wait_for_job

DEEP = ("[" * 5000 + "]" * 5000).encode()
ORIGIN = "https://app.example"
# One JSON-body operation of every kind: a path (with a pool placeholder) and a valid body.
JSON_BODIES = {
    "/v1/pools": '{"name": %s}',
    "/v1/pools/{pool}/examples": '{"examples": %s}',
    "/v1/pools/{pool}/select": '{"query": "x", "k": %s}',
    "/v1/pools/{pool}/select/batch": '{"queries": %s}',
    "/v1/pools/{pool}/calibrate": '{"taus": %s}',
    "/v1/select": '{"query": "x", "candidates": %s}',
}


# --- 1: deeply nested JSON -------------------------------------------------------------------


def test_deeply_nested_import_array_fails_its_job_alone(client: httpx.Client, pool: str) -> None:
    """The body streams to the spool and is parsed by the job: a JSON array nested too deeply
    fails that job with a clear message (nothing stored), and the worker takes the next."""
    response = client.post(
        f"/v1/pools/{pool}/imports", content=DEEP, headers={"content-type": "application/json"}
    )
    assert response.status_code == 202, response.text
    job = wait_for_job(client, response.json()["id"])
    assert job["status"] == "failed" and "not a JSON array" in job["message"], job
    assert job["inserted"] == 0
    after = client.post(f"/v1/pools/{pool}/imports", content=b'{"input": "a"}\n', headers=NDJSON)
    assert wait_for_job(client, after.json()["id"])["inserted"] == 1


def test_deeply_nested_import_line_is_a_line_error(client: httpx.Client, pool: str) -> None:
    body = b'{"input": "fine"}\n{"input": "x", "metadata": {"a": ' + DEEP + b"}}\n"
    started = client.post(f"/v1/pools/{pool}/imports", content=body, headers=NDJSON)
    assert started.status_code == 202, started.text
    job = wait_for_job(client, started.json()["id"])
    assert job["inserted"] == 1 and [error["line"] for error in job["errors"]] == [2]


@pytest.mark.parametrize("path", sorted(JSON_BODIES), ids=range(len(JSON_BODIES)))
def test_deeply_nested_request_bodies_are_a_400(client: httpx.Client, pool: str, path: str) -> None:
    body = (JSON_BODIES[path] % DEEP.decode()).encode()
    response = client.post(
        path.format(pool=pool), content=body, headers={"content-type": "application/json"}
    )
    assert_error(response, 400, "bad_request")


# --- 2: cursor overflow ----------------------------------------------------------------------


@pytest.mark.parametrize("seq", ["9" * 30, "-1", str(2**63)])
def test_cursor_out_of_range_is_a_422(client: httpx.Client, pool: str, seq: str) -> None:
    cursor = base64.urlsafe_b64encode(f"seq:{seq}".encode()).decode()
    response = client.get(f"/v1/pools/{pool}/examples", params={"cursor": cursor})
    assert_error(response, 422, "invalid_input")


def test_the_issue_cursor_is_a_422(client: httpx.Client, pool: str) -> None:
    cursor = "c2VxOjk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OQ=="
    assert_error(client.get(f"/v1/pools/{pool}/examples?cursor={cursor}"), 422, "invalid_input")


# --- 3: non-finite results -------------------------------------------------------------------


@pytest.mark.parametrize("tau", [1e-11, 1e-8, 5e-5])
def test_tiny_tau_is_refused_before_work(client: httpx.Client, pool: str, tau: float) -> None:
    response = client.post(f"/v1/pools/{pool}/select", json={"query": "x", "tau": tau})
    assert_error(response, 422, "validation_error")
    assert "tau" in response.json()["error"]["message"]
    calibrate = client.post(f"/v1/pools/{pool}/calibrate", json={"taus": [tau], "k": 2})
    assert_error(calibrate, 422, "validation_error")


def test_smallest_allowed_tau_stays_finite(client: httpx.Client, pool: str) -> None:
    for kernel in ("softmax", "rbf", "laplace"):
        body = {"query": "cars", "k": 4, "tau": 1e-4, "kernel": kernel}
        response = client.post(f"/v1/pools/{pool}/select", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["mmd2"] < 10.0


# --- 4, 5, 6: templates and size caps --------------------------------------------------------

BAD_TEMPLATES = {
    "{input:{output}}": "format spec",
    "{input:>100000000000}": "format spec",
    "{input:>10000000}": "format spec",
    "{input!r}": "conversion",
    "{input.__class__}": "input.__class__",
    "{input[0]}": "input[0]",
    "{}": "positional",
    "{0}": "positional",
    "{secret}": "'secret'",
    "{input": "malformed",
}


@pytest.mark.parametrize("template", sorted(BAD_TEMPLATES), ids=range(len(BAD_TEMPLATES)))
def test_templates_take_field_names_only(client: httpx.Client, pool: str, template: str) -> None:
    response = client.post(
        f"/v1/pools/{pool}/select", json={"query": "x", "k": 2, "template": template}
    )
    assert_error(response, 422, "validation_error")
    assert BAD_TEMPLATES[template] in response.json()["error"]["message"]
    query = client.post(
        f"/v1/pools/{pool}/select",
        json={"query": "x", "k": 2, "query_template": template.replace("input", "query")},
    )
    assert_error(query, 422, "validation_error")


def test_escaped_braces_render_literally(client: httpx.Client, pool: str) -> None:
    body = {"query": "cars", "k": 2, "template": "{{input}} {input}|", "query_template": "{{q}}"}
    response = client.post(f"/v1/pools/{pool}/select", json=body)
    assert response.status_code == 200, response.text
    prompt = response.json()["prompt"]
    assert prompt.count("{input} ") == 2 and prompt.endswith("{q}")


# --- 12: the contract ------------------------------------------------------------------------


def test_every_body_operation_declares_400() -> None:
    for path, operations in openapi_schema()["paths"].items():
        for method, operation in operations.items():
            if "requestBody" in operation:
                assert "400" in operation["responses"], (method, path)


def test_405_names_the_allowed_methods(client: httpx.Client) -> None:
    response = client.put("/v1/pools")
    assert_error(response, 405, "method_not_allowed")
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


def test_schema_upsert_limit_is_the_servers_limit() -> None:
    schema = ExamplesUpsert.model_json_schema()
    assert schema["properties"]["examples"]["maxItems"] == MAX_UPSERT_BATCH
    assert Settings().max_upsert_batch == MAX_UPSERT_BATCH
    with pytest.raises(ValueError):
        Settings(max_upsert_batch=MAX_UPSERT_BATCH + 1)


@pytest.mark.parametrize(
    "content_type",
    [None, "text/csv", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"],
    ids=["none", "csv", "text", "form", "multipart"],
)
def test_imports_refuse_other_content_types(
    client: httpx.Client, pool: str, content_type: str | None
) -> None:
    request = client.build_request(
        "POST", f"/v1/pools/{pool}/imports", content=b'{"input": "injected"}\n'
    )
    request.headers.pop("content-type", None)
    if content_type is not None:
        request.headers["content-type"] = content_type
    assert_error(client.send(request), 415, "unsupported_media_type")
    assert client.get(f"/v1/pools/{pool}").json()["size"] == 60


@pytest.mark.parametrize(
    "content_type",
    ["application/x-ndjson", "application/json", "application/json; charset=utf-8"],
    ids=["ndjson", "json", "json-charset"],
)
def test_imports_take_ndjson_and_json(client: httpx.Client, pool: str, content_type: str) -> None:
    body = b'[{"input": "accepted"}]' if "json;" in content_type + ";" else b'{"input": "ok"}\n'
    started = client.post(
        f"/v1/pools/{pool}/imports", content=body, headers={"content-type": content_type}
    )
    assert started.status_code == 202, started.text
    assert wait_for_job(client, started.json()["id"])["inserted"] == 1


def test_cors_is_off_by_default(client: httpx.Client) -> None:
    preflight = client.options(
        "/v1/pools",
        headers={"origin": ORIGIN, "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get("/v1/pools", headers={"origin": ORIGIN})
    assert "access-control-allow-origin" not in simple.headers


# --- 13: exposure ----------------------------------------------------------------------------


def test_metrics_name_no_pools_by_default(client: httpx.Client, pool: str) -> None:
    text = client.get("/metrics").text
    assert pool not in text and "mmdshot_pool_examples{" not in text


def test_a_bad_model_path_is_not_echoed(tmp_path: Path) -> None:
    secret = tmp_path / "secret-model-folder"
    server = Server(tmp_path / "data", embedder="minilm", model_path=str(secret))
    server.start(probe="/health")
    try:
        with server.client() as client:
            deadline = time.monotonic() + 60
            while (ready := client.get("/ready")).json()["message"] is None:
                assert time.monotonic() < deadline, "the model load never failed"
                time.sleep(0.2)
            assert ready.status_code == 503
            assert ready.json()["message"] == "the configured model path is not a folder"
            refused = client.post("/v1/pools", json={"name": "p"})
            assert_error(refused, 503, "not_ready")
            for response in (ready, refused):
                assert str(secret) not in response.text and "secret-model" not in response.text
    finally:
        server.stop()


# --- 11, 12, 6: a server with small timeouts, a connection cap, CORS and small caps ----------


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(
        tmp_path_factory.mktemp("guarded"),
        header_timeout_s="1",
        body_timeout_s="1",
        max_connections="6",
        cors_origins=f"{ORIGIN}, https://other.example",
        max_prompt_chars="20000",
        max_response_chars="100000",
    ).start()
    yield running
    running.stop()


def _connect(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    connection = socket.create_connection((host, int(port)), timeout=5)
    return connection


def _closed_within(connection: socket.socket, seconds: float) -> bytes | None:
    """What the server sent before closing the connection, or None if it stayed open."""
    connection.settimeout(seconds)
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    return received


def test_incomplete_headers_are_cut_off(guarded: Server) -> None:
    connection = _connect(guarded)
    try:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert _closed_within(connection, 4.0) is not None, "the connection was held"
    finally:
        connection.close()


def test_a_silent_connection_is_cut_off(guarded: Server) -> None:
    connection = _connect(guarded)
    try:
        assert _closed_within(connection, 4.0) is not None, "the connection was held"
    finally:
        connection.close()


def test_a_stalled_body_is_a_408(guarded: Server) -> None:
    connection = _connect(guarded)
    try:
        connection.sendall(
            b"POST /v1/pools HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n"
            b'content-length: 100\r\n\r\n{"name": '
        )
        received = _closed_within(connection, 5.0)
        assert received is not None, "the connection was held"
        assert received.startswith(b"HTTP/1.1 408"), received[:200]
        assert b'"type":"request_timeout"' in received
    finally:
        connection.close()


def test_connections_are_capped(guarded: Server) -> None:
    idle = [_connect(guarded) for _ in range(6)]
    try:
        time.sleep(0.2)
        with guarded.client() as client:
            assert client.get("/health").status_code == 503
    finally:
        for connection in idle:
            connection.close()
    time.sleep(0.3)
    with guarded.client() as client:
        assert client.get("/health").status_code == 200


def test_cors_allows_the_configured_origins(guarded: Server) -> None:
    with guarded.client() as client:
        preflight = client.options(
            "/v1/pools",
            headers={
                "origin": ORIGIN,
                "access-control-request-method": "POST",
                "access-control-request-headers": "content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        simple = client.get("/v1/pools", headers={"origin": "https://other.example"})
        assert simple.headers["access-control-allow-origin"] == "https://other.example"
        foreign = client.options(
            "/v1/pools",
            headers={"origin": "https://evil.example", "access-control-request-method": "POST"},
        )
        assert "access-control-allow-origin" not in foreign.headers


@pytest.fixture(scope="module")
def big_pool(guarded: Server) -> str:
    with guarded.client() as client:
        assert client.post("/v1/pools", json={"name": "big"}).status_code == 201
        examples = make_examples(40)
        for example in examples:
            example["input"] = (example["input"] + " ") * 20  # about 1,000 characters
        upserted = client.post("/v1/pools/big/examples", json={"examples": examples})
        assert upserted.status_code == 200, upserted.text
    return "big"


def test_prompt_size_is_capped(guarded: Server, big_pool: str) -> None:
    with guarded.client() as client:
        limits = client.get("/v1/info").json()["limits"]
        assert (limits["max_prompt_chars"], limits["max_response_chars"]) == (20000, 100000)
        template = "{input}" * 500
        body = {"query": "cars", "k": 8, "template": template}
        response = client.post(f"/v1/pools/{big_pool}/select", json=body)
        assert_error(response, 422, "response_too_large")
        assert "20000" in response.json()["error"]["message"]
        fine = client.post(f"/v1/pools/{big_pool}/select", json={"query": "cars", "k": 8})
        assert fine.status_code == 200, fine.text


def test_response_size_is_capped(guarded: Server, big_pool: str) -> None:
    with guarded.client() as client:
        body = {"queries": [f"cars {i}" for i in range(20)], "k": 16, "template": "{id}"}
        response = client.post(f"/v1/pools/{big_pool}/select/batch", json=body)
        assert_error(response, 422, "response_too_large")
        assert "100000" in response.json()["error"]["message"]
        small = client.post(
            f"/v1/pools/{big_pool}/select/batch", json={**body, "queries": ["cars"], "k": 4}
        )
        assert small.status_code == 200, small.text


@pytest.mark.parametrize("field", ["mmd2", "bound", "baselines", "subsets"])
def test_a_non_finite_result_is_a_422_not_a_500(field: str) -> None:
    """The response path: a result with an infinite or NaN number (a softmax median tau on
    nearly identical points) is refused with a clear 422 instead of failing the response
    model (the 500 of issue 13 item 3)."""
    import dataclasses

    import numpy as np

    import selector
    from app.engine import _finite
    from app.errors import ApiError

    vectors = np.random.default_rng(0).normal(size=(20, 8)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    result = selector.select(selector.Pool.from_arrays(vectors), vectors[:1], 4, tau=0.2)
    _finite(result)  # a finite result passes
    broken = {
        "mmd2": {"mmd2": float("inf")},
        "bound": {"bound": float("nan")},
        "baselines": {"baselines": {"knn": float("inf")}},
        "subsets": {"subsets": [dataclasses.replace(result.subsets[0], mmd=float("nan"))]},
    }[field]
    with pytest.raises(ApiError) as refused:
        _finite(dataclasses.replace(result, **broken))
    assert (refused.value.status, refused.value.type) == (422, "invalid_input")
    assert "larger tau" in refused.value.message

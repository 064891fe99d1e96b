"""API keys over real HTTP: every ``/v1`` route in the route table refuses no key and an
unknown key (401), a read key on a write route (403), and serves the right key; the open
routes stay open; keys from a file; the keys never reach the server's log."""

from __future__ import annotations

import hmac
import os
import re
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from pydantic import SecretStr

from app.auth import ApiKeys, fingerprint
from app.config import ApiKey, ApiKeyError, Settings
from app.main import create_app
from tests.app.conftest import REPO, Server, assert_error, jsonl, make_examples

WRITE_KEY = "write-" + secrets.token_hex(16)
READ_KEY = "read-" + secrets.token_hex(16)
UNKNOWN_KEY = "unknown-" + secrets.token_hex(16)

# The routes a read key may call; every other /v1 route needs a write key.
READ_ROUTES = {
    ("GET", "/v1/info"),
    ("GET", "/v1/pools"),
    ("GET", "/v1/pools/{pool}"),
    ("GET", "/v1/pools/{pool}/examples"),
    ("GET", "/v1/pools/{pool}/examples/{example_id}"),
    ("GET", "/v1/jobs/{job_id}"),
    ("GET", "/v1/pools/{pool}/prefixes"),
    ("GET", "/v1/pools/{pool}/prefixes/{name}"),
    ("POST", "/v1/pools/{pool}/select"),
    ("POST", "/v1/pools/{pool}/select/batch"),
    ("POST", "/v1/select"),
}
OPEN_ROUTES = {"/health", "/ready", "/metrics"}
# Path parameters name nothing that exists: the right key gets a 404 or a 422, never a change.
PATH_PARAMETERS = {
    "pool": "walk-missing",
    "example_id": "walk-missing",
    "job_id": "0" * 32,
    "name": "walk-missing",
}


# Open by design: the schema, Swagger UI and ReDoc with their packaged assets, and the console
# (static files; it sends the key it is given to /v1 only).
DOCS_ROUTES = {
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/static-offline-docs",
    "/console",
}


def route_table() -> list[tuple[str, str]]:
    """(method, path template) of every API route the service serves, included routers'
    routes with their prefixes."""
    contexts = list(iter_route_contexts(create_app(Settings()).routes))

    def documented(route: object) -> bool:
        return isinstance(route, APIRoute) and route.include_in_schema

    others = {context.path for context in contexts if not documented(context.original_route)}
    assert others == DOCS_ROUTES  # nothing else is served outside the API routes
    return sorted(
        (method, str(context.path))
        for context in contexts
        if documented(context.original_route)
        for method in context.methods or ()
    )


V1_ROUTES = [(method, path) for method, path in route_table() if path.startswith("/v1/")]


def call(client: httpx.Client, method: str, path: str) -> httpx.Response:
    """``method`` on ``path`` with its parameters filled (a KeyError names a new one)."""
    names = re.findall(r"{(\w+)}", path)
    url = path.format(**{name: PATH_PARAMETERS[name] for name in names})
    body: dict[str, object] | None = {} if method in {"POST", "PUT", "PATCH"} else None
    return client.request(method, url, json=body)


def assert_challenge(response: httpx.Response, status: int, challenge: str) -> None:
    assert_error(response, status, "unauthorized" if status == 401 else "forbidden")
    assert response.headers["www-authenticate"] == challenge


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server with a write and a read key, logging at info (access log on) to a file."""
    folder = tmp_path_factory.mktemp("keyed")
    running = Server(
        folder / "data",
        log=folder / "server.log",
        log_level="info",
        api_keys=f"{WRITE_KEY}, {READ_KEY}:read",
    ).start()
    yield running
    running.stop()


def test_route_table_is_all_v1_but_the_open_routes() -> None:
    outside = {path for _, path in route_table() if not path.startswith("/v1/")}
    assert outside == OPEN_ROUTES
    assert set(V1_ROUTES) >= READ_ROUTES  # the table above names real routes
    assert len(V1_ROUTES) > len(READ_ROUTES)


@pytest.mark.parametrize(("method", "path"), V1_ROUTES, ids=[" ".join(r) for r in V1_ROUTES])
def test_every_v1_route_needs_a_key(keyed: Server, method: str, path: str) -> None:
    with keyed.client() as anonymous:
        assert_challenge(call(anonymous, method, path), 401, 'Bearer realm="mmdshot"')
    with keyed.client(UNKNOWN_KEY) as unknown:
        refused = call(unknown, method, path)
        assert_challenge(refused, 401, 'Bearer realm="mmdshot", error="invalid_token"')
    with keyed.client(READ_KEY) as reader:
        read = call(reader, method, path)
    if (method, path) in READ_ROUTES:
        assert read.status_code not in (401, 403), read.text
    else:
        challenge = 'Bearer realm="mmdshot", error="insufficient_scope", scope="write"'
        assert_challenge(read, 403, challenge)
        assert read.json()["error"]["detail"] == {"scope": "read", "required": "write"}
    with keyed.client(WRITE_KEY) as writer:
        written = call(writer, method, path)
    assert written.status_code not in (401, 403), written.text


def test_keys_in_use(keyed: Server) -> None:
    with keyed.client(WRITE_KEY) as writer, keyed.client(READ_KEY) as reader:
        assert writer.post("/v1/pools", json={"name": "keyed"}).status_code == 201
        upserted = writer.post("/v1/pools/keyed/examples", json={"examples": make_examples(8)})
        assert upserted.status_code == 200, upserted.text
        chosen = reader.post("/v1/pools/keyed/select", json={"query": "cars", "k": 2})
        assert chosen.status_code == 200 and len(chosen.json()["examples"]) == 2
        assert reader.get("/v1/pools/keyed").json()["size"] == 8
        assert_error(reader.delete("/v1/pools/keyed"), 403, "forbidden")
        assert reader.get("/v1/info").json()["auth"] == "api_key"
        # Basic or a bare token is not a bearer key.
        basic = reader.get("/v1/pools", headers={"Authorization": f"Basic {READ_KEY}"})
        assert_error(basic, 401, "unauthorized")
        bare = reader.get("/v1/pools", headers={"Authorization": READ_KEY})
        assert_error(bare, 401, "unauthorized")
        assert writer.delete("/v1/pools/keyed").status_code == 204


def test_open_routes_stay_open(keyed: Server) -> None:
    with keyed.client() as anonymous:
        assert anonymous.get("/health").status_code == 200
        assert anonymous.get("/ready").status_code == 200
        assert "mmdshot_requests_total" in anonymous.get("/metrics").text
        schema = anonymous.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"


def test_the_keys_never_reach_the_log(keyed: Server) -> None:
    for key in (WRITE_KEY, READ_KEY, UNKNOWN_KEY):
        with keyed.client(key) as client:
            client.get("/v1/pools")
            client.post("/v1/pools", json={"name": "logged"})
            client.post("/v1/pools/logged/select", json={"query": key, "k": 1})
    assert keyed.log is not None
    log = keyed.log.read_text()
    assert '"GET /v1/pools HTTP/1.1" 200' in log  # the access log is on
    assert '"GET /v1/pools HTTP/1.1" 401' in log
    assert f"{fingerprint(WRITE_KEY)} (write)" in log and f"{fingerprint(READ_KEY)} (read)" in log
    for key in (WRITE_KEY, READ_KEY, UNKNOWN_KEY):
        assert key not in log
        assert key.split("-")[1] not in log  # nor its random part


def test_keys_file_and_metrics_key(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# operators\n\n  {WRITE_KEY}:write\n{READ_KEY}:read  \n")
    running = Server(tmp_path / "data", api_keys_file=str(keys), metrics_require_key="true").start()
    try:
        with running.client() as anonymous, running.client(READ_KEY) as reader:
            assert_error(anonymous.get("/metrics"), 401, "unauthorized")
            assert reader.get("/metrics").status_code == 200
            assert anonymous.get("/health").status_code == 200
            assert anonymous.get("/ready").status_code == 200
            assert reader.get("/v1/pools").status_code == 200
            assert_error(reader.post("/v1/pools", json={"name": "f"}), 403, "forbidden")
        with running.client(WRITE_KEY) as writer:
            assert writer.post("/v1/pools", json={"name": "f"}).status_code == 201
            assert writer.get("/metrics").status_code == 200
        with running.client("# operators") as comment:
            assert_error(comment.get("/v1/pools"), 401, "unauthorized")
    finally:
        running.stop()


def test_open_service_says_so(client: httpx.Client) -> None:
    assert client.get("/v1/info").json()["auth"] == "none"
    ignored = client.get("/v1/pools", headers={"Authorization": f"Bearer {UNKNOWN_KEY}"})
    assert ignored.status_code == 200


def test_key_entries() -> None:
    settings = Settings(api_keys=SecretStr(" key-one , key-two:read,key-three:write,a:b:read"))
    scopes = [key.scope for key in settings.api_key_entries]
    assert [key.secret for key in settings.api_key_entries] == [
        "key-one",
        "key-two",
        "key-three",
        "a:b",
    ]
    assert scopes == ["write", "read", "write", "read"]
    assert "key-" not in repr(settings) + repr(settings.api_key_entries)
    assert Settings().api_key_entries == ()
    assert len(Settings(api_keys=SecretStr("same,same")).api_key_entries) == 1


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ("secret-value:admin", "MMDSHOT_API_KEYS entry 1: the scope must be read or write"),
        ("ok,secret value", "MMDSHOT_API_KEYS entry 2: a key is non-empty, without spaces"),
        (":read", "MMDSHOT_API_KEYS entry 1: a key is non-empty"),
        ("secret-value:read,secret-value", "one API key is listed with two scopes"),
    ],
)
def test_bad_key_entries(entries: str, message: str) -> None:
    with pytest.raises(ApiKeyError, match=message) as refused:
        Settings(api_keys=SecretStr(entries))
    assert "secret" not in str(refused.value)


def test_bad_keys_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# comment\ngood\nbad:owner\n")
    with pytest.raises(ApiKeyError, match="MMDSHOT_API_KEYS_FILE line 3: the scope"):
        Settings(api_keys_file=keys)
    with pytest.raises(ApiKeyError, match="MMDSHOT_API_KEYS_FILE: No such file"):
        Settings(api_keys_file=tmp_path / "absent")


def test_bad_keys_stop_the_server_with_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "MMDSHOT_API_KEYS": "hidden-secret-value:owner"}
    command = [sys.executable, "-m", "app.cli", "serve", "--data-dir", str(tmp_path)]
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "MMDSHOT_API_KEYS entry 1: the scope must be read or write" in done.stderr
    assert "hidden-secret-value" not in done.stderr + done.stdout


def test_every_key_is_compared(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = ApiKeys([ApiKey("first", "write"), ApiKey("second", "read"), ApiKey("third", "read")])
    compared: list[tuple[bytes, bytes]] = []
    compare = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return compare(a, b)

    monkeypatch.setattr("app.auth.hmac.compare_digest", counting)
    assert keys.scope_of("first") == "write"
    assert len(compared) == 3  # a match does not stop the scan
    assert all(len(a) == len(b) == 32 for a, b in compared)  # digests: equal lengths
    assert keys.scope_of("second") == "read" and keys.scope_of("fourth") is None
    assert keys.scope_of("") is None and not ApiKeys([]).enabled


def test_cli_sends_the_api_key(
    keyed: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.cli import main

    examples = tmp_path / "examples.jsonl"
    examples.write_bytes(jsonl(make_examples(6)))
    monkeypatch.delenv("MMDSHOT_API_KEY", raising=False)
    remote = ["--url", keyed.url]
    assert main(["import", "cli-pool", str(examples), *remote]) == 1
    assert "(401 unauthorized)" in capsys.readouterr().err
    assert main(["import", "cli-pool", str(examples), *remote, "--api-key", READ_KEY]) == 1
    assert "(403 forbidden)" in capsys.readouterr().err
    assert main(["import", "cli-pool", str(examples), *remote, "--api-key", WRITE_KEY]) == 0
    assert "6 inserted" in capsys.readouterr().out
    monkeypatch.setenv("MMDSHOT_API_KEY", READ_KEY)
    assert main(["select", "cli-pool", "cars", "--k", "2", *remote]) == 0
    assert capsys.readouterr().out.rstrip().endswith("Input: cars\nOutput:")

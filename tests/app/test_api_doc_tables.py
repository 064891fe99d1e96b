"""docs/api.md's tables say what the service does: its error table lists exactly the
``(status, type)`` pairs the code raises, and its limits table the limits ``/v1/info``
answers with the default settings (over HTTP, on a server started with them)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from app import errors
from tests.app.conftest import REPO, Server

DOC = (REPO / "docs" / "api.md").read_text()
ROW = re.compile(r"^\| *(?P<first>[^|]+?) *\| *(?P<second>[^|]+?) *\|", re.MULTILINE)
RAISED = re.compile(
    r"(?:ApiError|error_response)\(\s*(?P<status>\d{3}),\s*\"(?P<type>[a-z_]+)\"", re.MULTILINE
)


def section(title: str) -> str:
    start = DOC.index(f"## {title}")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : None if end < 0 else end]


def documented_errors() -> set[tuple[int, str]]:
    return {
        (int(row["first"]), row["second"].strip("`"))
        for row in ROW.finditer(section("Errors"))
        if row["first"].isdigit()
    }


def raised_errors() -> set[tuple[int, str]]:
    """Every literal ``ApiError(status, "type", ...)`` / ``error_response(...)`` in app/, and
    the HTTP exceptions' status/type map."""
    found = set(errors._STATUS_TYPES.items())
    for path in sorted((REPO / "app").rglob("*.py")):
        for match in RAISED.finditer(path.read_text()):
            found.add((int(match["status"]), match["type"]))
    return found


def test_the_error_table_lists_every_error_the_code_raises() -> None:
    raised = raised_errors()
    # 499 client_closed is only ever logged (nobody receives it), which the docs say below
    # the table; every other pair is in the table, and the table holds nothing else.
    assert (499, "client_closed") in raised and "`client_closed`" in section("Errors")
    raised.discard((499, "client_closed"))
    assert documented_errors() == raised


def test_the_error_scan_sees_the_raise_sites() -> None:
    """The scan above would pass on an empty set: it finds the forms the code uses."""
    raised = raised_errors()
    for pair in [
        (404, "not_found"),
        (422, "too_costly"),
        (503, "shutting_down"),
        (500, "internal"),
    ]:
        assert pair in raised
    assert len(documented_errors()) >= 20  # and the table parses


@pytest.fixture(scope="module")
def default_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("defaults")).start()
    yield running
    running.stop()


def test_the_limits_table_is_what_info_answers(default_server: Server) -> None:
    table = {
        row["first"].strip("`"): row["second"]
        for row in ROW.finditer(section("Limits, timeouts and exposure"))
        if row["first"].startswith("`") and row["first"] != "`limits.`"
    }
    with default_server.client() as client:
        limits = client.get("/v1/info").json()["limits"]
    assert set(table) ^ set(limits) == set()
    for name, value in limits.items():
        assert float(table[name]) == value, name


@pytest.mark.parametrize("body", [b"not json", b"\xff\xfe", b"{"], ids=["text", "utf16", "cut"])
def test_a_body_that_is_not_json_is_the_documented_validation_error(
    default_server: Server, body: bytes
) -> None:
    assert "not JSON, not UTF-8" in section("Errors")
    with default_server.client() as client:
        assert client.post("/v1/pools", json={"name": "p"}).status_code in (201, 409)
        response = client.post(
            "/v1/pools/p/select", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 422
    assert response.json()["error"]["type"] == "validation_error"

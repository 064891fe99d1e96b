"""schemathesis over the live service, every operation, every phase (examples, coverage,
fuzzing, stateful along the schema's OpenAPI links), with API keys off and on: no 5xx, every
response conforming to the schema (body, status code, content type), nothing excluded. The
run is bounded (``MAX_EXAMPLES`` per operation and phase) and its summary line is printed
into the test log."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.app.conftest import REPO, Server, make_examples

MAX_EXAMPLES = 10
SEED = 0
KEY = "schemathesis-write-key"
CHECKS = ",".join(
    (
        "not_a_server_error",
        "response_schema_conformance",
        "status_code_conformance",
        "content_type_conformance",
    )
)
SUMMARY = re.compile(r"^=+ (.* in [0-9.]+s) =+$", re.MULTILINE)
CASES = re.compile(r"^Test cases:\n\s+(.*)$", re.MULTILINE)
HAS_KEYS = importlib.util.find_spec("app.auth") is not None  # the service-trust issue's keys


def _seed(server: Server, headers: dict[str, str]) -> None:
    """A pool with examples, so generated selections and reads also meet stored data."""
    with server.client() as client:
        client.headers.update(headers)
        assert client.post("/v1/pools", json={"name": "seeded"}).status_code == 201
        upserted = client.post("/v1/pools/seeded/examples", json={"examples": make_examples(40)})
        assert upserted.status_code == 200, upserted.text


@pytest.mark.parametrize(
    "keys",
    [
        "off",
        pytest.param(
            "on",
            marks=pytest.mark.skipif(not HAS_KEYS, reason="API keys (app.auth) are not here"),
        ),
    ],
)
def test_schemathesis_finds_no_server_error_or_schema_mismatch(
    tmp_path: Path, keys: str, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = {"api_keys": KEY} if keys == "on" else {}
    headers = {"Authorization": f"Bearer {KEY}"} if keys == "on" else {}
    server = Server(tmp_path / "data", **settings).start()
    try:
        _seed(server, headers)
        command = [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json"]
        command += ["--phases", "examples,coverage,fuzzing,stateful", "--checks", CHECKS]
        command += ["--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED)]
        command += ["--no-color", "--warnings", "off", "--report-dir", str(tmp_path / "report")]
        for name, value in headers.items():
            command += ["--header", f"{name}: {value}"]
        env = {
            **os.environ,
            "SCHEMATHESIS_HOOKS": "tests.app.schemathesis_hooks",
            "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        }
        run = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
        )
    finally:
        server.stop()
    summary = SUMMARY.findall(run.stdout)
    cases = CASES.search(run.stdout)
    with capsys.disabled():
        print(
            f"\nschemathesis (keys {keys}): {cases.group(1) if cases else '?'}; "
            f"{summary[-1] if summary else 'no summary'}"
        )
    assert run.returncode == 0, run.stdout[-20_000:] + run.stderr[-5_000:]
    assert summary and summary[-1].startswith("No issues found"), run.stdout[-5_000:]
    assert cases is not None and not re.search(r"failed|errored", cases.group(1)), cases
    # Every operation ran, and the stateful phase followed the declared links.
    assert re.search(r"Tested:\s+(\d+)", run.stdout) is not None
    selected, tested = re.search(r"Selected: (\d+)/(\d+)", run.stdout).groups()  # type: ignore[union-attr]
    assert selected == tested, run.stdout[-5_000:]
    assert "API Links:" in run.stdout and " 0 covered" not in run.stdout, run.stdout[-5_000:]

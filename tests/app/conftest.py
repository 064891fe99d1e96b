"""Fixtures that run the real service: uvicorn in a subprocess on a free loopback port,
driven over HTTP with httpx."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 120.0
TOPICS = ("cars", "trains", "boats", "planes")
LABELS = ("positive", "negative", "neutral")
NDJSON = {"content-type": "application/x-ndjson"}  # what an import body is sent as


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Server:
    """One ``mmdshot serve`` process over ``data_dir`` with extra ``MMDSHOT_*`` settings; with
    a ``log`` file its stdout and stderr go there, at ``log_level``."""

    def __init__(
        self, data_dir: Path, log: Path | None = None, log_level: str = "warning", **settings: str
    ) -> None:
        self.data_dir = data_dir
        self.log = log
        self.log_level = log_level
        self.env = {**os.environ, "HF_HUB_OFFLINE": "1", "MMDSHOT_EMBEDDER": "hashing"}
        self.env.update({f"MMDSHOT_{name.upper()}": value for name, value in settings.items()})
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.preexec_fn: Callable[[], None] | None = None
        """Runs in the server process before it starts (e.g. to set a resource limit)."""

    def start(self, probe: str = "/ready") -> Server:
        """Start, and wait until ``probe`` answers 200 (``/health``: alive, model or not)."""
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = [sys.executable, "-m", "app.cli", "serve", "--port", str(port)]
        command += ["--data-dir", str(self.data_dir), "--log-level", self.log_level]
        output = None if self.log is None else self.log.open("ab")
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=self.env,
            stdout=output,
            stderr=subprocess.STDOUT if output else None,
            preexec_fn=self.preexec_fn,
        )
        if output is not None:
            output.close()  # the child holds its own copy
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the server exited during startup"
            try:
                if httpx.get(f"{self.url}{probe}", timeout=2.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError("the server did not become ready")

    def client(self, api_key: str | None = None) -> httpx.Client:
        """A client of this server; with ``api_key`` it sends it as its bearer token."""
        headers = {} if api_key is None else {"Authorization": f"Bearer {api_key}"}
        return httpx.Client(base_url=self.url, timeout=60.0, headers=headers)

    def stop(self) -> None:
        """Graceful stop (SIGTERM), as an operator would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)

    def kill(self) -> None:
        """``kill -9``: no shutdown code runs."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=30)

    def ensure_stopped(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


def make_examples(count: int, start: int = 0) -> list[dict[str, Any]]:
    """Distinct labelled examples over a few topics."""
    examples = []
    for i in range(start, start + count):
        label = LABELS[i % len(LABELS)]
        topic = TOPICS[i % len(TOPICS)]
        examples.append(
            {
                "id": f"ex-{i}",
                "input": f"review {i} of {topic}: the {topic} felt {label} word{i % 11}",
                "output": label,
                "label": label,
                "metadata": {"topic": topic, "number": i},
            }
        )
    return examples


def jsonl(examples: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(example) + "\n" for example in examples).encode()


def wait_for_job(client: httpx.Client, job_id: str, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job: dict[str, Any] = client.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.05)
    raise TimeoutError(f"job {job_id} did not finish")


def assert_error(response: httpx.Response, status: int, type_: str | None = None) -> None:
    """The response is the one JSON error body with this status."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert set(error) == {"type", "message", "detail"}
    assert error["message"]
    if type_ is not None:
        assert error["type"] == type_, error


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One shared server for the tests that do not restart it."""
    running = Server(
        tmp_path_factory.mktemp("shared"), max_body_bytes="200000", max_upsert_batch="100"
    ).start()
    yield running
    running.stop()


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as http:
        yield http


@pytest.fixture
def pool(client: httpx.Client, request: pytest.FixtureRequest) -> str:
    """A fresh pool of 60 labelled examples, named after the test."""
    name = request.node.name.replace("[", "-").replace("]", "")[:60].strip("-_.")
    assert client.post("/v1/pools", json={"name": name}).status_code == 201
    upserted = client.post(f"/v1/pools/{name}/examples", json={"examples": make_examples(60)})
    assert upserted.status_code == 200, upserted.text
    return name

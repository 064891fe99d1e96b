"""The service's refusals over real HTTP: 503 ``not_ready`` while the model is not loaded,
429 ``overloaded`` when the compute queue is full, 413 ``payload_too_large`` on imports."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.app.conftest import STARTUP_SECONDS, Server, assert_error, jsonl, make_examples


def test_not_ready_until_the_model_loads(tmp_path: Path) -> None:
    """A model that cannot load (no such folder) leaves the service alive but not ready:
    model-backed routes answer 503, routes that only read the store still answer."""
    server = Server(tmp_path / "data", embedder="minilm", model_path=str(tmp_path / "absent"))
    try:
        server.start(probe="/health")
        with server.client() as client:
            deadline = time.monotonic() + STARTUP_SECONDS
            while (ready := client.get("/ready")).json()["message"] is None:
                assert ready.status_code == 503 and time.monotonic() < deadline
                time.sleep(0.2)
            assert ready.status_code == 503 and ready.json()["model_loaded"] is False
            assert client.get("/health").status_code == 200
            assert_error(client.post("/v1/pools", json={"name": "early"}), 503, "not_ready")
            inline = {"query": "x", "k": 1, "candidates": make_examples(2)}
            assert_error(client.post("/v1/select", json=inline), 503, "not_ready")
            assert client.get("/v1/pools").json() == {"pools": []}
            assert client.get("/v1/info").json()["model"] is None
    finally:
        server.ensure_stopped()


@pytest.fixture(scope="module")
def narrow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One compute thread, no queue, imports of at most 4 KiB."""
    running = Server(
        tmp_path_factory.mktemp("narrow"),
        compute_workers="1",
        compute_queue="0",
        max_import_bytes="4096",
    ).start()
    yield running
    running.stop()


def test_full_compute_queue_answers_429(narrow: Server) -> None:
    with narrow.client() as client:
        assert client.post("/v1/pools", json={"name": "busy"}).status_code == 201
        upserted = client.post("/v1/pools/busy/examples", json={"examples": make_examples(60)})
        assert upserted.status_code == 200, upserted.text
        # Each batch holds the one compute thread for a while; eight callers at once overlap.
        body = {"queries": [f"cars {i} positive" for i in range(200)], "k": 8}

        def one(_: int) -> httpx.Response:
            return client.post("/v1/pools/busy/select/batch", json=body)

        with ThreadPoolExecutor(8) as callers:
            answers = list(callers.map(one, range(24)))
    statuses = Counter(answer.status_code for answer in answers)
    assert set(statuses) == {200, 429}, statuses
    for answer in answers:
        if answer.status_code == 429:
            assert_error(answer, 429, "overloaded")


def test_import_over_the_limit_answers_413(narrow: Server) -> None:
    with narrow.client() as client:
        assert client.post("/v1/pools", json={"name": "small"}).status_code == 201
        small = jsonl(make_examples(10))
        large = jsonl(make_examples(60))
        assert len(small) < 4096 < len(large)
        headers = {"content-type": "application/x-ndjson"}
        accepted = client.post("/v1/pools/small/imports", content=small, headers=headers)
        assert accepted.status_code == 202, accepted.text
        refused = client.post("/v1/pools/small/imports", content=large, headers=headers)
        assert_error(refused, 413, "payload_too_large")

        def streamed() -> Iterator[bytes]:  # no Content-Length: the limit holds as it arrives
            for start in range(0, len(large), 1000):
                yield large[start : start + 1000]

        chunked = client.post("/v1/pools/small/imports", content=streamed(), headers=headers)
        assert_error(chunked, 413, "payload_too_large")
        # Ordinary bodies keep their own, larger limit.
        upserted = client.post("/v1/pools/small/examples", json={"examples": make_examples(60)})
        assert upserted.status_code == 200, upserted.text

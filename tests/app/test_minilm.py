"""The service with the real bundled MiniLM embedder (slow: loads the model)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.conftest import NDJSON, Server, jsonl, make_examples, wait_for_job


@pytest.fixture
def minilm_server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path / "data", embedder="minilm")
    yield running.start()
    running.stop()


@pytest.mark.slow
def test_minilm_import_and_select(minilm_server: Server) -> None:
    with minilm_server.client() as client:
        info = client.get("/v1/info").json()
        assert info["model"] == "all-MiniLM-L6-v2" and info["dimension"] == 384
        client.post("/v1/pools", json={"name": "real"})
        job = client.post(
            "/v1/pools/real/imports", content=jsonl(make_examples(50)), headers=NDJSON
        )
        assert wait_for_job(client, job.json()["id"])["inserted"] == 50
        result = client.post(
            "/v1/pools/real/select", json={"query": "the boats felt neutral", "k": 4}
        ).json()
        assert len(result["examples"]) == 4 and result["joint"] is True
        assert result["baselines"]["knn"]["mmd2"] >= result["mmd2"] - 1e-9
        labels = [example["label"] for example in result["examples"]]
        assert labels.count("neutral") >= 2

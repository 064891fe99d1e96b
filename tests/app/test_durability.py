"""Restarts and crashes: nothing acknowledged is lost, nothing half-written is served."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.app.conftest import NDJSON, Server, jsonl, make_examples, wait_for_job


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[Server]:
    """A server of the test's own (stopped or killed by the test): small import chunks, and a
    faiss prefilter index for pools over 100 examples."""
    running = Server(tmp_path / "data", import_chunk_size="50", index_above="100")
    yield running
    running.ensure_stopped()


def test_restart_keeps_pool_version_and_answer(fresh_server: Server) -> None:
    query = {"query": "trains negative", "k": 5, "num_subsets": 2}
    with fresh_server.start().client() as client:
        client.post("/v1/pools", json={"name": "kept"})
        job = client.post(
            "/v1/pools/kept/imports", content=jsonl(make_examples(200)), headers=NDJSON
        )
        assert wait_for_job(client, job.json()["id"])["status"] == "succeeded"
        client.delete("/v1/pools/kept/examples/ex-7")
        # The index is built in the background; selections are exact until it is ready.
        deadline = time.monotonic() + 60
        before = client.post("/v1/pools/kept/select", json=query).json()
        while not before["prefiltered"] and time.monotonic() < deadline:
            time.sleep(0.2)
            before = client.post("/v1/pools/kept/select", json=query).json()
        pool_before = client.get("/v1/pools/kept").json()
    fresh_server.stop()
    with fresh_server.start().client() as client:
        pool_after = client.get("/v1/pools/kept").json()
        after = client.post("/v1/pools/kept/select", json=query).json()
        assert client.get(f"/v1/jobs/{job.json()['id']}").json()["status"] == "succeeded"
    assert pool_after == pool_before and pool_after["size"] == 199
    assert before["prefiltered"] and after["prefiltered"]
    index_files = list((fresh_server.data_dir / "indexes" / "kept").iterdir())
    assert len(index_files) == 1
    assert index_files[0].name.startswith(f"v{pool_before['version']}-")
    assert index_files[0].suffix == ".faiss"
    assert after["pool_version"] == before["pool_version"] == pool_before["version"]
    for field in ("examples", "prompt", "mmd2", "subsets", "baselines"):
        assert after[field] == before[field], field


def test_kill_during_import_keeps_exactly_the_acknowledged(fresh_server: Server) -> None:
    total = 30_000
    with fresh_server.start().client() as client:
        client.post("/v1/pools", json={"name": "crash"})
        job_id = client.post(
            "/v1/pools/crash/imports", content=jsonl(make_examples(total)), headers=NDJSON
        ).json()["id"]
        deadline = time.monotonic() + 60
        acknowledged = 0
        while acknowledged == 0 and time.monotonic() < deadline:
            acknowledged = client.get(f"/v1/jobs/{job_id}").json()["done"]
        fresh_server.kill()
    assert 0 < acknowledged < total, "the import finished before the kill; make it bigger"
    with fresh_server.start().client() as client:
        job = client.get(f"/v1/jobs/{job_id}").json()
        pool = client.get("/v1/pools/crash").json()
        assert job["status"] == "failed" and job["message"]
        assert acknowledged <= job["done"] < total
        assert pool["size"] == job["inserted"] == job["done"]
        ids = []
        cursor = None
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/pools/crash/examples", params=params).json()
            ids += [example["id"] for example in page["examples"]]
            if (cursor := page["next_cursor"]) is None:
                break
        assert ids == [f"ex-{i}" for i in range(job["done"])]  # a prefix: whole chunks only
        result = client.post("/v1/pools/crash/select", json={"query": "cars", "k": 3})
        assert result.status_code == 200 and result.json()["pool_version"] == pool["version"]
        # The pool takes the rest of the import afterwards.
        rest = client.post(
            "/v1/pools/crash/imports", content=jsonl(make_examples(total)[:2000]), headers=NDJSON
        )
        resumed = wait_for_job(client, rest.json()["id"])
        assert resumed["inserted"] + resumed["duplicates"] == 2000

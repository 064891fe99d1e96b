"""Restarts and crashes: nothing acknowledged is lost, nothing half-written is served."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
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


def all_ids(client: httpx.Client, pool: str) -> list[str]:
    """Every example id of the pool, in insertion order, page by page."""
    ids: list[str] = []
    cursor = None
    while True:
        params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
        page = client.get(f"/v1/pools/{pool}/examples", params=params).json()
        ids += [example["id"] for example in page["examples"]]
        if (cursor := page["next_cursor"]) is None:
            return ids


def import_with_bad_lines(total: int) -> tuple[bytes, list[int]]:
    """``total`` valid lines with a bad one after every 1,000th; and the bad lines' numbers."""
    lines, bad = [], []
    for number, example in enumerate(make_examples(total)):
        lines.append(jsonl([example]))
        if number % 1000 == 999:
            lines.append(b'{"input": ""}\n')
            bad.append(len(lines))
    return b"".join(lines), bad


def wait_for_progress(client: httpx.Client, job_id: str, timeout: float = 60.0) -> int:
    """Polls until the job has committed something; returns its ``done``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = int(client.get(f"/v1/jobs/{job_id}").json()["done"])
        if done > 0:
            return done
        time.sleep(0.02)
    raise TimeoutError(f"job {job_id} made no progress")


def test_kill_during_import_resumes_it_after_the_restart(fresh_server: Server) -> None:
    total = 6_000
    body, bad_lines = import_with_bad_lines(total)
    with fresh_server.start().client() as client:
        client.post("/v1/pools", json={"name": "crash"})
        job_id = client.post("/v1/pools/crash/imports", content=body, headers=NDJSON).json()["id"]
        acknowledged = wait_for_progress(client, job_id)
        fresh_server.kill()
    assert 0 < acknowledged < total, "the import finished before the kill; make it bigger"
    assert list((fresh_server.data_dir / "spool").iterdir()) == [
        fresh_server.data_dir / "spool" / job_id
    ]
    with fresh_server.start().client() as client:
        assert client.get(f"/v1/jobs/{job_id}").json()["done"] >= acknowledged
        job = wait_for_job(client, job_id, timeout=180)
        assert job["status"] == "succeeded", job
        # Every valid line once: a chunk applied twice would count as duplicates.
        assert (job["total"], job["done"]) == (total + len(bad_lines),) * 2
        assert (job["inserted"], job["updated"], job["duplicates"]) == (total, 0, 0)
        assert [error["line"] for error in job["errors"]] == bad_lines
        assert all_ids(client, "crash") == [f"ex-{i}" for i in range(total)]
        result = client.post("/v1/pools/crash/select", json={"query": "cars", "k": 3})
        assert result.status_code == 200
    assert list((fresh_server.data_dir / "spool").iterdir()) == [], "the body is gone once done"

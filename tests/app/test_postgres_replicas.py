"""Two ``mmdshot serve`` processes on one PostgreSQL database, as two replicas behind a
Service: each sees what the other wrote, and concurrent writers keep every example once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.app.conftest import NDJSON, Server, jsonl, make_examples, wait_for_job
from tests.app.test_durability import all_ids, wait_for_progress
from tests.app.test_store import scratch_database


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    """Two servers with data directories of their own on one fresh database."""
    with scratch_database() as url:
        servers = (
            Server(tmp_path / "a", database_url=url, import_chunk_size="100", index_above="150"),
            Server(tmp_path / "b", database_url=url, import_chunk_size="100", index_above="150"),
        )
        try:
            for server in servers:
                server.start()
            yield servers
        finally:
            for server in servers:
                server.ensure_stopped()


def nearest(client: httpx.Client, pool: str, text: str) -> dict[str, Any]:
    """The one nearest example to ``text`` (the hashing embedder puts a text on itself)."""
    response = client.post(
        f"/v1/pools/{pool}/select",
        json={"query": text, "k": 1, "method": "knn", "compare_baselines": False},
    )
    assert response.status_code == 200, response.text
    selection: dict[str, Any] = response.json()
    return selection


def test_a_replica_serves_what_another_wrote(replicas: tuple[Server, Server]) -> None:
    first, second = replicas
    with first.client() as a, second.client() as b:
        assert a.post("/v1/pools", json={"name": "shared"}).status_code == 201
        job = a.post("/v1/pools/shared/imports", content=jsonl(make_examples(200)), headers=NDJSON)
        assert wait_for_job(b, job.json()["id"])["status"] == "succeeded"  # jobs are shared
        version = a.get("/v1/pools/shared").json()["version"]
        seen = nearest(b, "shared", make_examples(200)[42]["input"])
        # The second replica builds its own index in the background; exact until then.
        deadline = time.monotonic() + 60
        while not seen["prefiltered"] and time.monotonic() < deadline:
            time.sleep(0.2)
            seen = nearest(b, "shared", make_examples(200)[42]["input"])
        assert seen["pool_version"] == version and seen["prefiltered"]
        assert seen["examples"][0]["id"] == "ex-42"

        # A new version written through the first is served by the second without a restart.
        added = make_examples(1, start=500)
        assert a.post("/v1/pools/shared/examples", json={"examples": added}).status_code == 200
        seen = nearest(b, "shared", added[0]["input"])
        assert seen["pool_version"] == version + 1 and seen["examples"][0]["id"] == "ex-500"
        assert b.get("/v1/pools/shared").json()["size"] == 201

        # Deleted and re-created under the same name, back at the same version number: the
        # second must not serve its cached pool (or index) of the old contents.
        assert a.delete("/v1/pools/shared").status_code == 204
        assert b.get("/v1/pools/shared").status_code == 404
        a.post("/v1/pools", json={"name": "shared"})
        renewed = make_examples(200, start=1000)
        job = a.post("/v1/pools/shared/imports", content=jsonl(renewed), headers=NDJSON)
        assert wait_for_job(a, job.json()["id"])["status"] == "succeeded"
        a.post("/v1/pools/shared/examples", json={"examples": make_examples(1, start=2000)})
        assert a.get("/v1/pools/shared").json()["version"] == version + 1
        seen = nearest(b, "shared", renewed[7]["input"])
        assert seen["pool_version"] == version + 1 and seen["examples"][0]["id"] == "ex-1007"


def test_a_calibration_through_one_replica_is_used_by_the_other(
    replicas: tuple[Server, Server],
) -> None:
    first, second = replicas
    with first.client() as a, second.client() as b:
        assert a.post("/v1/pools", json={"name": "tuned"}).status_code == 201
        a.post("/v1/pools/tuned/examples", json={"examples": make_examples(60)})
        query = {"query": "boats neutral", "k": 2}
        before = b.post("/v1/pools/tuned/select", json=query).json()  # cached on the second
        assert before["tau_source"] == "default"
        started = a.post(
            "/v1/pools/tuned/calibrate", json={"k": 2, "taus": [0.5], "validation_size": 10}
        )
        job = wait_for_job(b, started.json()["id"])  # jobs are shared
        assert job["status"] == "succeeded" and job["calibration"]["tau"] == 0.5
        after = b.post("/v1/pools/tuned/select", json=query).json()
        assert (after["tau"], after["tau_source"]) == (0.5, "calibrated")
        assert after["pool_version"] == before["pool_version"]
        assert b.get("/v1/pools/tuned").json()["calibration"]["stale"] is False


def test_concurrent_imports_through_both_keep_every_example_once(
    replicas: tuple[Server, Server],
) -> None:
    examples = make_examples(3000)
    halves = (examples[:2000], examples[1000:])  # 1,000 examples go through both
    jobs: list[dict[str, Any]] = []
    with replicas[0].client() as a:
        assert a.post("/v1/pools", json={"name": "both"}).status_code == 201

    def run_import(server: Server, part: list[dict[str, Any]]) -> None:
        with server.client() as client:
            started = client.post("/v1/pools/both/imports", content=jsonl(part), headers=NDJSON)
            jobs.append(wait_for_job(client, started.json()["id"], timeout=120))

    threads = [
        threading.Thread(target=run_import, args=(server, part))
        for server, part in zip(replicas, halves, strict=True)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [job["status"] for job in jobs] == ["succeeded", "succeeded"]
    assert sum(job["inserted"] for job in jobs) == 3000
    assert sum(job["duplicates"] for job in jobs) == 1000
    with replicas[1].client() as b:
        assert b.get("/v1/pools/both").json()["size"] == 3000
        ids: list[str] = []
        cursor = None
        while True:
            params = {"limit": 1000, **({"cursor": cursor} if cursor else {})}
            page = b.get("/v1/pools/both/examples", params=params).json()
            ids += [example["id"] for example in page["examples"]]
            if (cursor := page["next_cursor"]) is None:
                break
    assert sorted(ids) == sorted(example["id"] for example in examples)


def test_sigterm_hands_a_running_import_to_the_other_replica(
    replicas: tuple[Server, Server],
) -> None:
    """The replica that took the import (the one it was sent to: its worker is woken at
    once, the other's polls) is stopped mid-import; the other resumes it from its last
    committed chunk."""
    first, second = replicas
    total = 6000
    with first.client() as a:
        assert a.post("/v1/pools", json={"name": "handed"}).status_code == 201
        job_id = a.post(
            "/v1/pools/handed/imports", content=jsonl(make_examples(total)), headers=NDJSON
        )
        job_id = job_id.json()["id"]
        wait_for_progress(a, job_id)
    first.stop()
    with second.client() as b:
        stopped_at = b.get(f"/v1/jobs/{job_id}").json()
        assert stopped_at["done"] < total, "the import finished before the stop; make it bigger"
        job = wait_for_job(b, job_id, timeout=180)
        assert (job["status"], job["done"], job["inserted"]) == ("succeeded", total, total)
        assert job["duplicates"] == 0
        assert all_ids(b, "handed") == [f"ex-{i}" for i in range(total)]


def test_a_killed_replicas_import_is_taken_up_by_the_other(
    replicas: tuple[Server, Server],
) -> None:
    first, second = replicas
    total = 4000
    with first.client() as a:
        assert a.post("/v1/pools", json={"name": "orphan"}).status_code == 201
        job_id = a.post(
            "/v1/pools/orphan/imports", content=jsonl(make_examples(total)), headers=NDJSON
        )
        job_id = job_id.json()["id"]
        wait_for_progress(a, job_id)
    first.kill()  # its session ends, so its claim is known to be dead
    with second.client() as b:
        job = wait_for_job(b, job_id, timeout=180)
        assert (job["status"], job["inserted"], job["duplicates"]) == ("succeeded", total, 0)
        assert sorted(all_ids(b, "orphan")) == sorted(f"ex-{i}" for i in range(total))

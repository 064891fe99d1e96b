"""Incremental pool refreshes: after writes, the engine brings its cached snapshot up to date
from what changed (not a whole new read), and what it selects from equals a fresh load."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.config import Settings
from app.engine import Engine
from app.schemas import ExampleIn
from tests.app.conftest import NDJSON, Server, jsonl, make_examples, wait_for_job
from tests.app.test_store import assert_same_rows

QUERIES = [
    {"query": "the cars felt positive", "k": 4},
    {"query": "boats neutral", "k": 6, "method": "knn"},
    {"queries": ["planes", "the trains felt negative"], "k": 5, "num_subsets": 3},
]


def mixed_writes(rng: random.Random, ids: list[str], step: int) -> list[tuple[str, Any]]:
    """A few writes: new examples, replaced ones (new text under a stored id), deletes, and
    deleted ids coming back."""
    if ids and step % 4 == 3:
        return [("delete", victim) for victim in rng.sample(ids, min(2, len(ids)))]
    batch = make_examples(rng.randint(1, 3), start=1_000 + 10 * step)
    if ids:
        replaced = make_examples(1, start=5_000 + step)[0]
        batch.append({**replaced, "id": rng.choice(ids)})
    if step % 5 == 4:
        batch.append({**make_examples(1, start=7_000 + step)[0], "id": "ex-0"})  # may be back
    return [("upsert", batch)]


def test_a_refreshed_snapshot_equals_a_fresh_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = Engine(Settings(data_dir=tmp_path, embedder="hashing", hashing_dimension=64))
    try:
        engine.load_models()
        engine.create_pool("p", "")
        engine.upsert("p", [ExampleIn(**example) for example in make_examples(40)])
        engine.snapshot("p")
        full_reads: list[str] = []
        read_pool = engine.store.read_pool
        monkeypatch.setattr(
            engine.store, "read_pool", lambda name: full_reads.append(name) or read_pool(name)
        )
        rng = random.Random(3)
        for step in range(16):
            for kind, argument in mixed_writes(rng, engine.snapshot("p").rows.ids, step):
                if kind == "delete":
                    engine.store.delete_example("p", argument)
                else:
                    engine.upsert("p", [ExampleIn(**example) for example in argument])
            refreshed = engine.snapshot("p")
            fresh = read_pool("p")
            assert_same_rows(refreshed.rows, fresh)
            assert refreshed.position == {example_id: i for i, example_id in enumerate(fresh.ids)}
            np.testing.assert_array_equal(refreshed.pool.host_vectors, fresh.vectors)
        assert full_reads == [], "every refresh read only what changed"
    finally:
        engine.close()


def test_selections_after_writes_equal_those_of_a_restarted_server(tmp_path: Path) -> None:
    server = Server(tmp_path).start()
    try:
        with server.client() as client:
            assert client.post("/v1/pools", json={"name": "p"}).status_code == 201
            first = {"examples": make_examples(60)}
            assert client.post("/v1/pools/p/examples", json=first).status_code == 200
            rng = random.Random(5)
            for step in range(12):
                ids = [
                    example["id"]
                    for example in client.get("/v1/pools/p/examples").json()["examples"]
                ]
                for kind, argument in mixed_writes(rng, ids, step):
                    if kind == "delete":
                        response = client.delete(f"/v1/pools/p/examples/{argument}")
                        assert response.status_code == 204, response.text
                    else:
                        response = client.post("/v1/pools/p/examples", json={"examples": argument})
                        assert response.status_code == 200, response.text
                # Each selection refreshes the snapshot from the writes before it.
                assert client.post("/v1/pools/p/select", json=QUERIES[step % 3]).status_code == 200
            served = [selection(client, body) for body in QUERIES]
    finally:
        server.stop()
    restarted = Server(tmp_path).start()
    try:
        with restarted.client() as client:
            assert [selection(client, body) for body in QUERIES] == served
    finally:
        restarted.stop()


def selection(client: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/pools/p/select", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    answer.pop("timings")
    return answer


def test_a_write_refreshes_the_snapshot_so_the_next_selection_loads_nothing(
    tmp_path: Path,
) -> None:
    """An upsert, a delete and an import bring the loaded pool's snapshot to their version
    themselves (in the write): the selection after each answers from that version with
    ``load_ms`` 0, where it used to reload the pool on its own clock."""
    server = Server(tmp_path).start()
    try:
        with server.client() as client:
            assert client.post("/v1/pools", json={"name": "p"}).status_code == 201
            upserted = client.post("/v1/pools/p/examples", json={"examples": make_examples(300)})
            assert upserted.status_code == 200
            loading = client.post("/v1/pools/p/select", json=QUERIES[0]).json()
            assert loading["timings"]["load_ms"] > 0  # the first selection loads the pool

            def select_after(version: int) -> None:
                answer = client.post("/v1/pools/p/select", json=QUERIES[0]).json()
                assert answer["pool_version"] == version
                assert answer["timings"]["load_ms"] == 0, answer["timings"]

            write = {"examples": make_examples(4, start=500)}
            select_after(client.post("/v1/pools/p/examples", json=write).json()["version"])
            assert client.delete("/v1/pools/p/examples/ex-3").status_code == 204
            select_after(client.get("/v1/pools/p").json()["version"])
            body = jsonl(make_examples(20, start=900))
            job = client.post("/v1/pools/p/imports", content=body, headers=NDJSON).json()
            assert wait_for_job(client, job["id"])["status"] == "succeeded"
            select_after(client.get("/v1/pools/p").json()["version"])
            # An upsert that changes nothing (a content duplicate) bumps no version.
            same = client.post("/v1/pools/p/examples", json=write).json()
            select_after(same["version"])
    finally:
        server.stop()

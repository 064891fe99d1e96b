"""The store on both backends: SQLite in a temporary folder, and PostgreSQL in a fresh database
on the server at ``MMDSHOT_TEST_DATABASE_URL`` (``scripts/postgres.sh start`` prints one; the
PostgreSQL cases are skipped when it is unset)."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from app.errors import ApiError
from app.store import PreparedExample, SQLiteStore, Store
from app.store_postgres import PostgresStore

DIMENSION = 8
TEST_DATABASE_URL = os.environ.get("MMDSHOT_TEST_DATABASE_URL")
NO_POSTGRES = (
    "no PostgreSQL to test against: set MMDSHOT_TEST_DATABASE_URL "
    "(`scripts/postgres.sh start` starts one on loopback and prints it)"
)

StoreFactory = Callable[[], Store]


@contextmanager
def scratch_database() -> Iterator[str]:
    """A new, empty database on the test server, dropped afterwards; yields its conninfo."""
    if TEST_DATABASE_URL is None:
        pytest.skip(NO_POSTGRES)
    name = f"mmdshot_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_conninfo(TEST_DATABASE_URL, dbname=name)
    finally:
        with psycopg.connect(TEST_DATABASE_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """Opens stores on one database of the backend, as separate processes (replicas) would;
    all are closed after the test."""
    opened: list[Store] = []

    def opener(make: Callable[[], Store]) -> StoreFactory:
        def open_one() -> Store:
            opened.append(make())
            return opened[-1]

        return open_one

    try:
        if request.param == "sqlite":
            yield opener(lambda: SQLiteStore(tmp_path))
        else:
            with scratch_database() as url:
                yield opener(lambda: PostgresStore(url, connections=4))
                for store in opened:
                    store.close()  # before the database is dropped
                opened.clear()
    finally:
        for store in opened:
            store.close()


@pytest.fixture
def store(open_store: StoreFactory) -> Store:
    return open_store()


def example(number: int, example_id: str | None = None, text: str | None = None) -> PreparedExample:
    """A distinct labelled example with a unit vector determined by ``number``."""
    vector = np.random.default_rng(number).standard_normal(DIMENSION).astype(np.float32)
    text = f"example {number}" if text is None else text
    return PreparedExample(
        id=example_id or f"ex-{number}",
        input=text,
        output=f"out {number % 3}",
        label=f"label-{number % 3}",
        metadata={"number": number, "text": text},
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
        token_count=number % 17 + 1,
        vector=vector / np.linalg.norm(vector),
    )


def api_error(status: int) -> pytest.RaisesExc[ApiError]:
    return pytest.raises(ApiError, check=lambda error: error.status == status)


def test_pool_lifecycle(store: Store) -> None:
    created = store.create_pool("tweets", "about cars", "hashing-8", DIMENSION)
    assert created["version"] == 1 and created["size"] == 0 and not created["labelled"]
    assert created["created_at"] == created["updated_at"] > 0
    with api_error(409):
        store.create_pool("tweets", "again", "hashing-8", DIMENSION)
    store.create_pool("boats", "", "hashing-8", DIMENSION)
    assert [pool["name"] for pool in store.list_pools()] == ["boats", "tweets"]
    assert store.get_pool("tweets") == created
    store.upsert("tweets", [example(1), example(2)])
    assert store.pool_sizes() == {"boats": 0, "tweets": 2}
    store.delete_pool("tweets")
    for missing in (store.get_pool, store.delete_pool, store.pool_version, store.read_pool):
        with api_error(404):
            missing("tweets")
    assert store.pool_sizes() == {"boats": 0}


def test_upsert_inserts_updates_and_reports_duplicates(store: Store) -> None:
    store.create_pool("p", "", "m", DIMENSION)
    first = store.upsert("p", [example(1), example(2), example(3, text="example 1")])
    assert first.inserted == ["ex-1", "ex-2"] and first.updated == []
    assert first.duplicates == [(2, "ex-1")] and first.version == 2
    again = store.upsert("p", [example(2), example(1)], positions=[7, 9])
    assert again.duplicates == [(7, "ex-2"), (9, "ex-1")] and not again.inserted
    assert again.version == 2, "a change of nothing keeps the version"
    replaced = store.upsert("p", [example(4, example_id="ex-1")])
    assert replaced.updated == ["ex-1"] and replaced.version == 3
    stored = store.get_example("p", "ex-1")
    assert stored == {
        "id": "ex-1",
        "input": "example 4",
        "output": "out 1",
        "label": "label-1",
        "metadata": {"number": 4, "text": "example 4"},
        "token_count": 5,
    }
    pool = store.get_pool("p")
    assert pool["size"] == 2 and pool["labelled"] and pool["version"] == 3


def test_a_failed_upsert_leaves_no_trace(store: Store) -> None:
    store.create_pool("p", "", "m", DIMENSION)
    wrong = PreparedExample(**{**example(2).__dict__, "vector": np.ones(DIMENSION + 1)})
    with api_error(409):
        store.upsert("p", [example(1), wrong])
    assert store.get_pool("p")["size"] == 0 and store.pool_version("p") == 1
    with api_error(404):
        store.upsert("nowhere", [example(1)])


def test_read_pool_returns_exact_vectors_in_insertion_order(store: Store) -> None:
    store.create_pool("p", "", "m", DIMENSION)
    examples = [example(number) for number in (5, 3, 9, 1)]
    store.upsert("p", examples[:2])
    store.upsert("p", examples[2:])
    unlabelled = PreparedExample(**{**example(11).__dict__, "label": None})
    store.upsert("p", [unlabelled])
    rows = store.read_pool("p")
    assert rows.ids == ["ex-5", "ex-3", "ex-9", "ex-1", "ex-11"]
    assert rows.vectors.dtype == np.float32 and rows.vectors.shape == (5, DIMENSION)
    expected = np.stack([item.vector for item in [*examples, unlabelled]])
    np.testing.assert_array_equal(rows.vectors, expected)
    assert rows.labels[-1] is None and rows.labels[0] == "label-2"
    assert rows.metadata[2] == {"number": 9, "text": "example 9"}
    assert rows.token_counts == [item.token_count for item in [*examples, unlabelled]]
    assert rows.stamp == store.pool_stamp("p") and rows.version == 4 and rows.model == "m"
    assert not store.get_pool("p")["labelled"]


def test_examples_page_and_delete(store: Store) -> None:
    store.create_pool("p", "", "m", DIMENSION)
    store.upsert("p", [example(number) for number in range(7)])
    ids, after = [], 0
    while True:
        page, following = store.list_examples("p", after, 3)
        ids += [row["id"] for row in page]
        if following is None:
            break
        after = following
    assert ids == [f"ex-{number}" for number in range(7)]
    assert store.delete_example("p", "ex-3") == 3
    with api_error(404):
        store.delete_example("p", "ex-3")
    with api_error(404):
        store.get_example("p", "ex-3")
    assert store.read_pool("p").ids == [f"ex-{n}" for n in (0, 1, 2, 4, 5, 6)]


def test_pool_stamp_tells_a_recreated_pool_apart(store: Store) -> None:
    store.create_pool("p", "", "m", DIMENSION)
    before = store.pool_stamp("p")
    store.delete_pool("p")
    store.create_pool("p", "", "m", DIMENSION)
    after = store.pool_stamp("p")
    assert before[1] == after[1] == 1 and before != after


def test_job_counters_commit_with_their_chunk(store: Store) -> None:
    store.create_pool("p", "", "m", DIMENSION)
    errors = [{"line": 4, "message": "input: missing"}]
    job_id = store.create_job("p", total=4, done=1, errors=errors)
    job = store.get_job(job_id)
    assert job["status"] == "queued" and job["done"] == 1 and job["errors"] == errors
    assert "owner" not in job
    store.set_job_status(job_id, "running")
    store.upsert("p", [example(1), example(2), example(1, "ex-9")], [1, 2, 3], job_id=job_id)
    job = store.get_job(job_id)
    assert (job["status"], job["done"], job["inserted"], job["duplicates"]) == ("running", 4, 2, 1)
    with api_error(404):
        store.get_job("unknown")
    with api_error(404):
        store.create_job("nowhere", 1, 0, [])


def test_a_calibration_is_kept_with_its_pool(store: Store) -> None:
    store.create_pool("p", "", "m", DIMENSION)
    store.upsert("p", [example(1), example(2)])
    created_at = store.pool_stamp("p")[0]
    calibration = {"tau": 0.1, "kernel": "softmax", "scores": [{"tau": 0.1, "score": 0.5}]}
    calibration["pool_version"] = 2
    job_id = store.create_job("p", 2, 0, [], kind="calibration")
    job = store.get_job(job_id)
    assert (job["kind"], job["status"], job["calibration"]) == ("calibration", "queued", None)
    assert store.get_pool("p")["calibration"] is None
    store.save_calibration("p", created_at, calibration, job_id)
    job = store.get_job(job_id)
    assert (job["status"], job["done"], job["calibration"]) == ("succeeded", 2, calibration)
    assert store.get_pool("p")["calibration"] == {**calibration, "stale": False}
    assert store.pool_state("p") == ((created_at, 2), calibration)
    assert store.get_pool("p")["version"] == 2, "a calibration is no change of the examples"
    store.upsert("p", [example(3)])
    assert store.get_pool("p")["calibration"] == {**calibration, "stale": True}
    assert [pool["calibration"]["stale"] for pool in store.list_pools()] == [True]

    # A calibration of an older version that finishes late leaves the newer one in place.
    newer = {**calibration, "tau": 0.5, "pool_version": 3}
    store.save_calibration("p", created_at, newer, store.create_job("p", 2, 0, [], "calibration"))
    late = store.create_job("p", 2, 0, [], kind="calibration")
    store.save_calibration("p", created_at, calibration, late)
    assert store.get_pool("p")["calibration"] == {**newer, "stale": False}
    assert store.get_job(late)["calibration"] == calibration

    # Deleted and re-created: the old pool's calibration is not the new pool's.
    store.delete_pool("p")
    store.create_pool("p", "", "m", DIMENSION)
    with api_error(404):
        store.save_calibration("p", created_at, calibration, late)
    assert store.get_pool("p")["calibration"] is None
    assert store.get_job(store.create_job("p", 1, 0, []))["kind"] == "import"


def test_only_jobs_of_stores_that_are_gone_are_failed(open_store: StoreFactory) -> None:
    first = open_store()
    first.create_pool("p", "", "m", DIMENSION)
    running = first.create_job("p", 10, 0, [])
    first.set_job_status(running, "running")
    finished = first.create_job("p", 1, 0, [])
    first.set_job_status(finished, "succeeded")
    second = open_store()
    # A replica starting beside a live one leaves its jobs alone; SQLite has one process per
    # data directory, so there a second store takes over.
    assert second.fail_unfinished_jobs("gone") == (0 if second.shared else 1)
    first.close()
    if second.shared:
        assert second.fail_unfinished_jobs("gone") == 1
    job = second.get_job(running)
    assert job["status"] == "failed" and job["message"] == "gone"
    assert second.get_job(finished)["status"] == "succeeded"


def test_concurrent_writers_keep_every_example_exactly_once(open_store: StoreFactory) -> None:
    """Two stores (as two replicas) upsert overlapping chunks from several threads at once."""
    stores = [open_store(), open_store()]
    stores[0].create_pool("p", "", "m", DIMENSION)
    numbers = list(range(300))
    chunks = [numbers[start : start + 40] for start in range(0, 300, 20)]  # each one twice
    outcomes = []
    failures: list[BaseException] = []

    def write(worker: int) -> None:
        order = random.Random(worker).sample(chunks, len(chunks))
        try:
            for chunk in order:
                outcomes.append(stores[worker % 2].upsert("p", [example(n) for n in chunk]))
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    rows = stores[1].read_pool("p")
    assert sorted(rows.ids) == sorted(f"ex-{n}" for n in numbers)
    assert sum(len(outcome.inserted) for outcome in outcomes) == 300
    assert not any(outcome.updated for outcome in outcomes)
    changes = sum(1 for outcome in outcomes if outcome.inserted)
    assert rows.version == 1 + changes
    assert sorted(outcome.version for outcome in outcomes if outcome.inserted) == list(
        range(2, 2 + changes)
    ), "every change has a version of its own"


def test_a_store_sees_changes_made_through_another(open_store: StoreFactory) -> None:
    writer, reader = open_store(), open_store()
    writer.create_pool("p", "", "m", DIMENSION)
    assert reader.read_pool("p").ids == []
    writer.upsert("p", [example(1)])
    assert reader.pool_version("p") == 2 and reader.read_pool("p").ids == ["ex-1"]


def test_a_legacy_sqlite_store_is_migrated(tmp_path: Path) -> None:
    """A data directory from before job owners (no ``schema_version``) opens, and its
    unfinished jobs are failed as before."""
    legacy = sqlite3.connect(tmp_path / "mmdshot.sqlite3")
    legacy.executescript(
        "CREATE TABLE jobs (id TEXT PRIMARY KEY, pool TEXT NOT NULL, status TEXT NOT NULL, "
        "total INTEGER NOT NULL, done INTEGER NOT NULL, inserted INTEGER NOT NULL, "
        "updated INTEGER NOT NULL, duplicates INTEGER NOT NULL, errors TEXT NOT NULL, "
        "message TEXT, created_at REAL NOT NULL, updated_at REAL NOT NULL);"
        "INSERT INTO jobs VALUES ('old', 'p', 'running', 5, 2, 2, 0, 0, '[]', NULL, 1, 1);"
    )
    legacy.commit()
    legacy.close()
    store = SQLiteStore(tmp_path)
    try:
        assert store.fail_unfinished_jobs("interrupted") == 1
        assert store.get_job("old")["status"] == "failed"
        assert store.get_job("old")["kind"] == "import"
        store.create_pool("p", "", "m", DIMENSION)
    finally:
        store.close()
    SQLiteStore(tmp_path).close()  # reopening applies nothing twice

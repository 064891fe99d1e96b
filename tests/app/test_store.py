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

from app import store as store_module
from app.errors import ApiError
from app.store import (
    BODY_PART_BYTES,
    ClaimLost,
    JobStep,
    PoolRows,
    PreparedExample,
    SQLiteStore,
    Store,
    apply_changes,
)
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


def spooled(store: Store, body: bytes) -> Path:
    """A body written to the store's spool folder, as the import route leaves it."""
    store.spool_dir.mkdir(parents=True, exist_ok=True)
    path = store.spool_dir / f"incoming-{uuid.uuid4().hex}"
    path.write_bytes(body)
    return path


def read_body(store: Store, job_id: str) -> bytes:
    with store.open_job_body(job_id) as body:
        return body.read()


def test_job_progress_commits_with_its_chunk(open_store: StoreFactory) -> None:
    first, second = open_store(), open_store()
    first.create_pool("p", "", "m", DIMENSION)
    # Over two parts of a PostgreSQL body, and not the same bytes everywhere.
    body = bytes(random.Random(0).randbytes(BODY_PART_BYTES + 12345))
    job_id = first.create_import_job("p", spooled(first, body))
    assert list(first.spool_dir.glob("incoming-*")) == []
    job = second.get_job(job_id)
    assert (job["status"], job["total"], job["done"], job["errors"]) == ("queued", 0, 0, [])
    assert "owner" not in job and "claimed_by" not in job
    assert read_body(second, job_id) == body  # any replica reads it
    claimed = first.claim_job()
    assert claimed is not None and claimed["id"] == job_id and claimed["status"] == "running"
    assert first.claim_job() is None
    first.set_job_total(job_id, 4)
    errors = [{"line": 4, "message": "input: missing"}]
    step = JobStep(job_id, first.owner, records=4, errors=errors)
    version = first.pool_version("p")
    first.stage_import("p", [example(1), example(2), example(1, "ex-9")], [1, 2, 3], step)
    job = second.get_job(job_id)
    assert (job["status"], job["done"], job["inserted"], job["duplicates"]) == ("running", 4, 0, 0)
    assert job["errors"] == errors
    # Staged, not yet in the pool: its readers see it as before the import.
    assert second.get_pool("p")["size"] == 0 and second.pool_version("p") == version
    # Another store's step on it commits nothing, the examples included.
    with pytest.raises(ClaimLost):
        second.stage_import("p", [example(5)], [5], JobStep(job_id, second.owner, 1))
    with pytest.raises(ClaimLost):
        second.apply_import("p", job_id)
    assert second.get_pool("p")["size"] == 0 and second.get_job(job_id)["done"] == 4
    outcome = first.apply_import("p", job_id, page=2)  # over two pages of staged rows
    assert (outcome.inserted, outcome.duplicates) == (["ex-1", "ex-2"], [(3, "ex-1")])
    job = second.get_job(job_id)
    assert (job["status"], job["inserted"], job["duplicates"]) == ("succeeded", 2, 1)
    assert second.get_pool("p")["size"] == 2 and second.pool_version("p") == version + 1
    assert second.read_pool("p").ids == ["ex-1", "ex-2"]
    with api_error(404):
        read_body(second, job_id)
    with api_error(404):
        first.get_job("unknown")
    with api_error(404):
        first.create_import_job("nowhere", spooled(first, b"{}"))


def test_a_handed_back_or_orphaned_job_is_claimed_again(open_store: StoreFactory) -> None:
    first, second = open_store(), open_store()
    first.create_pool("p", "", "m", DIMENSION)
    job_id = first.create_import_job("p", spooled(first, b"{}\n"))
    assert first.claim_job() is not None
    first.stage_import("p", [example(1)], [1], JobStep(job_id, first.owner, 1))
    # SQLite has one process per data directory: a second store is the same one restarted,
    # and takes the job over at once. A PostgreSQL replica waits for the lease or the end of
    # the first store.
    if second.shared:
        assert second.claim_job() is None
        first.release_job(job_id)  # handed back at a chunk boundary (SIGTERM)
        assert first.get_job(job_id)["status"] == "queued"
    taken = second.claim_job()
    assert taken is not None and (taken["id"], taken["done"]) == (job_id, 1)
    with pytest.raises(ClaimLost):  # the first store's worker stops
        first.renew_claim(job_id)
    if second.shared:
        second.job_lease_s = 0.0  # this claim's lease runs out at once
        second.renew_claim(job_id)
        again = first.claim_job()
        assert again is not None and again["id"] == job_id
        third = open_store()
        first.close()  # its replica is gone: no lease to wait for
        assert third.claim_job() is not None


def test_cancel_and_resume(store: Store) -> None:
    store.create_pool("p", "", "m", DIMENSION)
    queued = store.create_import_job("p", spooled(store, b"{}\n"))
    assert store.cancel_job(queued)["status"] == "cancelled"
    assert store.claim_job() is None, "a cancelled job never starts"
    with api_error(404):
        read_body(store, queued)
    running = store.create_import_job("p", spooled(store, b"{}\n"))
    store.claim_job()
    assert store.cancel_job(running)["status"] == "cancelled"
    with pytest.raises(ClaimLost):
        store.stage_import("p", [example(1)], [1], JobStep(running, store.owner, 1))
    assert store.get_pool("p")["size"] == 0
    with api_error(409):
        store.cancel_job(running)
    with api_error(409):
        store.resume_job(running)

    full = store.create_import_job("p", spooled(store, b"{}\n{}\n"))
    store.claim_job()
    store.stage_import("p", [example(1)], [1], JobStep(full, store.owner, 1))
    store.finish_job(full, "failed", "out of space", resumable=True)
    job = store.get_job(full)
    assert (job["status"], job["resumable"], job["message"]) == ("failed", True, "out of space")
    assert read_body(store, full) == b"{}\n{}\n", "a resumable job keeps its body"
    assert store.resume_job(full)["status"] == "queued"
    resumed = store.claim_job()
    assert resumed is not None and (resumed["id"], resumed["done"]) == (full, 1)
    store.finish_job(full, "failed", "bad")
    with api_error(409):
        store.resume_job(full)


def test_the_spool_keeps_only_what_jobs_need(store: Store) -> None:
    store.create_pool("p", "", "m", DIMENSION)
    waiting = store.create_import_job("p", spooled(store, b"{}\n"))
    upload = spooled(store, b"half an upl")  # a request that never finished
    orphan = store.spool_dir / uuid.uuid4().hex  # spooled, its job never committed
    orphan.write_bytes(b"{}\n")
    store.clean_spool()
    assert not upload.exists() and not orphan.exists()
    assert read_body(store, waiting) == b"{}\n"


def test_a_full_store_answers_storage_full_and_keeps_what_it_had(tmp_path: Path) -> None:
    """A real SQLITE_FULL: the database capped at a few pages (``max_store_bytes``)."""
    store = SQLiteStore(tmp_path, max_bytes=150_000)
    try:
        store.create_pool("p", "", "m", DIMENSION)
        store.upsert("p", [example(n) for n in range(10)])
        big = [example(n, text=f"{n} " + "x" * 20_000) for n in range(100, 120)]
        with api_error(507) as refused:
            store.upsert("p", big)
        assert refused.value.type == "storage_full"
        assert store.storage_full is not None and "full" in store.storage_full
        # Nothing half-written, and the connection still works.
        assert store.read_pool("p").ids == [f"ex-{n}" for n in range(10)]
        assert store.delete_example("p", "ex-0") == 3
        assert store.storage_full is None
    finally:
        store.close()


def test_a_calibration_is_kept_with_its_pool(store: Store) -> None:
    store.create_pool("p", "", "m", DIMENSION)
    store.upsert("p", [example(1), example(2)])
    created_at = store.pool_stamp("p")[0]
    calibration = {"tau": 0.1, "kernel": "softmax", "scores": [{"tau": 0.1, "score": 0.5}]}
    calibration["pool_version"] = 2
    job_id = store.create_calibration_job("p", 2, "{}")
    store.claim_job()
    job = store.get_job(job_id)
    assert (job["kind"], job["status"], job["calibration"]) == ("calibration", "running", None)
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
    store.save_calibration("p", created_at, newer, claimed_calibration(store))
    late = claimed_calibration(store)
    store.save_calibration("p", created_at, calibration, late)
    assert store.get_pool("p")["calibration"] == {**newer, "stale": False}
    assert store.get_job(late)["calibration"] == calibration

    # Deleted and re-created: the old pool's calibration is not the new pool's.
    store.delete_pool("p")
    store.create_pool("p", "", "m", DIMENSION)
    with api_error(404):
        store.save_calibration("p", created_at, calibration, claimed_calibration(store))
    assert store.get_pool("p")["calibration"] is None
    assert store.get_job(store.create_import_job("p", spooled(store, b"{}")))["kind"] == "import"


def claimed_calibration(store: Store) -> str:
    job_id = store.create_calibration_job("p", 2, "{}")
    claimed = store.claim_job()
    assert claimed is not None and claimed["id"] == job_id
    return job_id


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


def assert_same_rows(got: PoolRows, expected: PoolRows) -> None:
    for name in ("version", "created_at", "model", "ids", "inputs", "outputs", "labels"):
        assert getattr(got, name) == getattr(expected, name), name
    assert got.metadata == expected.metadata and got.token_counts == expected.token_counts
    np.testing.assert_array_equal(got.seqs, expected.seqs)
    assert got.vectors.dtype == expected.vectors.dtype == np.float32
    np.testing.assert_array_equal(got.vectors, expected.vectors)


def test_changes_applied_to_an_older_read_equal_a_fresh_read(open_store: StoreFactory) -> None:
    """After a random mix of inserts, updates (which keep their place), deletes and deleted
    ids coming back, every older read brought up to date with :meth:`Store.read_changes`
    equals a fresh :meth:`Store.read_pool`; also through another store (replica)."""
    writer, reader = open_store(), open_store()
    writer.create_pool("p", "", "m", DIMENSION)
    rng = random.Random(7)
    reads = [reader.read_pool("p")]
    number = 0
    for step in range(40):
        ids = reader.read_pool("p").ids
        if ids and rng.random() < 0.3:
            for victim in rng.sample(ids, min(len(ids), rng.randint(1, 3))):
                writer.delete_example("p", victim)
        else:
            batch = []
            for _ in range(rng.randint(1, 4)):
                number += 1
                reused = ids and rng.random() < 0.4
                # An update of a stored id, or an id that may have been deleted before.
                example_id = rng.choice(ids) if reused else f"ex-{rng.randint(0, number)}"
                if example_id not in {item.id for item in batch}:
                    batch.append(example(number, example_id=example_id))
            writer.upsert("p", batch)
        if step % 5 == 0:
            reads.append(reader.read_pool("p"))
    fresh = reader.read_pool("p")
    assert len(fresh.ids) > 5 and fresh.version > 40
    for older in reads:
        changes = reader.read_changes("p", older.stamp)
        assert changes is not None
        assert_same_rows(apply_changes(older, changes), fresh)
    unchanged = reader.read_changes("p", fresh.stamp)
    assert unchanged is not None and not unchanged.rows.ids and not unchanged.deleted
    assert_same_rows(apply_changes(fresh, unchanged), fresh)


def test_changes_cannot_be_told_across_a_recreate_or_pruned_tombstones(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create_pool("p", "", "m", DIMENSION)
    store.upsert("p", [example(n) for n in range(3)])
    old = store.read_pool("p")
    store.delete_pool("p")
    store.create_pool("p", "", "m", DIMENSION)
    store.upsert("p", [example(n) for n in range(3)])
    assert store.read_changes("p", old.stamp) is None, "another pool under the same name"
    monkeypatch.setattr(store_module, "TOMBSTONES_KEPT", 2)
    start = store.read_pool("p")
    for n in range(1_004):
        store.upsert("p", [example(100 + n)])
    recent = store.read_pool("p")
    store.delete_example("p", "ex-0")  # prunes the tombstones older than two versions
    assert store.read_changes("p", start.stamp) is None
    changes = store.read_changes("p", recent.stamp)
    assert changes is not None and changes.deleted == {"ex-0"}
    assert_same_rows(apply_changes(recent, changes), store.read_pool("p"))
    with api_error(404):
        store.read_changes("gone", recent.stamp)


def test_a_store_sees_changes_made_through_another(open_store: StoreFactory) -> None:
    writer, reader = open_store(), open_store()
    writer.create_pool("p", "", "m", DIMENSION)
    assert reader.read_pool("p").ids == []
    writer.upsert("p", [example(1)])
    assert reader.pool_version("p") == 2 and reader.read_pool("p").ids == ["ex-1"]


def test_a_legacy_sqlite_store_is_migrated(tmp_path: Path) -> None:
    """A data directory from before job owners (no ``schema_version``) opens, and its
    unfinished job is claimed again (its worker then finds it has no body and fails it)."""
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
        claimed = store.claim_job()
        assert claimed is not None and claimed["id"] == "old" and claimed["kind"] == "import"
        with api_error(404):
            read_body(store, "old")
        store.create_pool("p", "", "m", DIMENSION)
    finally:
        store.close()
    SQLiteStore(tmp_path).close()  # reopening applies nothing twice

"""The embedded store: one SQLite database (WAL) in the data directory holding pools,
examples with their float32 embeddings, and import jobs.

Every change is one transaction that also bumps the pool's version, so a reader sees a pool
either before or after a change, never half-written, and a committed change survives a crash
(``synchronous=FULL``). One connection serves all threads behind a lock: writes are short and
SQLite serialises writers anyway.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import ApiError, not_found

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pools (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    model TEXT NOT NULL,
    dimension INTEGER NOT NULL,
    version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS examples (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    pool TEXT NOT NULL REFERENCES pools(name) ON DELETE CASCADE,
    id TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    label TEXT,
    metadata TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    token_count INTEGER NOT NULL,
    embedding BLOB NOT NULL,
    UNIQUE (pool, id),
    UNIQUE (pool, content_hash)
);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    pool TEXT NOT NULL,
    status TEXT NOT NULL,
    total INTEGER NOT NULL,
    done INTEGER NOT NULL,
    inserted INTEGER NOT NULL,
    updated INTEGER NOT NULL,
    duplicates INTEGER NOT NULL,
    errors TEXT NOT NULL,
    message TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
"""

_POOL_COLUMNS = "name, description, model, dimension, version, created_at, updated_at"
_EXAMPLE_COLUMNS = "id, input, output, label, metadata, token_count"
MAX_STORED_LINE_ERRORS = 1_000


@dataclass(frozen=True)
class PreparedExample:
    """An example ready to store: its id, texts, content hash, token count and unit embedding."""

    id: str
    input: str
    output: str
    label: str | None
    metadata: dict[str, Any]
    content_hash: str
    token_count: int
    vector: np.ndarray


@dataclass
class UpsertOutcome:
    """What an upsert did: ids inserted and updated, and ``(position, existing_id)`` of the
    examples not stored because the pool already held their content."""

    version: int
    inserted: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    duplicates: list[tuple[int, str]] = field(default_factory=list)


@dataclass(frozen=True)
class PoolRows:
    """A consistent read of a whole pool at ``version``: rows in insertion order and
    ``vectors: (n, d)`` float32."""

    version: int
    model: str
    ids: list[str]
    inputs: list[str]
    outputs: list[str]
    labels: list[str | None]
    metadata: list[dict[str, Any]]
    token_counts: list[int]
    vectors: np.ndarray


def _pool_dict(row: sqlite3.Row, size: int, labelled: bool) -> dict[str, Any]:
    return {**dict(row), "size": size, "labelled": labelled}


def _example_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {**dict(row), "metadata": json.loads(row["metadata"])}


def _job_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {**dict(row), "errors": json.loads(row["errors"])}


class Store:
    """Pools, examples and jobs in ``data_dir/mmdshot.sqlite3``."""

    def __init__(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "mmdshot.sqlite3"
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # --- pools ---------------------------------------------------------------------------

    def create_pool(
        self, name: str, description: str, model: str, dimension: int
    ) -> dict[str, Any]:
        now = time.time()
        with self._transaction() as db:
            try:
                db.execute(
                    f"INSERT INTO pools ({_POOL_COLUMNS}) VALUES (?, ?, ?, ?, 1, ?, ?)",
                    (name, description, model, dimension, now, now),
                )
            except sqlite3.IntegrityError as exc:
                raise ApiError(409, "conflict", f"pool {name!r} already exists") from exc
        return self.get_pool(name)

    def _pool_row(self, db: sqlite3.Connection, name: str) -> sqlite3.Row:
        row = db.execute(f"SELECT {_POOL_COLUMNS} FROM pools WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise not_found("pool", name)
        return row

    def _describe(self, db: sqlite3.Connection, row: sqlite3.Row) -> dict[str, Any]:
        size, labelled = db.execute(
            "SELECT COUNT(*), COUNT(*) > 0 AND COUNT(label) = COUNT(*) "
            "FROM examples WHERE pool = ?",
            (row["name"],),
        ).fetchone()
        return _pool_dict(row, int(size), bool(labelled))

    def get_pool(self, name: str) -> dict[str, Any]:
        with self._lock:
            return self._describe(self._db, self._pool_row(self._db, name))

    def list_pools(self) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_POOL_COLUMNS} FROM pools ORDER BY name").fetchall()
            return [self._describe(self._db, row) for row in rows]

    def pool_version(self, name: str) -> int:
        with self._lock:
            return int(self._pool_row(self._db, name)["version"])

    def pool_sizes(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute(
                "SELECT p.name, COUNT(e.seq) FROM pools p "
                "LEFT JOIN examples e ON e.pool = p.name GROUP BY p.name"
            ).fetchall()
        return {name: int(count) for name, count in rows}

    def delete_pool(self, name: str) -> None:
        with self._transaction() as db:
            self._pool_row(db, name)
            db.execute("DELETE FROM examples WHERE pool = ?", (name,))
            db.execute("DELETE FROM pools WHERE name = ?", (name,))

    @staticmethod
    def _bump(db: sqlite3.Connection, name: str) -> int:
        db.execute(
            "UPDATE pools SET version = version + 1, updated_at = ? WHERE name = ?",
            (time.time(), name),
        )
        return int(db.execute("SELECT version FROM pools WHERE name = ?", (name,)).fetchone()[0])

    # --- examples ------------------------------------------------------------------------

    def upsert(
        self,
        name: str,
        examples: Sequence[PreparedExample],
        positions: Sequence[int] | None = None,
        job_id: str | None = None,
    ) -> UpsertOutcome:
        """Insert new examples, replace those whose id exists, report content duplicates.

        ``positions`` number the examples for the duplicate report (default 0, 1, ...). With
        ``job_id`` the job's counters advance in the same transaction, so a job's ``done``
        never counts an example that is not committed."""
        positions = list(range(len(examples))) if positions is None else list(positions)
        with self._transaction() as db:
            pool = self._pool_row(db, name)
            outcome = UpsertOutcome(version=int(pool["version"]))
            for position, example in zip(positions, examples, strict=True):
                if example.vector.shape != (pool["dimension"],):
                    raise ApiError(409, "conflict", "embedding dimension does not match the pool")
                same = db.execute(
                    "SELECT id FROM examples WHERE pool = ? AND content_hash = ?",
                    (name, example.content_hash),
                ).fetchone()
                if same is not None:
                    outcome.duplicates.append((position, same["id"]))
                    continue
                values = (
                    example.input,
                    example.output,
                    example.label,
                    json.dumps(example.metadata),
                    example.content_hash,
                    example.token_count,
                    np.ascontiguousarray(example.vector, dtype=np.float32).tobytes(),
                )
                changed = db.execute(
                    "UPDATE examples SET input = ?, output = ?, label = ?, metadata = ?, "
                    "content_hash = ?, token_count = ?, embedding = ? WHERE pool = ? AND id = ?",
                    (*values, name, example.id),
                ).rowcount
                if changed:
                    outcome.updated.append(example.id)
                else:
                    db.execute(
                        "INSERT INTO examples (pool, id, input, output, label, metadata, "
                        "content_hash, token_count, embedding) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (name, example.id, *values),
                    )
                    outcome.inserted.append(example.id)
            if outcome.inserted or outcome.updated:
                outcome.version = self._bump(db, name)
            if job_id is not None:
                db.execute(
                    "UPDATE jobs SET done = done + ?, inserted = inserted + ?, "
                    "updated = updated + ?, duplicates = duplicates + ?, updated_at = ? "
                    "WHERE id = ?",
                    (
                        len(examples),
                        len(outcome.inserted),
                        len(outcome.updated),
                        len(outcome.duplicates),
                        time.time(),
                        job_id,
                    ),
                )
        return outcome

    def get_example(self, name: str, example_id: str) -> dict[str, Any]:
        with self._lock:
            self._pool_row(self._db, name)
            row = self._db.execute(
                f"SELECT {_EXAMPLE_COLUMNS} FROM examples WHERE pool = ? AND id = ?",
                (name, example_id),
            ).fetchone()
        if row is None:
            raise not_found("example", example_id)
        return _example_dict(row)

    def list_examples(
        self, name: str, after: int, limit: int
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``limit`` examples with ``seq > after`` in insertion order, and the ``seq``
        to continue after (None at the end)."""
        with self._lock:
            self._pool_row(self._db, name)
            rows = self._db.execute(
                f"SELECT seq, {_EXAMPLE_COLUMNS} FROM examples WHERE pool = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (name, after, limit + 1),
            ).fetchall()
        page = rows[:limit]
        following = int(page[-1]["seq"]) if len(rows) > limit else None
        return [
            {k: v for k, v in _example_dict(row).items() if k != "seq"} for row in page
        ], following

    def delete_example(self, name: str, example_id: str) -> int:
        """Delete one example; returns the new pool version."""
        with self._transaction() as db:
            self._pool_row(db, name)
            deleted = db.execute(
                "DELETE FROM examples WHERE pool = ? AND id = ?", (name, example_id)
            ).rowcount
            if not deleted:
                raise not_found("example", example_id)
            return self._bump(db, name)

    def read_pool(self, name: str) -> PoolRows:
        """Every example of the pool and its version, read in one consistent view."""
        with self._lock:
            pool = self._pool_row(self._db, name)
            rows = self._db.execute(
                f"SELECT {_EXAMPLE_COLUMNS}, embedding FROM examples WHERE pool = ? ORDER BY seq",
                (name,),
            ).fetchall()
        dimension = int(pool["dimension"])
        vectors = np.frombuffer(b"".join(row["embedding"] for row in rows), dtype=np.float32)
        return PoolRows(
            version=int(pool["version"]),
            model=pool["model"],
            ids=[row["id"] for row in rows],
            inputs=[row["input"] for row in rows],
            outputs=[row["output"] for row in rows],
            labels=[row["label"] for row in rows],
            metadata=[json.loads(row["metadata"]) for row in rows],
            token_counts=[int(row["token_count"]) for row in rows],
            vectors=vectors.reshape(len(rows), dimension),
        )

    # --- jobs --------------------------------------------------------------------------------

    def create_job(self, name: str, total: int, done: int, errors: list[dict[str, Any]]) -> str:
        """A queued job over ``total`` records of which ``done`` (the bad lines) are settled."""
        job_id = uuid.uuid4().hex
        now = time.time()
        with self._transaction() as db:
            self._pool_row(db, name)
            db.execute(
                "INSERT INTO jobs (id, pool, status, total, done, inserted, updated, duplicates, "
                "errors, message, created_at, updated_at) "
                "VALUES (?, ?, 'queued', ?, ?, 0, 0, 0, ?, NULL, ?, ?)",
                (job_id, name, total, done, json.dumps(errors[:MAX_STORED_LINE_ERRORS]), now, now),
            )
        return job_id

    def set_job_status(self, job_id: str, status: str, message: str | None = None) -> None:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = ?, message = ?, updated_at = ? WHERE id = ?",
                (status, message, time.time(), job_id),
            )

    def get_job(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise not_found("job", job_id)
        return _job_dict(row)

    def fail_unfinished_jobs(self, message: str) -> int:
        """Mark every queued or running job failed (at startup: their worker is gone)."""
        with self._transaction() as db:
            return db.execute(
                "UPDATE jobs SET status = 'failed', message = ?, updated_at = ? "
                "WHERE status IN ('queued', 'running')",
                (message, time.time()),
            ).rowcount

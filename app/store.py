"""The pool store: pools (with their calibration), examples with their float32 embeddings, and
jobs (imports, calibrations), behind one interface with two backends. :class:`SQLiteStore`
(the embedded default: one SQLite database, WAL, in the data directory) and
``PostgresStore`` (``app.store_postgres``: one PostgreSQL database shared by several
replicas). :func:`open_store` picks one from the settings.

Every change is one transaction that also bumps the pool's version, so a reader sees a pool
either before or after a change, never half-written, and a committed change survives a crash.
Writers to one pool are serialised by the database (SQLite's single writer; a row lock on the
pool in PostgreSQL), and ``UNIQUE (pool, content_hash)`` backs the content dedupe, so writers in
different processes neither lose nor duplicate examples.
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Protocol

import numpy as np

from app.errors import ApiError, not_found, storage_full

if TYPE_CHECKING:
    from app.config import Settings

# Schema migrations, applied in order and counted in ``schema_version``. Column types that
# differ between the backends are named by placeholders (``Store.COLUMN_TYPES``).
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE IF NOT EXISTS pools (
            name TEXT PRIMARY KEY,
            description TEXT NOT NULL,
            model TEXT NOT NULL,
            dimension INTEGER NOT NULL,
            version INTEGER NOT NULL,
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL
        )""",
        """CREATE TABLE IF NOT EXISTS examples (
            seq {serial},
            pool TEXT NOT NULL REFERENCES pools(name) ON DELETE CASCADE,
            id TEXT NOT NULL,
            input TEXT NOT NULL,
            output TEXT NOT NULL,
            label TEXT,
            metadata TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            token_count INTEGER NOT NULL,
            embedding {blob} NOT NULL,
            UNIQUE (pool, id),
            UNIQUE (pool, content_hash)
        )""",
        """CREATE TABLE IF NOT EXISTS jobs (
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
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL
        )""",
    ),
    # The store that runs a job, so a replica only fails the jobs whose store is gone.
    ("ALTER TABLE jobs ADD COLUMN owner BIGINT NOT NULL DEFAULT 0",),
    # A pool's calibration (JSON), and calibration jobs beside imports.
    (
        "ALTER TABLE pools ADD COLUMN calibration TEXT",
        "ALTER TABLE jobs ADD COLUMN kind TEXT NOT NULL DEFAULT 'import'",
        "ALTER TABLE jobs ADD COLUMN calibration TEXT",
    ),
    # Durable jobs: the store that claimed a job and until when (its lease), a calibration's
    # request, whether a failed job may be resumed, and import bodies
    # kept in the database (PostgreSQL; SQLite spools them to data_dir/spool).
    (
        "ALTER TABLE jobs ADD COLUMN claimed_by BIGINT",
        "ALTER TABLE jobs ADD COLUMN lease_until {real}",
        "ALTER TABLE jobs ADD COLUMN request TEXT",
        "ALTER TABLE jobs ADD COLUMN resumable INTEGER NOT NULL DEFAULT 0",
        """CREATE TABLE IF NOT EXISTS job_bodies (
            job_id TEXT NOT NULL,
            part INTEGER NOT NULL,
            data {blob} NOT NULL,
            PRIMARY KEY (job_id, part)
        )""",
        "CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created_at)",
    ),
    # Incremental pool refreshes: the pool version that last wrote each example, tombstones
    # of deleted examples (the pool's version after the delete), and the newest version
    # whose tombstones were pruned (a snapshot older than that reloads the whole pool).
    (
        "ALTER TABLE examples ADD COLUMN changed INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX IF NOT EXISTS examples_by_change ON examples (pool, changed)",
        """CREATE TABLE IF NOT EXISTS example_deletions (
            pool TEXT NOT NULL,
            id TEXT NOT NULL,
            version INTEGER NOT NULL
        )""",
        "CREATE INDEX IF NOT EXISTS example_deletions_by_version "
        "ON example_deletions (pool, version)",
        "ALTER TABLE pools ADD COLUMN forgotten INTEGER NOT NULL DEFAULT 0",
    ),
    # Prefixes (app/prefixes.py): a pool's stored prompt blocks, their examples' texts kept
    # as built (JSON), the pool version they were built at and the request that built them.
    (
        """CREATE TABLE IF NOT EXISTS prefixes (
            pool TEXT NOT NULL REFERENCES pools(name) ON DELETE CASCADE,
            name TEXT NOT NULL,
            request TEXT NOT NULL,
            examples TEXT NOT NULL,
            built TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            pool_version INTEGER NOT NULL,
            created_at {real} NOT NULL,
            updated_at {real} NOT NULL,
            PRIMARY KEY (pool, name)
        )""",
    ),
    # The tokenizer a pool counts its examples' tokens with (a name of the service's
    # MMDSHOT_TOKENIZERS; 'default' for pools made before), and the rows an import has
    # prepared so far (committed chunk by chunk, moved into the pool at its end in one
    # transaction: one version bump per import).
    (
        "ALTER TABLE pools ADD COLUMN tokenizer TEXT NOT NULL DEFAULT 'default'",
        """CREATE TABLE IF NOT EXISTS import_rows (
            job_id TEXT NOT NULL,
            position INTEGER NOT NULL,
            id TEXT NOT NULL,
            input TEXT NOT NULL,
            output TEXT NOT NULL,
            label TEXT,
            metadata TEXT NOT NULL,
            content_hash TEXT NOT NULL,
            token_count INTEGER NOT NULL,
            embedding {blob} NOT NULL,
            PRIMARY KEY (job_id, position)
        )""",
    ),
)

_POOL_COLUMNS = "name, description, model, dimension, version, created_at, updated_at"
_POOL_READ_COLUMNS = f"{_POOL_COLUMNS}, tokenizer, calibration, forgotten"
_EXAMPLE_COLUMNS = "id, input, output, label, metadata, token_count"
_JOB_COLUMNS = (
    "id, kind, pool, status, total, done, inserted, updated, duplicates, errors, message, "
    "calibration, resumable, created_at, updated_at"
)
_CLAIM_COLUMNS = f"{_JOB_COLUMNS}, request"
MAX_STORED_LINE_ERRORS = 1_000
BODY_PART_BYTES = 2**20
"""An import body is kept (PostgreSQL) and read back in parts of this size."""
UNFINISHED = ("queued", "running")
TOMBSTONES_KEPT = 100_000
"""Pool versions whose deletions are kept for incremental refreshes; a snapshot older than
that reloads the whole pool."""


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


PoolStamp = tuple[float, int]
"""``(created_at, version)``: names one state of one pool, also across a delete and a
re-create under the same name (whose version starts at 1 again)."""


@dataclass(frozen=True)
class PoolRows:
    """A consistent read of a whole pool at ``version``: rows in insertion order (``seqs``,
    increasing) and ``vectors: (n, d)`` float32. Also the changed rows of a
    :class:`PoolChanges`."""

    version: int
    created_at: float
    model: str
    ids: list[str]
    inputs: list[str]
    outputs: list[str]
    labels: list[str | None]
    metadata: list[dict[str, Any]]
    token_counts: list[int]
    vectors: np.ndarray
    seqs: np.ndarray
    """``(n,)`` int64: each row's insertion number (the store's ``seq``)."""

    @property
    def stamp(self) -> PoolStamp:
        return (self.created_at, self.version)


@dataclass(frozen=True)
class PoolChanges:
    """What changed in a pool after one version, read in one consistent view: ``rows``
    (at the pool's current version) holds every example inserted or replaced since, and
    ``deleted`` the ids deleted since (some may be back among ``rows``)."""

    rows: PoolRows
    deleted: frozenset[str]


def apply_changes(rows: PoolRows, changes: PoolChanges) -> PoolRows:
    """``rows`` brought to the version of ``changes``: changed rows replace theirs (an update
    keeps its place), new ones join by insertion order, deleted ones go; equal to a fresh
    :meth:`Store.read_pool` at that version."""
    new = changes.rows
    gone = changes.deleted | set(new.ids)
    keep = [i for i, example_id in enumerate(rows.ids) if example_id not in gone]
    kept = np.asarray(keep, dtype=np.int64)
    seqs = np.concatenate([rows.seqs[kept], new.seqs])
    order = None if np.all(np.diff(seqs) > 0) else np.argsort(seqs, kind="stable")

    def merged(old: list[Any], changed: list[Any]) -> list[Any]:
        joined = [old[i] for i in keep] + changed if len(keep) < len(old) else old + changed
        return joined if order is None else [joined[i] for i in order]

    vectors = np.concatenate([rows.vectors[kept], new.vectors]).reshape(-1, new.vectors.shape[1])
    return PoolRows(
        version=new.version,
        created_at=new.created_at,
        model=new.model,
        ids=merged(rows.ids, new.ids),
        inputs=merged(rows.inputs, new.inputs),
        outputs=merged(rows.outputs, new.outputs),
        labels=merged(rows.labels, new.labels),
        metadata=merged(rows.metadata, new.metadata),
        token_counts=merged(rows.token_counts, new.token_counts),
        vectors=vectors if order is None else vectors[order],
        seqs=seqs if order is None else seqs[order],
    )


class Row(Protocol):
    """A result row, read by column name (``sqlite3.Row``, or a dict from psycopg)."""

    def __getitem__(self, key: str) -> Any: ...

    def keys(self) -> Any: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Session(Protocol):
    """What the SQL below needs of a connection: ``execute`` with ``?`` placeholders."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...


def _json_or_none(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _pool_dict(row: Row, size: int, labelled: bool) -> dict[str, Any]:
    """The pool with its calibration, marked stale when the pool changed since."""
    calibration = _json_or_none(row["calibration"])
    if calibration is not None:
        calibration["stale"] = calibration["pool_version"] != row["version"]
    described = {k: v for k, v in dict(row).items() if k != "forgotten"}
    return {**described, "size": size, "labelled": labelled, "calibration": calibration}


def _pool_rows(pool: Row, rows: list[Row]) -> PoolRows:
    """The :class:`PoolRows` of ``rows`` (``seq``, example columns, embedding) of ``pool``."""
    dimension = int(pool["dimension"])
    vectors = np.frombuffer(b"".join(row["embedding"] for row in rows), dtype=np.float32)
    return PoolRows(
        version=int(pool["version"]),
        created_at=float(pool["created_at"]),
        model=pool["model"],
        ids=[row["id"] for row in rows],
        inputs=[row["input"] for row in rows],
        outputs=[row["output"] for row in rows],
        labels=[row["label"] for row in rows],
        metadata=[json.loads(row["metadata"]) for row in rows],
        token_counts=[int(row["token_count"]) for row in rows],
        vectors=vectors.reshape(len(rows), dimension),
        seqs=np.fromiter((int(row["seq"]) for row in rows), dtype=np.int64, count=len(rows)),
    )


def _staged_example(row: Row, dimension: int) -> PreparedExample:
    """The example of an ``import_rows`` row."""
    return PreparedExample(
        id=row["id"],
        input=row["input"],
        output=row["output"],
        label=row["label"],
        metadata=json.loads(row["metadata"]),
        content_hash=row["content_hash"],
        token_count=int(row["token_count"]),
        vector=np.frombuffer(row["embedding"], dtype=np.float32).reshape(dimension),
    )


def _example_dict(row: Row) -> dict[str, Any]:
    return {**dict(row), "metadata": json.loads(row["metadata"])}


def _job_dict(row: Row) -> dict[str, Any]:
    return {
        **dict(row),
        "errors": json.loads(row["errors"]),
        "calibration": _json_or_none(row["calibration"]),
        "resumable": bool(row["resumable"]),
    }


class ClaimLost(Exception):
    """The job is no longer this store's to run: cancelled, or taken over by another store
    after its lease expired. The write that found it out was rolled back."""


@dataclass(frozen=True)
class JobStep:
    """One committed step of a running import: ``records`` more records settled (staged or
    rejected), with the ``errors`` of the rejected ones; it commits with its chunk."""

    id: str
    owner: int
    records: int
    errors: list[dict[str, Any]] = field(default_factory=list)


class Store:
    """Pools, examples and jobs in a SQL database; a backend supplies the connections
    (:meth:`_reading`, :meth:`_transaction`) and the few SQL pieces that differ."""

    COLUMN_TYPES: ClassVar[dict[str, str]]
    """The ``{real}``, ``{blob}`` and ``{serial}`` column types of :data:`MIGRATIONS`."""
    FOR_UPDATE: ClassVar[str]
    """Appended to the pool read that starts a write: locks the pool row where the database
    does not already serialise writers."""
    SKIP_LOCKED: ClassVar[str]
    """Appended to the read that claims a job: other stores claim other jobs meanwhile."""
    shared: ClassVar[bool]
    """Whether other processes (replicas) use the same database."""
    integrity_error: ClassVar[type[Exception]]

    def __init__(self, spool_dir: Path, job_lease_s: float) -> None:
        # Random per process: marks the jobs this store runs (31 bits: one PostgreSQL
        # advisory-lock key, see store_postgres).
        self.owner = secrets.randbelow(2**31 - 1) + 1
        self.spool_dir = spool_dir
        self.job_lease_s = job_lease_s
        self.storage_full: str | None = None
        """Why the last write failed for want of space; None once a write succeeds again."""

    def _live_owners(self) -> str:
        """A query of the owner ids of the stores that are running."""
        raise NotImplementedError

    def note_storage_full(self, exc: Exception) -> ApiError:
        """Remember (for ``/ready``) and return the 507 of a write that found no space."""
        # An OSError's text names the file; its strerror does not.
        reason = exc.strerror if isinstance(exc, OSError) else str(exc).splitlines()[0]
        self.storage_full = f"out of storage space ({reason}); free some and retry"
        return storage_full(self.storage_full)

    def close(self) -> None:
        raise NotImplementedError

    def _reading(self) -> AbstractContextManager[Session]:
        """A session for reads that see one consistent state of the database."""
        raise NotImplementedError

    def _transaction(self) -> AbstractContextManager[Session]:
        """A session whose statements commit together when the block ends, or not at all."""
        raise NotImplementedError

    def _migrate(self, db: Session) -> None:
        """Bring the schema up to date (called by the backend inside one transaction)."""
        db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = db.execute("SELECT MAX(version) AS version FROM schema_version").fetchone()
        current = int(row["version"] or 0)
        for number, statements in enumerate(MIGRATIONS[current:], start=current + 1):
            for statement in statements:
                db.execute(statement.format(**self.COLUMN_TYPES))
            db.execute("INSERT INTO schema_version (version) VALUES (?)", (number,))

    # --- pools ---------------------------------------------------------------------------

    def create_pool(
        self, name: str, description: str, model: str, dimension: int, tokenizer: str = "default"
    ) -> dict[str, Any]:
        now = time.time()
        try:
            with self._transaction() as db:
                db.execute(
                    f"INSERT INTO pools ({_POOL_COLUMNS}, tokenizer) "
                    "VALUES (?, ?, ?, ?, 1, ?, ?, ?)",
                    (name, description, model, dimension, now, now, tokenizer),
                )
        except self.integrity_error as exc:
            raise ApiError(409, "conflict", f"pool {name!r} already exists") from exc
        return self.get_pool(name)

    def _pool_row(self, db: Session, name: str, for_update: bool = False) -> Row:
        lock = self.FOR_UPDATE if for_update else ""
        row: Row | None = db.execute(
            f"SELECT {_POOL_READ_COLUMNS} FROM pools WHERE name = ?{lock}", (name,)
        ).fetchone()
        if row is None:
            raise not_found("pool", name)
        return row

    def _describe(self, db: Session, row: Row) -> dict[str, Any]:
        counts = db.execute(
            "SELECT COUNT(*) AS size, COUNT(*) > 0 AND COUNT(label) = COUNT(*) AS labelled "
            "FROM examples WHERE pool = ?",
            (row["name"],),
        ).fetchone()
        return _pool_dict(row, int(counts["size"]), bool(counts["labelled"]))

    def get_pool(self, name: str) -> dict[str, Any]:
        with self._reading() as db:
            return self._describe(db, self._pool_row(db, name))

    def list_pools(self) -> list[dict[str, Any]]:
        with self._reading() as db:
            rows = db.execute(f"SELECT {_POOL_READ_COLUMNS} FROM pools ORDER BY name").fetchall()
            return [self._describe(db, row) for row in rows]

    def pool_state(self, name: str) -> tuple[PoolStamp, dict[str, Any] | None]:
        """The pool's current ``(created_at, version)`` and its calibration (None if it has
        none), one cheap read (404 if unknown)."""
        with self._reading() as db:
            row = self._pool_row(db, name)
        return (float(row["created_at"]), int(row["version"])), _json_or_none(row["calibration"])

    def pool_stamp(self, name: str) -> PoolStamp:
        """The pool's current ``(created_at, version)``, one cheap read (404 if unknown)."""
        return self.pool_state(name)[0]

    def save_calibration(
        self, name: str, created_at: float, calibration: dict[str, Any], job_id: str
    ) -> None:
        """Keep ``calibration`` (computed at ``calibration["pool_version"]``) with the pool and
        finish its job (claimed by this store, else :class:`ClaimLost`), in one transaction.
        A pool deleted (or re-created) since is a 404; a calibration already kept from a later
        pool version stays."""
        with self._transaction() as db:
            pool = self._pool_row(db, name, for_update=True)
            if float(pool["created_at"]) != created_at:
                raise not_found("pool", name)
            kept = _json_or_none(pool["calibration"])
            text = json.dumps(calibration)
            if kept is None or kept["pool_version"] <= calibration["pool_version"]:
                db.execute("UPDATE pools SET calibration = ? WHERE name = ?", (text, name))
            self._update_claimed(
                db,
                job_id,
                "status = 'succeeded', done = total, calibration = ?, claimed_by = NULL, "
                "lease_until = NULL",
                (text,),
            )

    def pool_version(self, name: str) -> int:
        return self.pool_stamp(name)[1]

    def pool_tokenizer(self, name: str) -> str:
        """The name of the tokenizer the pool counts tokens with (404 if unknown)."""
        with self._reading() as db:
            return str(self._pool_row(db, name)["tokenizer"])

    def pool_sizes(self) -> dict[str, int]:
        with self._reading() as db:
            rows = db.execute(
                "SELECT p.name AS name, COUNT(e.seq) AS size FROM pools p "
                "LEFT JOIN examples e ON e.pool = p.name GROUP BY p.name"
            ).fetchall()
        return {row["name"]: int(row["size"]) for row in rows}

    def delete_pool(self, name: str) -> None:
        with self._transaction() as db:
            self._pool_row(db, name, for_update=True)
            db.execute("DELETE FROM examples WHERE pool = ?", (name,))
            db.execute("DELETE FROM example_deletions WHERE pool = ?", (name,))
            db.execute("DELETE FROM pools WHERE name = ?", (name,))

    @staticmethod
    def _bump(db: Session, name: str) -> int:
        db.execute(
            "UPDATE pools SET version = version + 1, updated_at = ? WHERE name = ?",
            (time.time(), name),
        )
        row = db.execute("SELECT version FROM pools WHERE name = ?", (name,)).fetchone()
        return int(row["version"])

    # --- examples ------------------------------------------------------------------------

    def upsert(
        self,
        name: str,
        examples: Sequence[PreparedExample],
        positions: Sequence[int] | None = None,
    ) -> UpsertOutcome:
        """Insert new examples, replace those whose id exists, report content duplicates;
        one transaction and one version bump (none when nothing changed). ``positions``
        number the examples for the duplicate report (default 0, 1, ...)."""
        positions = list(range(len(examples))) if positions is None else list(positions)
        with self._transaction() as db:
            pool = self._pool_row(db, name, for_update=True)
            outcome = UpsertOutcome(version=int(pool["version"]))
            self._write_examples(db, pool, examples, positions, outcome)
            self._bump_if_changed(db, name, outcome)
        return outcome

    def _write_examples(
        self,
        db: Session,
        pool: Row,
        examples: Sequence[PreparedExample],
        positions: Sequence[int],
        outcome: UpsertOutcome,
    ) -> None:
        """Write ``examples`` into ``pool`` (its row read for update) as the version after
        ``outcome.version``, adding what happened to ``outcome``."""
        name = pool["name"]
        writing = int(pool["version"]) + 1  # the version this write bumps the pool to
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
                writing,
            )
            changed = db.execute(
                "UPDATE examples SET input = ?, output = ?, label = ?, metadata = ?, "
                "content_hash = ?, token_count = ?, embedding = ?, changed = ? "
                "WHERE pool = ? AND id = ?",
                (*values, name, example.id),
            ).rowcount
            if changed:
                outcome.updated.append(example.id)
            else:
                db.execute(
                    "INSERT INTO examples (pool, id, input, output, label, metadata, "
                    "content_hash, token_count, embedding, changed) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, example.id, *values),
                )
                outcome.inserted.append(example.id)

    def _bump_if_changed(self, db: Session, name: str, outcome: UpsertOutcome) -> None:
        if outcome.inserted or outcome.updated:
            writing = outcome.version + 1
            outcome.version = self._bump(db, name)
            assert outcome.version == writing

    def stage_import(
        self,
        name: str,
        examples: Sequence[PreparedExample],
        positions: Sequence[int],
        job: JobStep,
    ) -> None:
        """Keep one chunk of a running import (``examples``, numbered by ``positions``, its
        record numbers) beside the pool, not yet in it, and advance the job in the same
        transaction (:class:`ClaimLost`, nothing kept, when it is no longer ``job.owner``'s):
        a resumed job starts after its last kept chunk. :meth:`apply_import` moves them in."""
        with self._transaction() as db:
            pool = self._pool_row(db, name)
            for position, example in zip(positions, examples, strict=True):
                if example.vector.shape != (pool["dimension"],):
                    raise ApiError(409, "conflict", "embedding dimension does not match the pool")
                db.execute(
                    "INSERT INTO import_rows (job_id, position, id, input, output, label, "
                    "metadata, content_hash, token_count, embedding) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (
                        job.id,
                        position,
                        example.id,
                        example.input,
                        example.output,
                        example.label,
                        json.dumps(example.metadata),
                        example.content_hash,
                        example.token_count,
                        np.ascontiguousarray(example.vector, dtype=np.float32).tobytes(),
                    ),
                )
            self._advance_job(db, job)

    def apply_import(self, name: str, job_id: str, page: int = 1_000) -> UpsertOutcome:
        """Move every staged row of the import ``job_id`` into the pool, in record order (an
        upsert's rules: content duplicates reported, an existing id replaced), bump the pool's
        version once if that changed it, and end the job ``succeeded`` with its counts, all in
        one transaction (:class:`ClaimLost` when the job is no longer this store's)."""
        with self._transaction() as db:
            pool = self._pool_row(db, name, for_update=True)
            outcome = UpsertOutcome(version=int(pool["version"]))
            after = -1
            while rows := db.execute(
                "SELECT position, id, input, output, label, metadata, content_hash, "
                "token_count, embedding FROM import_rows WHERE job_id = ? AND position > ? "
                "ORDER BY position LIMIT ?",
                (job_id, after, page),
            ).fetchall():
                after = int(rows[-1]["position"])
                examples = [_staged_example(row, int(pool["dimension"])) for row in rows]
                positions = [int(row["position"]) for row in rows]
                self._write_examples(db, pool, examples, positions, outcome)
            self._bump_if_changed(db, name, outcome)
            self._update_claimed(
                db,
                job_id,
                "status = 'succeeded', inserted = inserted + ?, updated = updated + ?, "
                "duplicates = duplicates + ?, claimed_by = NULL, lease_until = NULL",
                (len(outcome.inserted), len(outcome.updated), len(outcome.duplicates)),
            )
            self._drop_job_data(db, job_id)
        self._spooled(job_id).unlink(missing_ok=True)
        return outcome

    @staticmethod
    def _drop_job_data(db: Session, job_id: str) -> None:
        """Delete what a job kept besides its row: its body (PostgreSQL), its staged rows."""
        db.execute("DELETE FROM job_bodies WHERE job_id = ?", (job_id,))
        db.execute("DELETE FROM import_rows WHERE job_id = ?", (job_id,))

    def get_example(self, name: str, example_id: str) -> dict[str, Any]:
        with self._reading() as db:
            self._pool_row(db, name)
            row = db.execute(
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
        with self._reading() as db:
            self._pool_row(db, name)
            rows = db.execute(
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
            pool = self._pool_row(db, name, for_update=True)
            deleted = db.execute(
                "DELETE FROM examples WHERE pool = ? AND id = ?", (name, example_id)
            ).rowcount
            if not deleted:
                raise not_found("example", example_id)
            version = self._bump(db, name)
            db.execute(
                "INSERT INTO example_deletions (pool, id, version) VALUES (?, ?, ?)",
                (name, example_id, version),
            )
            forgotten = version - TOMBSTONES_KEPT
            if forgotten > int(pool["forgotten"]) + 1_000:  # prune now and then
                db.execute(
                    "DELETE FROM example_deletions WHERE pool = ? AND version <= ?",
                    (name, forgotten),
                )
                db.execute("UPDATE pools SET forgotten = ? WHERE name = ?", (forgotten, name))
            return version

    def read_pool(self, name: str) -> PoolRows:
        """Every example of the pool and its version, read in one consistent view."""
        with self._reading() as db:
            pool = self._pool_row(db, name)
            rows = db.execute(
                f"SELECT seq, {_EXAMPLE_COLUMNS}, embedding FROM examples WHERE pool = ? "
                "ORDER BY seq",
                (name,),
            ).fetchall()
        return _pool_rows(pool, rows)

    def read_changes(self, name: str, since: PoolStamp) -> PoolChanges | None:
        """The pool's changes after the state ``since`` (its ``(created_at, version)``), read
        in one consistent view; None when they cannot be told (the pool was re-created, or
        ``since`` is older than the kept tombstones): read the whole pool then."""
        created_at, version = since
        with self._reading() as db:
            pool = self._pool_row(db, name)
            if float(pool["created_at"]) != created_at or int(pool["forgotten"]) >= version:
                return None
            rows = db.execute(
                f"SELECT seq, {_EXAMPLE_COLUMNS}, embedding FROM examples "
                "WHERE pool = ? AND changed > ? ORDER BY seq",
                (name, version),
            ).fetchall()
            deleted = db.execute(
                "SELECT id FROM example_deletions WHERE pool = ? AND version > ?",
                (name, version),
            ).fetchall()
        return PoolChanges(_pool_rows(pool, rows), frozenset(row["id"] for row in deleted))

    # --- jobs --------------------------------------------------------------------------------
    #
    # A job is queued, then claimed by one store (``claimed_by``) under a lease
    # (``lease_until``) that its worker renews; a job whose lease ran out, or whose store is
    # gone, is claimed again and resumes after its last committed step (``done`` records). Every
    # write of a running job's worker checks the claim, so a job cancelled or taken over
    # commits nothing more from its old worker.

    def _insert_job(
        self,
        db: Session,
        name: str,
        kind: str,
        total: int = 0,
        request: str | None = None,
        job_id: str | None = None,
    ) -> str:
        self._pool_row(db, name)
        job_id = job_id or uuid.uuid4().hex
        now = time.time()
        db.execute(
            f"INSERT INTO jobs ({_JOB_COLUMNS}, owner, request) VALUES "
            "(?, ?, ?, 'queued', ?, 0, 0, 0, 0, '[]', NULL, NULL, 0, ?, ?, ?, ?)",
            (job_id, kind, name, total, now, now, self.owner, request),
        )
        return job_id

    def create_calibration_job(self, name: str, settings: int, request: str) -> str:
        """A queued calibration of ``settings`` settings; ``request`` (JSON) is run later."""
        with self._transaction() as db:
            return self._insert_job(db, name, "calibration", settings, request)

    def create_import_job(self, name: str, body: Path) -> str:
        """A queued import of the spooled ``body`` (a file in :attr:`spool_dir`, written and
        synced): the store takes it over, and commits the job only once the body is kept."""
        raise NotImplementedError

    def open_job_body(self, job_id: str) -> AbstractContextManager[BinaryIO]:
        """The import body of ``job_id``, a binary file read from its start."""
        raise NotImplementedError

    def _spooled(self, job_id: str) -> Path:
        return self.spool_dir / job_id

    def clean_spool(self) -> None:
        """Remove spooled files no job needs: unfinished uploads, and bodies of jobs that ended
        (at startup, before the worker runs)."""
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        with self._reading() as db:
            kept = {
                row["id"]
                for row in db.execute(
                    "SELECT id FROM jobs WHERE status IN ('queued', 'running') "
                    "OR (status = 'failed' AND resumable = 1)"
                ).fetchall()
            }
        for path in self.spool_dir.iterdir():
            if self.shared or path.name not in kept:
                path.unlink(missing_ok=True)

    def count_queued_jobs(self) -> int:
        with self._reading() as db:
            row = db.execute("SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued'").fetchone()
        return int(row["n"])

    def claim_job(self) -> dict[str, Any] | None:
        """Claim the oldest job that waits (queued, or running under a lease that ran out or a
        store that is gone) for this store; None when there is none."""
        now = time.time()
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE status = 'queued' OR (status = 'running' AND "
                f"(COALESCE(lease_until, 0) < ? OR claimed_by NOT IN ({self._live_owners()}))) "
                f"ORDER BY created_at LIMIT 1{self.SKIP_LOCKED}",
                (now,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET status = 'running', claimed_by = ?, lease_until = ?, "
                "message = NULL, updated_at = ? WHERE id = ?",
                (self.owner, now + self.job_lease_s, now, row["id"]),
            )
            claimed = db.execute(
                f"SELECT {_CLAIM_COLUMNS} FROM jobs WHERE id = ?", (row["id"],)
            ).fetchone()
        return {**_job_dict(claimed), "request": claimed["request"]}

    def _update_claimed(self, db: Session, job_id: str, sets: str, values: Sequence[Any]) -> None:
        """``UPDATE jobs SET <sets>`` of a job this store runs, else :class:`ClaimLost`."""
        changed = db.execute(
            f"UPDATE jobs SET {sets}, updated_at = ? "
            "WHERE id = ? AND status = 'running' AND claimed_by = ?",
            (*values, time.time(), job_id, self.owner),
        ).rowcount
        if not changed:
            raise ClaimLost(job_id)

    def renew_claim(self, job_id: str, done: int | None = None) -> None:
        """Extend the lease of a job this store runs (and set a calibration's ``done``);
        :class:`ClaimLost` when it is no longer this store's."""
        with self._transaction() as db:
            self._update_claimed(
                db,
                job_id,
                "lease_until = ?, done = COALESCE(?, done)",
                (time.time() + self.job_lease_s, done),
            )

    def set_job_total(self, job_id: str, total: int) -> None:
        with self._transaction() as db:
            self._update_claimed(db, job_id, "total = ?", (total,))

    def _advance_job(self, db: Session, step: JobStep) -> None:
        errors = json.loads(
            db.execute("SELECT errors FROM jobs WHERE id = ?", (step.id,)).fetchone()["errors"]
        )
        errors = (errors + step.errors)[:MAX_STORED_LINE_ERRORS]
        self._update_claimed(
            db,
            step.id,
            "done = done + ?, errors = ?, lease_until = ?",
            (step.records, json.dumps(errors), time.time() + self.job_lease_s),
        )

    def release_job(self, job_id: str) -> None:
        """Hand a running job back (queued, its progress kept) for any store to resume; a job
        no longer this store's is left alone."""
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET status = 'queued', claimed_by = NULL, lease_until = NULL, "
                "updated_at = ? WHERE id = ? AND status = 'running' AND claimed_by = ?",
                (time.time(), job_id, self.owner),
            )

    def finish_job(
        self, job_id: str, status: str, message: str | None = None, resumable: bool = False
    ) -> None:
        """End a job this store runs: ``succeeded``, or ``failed`` with ``message``. A
        resumable failure keeps the body, for :meth:`resume_job`."""
        with self._transaction() as db:
            self._update_claimed(
                db,
                job_id,
                "status = ?, message = ?, resumable = ?, claimed_by = NULL, lease_until = NULL",
                (status, message, int(resumable)),
            )
            if not resumable:
                self._drop_job_data(db, job_id)
        if not resumable:
            self._spooled(job_id).unlink(missing_ok=True)

    def cancel_job(self, job_id: str) -> dict[str, Any]:
        """Cancel a queued or running job at once (a running one's worker commits nothing
        more: its next write finds the claim gone); 409 for a job that already ended."""
        with self._transaction() as db:
            job = self._job_row(db, job_id)
            if job["status"] not in UNFINISHED and not job["resumable"]:
                raise ApiError(409, "conflict", f"job {job_id!r} already {job['status']}")
            db.execute(
                "UPDATE jobs SET status = 'cancelled', message = 'cancelled on request', "
                "resumable = 0, claimed_by = NULL, lease_until = NULL, updated_at = ? "
                "WHERE id = ?",
                (time.time(), job_id),
            )
            self._drop_job_data(db, job_id)
        self._spooled(job_id).unlink(missing_ok=True)
        return self.get_job(job_id)

    def resume_job(self, job_id: str) -> dict[str, Any]:
        """Queue again a job that failed resumably (e.g. the storage was full); it continues
        after its last committed step. 409 for any other job."""
        with self._transaction() as db:
            job = self._job_row(db, job_id)
            if not (job["status"] == "failed" and job["resumable"]):
                raise ApiError(409, "conflict", f"job {job_id!r} is {job['status']}, not resumable")
            db.execute(
                "UPDATE jobs SET status = 'queued', resumable = 0, message = NULL, "
                "updated_at = ? WHERE id = ?",
                (time.time(), job_id),
            )
        return self.get_job(job_id)

    @staticmethod
    def _job_row(db: Session, job_id: str) -> Row:
        row: Row | None = db.execute(
            f"SELECT {_JOB_COLUMNS} FROM jobs WHERE id = ?", (job_id,)
        ).fetchone()
        if row is None:
            raise not_found("job", job_id)
        return row

    def get_job(self, job_id: str) -> dict[str, Any]:
        with self._reading() as db:
            return _job_dict(self._job_row(db, job_id))


class SQLiteStore(Store):
    """The embedded default: ``data_dir/mmdshot.sqlite3`` (WAL, ``synchronous=FULL``). One
    connection writes, behind a lock: writes are short and SQLite serialises writers anyway
    (``BEGIN IMMEDIATE``), so no row lock is needed; reads run on one connection per thread.
    Import bodies are files in ``data_dir/spool``, one per job, synced before their job
    commits. ``max_bytes`` caps
    the database (writes beyond it fail as a full disk would: 507 ``storage_full``)."""

    COLUMN_TYPES: ClassVar[dict[str, str]] = {
        "real": "REAL",
        "blob": "BLOB",
        "serial": "INTEGER PRIMARY KEY AUTOINCREMENT",
    }
    FOR_UPDATE = ""
    SKIP_LOCKED = ""
    shared = False
    integrity_error = sqlite3.IntegrityError

    def __init__(
        self, data_dir: Path, max_bytes: int | None = None, job_lease_s: float = 30.0
    ) -> None:
        super().__init__(data_dir / "spool", job_lease_s)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.path = data_dir / "mmdshot.sqlite3"
        self._lock = threading.RLock()
        self._db = self._connect()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        if max_bytes is not None:
            page_size = int(self._db.execute("PRAGMA page_size").fetchone()[0])
            self._db.execute(f"PRAGMA max_page_count = {max(max_bytes // page_size, 1)}")
        with self._transaction() as db:
            self._migrate(db)
        # Reads run on one connection per thread: under WAL they see the last commit without
        # waiting for the writer or each other (reading a large pool never delays a read of
        # another pool).
        self._readers = threading.local()
        self._reader_connections: list[sqlite3.Connection] = []

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA foreign_keys=ON")
        return db

    def _live_owners(self) -> str:
        # One process per data directory: only this store is running.
        return f"SELECT {int(self.owner)}"

    def close(self) -> None:
        with self._lock:
            for reader in self._reader_connections:
                reader.close()
            self._db.close()

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        db: sqlite3.Connection | None = getattr(self._readers, "db", None)
        if db is None:
            db = self._connect()
            with self._lock:
                self._reader_connections.append(db)
            self._readers.db = db
        db.execute("BEGIN")  # one consistent view for the block's statements
        try:
            yield db
        finally:
            db.execute("COMMIT")

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                    self._db.execute("COMMIT")
                except BaseException:
                    # SQLite may have rolled back already (a full disk does that).
                    if self._db.in_transaction:
                        self._db.execute("ROLLBACK")
                    raise
            except sqlite3.OperationalError as exc:
                if exc.sqlite_errorcode == sqlite3.SQLITE_FULL:
                    raise self.note_storage_full(exc) from exc
                raise
            self.storage_full = None

    def create_import_job(self, name: str, body: Path) -> str:
        job_id = uuid.uuid4().hex
        spooled = self._spooled(job_id)
        # The body is in place (renamed, the folder synced) before its job commits; a crash
        # in between leaves a file without a job, removed at the next start.
        os.replace(body, spooled)
        sync_folder(self.spool_dir)
        try:
            with self._transaction() as db:
                self._insert_job(db, name, "import", job_id=job_id)
        except BaseException:
            spooled.unlink(missing_ok=True)
            raise
        return job_id

    @contextmanager
    def open_job_body(self, job_id: str) -> Iterator[BinaryIO]:
        try:
            body = self._spooled(job_id).open("rb")
        except FileNotFoundError:
            raise ApiError(404, "not_found", "the job's import body is gone") from None
        with body:
            yield body


def sync_folder(folder: Path) -> None:
    """fsync a folder, so a file renamed into it stays there after a crash."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def open_store(settings: Settings) -> Store:
    """PostgreSQL when ``database_url`` is set, else SQLite in ``data_dir``."""
    if settings.database_url is not None:
        from app.store_postgres import PostgresStore

        return PostgresStore(
            settings.database_url,
            connections=settings.database_connections,
            spool_dir=settings.data_dir / "spool",
            job_lease_s=settings.job_lease_s,
        )
    return SQLiteStore(
        settings.data_dir, max_bytes=settings.max_store_bytes, job_lease_s=settings.job_lease_s
    )

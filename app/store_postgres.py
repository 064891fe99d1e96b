"""The shared backend: one PostgreSQL database for several replicas (psycopg 3 and its
connection pool).

Writers to a pool serialise on a row lock on the pool (``SELECT ... FOR UPDATE``), as SQLite's
single writer does; reads run in ``REPEATABLE READ`` so a pool and its examples come from one
snapshot. Each store holds a session-level advisory lock on its owner id for as long as it
runs: a job whose owner holds no such lock was left by a replica that is gone. Jobs are claimed
with ``FOR UPDATE SKIP LOCKED`` and import bodies live in the database (``job_bodies``, in
parts), so any replica can run, or resume, any job.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from app.errors import ApiError
from app.store import BODY_PART_BYTES, Cursor, Session, Store

CONNECT_SECONDS = 30.0
# Two-key advisory locks (objsubid 2) never meet the one-key owner locks (objsubid 1).
_SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(1835164788, 0)"


class _Session:
    """A psycopg connection behind the store's ``?`` placeholders."""

    def __init__(self, connection: psycopg.Connection[Any]) -> None:
        self._connection = connection

    def execute(self, sql: str, parameters: Sequence[Any] = ()) -> Cursor:
        return self._connection.execute(sql.replace("?", "%s"), parameters)


class PostgresStore(Store):
    """Pools, examples and jobs in the PostgreSQL database at ``url``."""

    COLUMN_TYPES: ClassVar[dict[str, str]] = {
        "real": "DOUBLE PRECISION",
        "blob": "BYTEA",
        "serial": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY",
    }
    FOR_UPDATE = " FOR UPDATE"
    SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"
    LIVE_OWNERS = (
        "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = 0 AND objsubid = 1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    shared = True
    integrity_error = psycopg.IntegrityError

    def __init__(
        self,
        url: str,
        connections: int = 8,
        spool_dir: Path | None = None,
        job_lease_s: float = 30.0,
    ) -> None:
        super().__init__(spool_dir or Path(tempfile.mkdtemp(prefix="mmdshot-spool-")), job_lease_s)
        self._owner_session = psycopg.connect(url, autocommit=True, connect_timeout=10)
        self._owner_session.execute("SELECT pg_advisory_lock(%s)", (self.owner,))
        self._pool = ConnectionPool(
            url,
            min_size=1,
            max_size=connections,
            kwargs={"row_factory": dict_row},
            check=ConnectionPool.check_connection,
            open=False,
        )
        try:
            self._pool.open(wait=True, timeout=CONNECT_SECONDS)
            with self._transaction() as db:
                db.execute(_SCHEMA_LOCK)
                self._migrate(db)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._pool.close()
        if not self._owner_session.closed:
            # Unlocked at once here; a session that merely ends is cleaned up a moment later.
            self._owner_session.execute("SELECT pg_advisory_unlock(%s)", (self.owner,))
            self._owner_session.close()

    @contextmanager
    def _reading(self) -> Iterator[Session]:
        with self._pool.connection() as connection:
            connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield _Session(connection)

    def _live_owners(self) -> str:
        return self.LIVE_OWNERS

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        # The pool's block commits at its end and rolls back on an exception.
        try:
            with self._pool.connection() as connection:
                yield _Session(connection)
        except psycopg.errors.DiskFull as exc:
            raise self.note_storage_full(exc) from exc
        self.storage_full = None

    def create_import_job(self, name: str, body: Path) -> str:
        # The job and its body commit together; the local spool file goes after.
        try:
            with self._transaction() as db, body.open("rb") as source:
                job_id = self._insert_job(db, name, "import")
                part = 0
                while data := source.read(BODY_PART_BYTES):
                    db.execute(
                        "INSERT INTO job_bodies (job_id, part, data) VALUES (?, ?, ?)",
                        (job_id, part, data),
                    )
                    part += 1
        finally:
            body.unlink(missing_ok=True)
        return job_id

    @contextmanager
    def open_job_body(self, job_id: str) -> Iterator[BinaryIO]:
        # Copied to a local file part by part (memory stays at one part), then read there.
        local = self.spool_dir / f"download-{uuid.uuid4().hex}"
        try:
            with local.open("w+b") as copy:
                part = 0
                while True:
                    with self._reading() as db:
                        row = db.execute(
                            "SELECT data FROM job_bodies WHERE job_id = ? AND part = ?",
                            (job_id, part),
                        ).fetchone()
                    if row is None:
                        break
                    copy.write(row["data"])
                    part += 1
                if part == 0:
                    raise ApiError(404, "not_found", "the job's import body is gone")
                copy.seek(0)
                yield copy
        finally:
            local.unlink(missing_ok=True)

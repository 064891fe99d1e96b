"""The shared backend: one PostgreSQL database for several replicas (psycopg 3 and its
connection pool).

Writers to a pool serialise on a row lock on the pool (``SELECT ... FOR UPDATE``), as SQLite's
single writer does; reads run in ``REPEATABLE READ`` so a pool and its examples come from one
snapshot. Each store holds a session-level advisory lock on its owner id for as long as it
runs: a job whose owner holds no such lock was left by a replica that is gone.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, ClassVar

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from app.store import Cursor, Session, Store

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
    LIVE_OWNERS = (
        "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
        "AND classid = 0 AND objsubid = 1 "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    shared = True
    integrity_error = psycopg.IntegrityError

    def __init__(self, url: str, connections: int = 8) -> None:
        super().__init__()
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

    @contextmanager
    def _transaction(self) -> Iterator[Session]:
        # The pool's block commits at its end and rolls back on an exception.
        with self._pool.connection() as connection:
            yield _Session(connection)

"""Engine and session factory for the customer store (SQLite or PostgreSQL)."""
from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

T = TypeVar("T")
_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class Database:
    """One engine and one sessionmaker. `schema` (PostgreSQL only) isolates a deployment or a test run."""

    def __init__(self, url: str, *, schema: str | None = None, echo: bool = False) -> None:
        self.url = make_url(url)
        self.schema = schema
        if schema is not None and not _SCHEMA_RE.match(schema):
            raise ValueError(f"invalid schema name {schema!r}")
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            if self.url.database and self.url.database != ":memory:":
                Path(self.url.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
            if schema:
                kwargs["connect_args"] = {"server_settings": {"search_path": schema}}
        self.engine: AsyncEngine = create_async_engine(self.url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.session: async_sessionmaker[AsyncSession] = async_sessionmaker(
            self.engine, expire_on_commit=False
        )
        # SQLite reads on the hot path (the screen pop) run their few statements in one trip to a
        # worker thread on a plain sqlite3 connection, instead of one thread hop per statement.
        self._reader: Engine | None = None
        # PostgreSQL reads: their own pool in autocommit (no BEGIN/ROLLBACK round trips: under
        # READ COMMITTED each statement has its own snapshot either way) and no pre-ping per
        # checkout; a read that finds its connection dead (a server restart) is tried once more
        # on a fresh one (the pool drops the old ones).
        self._pg_reader: AsyncEngine | None = None
        if not self.is_sqlite:
            rkw = {k: v for k, v in kwargs.items() if k != "pool_pre_ping"}
            rkw.update(pool_size=5, max_overflow=10, isolation_level="AUTOCOMMIT")
            self._pg_reader = create_async_engine(self.url, **rkw)
        if self.is_sqlite and self.url.database not in (None, "", ":memory:"):
            self._reader = create_engine(self.url.set(drivername="sqlite"), pool_size=4,
                                         max_overflow=4)
            event.listen(self._reader, "connect", _sqlite_pragmas)
        # SQLite writes batched by the group commit (crm_core/interactions.py): one connection,
        # one short synchronous step per batch, BEGIN IMMEDIATE so the batch's reads and writes
        # are one atomic step (no other writer in between).
        self._writer: Engine | None = None
        if self._reader is not None:
            self._writer = create_engine(self.url.set(drivername="sqlite"), pool_size=1, max_overflow=0)
            event.listen(self._writer, "connect", _sqlite_writer_connect)
            event.listen(self._writer, "begin", _begin_immediate)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    async def create_schema(self) -> None:
        """Create the PostgreSQL schema if it is missing (no-op on SQLite)."""
        if self.schema and not self.is_sqlite:
            async with self.engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"'))

    async def drop_schema(self) -> None:
        if self.schema and not self.is_sqlite:
            async with self.engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))

    async def upgrade(self, revision: str = "head") -> None:
        """Apply the Alembic migrations up to `revision`."""
        from crm_core.migrate import upgrade

        await self.create_schema()
        await upgrade(self.engine, revision)

    async def ping(self) -> float:
        """Round-trip a trivial query; returns seconds taken."""
        import time

        t0 = time.perf_counter()
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        return time.perf_counter() - t0

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(connection, *args)`, a few read-only statements, as one trip to the database:
        a worker thread on SQLite, one connection (awaited statement by statement) on PostgreSQL."""
        if self._reader is not None:
            return await asyncio.to_thread(self._read_sync, fn, args)
        engine = self._pg_reader or self.engine
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(fn, *args)
        except DBAPIError as e:
            if not e.connection_invalidated or self._pg_reader is None:
                raise
        async with engine.connect() as conn:  # once more, on a new connection
            return await conn.run_sync(fn, *args)

    def _read_sync(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        assert self._reader is not None
        with self._reader.connect() as conn:
            return fn(conn, *args)

    def sync_writer(self) -> Engine | None:
        """The SQLite file's batched-write engine (None on PostgreSQL and in-memory SQLite)."""
        return self._writer

    def sync_engines(self) -> list[Engine]:
        """Every engine statements may run on (for instrumentation such as statement counts)."""
        extra = [] if self._pg_reader is None else [self._pg_reader.sync_engine]
        return [self.engine.sync_engine, *extra,
                *(e for e in (self._reader, self._writer) if e is not None)]

    async def close(self) -> None:
        writes = getattr(self, "group_commit", None)  # its held connection (crm_core/interactions.py)
        if writes is not None:
            await writes.close()
        await self.engine.dispose()
        if self._pg_reader is not None:
            await self._pg_reader.dispose()
        if self._reader is not None:
            self._reader.dispose()
        if self._writer is not None:
            self._writer.dispose()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=5000")
    cur.close()


def _sqlite_writer_connect(dbapi_conn: Any, record: Any) -> None:
    _sqlite_pragmas(dbapi_conn, record)
    dbapi_conn.isolation_level = None  # the driver's own BEGIN is replaced by _begin_immediate


def _begin_immediate(conn: Any) -> None:
    conn.exec_driver_sql("BEGIN IMMEDIATE")

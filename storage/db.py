"""Engine, sessions and migrations.

SQLite gets the pragmas of DESIGN.md on every connection; PostgreSQL works through
DATABASE_URL. The bot upgrades the schema itself at start (`migrate_to_head`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DatabaseError, DBAPIError, OperationalError, SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# One process owns the database, so lock waits come only from its own short transactions;
# on a starved CPU they can take seconds, and waiting beats failing a platform delivery.
BUSY_TIMEOUT_MS = 30000
# How long a transaction waits for the process's one SQLite connection before it fails (a
# bug that nests two transactions would otherwise hang forever). Waiters are few — the
# inbox writer, the processing loop, one delivery transaction, staff requests — and each
# holds it briefly; the writer and the loop retry after a failure, losing nothing.
POOL_WAIT_SECONDS = 60.0

# What the rest of the program names, without importing SQLAlchemy itself.
Database = AsyncEngine
Sessions = async_sessionmaker[AsyncSession]
StorageError = SQLAlchemyError  # any failure of the database while running


class DatabaseUnavailable(Exception):
    """The database cannot be opened or written; the message is one operator line."""


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA secure_delete=ON")  # erased data must not survive in free pages
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def sqlite_path(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    return None if parsed.database == ":memory:" else Path(parsed.database)


def _private_file(path: Path) -> None:
    """The database file 0600 (SQLite gives its -wal and -shm files the same mode): created
    so before SQLite opens it, or closed to others if an earlier version left it readable."""
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    elif (mode := path.stat().st_mode) & 0o077:
        with contextlib.suppress(PermissionError):  # not ours: leave it to its owner
            path.chmod(mode & 0o700)  # others lose access; the owner keeps what they had


def _begin(connection: Connection) -> None:
    """Every SQLite transaction begins with an explicit BEGIN, so that a SAVEPOINT always
    sits inside a real transaction: pysqlite begins implicitly only before a write, and would
    let a first SAVEPOINT start the transaction — and its RELEASE commit it half-way. (The
    process's single connection never waits for another writer: no need for IMMEDIATE.)"""
    if connection.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
        connection.exec_driver_sql("BEGIN")


def create_engine(url: str) -> AsyncEngine:
    path = sqlite_path(url)
    if path is not None:
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _private_file(path)
        except OSError as exc:
            raise DatabaseUnavailable(
                f"Cannot create the data folder {path.parent}: {exc.strerror}"
            ) from None
    # hide_parameters: SQL errors must never carry customers' data into logs or tracebacks.
    options: dict[str, Any] = {"hide_parameters": True}
    if path is not None:
        # SQLite has one writer: one connection serves the whole process, and everyone waits
        # their turn in the pool's FIFO queue instead of in SQLite's lock (more connections
        # only added lock waits and "database is locked"). The wait has no deadline of its
        # own: the inbox writer and the processing loop must wait, never drop a message.
        options.update(pool_size=1, max_overflow=0, pool_timeout=POOL_WAIT_SECONDS)
    engine = create_async_engine(url, **options)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _begin)
    return engine


def session_factory(engine: AsyncEngine) -> Sessions:
    return async_sessionmaker(engine, expire_on_commit=False)


async def checkpoint(sessions: Sessions) -> None:
    """Fold the SQLite WAL into the database and truncate it, so that erased data does not
    linger in the WAL file (secure_delete already zeroes freed database pages). A no-op on
    other databases."""
    engine = sessions.kw["bind"]
    if engine.dialect.name != "sqlite":
        return
    # Outside any transaction: a checkpoint cannot truncate the WAL from inside one.
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        await autocommit.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _upgrade(connection: Connection) -> None:
    command.upgrade(_alembic_config(connection), "head")


def _current_and_head(connection: Connection) -> tuple[str | None, str | None]:
    script = ScriptDirectory.from_config(_alembic_config(connection))
    return MigrationContext.configure(connection).get_current_revision(), script.get_current_head()


def describe_db_error(exc: BaseException) -> str:
    """One operator line for a database that is read-only, corrupt or unreachable."""
    orig = getattr(exc, "orig", exc)
    text = str(orig).splitlines()[0] if str(orig) else type(orig).__name__
    if isinstance(orig, sqlite3.DatabaseError) and "not a database" in text:
        return "The database file is corrupt or not a SQLite database (restore it from backup)."
    if "readonly" in text or "read-only" in text:
        return "The database is read-only: give the bot write access to the file and its folder."
    return f"The database cannot be used: {text}"


def is_transient_db_error(exc: BaseException) -> bool:
    """Errors of the database itself (disk full, locked, I/O, connection lost), after which
    the same work can succeed later — as opposed to a bug in the statement."""
    return isinstance(exc, OperationalError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    )


def db_error_cause(exc: BaseException) -> str:
    """The driver's own first line ("database or disk is full", "database is locked"): it
    names the cause without the SQL or its parameters."""
    # The first database error of the chain is the cause; later ones are its consequences
    # (after SQLITE_FULL, SQLite has rolled back and "no such savepoint" follows).
    chain: list[BaseException] = []
    link: BaseException | None = exc
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    root = next((e for e in reversed(chain) if isinstance(e, DBAPIError)), exc)
    orig = getattr(root, "orig", None) or root
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else ""
    return first[:200] or type(orig).__name__


async def migrate_to_head(engine: AsyncEngine) -> tuple[str | None, str | None]:
    """Upgrade to the newest revision; returns (revision before, revision after)."""
    try:
        async with engine.begin() as connection:
            before, _ = await connection.run_sync(_current_and_head)
            await connection.run_sync(_upgrade)
            after, _ = await connection.run_sync(_current_and_head)
            # Prove now that the database is writable: better one clear line at start than
            # a failure on the first customer's message.
            await connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
    except (OperationalError, DatabaseError, sqlite3.Error) as exc:
        raise DatabaseUnavailable(describe_db_error(exc)) from None
    return before, after

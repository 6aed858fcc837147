"""One bot process per database: the exclusive owner lock.

Two processes on one database would both poll the platforms and send every reply twice, and
in webhook mode the second one would re-register the webhook under the first one's feet. So
the bot takes this lock before anything else — before migrations and before any platform
call — and holds it until it exits; a second process stops with one line naming the pid of
the holder.

- SQLite: `flock` on a file beside the database (`vietartview.db.lock`), which also holds the
  holder's pid. The kernel releases it when the process dies, even on kill -9: no stale lock.
- PostgreSQL: a session advisory lock on a connection kept open for the process's lifetime;
  the holder's pid travels in that connection's `application_name`. (Running several
  instances on PostgreSQL would replace this with leader election; see DESIGN.md.)
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from storage.db import DatabaseUnavailable, sqlite_path

# pg_try_advisory_lock(0, ADVISORY_KEY): "VAV1" in ASCII, the namespace of this bot's locks.
ADVISORY_KEY = 0x56415631
APPLICATION_NAME = "vietartview-bot pid="


class DatabaseLocked(DatabaseUnavailable):
    """Another process holds the owner lock; the message names its pid."""


class OwnerLock(Protocol):
    async def release(self) -> None: ...


def lock_path(database: Path) -> Path:
    return database.with_name(database.name + ".lock")


def _message(pid: str, where: str) -> str:
    return (
        f"Another bot process (pid {pid or 'unknown'}) is already running on {where}: "
        "stop it first, or give this one its own DATA_DIR / DATABASE_URL."
    )


class FileLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise DatabaseLocked(_message(holder, str(path.with_suffix("")))) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd: int | None = fd

    async def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


class AdvisoryLock:
    def __init__(self, connection: AsyncConnection) -> None:
        self._connection: AsyncConnection | None = connection

    @classmethod
    async def acquire(cls, engine: AsyncEngine) -> AdvisoryLock:
        connection = await engine.connect()
        try:
            got = await connection.scalar(
                text("SELECT pg_try_advisory_lock(0, :key)"), {"key": ADVISORY_KEY}
            )
            if not got:
                holder = await connection.scalar(
                    text(
                        "SELECT a.application_name FROM pg_locks l "
                        "JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE l.locktype = 'advisory' AND l.classid = 0 "
                        "AND l.objid = :key AND l.granted LIMIT 1"
                    ),
                    {"key": ADVISORY_KEY},
                )
                name = str(holder or "")
                pid = (
                    name.removeprefix(APPLICATION_NAME) if name.startswith(APPLICATION_NAME) else ""
                )
                raise DatabaseLocked(_message(pid, "this PostgreSQL database"))
            await connection.execute(
                text("SELECT set_config('application_name', :name, false)"),
                {"name": f"{APPLICATION_NAME}{os.getpid()}"},
            )
            await connection.commit()  # the lock is the session's, not the transaction's
        except BaseException:
            await connection.close()
            raise
        return cls(connection)

    async def release(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):  # closing the session releases it anyway
                await self._connection.execute(
                    text("SELECT pg_advisory_unlock(0, :key)"), {"key": ADVISORY_KEY}
                )
            await self._connection.close()
            self._connection = None


async def acquire_owner_lock(engine: AsyncEngine, url: str) -> OwnerLock:
    """Take the owner lock of the database behind `engine`, or raise `DatabaseLocked`."""
    database = sqlite_path(url)
    if database is not None:
        return FileLock(lock_path(database))
    if engine.dialect.name == "postgresql":
        return await AdvisoryLock.acquire(engine)
    return _NoLock()  # an in-memory SQLite database cannot be shared anyway


class _NoLock:
    async def release(self) -> None:
        return None

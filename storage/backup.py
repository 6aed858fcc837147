"""Backups of the SQLite database, taken while the bot runs, and their restore.

`backup` uses SQLite's online backup API: it copies a consistent snapshot page by page while
the bot keeps writing (WAL readers never block the writer), so a shop can back up on a cron
without stopping the bot. The copy is written to a temporary file beside the target, checked
with `PRAGMA integrity_check`, made 0600 and only then renamed into place, so a half-written
backup never looks like a good one.

`restore` is the reverse and needs the bot stopped (the caller holds the owner lock): it
checks the backup first, copies it over the live database through the same API (the WAL and
its index are rewritten consistently), and leaves schema upgrades to the usual migration.

PostgreSQL backups are `pg_dump`'s job (see README, "Backups").
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path


class BackupError(Exception):
    """One operator line: what could not be backed up or restored, and why."""


@dataclass(frozen=True)
class BackupInfo:
    path: Path
    size_bytes: int
    schema_revision: str | None


def _check(connection: sqlite3.Connection, what: str) -> str | None:
    """Integrity of a database file, and its schema revision (None before any migration)."""
    try:
        (result,) = connection.execute("PRAGMA integrity_check").fetchone()
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{what} is not a readable SQLite database ({exc}).") from None
    if result != "ok":
        raise BackupError(f"{what} failed SQLite's integrity check: {result}")
    try:
        row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.OperationalError:
        return None
    return None if row is None else str(row[0])


def _copy(source: sqlite3.Connection, target_path: Path) -> None:
    target = sqlite3.connect(target_path)
    try:
        source.backup(target, pages=1024)  # in steps: the bot's writes go on between them
    finally:
        target.close()


def backup(database: Path, target: Path) -> BackupInfo:
    """Copy the live database at `database` to `target` (a file path; 0600)."""
    if not database.exists():
        raise BackupError(f"There is no database at {database} to back up.")
    if target.is_dir():
        raise BackupError(f"{target} is a folder: give the backup file's path.")
    if not target.parent.is_dir():
        raise BackupError(f"The folder {target.parent} does not exist.")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    # Read-only: a backup must never write to (or create) the live database.
    source = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
        _copy(source, partial)
        check = sqlite3.connect(partial)
        try:
            # The copy is one file: no -wal beside it when it is moved or mailed.
            check.execute("PRAGMA journal_mode=DELETE")
            revision = _check(check, "The backup")
        finally:
            check.close()
        partial.replace(target)
    except sqlite3.Error as exc:
        raise BackupError(f"The backup failed: {exc}") from None
    except OSError as exc:
        raise BackupError(f"Cannot write {target}: {exc.strerror}") from None
    finally:
        source.close()
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return BackupInfo(target, target.stat().st_size, revision)


def restore(backup_file: Path, database: Path) -> BackupInfo:
    """Replace the database at `database` by the backup's content. The bot must be stopped."""
    if not backup_file.is_file():
        raise BackupError(f"There is no backup file at {backup_file}.")
    source = sqlite3.connect(f"file:{backup_file}?mode=ro", uri=True)
    try:
        revision = _check(source, "The backup")
        if not database.exists():
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT, 0o600))
        _copy(source, database)
    except sqlite3.Error as exc:
        raise BackupError(f"The restore failed: {exc}") from None
    finally:
        source.close()
    return BackupInfo(database, database.stat().st_size, revision)

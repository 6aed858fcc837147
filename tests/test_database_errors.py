"""Disk full and other database errors: the inbound stays pending and is processed once the
database works again; nothing is answered with the generic apology, no task dies, and the
log line names the cause."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import Harness, tr


class DiskLimit:
    """Simulates a full disk with SQLite's own limit: while `full`, every connection handed
    out gets `PRAGMA max_page_count` at the current size, so any write needing a new page
    fails with SQLITE_FULL ("database or disk is full")."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.full = False
        event.listen(engine.sync_engine, "checkout", self._apply)

    def _apply(self, dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA max_page_count={1 if self.full else 1073741823}")
        cursor.close()


async def _fill(engine: AsyncEngine, limit: DiskLimit) -> None:
    """Use up every free page, so the next write that needs a page fails."""
    async with engine.begin() as connection:
        await connection.execute(text("CREATE TABLE filler (x BLOB)"))
    limit.full = True
    for size in (4000, 500, 50):
        while True:
            try:
                async with engine.begin() as connection:
                    await connection.execute(
                        text("INSERT INTO filler VALUES (randomblob(:n))"), {"n": size}
                    )
            except OperationalError as exc:
                assert "full" in str(exc.orig)
                break


@pytest.mark.sqlite_only  # fills SQLite's file (max_page_count)
async def test_disk_full_keeps_the_message_pending_and_processes_it_later(
    harness: Harness, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    unretrieved: list[dict[str, Any]] = []
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, context: unretrieved.append(context))
    harness.runtime.db_retry_delay = harness.runtime.db_retry_max = 0.05
    await harness.say("1", "/start")
    mark = harness.mark()
    limit = DiskLimit(engine)
    await _fill(engine, limit)

    caplog.set_level(logging.ERROR, logger="bot.runtime")
    # "Read the full policy": its reply (the whole policy, several pages) needs new pages.
    assert await harness.runtime.receive(harness.inbound("1", "", payload="consent:policy"))

    def failures() -> list[str]:
        return [
            r.getMessage() for r in caplog.records if "database or disk is full" in r.getMessage()
        ]

    for _ in range(500):  # bounded wait for two failed attempts
        if len(failures()) >= 2:
            break
        await asyncio.sleep(0.02)
    lines = failures()
    assert len(lines) >= 2, caplog.text  # tried again, and said why each time
    assert "stays pending" in lines[0] and "\n" not in lines[0]
    assert harness.runtime.is_busy("console", "1")  # the conversation task is alive
    rows = await harness.inbox_rows()
    assert [row.processed_at is None for row in rows] == [False, True]
    assert harness.since(mark) == []  # no apology, nothing half-sent

    limit.full = False  # space is back
    await harness.runtime.idle()
    replies = [m.text for m in harness.since(mark)]
    assert replies[0] == tr("policy.full_text")
    assert tr("core.internal_error") not in replies
    rows = await harness.inbox_rows()
    assert all(row.processed_at is not None and row.error is None for row in rows)
    assert unretrieved == []

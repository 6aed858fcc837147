"""Periodic housekeeping, run by the runtime (hourly) and by `python -m bot purge`."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime

from handlers.context import ShopConfig
from handlers.rights.erasure import purge_inactive
from storage import retention
from storage.repositories import UnitOfWork

log = logging.getLogger(__name__)

# Features add their periodic work here (e.g. re-announcing unacknowledged complaints).
Task = Callable[[UnitOfWork, ShopConfig, datetime], Awaitable[int]]
PERIODIC_TASKS: dict[str, Task] = {}


async def expire_drafts(uow: UnitOfWork, config: ShopConfig, now: datetime) -> int:
    """Abandoned drafts (and the personal data in them) are deleted at expiry."""
    return await uow.states.delete_expired(now)


async def purge_inbox_rows(uow: UnitOfWork, config: ShopConfig, now: datetime) -> int:
    """Processed inbox rows, once no platform would deliver their event again."""
    return await retention.purge_inbox(uow.session, now - config.inbox_keep)


async def purge_outbox_rows(uow: UnitOfWork, config: ShopConfig, now: datetime) -> int:
    """Delivered outbox rows no edit or redaction will need (see storage/retention.py)."""
    return await retention.purge_outbox(uow.session, now - config.outbox_keep)


PERIODIC_TASKS["expired_drafts"] = expire_drafts
PERIODIC_TASKS["retention_erased"] = purge_inactive
PERIODIC_TASKS["inbox_purged"] = purge_inbox_rows
PERIODIC_TASKS["outbox_purged"] = purge_outbox_rows


async def run_maintenance(uow: UnitOfWork, config: ShopConfig, now: datetime) -> dict[str, int]:
    """Run every periodic task in the caller's transaction; returns counts by task."""
    counts = {name: await task(uow, config, now) for name, task in PERIODIC_TASKS.items()}
    if any(counts.values()):
        log.info("maintenance: %s", counts)
    return counts

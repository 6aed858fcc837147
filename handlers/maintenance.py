"""Periodic housekeeping, run by the runtime (hourly) and by `python -m bot purge`: every
feature's periodic tasks (`Router.periodic`), in the composition's order."""

from __future__ import annotations

import logging
from datetime import datetime

from handlers.context import ShopConfig
from handlers.router import Composition
from storage.repositories import UnitOfWork

log = logging.getLogger(__name__)


async def expire_drafts(
    uow: UnitOfWork, app: Composition, config: ShopConfig, now: datetime
) -> int:
    """Abandoned drafts (and the personal data in them) are deleted at expiry."""
    return await uow.states.delete_expired(now)


async def purge_inbox_rows(
    uow: UnitOfWork, app: Composition, config: ShopConfig, now: datetime
) -> int:
    """Processed inbox rows, once no platform would deliver their event again."""
    return await uow.retention.purge_inbox(now - config.inbox_keep)


async def purge_outbox_rows(
    uow: UnitOfWork, app: Composition, config: ShopConfig, now: datetime
) -> int:
    """Delivered outbox rows no edit or redaction will need (see storage/retention.py)."""
    return await uow.retention.purge_outbox(now - config.outbox_keep)


async def run_maintenance(
    uow: UnitOfWork, app: Composition, config: ShopConfig, now: datetime
) -> dict[str, int]:
    """Run every periodic task in the caller's transaction; returns counts by task."""
    counts = {name: await task(uow, app, config, now) for name, task in app.periodic_tasks.items()}
    if any(counts.values()):
        log.info("maintenance: %s", counts)
    return counts

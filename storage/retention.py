"""Retention of the message pipeline's own rows (inbox and outbox).

- Inbox rows are needed, once processed, only to recognise a redelivered event (Telegram and
  Zalo redeliver within hours): processed rows older than the dedupe window are deleted.
- Outbox rows are needed, once sent, only to edit or redact the message through its platform
  id. Edits and redaction always go through tagged staff messages (order and ticket alerts,
  relayed messages), so untagged rows go after the keep period, and so do failed ones (they
  never reached a chat). A tagged row stays as long as its subject can still be erased —
  erasure edits every staff-chat copy and then clears the tag. Pending rows, rows still to be
  deleted from the chat, and rows a pending edit or reply refers to are never deleted.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import InboxEvent, OutboxMessage


class RetentionRepository:
    """Pipeline rows past their use (see the module docstring)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def purge_inbox(self, processed_before: datetime) -> int:
        return await purge_inbox(self.session, processed_before)

    async def purge_outbox(self, created_before: datetime) -> int:
        return await purge_outbox(self.session, created_before)


async def purge_inbox(session: AsyncSession, processed_before: datetime) -> int:
    result = await session.execute(
        delete(InboxEvent).where(
            InboxEvent.processed_at.is_not(None), InboxEvent.processed_at < processed_before
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def purge_outbox(session: AsyncSession, created_before: datetime) -> int:
    pending = select(OutboxMessage.payload).where(OutboxMessage.status == "pending").subquery()
    referenced = select(pending.c.payload["edit_of"].as_integer()).union(
        select(pending.c.payload["reply_to"].as_integer())
    )
    referenced_ids = {row for row in (await session.scalars(referenced)).all() if row}
    query = delete(OutboxMessage).where(
        OutboxMessage.created_at < created_before,
        OutboxMessage.delete_at.is_(None),
        or_(
            OutboxMessage.status == "failed",
            (OutboxMessage.status == "sent") & OutboxMessage.tag.is_(None),
        ),
    )
    if referenced_ids:
        query = query.where(OutboxMessage.id.not_in(referenced_ids))
    result = await session.execute(query)
    return int(getattr(result, "rowcount", 0) or 0)

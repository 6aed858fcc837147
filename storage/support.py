"""Support tables: tickets (complaints, returns, warranty requests) and talk-to-staff threads.

Personal data lives only in the columns marked PII; `erase_customer_tickets` clears exactly
those. Messages exchanged in a talk-to-staff thread are `RelayedMessage` rows (thread
"support:<id>"), the same store as order conversations.

Importing this module registers the tables on `storage.models.Base.metadata`; the schema
itself is created by the Alembic migration 0003.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, String, Text, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base
from storage.tags import Tag

# Ticket kinds and statuses.
COMPLAINT, RETURN, WARRANTY = "complaint", "return", "warranty"
KINDS = (COMPLAINT, RETURN, WARRANTY)
OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED)


class Ticket(Base):
    """A complaint or a return/warranty request, with its staff lifecycle.

    open → acknowledged → resolved (resolving an open ticket acknowledges it too).
    """

    __tablename__ = "support_tickets"
    __table_args__ = (Index("ix_support_tickets_status_urgent", "status", "urgent"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    kind: Mapped[str] = mapped_column(String(16))  # complaint | return | warranty
    category: Mapped[str | None] = mapped_column(String(16))  # complaints: leak|service|other
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL"), index=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    description: Mapped[str | None] = mapped_column(Text)  # PII (free text)
    photos: Mapped[list[str]] = mapped_column(JSON, default=list)  # PII: platform file refs
    status: Mapped[str] = mapped_column(String(16), default=OPEN)
    urgent: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))  # actor id
    acknowledged_by_name: Mapped[str | None] = mapped_column(String(100))  # staff display name
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    resolved_by_name: Mapped[str | None] = mapped_column(String(100))
    response: Mapped[str | None] = mapped_column(Text)  # PII (addressed to the customer)
    last_announced_at: Mapped[datetime | None]  # last (re-)announcement in the staff chat
    erased_at: Mapped[datetime | None]


class SupportThread(Base):
    """A talk-to-staff conversation outside any order; open while `closed_at` is None."""

    __tablename__ = "support_threads"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(64))  # actor id


def ticket_tag(ticket: Ticket) -> str:
    """Staff-chat reference of a ticket's messages (threading, edits, redaction)."""
    return str(Tag("ticket", ticket.id))


def thread_tag(thread: SupportThread) -> str:
    return str(Tag("support", thread.id))


class SupportRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ---- tickets ---------------------------------------------------------------------------
    async def add_ticket(self, ticket: Ticket) -> Ticket:
        self.session.add(ticket)
        await self.session.flush()
        return ticket

    async def code_exists(self, code: str) -> bool:
        tickets = select(func.count()).where(Ticket.code == code)
        threads = select(func.count()).where(SupportThread.code == code)
        return bool(await self.session.scalar(tickets)) or bool(await self.session.scalar(threads))

    async def ticket(self, ticket_id: int) -> Ticket | None:
        return await self.session.get(Ticket, ticket_id)

    async def ticket_by_code(self, code: str) -> Ticket | None:
        return await self.session.scalar(select(Ticket).where(Ticket.code == code))

    async def tickets_of(self, customer_id: int) -> Sequence[Ticket]:
        result = await self.session.scalars(
            select(Ticket).where(Ticket.customer_id == customer_id).order_by(Ticket.id.desc())
        )
        return result.all()

    async def unresolved(self, limit: int = 30) -> Sequence[Ticket]:
        result = await self.session.scalars(
            select(Ticket)
            .where(Ticket.status != RESOLVED, Ticket.erased_at.is_(None))
            .order_by(Ticket.urgent.desc(), Ticket.id)
            .limit(limit)
        )
        return result.all()

    async def unacknowledged(self) -> Sequence[Ticket]:
        result = await self.session.scalars(
            select(Ticket).where(Ticket.status == OPEN).order_by(Ticket.id)
        )
        return result.all()

    # ---- talk-to-staff threads -------------------------------------------------------------
    async def add_thread(self, thread: SupportThread) -> SupportThread:
        self.session.add(thread)
        await self.session.flush()
        return thread

    async def thread(self, thread_id: int) -> SupportThread | None:
        return await self.session.get(SupportThread, thread_id)

    async def thread_by_code(self, code: str) -> SupportThread | None:
        return await self.session.scalar(select(SupportThread).where(SupportThread.code == code))

    async def open_thread_of(self, customer_id: int) -> SupportThread | None:
        return await self.session.scalar(
            select(SupportThread)
            .where(SupportThread.customer_id == customer_id, SupportThread.closed_at.is_(None))
            .order_by(SupportThread.id.desc())
            .limit(1)
        )

    # ---- erasure ---------------------------------------------------------------------------
    async def erase_customer(self, customer_id: int, now: datetime) -> list[str]:
        """Clear the personal fields of the customer's tickets and detach (and close) their
        threads; returns the staff-chat tags of both, for redacting the staff-chat copies."""
        tickets = (
            await self.session.scalars(select(Ticket).where(Ticket.customer_id == customer_id))
        ).all()
        threads = (
            await self.session.scalars(
                select(SupportThread).where(SupportThread.customer_id == customer_id)
            )
        ).all()
        for ticket in tickets:
            ticket.description = None
            ticket.photos = []
            ticket.response = None
            ticket.customer_id = None
            ticket.erased_at = now
        for thread in threads:
            thread.customer_id = None
            if thread.closed_at is None:
                thread.closed_at, thread.closed_by = now, "erasure"
        await self.session.flush()
        return [ticket_tag(t) for t in tickets] + [thread_tag(t) for t in threads]

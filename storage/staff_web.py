"""Staff web page tables: single-use sign-in links and server-side sessions, plus the
read-only queries the page's lists and dashboard need.

Secrets are stored as SHA-256 digests only (`token_hash`): a copy of the database does not
let anyone sign in. Importing this module registers the tables; the schema is created by
the Alembic migration 0009.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column, selectinload

from storage.models import AuditEntry, Base, Disclosure, Order, RelayedMessage
from storage.support import RESOLVED, SupportThread, Ticket

ADMIN, STAFF_ROLE = "admin", "staff"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class StaffLoginToken(Base):
    """A single-use sign-in link: valid until `expires_at`, spent at `used_at`."""

    __tablename__ = "staff_login_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    staff_id: Mapped[str] = mapped_column(String(64))  # platform user id, or "cli"
    staff_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(8))  # admin | staff
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class StaffSession(Base):
    """A signed-in browser; revocable (`revoked_at`), ends at `expires_at`."""

    __tablename__ = "staff_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    login_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_login_tokens.id", ondelete="SET NULL")
    )
    staff_id: Mapped[str] = mapped_column(String(64))
    staff_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(8))
    language: Mapped[str] = mapped_column(String(8), default="vi")
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class StaffWebRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ---- sign-in links ---------------------------------------------------------------------
    async def add_login(
        self, secret: str, staff_id: str, name: str, role: str, now: datetime, ttl: timedelta
    ) -> StaffLoginToken:
        login = StaffLoginToken(
            token_hash=digest(secret),
            staff_id=staff_id[:64],
            staff_name=name[:100],
            role=role,
            created_at=now,
            expires_at=now + ttl,
        )
        self.session.add(login)
        await self.session.flush()
        return login

    async def login(self, secret: str) -> StaffLoginToken | None:
        return await self.session.scalar(
            select(StaffLoginToken).where(StaffLoginToken.token_hash == digest(secret))
        )

    async def spend_login(self, login: StaffLoginToken, now: datetime) -> bool:
        """Mark the link used; False when it was used meanwhile (two clicks at once)."""
        result = await self.session.execute(
            update(StaffLoginToken)
            .where(StaffLoginToken.id == login.id, StaffLoginToken.used_at.is_(None))
            .values(used_at=now)
        )
        return bool(getattr(result, "rowcount", 0))

    # ---- sessions --------------------------------------------------------------------------
    async def add_session(self, staff_session: StaffSession) -> StaffSession:
        self.session.add(staff_session)
        await self.session.flush()
        return staff_session

    async def live_session(self, secret: str, now: datetime) -> StaffSession | None:
        return await self.session.scalar(
            select(StaffSession).where(
                StaffSession.token_hash == digest(secret),
                StaffSession.revoked_at.is_(None),
                StaffSession.expires_at > now,
            )
        )

    async def session_by_id(self, session_id: int) -> StaffSession | None:
        return await self.session.get(StaffSession, session_id)

    async def live_sessions(self, now: datetime) -> Sequence[StaffSession]:
        result = await self.session.scalars(
            select(StaffSession)
            .where(StaffSession.revoked_at.is_(None), StaffSession.expires_at > now)
            .order_by(StaffSession.id.desc())
        )
        return result.all()

    async def revoke_of(self, staff_id: str, now: datetime) -> int:
        result = await self.session.execute(
            update(StaffSession)
            .where(StaffSession.staff_id == staff_id, StaffSession.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        return int(getattr(result, "rowcount", 0))

    # ---- what the page lists ---------------------------------------------------------------
    async def orders_between(
        self,
        status: str | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        payment: str | None = None,
    ) -> Sequence[Order]:
        query = select(Order).options(selectinload(Order.history)).where(Order.erased_at.is_(None))
        if status:
            query = query.where(Order.status == status)
        if payment:
            query = query.where(Order.payment_status == payment)
        if since is not None:
            query = query.where(Order.created_at >= since)
        if until is not None:
            query = query.where(Order.created_at < until)
        result = await self.session.scalars(query.order_by(Order.id.desc()).limit(limit))
        return result.all()

    async def order_created_times(self, since: datetime) -> Sequence[datetime]:
        result = await self.session.scalars(
            select(Order.created_at).where(Order.created_at >= since)
        )
        return result.all()

    async def thread(self, thread: str) -> Sequence[RelayedMessage]:
        result = await self.session.scalars(
            select(RelayedMessage)
            .where(RelayedMessage.thread == thread)
            .order_by(RelayedMessage.id)
        )
        return result.all()

    async def open_tickets(self) -> Sequence[Ticket]:
        result = await self.session.scalars(
            select(Ticket)
            .where(Ticket.status != RESOLVED, Ticket.erased_at.is_(None))
            .order_by(Ticket.urgent.desc(), Ticket.created_at)
        )
        return result.all()

    async def tickets_since(self, since: datetime) -> Sequence[Ticket]:
        result = await self.session.scalars(select(Ticket).where(Ticket.created_at >= since))
        return result.all()

    async def open_threads(self) -> Sequence[SupportThread]:
        result = await self.session.scalars(
            select(SupportThread)
            .where(SupportThread.closed_at.is_(None))
            .order_by(SupportThread.opened_at)
        )
        return result.all()

    async def first_answers(self, threads: Sequence[str]) -> dict[str, datetime]:
        """The time of the first staff message in each of `threads`."""
        if not threads:
            return {}
        rows = await self.session.execute(
            select(RelayedMessage.thread, RelayedMessage.at)
            .where(RelayedMessage.thread.in_(threads), RelayedMessage.direction == "out")
            .order_by(RelayedMessage.id)
        )
        first: dict[str, datetime] = {}
        for thread, at in rows.all():
            first.setdefault(thread, at)
        return first

    async def disclosures(self, limit: int = 200) -> Sequence[Disclosure]:
        result = await self.session.scalars(
            select(Disclosure).order_by(Disclosure.id.desc()).limit(limit)
        )
        return result.all()

    async def audit(self, limit: int = 300, actions: Sequence[str] = ()) -> Sequence[AuditEntry]:
        query = select(AuditEntry)
        if actions:
            query = query.where(AuditEntry.action.in_(actions))
        result = await self.session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit))
        return result.all()

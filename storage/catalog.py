"""Catalog and payment tables: the products the shop sells (seeded once from the TOML file,
then edited by staff in the chat) and the payment events of orders.

Products hold no personal data. A payment event links an order and (until erasure) its
customer, with the amount and the provider's transaction id — never the transfer note or the
payer's account, which may carry a name. The repositories are `UnitOfWork.catalog` and
`UnitOfWork.payments`; importing this module registers the tables on `Base.metadata` (the
schema itself is created by the Alembic migration 0008).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, UniqueConstraint, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from storage.models import Base

# Payment states of an order.
UNPAID, PAID, REFUNDED = "unpaid", "paid", "refunded"


class ProductRow(Base):
    """One work the shop sells. `code` never changes once created (orders refer to it)."""

    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    category: Mapped[str] = mapped_column(String(16))
    name_vi: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    details_vi: Mapped[str] = mapped_column(String(200), default="")  # material, size
    details_en: Mapped[str] = mapped_column(String(200), default="")
    price_vnd: Mapped[int] = mapped_column(Integer)
    image_url: Mapped[str | None] = mapped_column(String(500))  # http(s) photo address
    # A photo staff sent in the chat: "<channel>:<platform file reference>".
    photo_ref: Mapped[str | None] = mapped_column(String(300))
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)  # display order
    updated_at: Mapped[datetime]
    updated_by: Mapped[str | None] = mapped_column(String(64))  # actor id


class CatalogRevision(Base):
    """One row: bumped by every catalog change, so each process reloads only when needed;
    its existence also records that the TOML seed was applied (never again)."""

    __tablename__ = "catalog_revision"

    id: Mapped[int] = mapped_column(primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=1)
    seeded_at: Mapped[datetime]


class PaymentEvent(Base):
    """Something that happened to an order's payment: QR sent, paid (by staff or by a bank
    notification), amount mismatch, refunded. Unique per provider transaction id, so a
    notification delivered twice is applied once."""

    __tablename__ = "payment_events"
    __table_args__ = (UniqueConstraint("provider", "external_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL"), index=True
    )
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # qr_sent|paid|mismatch|refunded|unmatched
    amount_vnd: Mapped[int | None] = mapped_column(Integer)
    provider: Mapped[str] = mapped_column(String(16))  # "staff", "sepay", "casso", "bot"
    external_id: Mapped[str | None] = mapped_column(String(64))  # provider transaction id
    actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


# The catalog each database last loaded, with its revision: products change rarely and are
# read on every message, so a message costs one tiny query unless staff changed something.
_cache: weakref.WeakKeyDictionary[Any, tuple[int, Sequence[ProductRow]]] = (
    weakref.WeakKeyDictionary()
)


class CatalogRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def revision(self) -> int | None:
        """The current revision; None before the catalog was seeded."""
        return await self.session.scalar(select(CatalogRevision.revision).limit(1))

    async def seed(self, rows: Sequence[ProductRow], now: datetime) -> bool:
        """Insert the TOML products once per database; False when it was seeded before (or
        another transaction did it just now)."""
        if await self.revision() is not None:
            return False
        try:
            async with self.session.begin_nested():
                self.session.add(CatalogRevision(id=1, revision=1, seeded_at=now))
                self.session.add_all(rows)
        except IntegrityError:
            return False
        return True

    async def rows(self) -> Sequence[ProductRow]:
        """Every product (hidden ones too), in display order; cached per revision."""
        revision = await self.revision() or 0
        engine = self.session.bind
        cached = _cache.get(engine)
        if cached is not None and cached[0] == revision:
            return cached[1]
        result = await self.session.scalars(
            select(ProductRow).order_by(ProductRow.position, ProductRow.id)
        )
        rows = result.all()
        for row in rows:
            self.session.expunge(row)  # a detached snapshot, shared by later transactions
        _cache[engine] = (revision, rows)
        return rows

    async def by_code(self, code: str) -> ProductRow | None:
        return await self.session.scalar(select(ProductRow).where(ProductRow.code == code))

    async def add(self, row: ProductRow) -> None:
        if row.position == 0:
            highest = await self.session.scalar(select(func.max(ProductRow.position)))
            row.position = (highest or 0) + 1
        self.session.add(row)
        await self.session.flush()

    async def changed(self) -> None:
        """Record a change: every process reloads the catalog on its next message."""
        await self.session.execute(
            update(CatalogRevision).values(revision=CatalogRevision.revision + 1)
        )

    async def codes_with_prefix(self, prefix: str) -> Sequence[str]:
        result = await self.session.scalars(
            select(ProductRow.code).where(ProductRow.code.like(f"{prefix}-%"))
        )
        return result.all()


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, event: PaymentEvent) -> bool:
        """Store the event; False when its (provider, external id) was recorded before."""
        try:
            async with self.session.begin_nested():
                self.session.add(event)
        except IntegrityError:
            return False
        return True

    async def seen(self, provider: str, external_id: str) -> bool:
        found = await self.session.scalar(
            select(func.count()).where(
                PaymentEvent.provider == provider, PaymentEvent.external_id == external_id
            )
        )
        return bool(found)

    async def of_customer(self, customer_id: int) -> Sequence[PaymentEvent]:
        result = await self.session.scalars(
            select(PaymentEvent)
            .where(PaymentEvent.customer_id == customer_id)
            .order_by(PaymentEvent.id)
        )
        return result.all()

    async def detach_customer(self, customer_id: int) -> None:
        """Erasure: the events stay as anonymous bookkeeping, without the customer link."""
        await self.session.execute(
            update(PaymentEvent)
            .where(PaymentEvent.customer_id == customer_id)
            .values(customer_id=None)
        )
        await self.session.execute(
            update(PaymentEvent)
            .where(PaymentEvent.actor == f"customer:{customer_id}")
            .values(actor="customer")
        )

"""Database tables (SQLAlchemy 2 typed ORM).

Personal data lives only in the columns marked PII below; erasure (issue: data rights)
clears exactly those, and logs/audit rows carry ids only.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC).replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict: JSON}


class Customer(Base):
    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(primary_key=True)
    language: Mapped[str | None] = mapped_column(String(8))
    # Chosen with /lang: kept. Otherwise the language follows what the customer writes.
    language_chosen: Mapped[bool] = mapped_column(default=False, server_default=false())
    full_name: Mapped[str | None] = mapped_column(String(100))  # PII
    phone: Mapped[str | None] = mapped_column(String(32))  # PII, E.164
    address: Mapped[str | None] = mapped_column(String(300))  # PII
    email: Mapped[str | None] = mapped_column(String(320))  # PII
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    locked_at: Mapped[datetime | None]
    lock_reason: Mapped[str | None] = mapped_column(String(300))
    lock_notified: Mapped[bool] = mapped_column(Boolean, default=False)

    identities: Mapped[list[ChannelIdentity]] = relationship(
        back_populates="customer", cascade="all, delete-orphan", passive_deletes=True
    )


class ChannelIdentity(Base):
    """A platform account that belongs to a customer (one per channel and platform user)."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "platform_user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id", ondelete="CASCADE"))
    channel: Mapped[str] = mapped_column(String(16))
    platform_user_id: Mapped[str] = mapped_column(String(64))
    chat_id: Mapped[str] = mapped_column(String(64))
    unreachable_since: Mapped[datetime | None]
    created_at: Mapped[datetime]

    customer: Mapped[Customer] = relationship(back_populates="identities")


class Consent(Base):
    """A consent decision; withdrawing sets `withdrawn_at`, a new decision adds a row."""

    __tablename__ = "consents"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(32))
    policy_version: Mapped[str] = mapped_column(String(32))
    granted: Mapped[bool] = mapped_column(Boolean)
    decided_at: Mapped[datetime]
    withdrawn_at: Mapped[datetime | None]


class ConversationState(Base):
    """The active flow of one conversation: step and draft (PII while the flow runs)."""

    __tablename__ = "conversation_states"
    __table_args__ = (UniqueConstraint("channel", "chat_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    flow: Mapped[str] = mapped_column(String(32))
    step: Mapped[str] = mapped_column(String(32))
    data: Mapped[dict] = mapped_column(JSON, default=dict)  # PII (draft)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    updated_at: Mapped[datetime]


class InboxEvent(Base):
    """Every inbound, stored before the platform is acknowledged; unique per channel event.

    `payload` (PII) is emptied once processed: only the dedupe key is needed afterwards.
    """

    __tablename__ = "inbox"
    __table_args__ = (
        UniqueConstraint("channel", "dedupe_key"),
        Index("ix_inbox_pending", "processed_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    dedupe_key: Mapped[str] = mapped_column(String(128))
    chat_id: Mapped[str] = mapped_column(String(64))
    platform_user_id: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(200))


class OutboxMessage(Base):
    """A message committed together with the state change that produced it.

    `payload` (PII) is emptied once sent; the platform id stays for edits and redaction.
    `send_started_at` is set (and committed) just before the platform call and cleared when
    its outcome is recorded: a pending row that still has it was caught mid-send by a crash.
    """

    __tablename__ = "outbox"
    __table_args__ = (Index("ix_outbox_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    tag: Mapped[str | None] = mapped_column(String(64), index=True)
    payload: Mapped[dict] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|sent|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    last_error: Mapped[str | None] = mapped_column(String(200))
    platform_message_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    delete_at: Mapped[datetime | None] = mapped_column(index=True)
    send_started_at: Mapped[datetime | None]


class AuditEntry(Base):
    """Who did what to which record: ids and action names only, never personal data."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))  # "customer:12", "staff:telegram:42", "system"
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(200))


class Order(Base):
    """A confirmed order. After erasure only the anonymous stub (code, status, dates) stays."""

    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), index=True)
    channel: Mapped[str] = mapped_column(String(16))
    language: Mapped[str] = mapped_column(String(8))
    full_name: Mapped[str | None] = mapped_column(String(100))  # PII
    phone: Mapped[str | None] = mapped_column(String(32))  # PII
    address: Mapped[str | None] = mapped_column(String(300))  # PII
    email: Mapped[str | None] = mapped_column(String(320))  # PII
    request_text: Mapped[str | None] = mapped_column(Text)  # PII (free text)
    photos: Mapped[list[str]] = mapped_column(JSON, default=list)  # platform file references
    product_code: Mapped[str | None] = mapped_column(String(32))
    product_name: Mapped[str | None] = mapped_column(String(200))
    price_vnd: Mapped[int | None]  # unit price when ordered (a snapshot: the catalog may change)
    quantity: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    shipping_fee_vnd: Mapped[int | None]
    total_vnd: Mapped[int | None]  # what the customer pays; None until staff price custom work
    payment_status: Mapped[str] = mapped_column(
        String(16), default="unpaid", server_default="unpaid"
    )
    paid_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(64))  # staff platform id
    cancel_reason: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    handed_to_carrier_at: Mapped[datetime | None]
    erased_at: Mapped[datetime | None]

    history: Mapped[list[OrderStatusChange]] = relationship(
        back_populates="order",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="OrderStatusChange.id",
    )


class OrderStatusChange(Base):
    __tablename__ = "order_status_history"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    status: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))  # "customer:12" / "staff:telegram:42"
    actor_name: Mapped[str | None] = mapped_column(String(100))  # staff display name
    note: Mapped[str | None] = mapped_column(String(300))  # e.g. cancel reason (may be PII)

    order: Mapped[Order] = relationship(back_populates="history")


class RelayedMessage(Base):
    """A message relayed between a customer and the staff chat (orders, talk to staff)."""

    __tablename__ = "relayed_messages"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="CASCADE"), index=True
    )
    thread: Mapped[str] = mapped_column(String(64), index=True)  # "order:12", "support:3"
    direction: Mapped[str] = mapped_column(String(8))  # "in" (customer → staff) | "out"
    text: Mapped[str] = mapped_column(Text)  # PII
    staff_actor: Mapped[str | None] = mapped_column(String(64))
    at: Mapped[datetime]


class Disclosure(Base):
    """Personal data shared outside the shop: carrier hand-offs and legal requests."""

    __tablename__ = "disclosures"

    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    recipient_kind: Mapped[str] = mapped_column(String(16))  # "carrier" | "authority"
    recipient_name: Mapped[str] = mapped_column(String(200))
    fields: Mapped[list[str]] = mapped_column(JSON)
    reason: Mapped[str | None] = mapped_column(String(300))
    staff_actor: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]


class ZaloTokenPair(Base):
    """The Zalo OA token pair (single row). The refresh token is single-use, so a rotated
    pair is committed here before it is used."""

    __tablename__ = "zalo_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    access_token: Mapped[str] = mapped_column(Text)
    refresh_token: Mapped[str] = mapped_column(Text)
    access_expires_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class StoredSecret(Base):
    """Secrets the bot generates once and must keep across restarts (e.g. the webhook secret
    token registered with Telegram: a new one per start would reject every real update)."""

    __tablename__ = "stored_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]

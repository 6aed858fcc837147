"""Repositories and the unit of work: one database transaction per inbound message."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    ColumnElement,
    Insert,
    Select,
    Table,
    bindparam,
    delete,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload, selectinload

from storage.catalog import CatalogRepository, PaymentRepository
from storage.db import is_transient_db_error
from storage.models import (
    AuditEntry,
    ChannelIdentity,
    Consent,
    ConversationState,
    Customer,
    Disclosure,
    InboxEvent,
    Order,
    OrderStatusChange,
    OutboxMessage,
    RelayedMessage,
    ZaloTokenPair,
)
from storage.retention import RetentionRepository
from storage.staff_web import StaffWebRepository
from storage.support import SupportRepository, SupportThread, Ticket

# ---- customer lookup: exactly one, several, or nobody --------------------------------------


@dataclass(frozen=True)
class OneCustomer:
    customer: Customer


@dataclass(frozen=True)
class SeveralCustomers:
    """More than one customer fits: acting on any one of them could hit the wrong person."""

    count: int


@dataclass(frozen=True)
class NoCustomer:
    pass


CustomerLookup = OneCustomer | SeveralCustomers | NoCustomer


class CustomerRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        # Identities loaded ahead for a batch of inbound messages, each handed out once.
        self._prefetched: dict[tuple[str, str], ChannelIdentity | None] = {}

    async def get(self, customer_id: int) -> Customer | None:
        return await self.session.get(Customer, customer_id)

    async def identity(self, channel: str, platform_user_id: str) -> ChannelIdentity | None:
        """The identity with its customer loaded (`get` then needs no query)."""
        key = (channel, platform_user_id)
        if key in self._prefetched:
            return self._prefetched.pop(key)
        return await self.session.scalar(
            select(ChannelIdentity)
            .options(joinedload(ChannelIdentity.customer))
            .where(
                ChannelIdentity.channel == channel,
                ChannelIdentity.platform_user_id == platform_user_id,
            )
        )

    def forget_prefetched(self) -> None:
        self._prefetched = {}

    async def prefetch_identities(self, keys: Sequence[tuple[str, str]]) -> None:
        """Load these (channel, platform user) identities and their customers in one query;
        the next `identity()` call for each key is answered from it, once."""
        if not keys:
            return
        rows = await self.session.scalars(
            select(ChannelIdentity)
            .options(joinedload(ChannelIdentity.customer))
            .where(tuple_(ChannelIdentity.channel, ChannelIdentity.platform_user_id).in_(keys))
        )
        found = {(row.channel, row.platform_user_id): row for row in rows}
        self._prefetched = {key: found.get(key) for key in keys}

    async def create(
        self, channel: str, platform_user_id: str, chat_id: str, now: datetime
    ) -> Customer:
        customer = Customer(created_at=now, last_seen_at=now, lock_notified=False)
        customer.identities.append(
            ChannelIdentity(
                channel=channel, platform_user_id=platform_user_id, chat_id=chat_id, created_at=now
            )
        )
        self.session.add(customer)
        await self.session.flush()
        return customer

    async def lookup_phone(self, phone_e164: str) -> CustomerLookup:
        """The customer(s) with this phone in their profile or on one of their orders."""
        ids = set(
            await self.session.scalars(select(Customer.id).where(Customer.phone == phone_e164))
        )
        ids.update(
            i
            for i in await self.session.scalars(
                select(Order.customer_id).where(
                    Order.phone == phone_e164, Order.customer_id.is_not(None)
                )
            )
            if i is not None
        )
        if len(ids) > 1:
            return SeveralCustomers(len(ids))
        return await self.lookup_id(next(iter(ids), None))

    async def lookup_code(self, code: str) -> CustomerLookup:
        """The customer of the order, ticket or talk-to-staff thread with this reference code
        (codes are canonical, e.g. "VAV-7K3Q9", "KN-M4TXP", "TK-2B3C4")."""
        for column, owner in (
            (Order.code, Order.customer_id),
            (Ticket.code, Ticket.customer_id),
            (SupportThread.code, SupportThread.customer_id),
        ):
            customer_id = await self.session.scalar(select(owner).where(column == code))
            if customer_id is not None:
                return await self.lookup_id(customer_id)
        return NoCustomer()

    async def lookup_id(self, customer_id: int | None) -> CustomerLookup:
        customer = await self.get(customer_id) if customer_id is not None else None
        return OneCustomer(customer) if customer is not None else NoCustomer()

    async def mark_unreachable(self, channel: str, chat_id: str, now: datetime) -> None:
        """The platform refuses every message to this chat (e.g. the bot was blocked)."""
        await self.session.execute(
            update(ChannelIdentity)
            .where(ChannelIdentity.channel == channel, ChannelIdentity.chat_id == chat_id)
            .values(unreachable_since=now)
        )

    async def inactive_since(self, cutoff: datetime) -> Sequence[Customer]:
        result = await self.session.scalars(
            select(Customer).where(Customer.last_seen_at < cutoff).order_by(Customer.id)
        )
        return result.all()

    async def identities_of(self, customer_id: int) -> Sequence[ChannelIdentity]:
        result = await self.session.scalars(
            select(ChannelIdentity)
            .where(ChannelIdentity.customer_id == customer_id)
            .order_by(ChannelIdentity.id)
        )
        return result.all()


class ConsentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def latest(self, customer_id: int, purpose: str) -> Consent | None:
        return await self.session.scalar(
            select(Consent)
            .where(Consent.customer_id == customer_id, Consent.purpose == purpose)
            .order_by(Consent.id.desc())
            .limit(1)
        )

    async def record(
        self, customer_id: int, purpose: str, policy_version: str, granted: bool, now: datetime
    ) -> Consent:
        consent = Consent(
            customer_id=customer_id,
            purpose=purpose,
            policy_version=policy_version,
            granted=granted,
            decided_at=now,
        )
        self.session.add(consent)
        return consent

    async def of(self, customer_id: int) -> Sequence[Consent]:
        result = await self.session.scalars(
            select(Consent).where(Consent.customer_id == customer_id).order_by(Consent.id)
        )
        return result.all()


class StateRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._prefetched: dict[tuple[str, str], ConversationState | None] = {}

    def forget_prefetched(self) -> None:
        self._prefetched = {}

    async def prefetch(self, keys: Sequence[tuple[str, str]]) -> None:
        """Load the states of these conversations in one query; the next `get()` of each is
        answered from it, once."""
        if not keys:
            return
        rows = await self.session.scalars(
            select(ConversationState).where(
                tuple_(ConversationState.channel, ConversationState.chat_id).in_(keys)
            )
        )
        found = {(row.channel, row.chat_id): row for row in rows}
        self._prefetched = {key: found.get(key) for key in keys}

    async def get(self, channel: str, chat_id: str) -> ConversationState | None:
        if (channel, chat_id) in self._prefetched:
            return self._prefetched.pop((channel, chat_id))
        return await self.session.scalar(
            select(ConversationState).where(
                ConversationState.channel == channel, ConversationState.chat_id == chat_id
            )
        )

    async def save(self, state: ConversationState) -> None:
        self.session.add(state)

    async def remove(self, state: ConversationState, *, flush: bool = False) -> None:
        """`flush=True` deletes the row at once, so that a new state of the same conversation
        (unique per chat) can be added in this transaction."""
        await self.session.delete(state)
        if flush:
            await self.session.flush()

    async def delete_expired(self, now: datetime) -> int:
        result = await self.session.execute(
            delete(ConversationState).where(ConversationState.expires_at <= now)
        )
        return int(getattr(result, "rowcount", 0) or 0)


class OutboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        channel: str,
        chat_id: str,
        payload: dict[str, Any],
        now: datetime,
        customer_id: int | None = None,
        tag: str | None = None,
    ) -> OutboxMessage:
        row = OutboxMessage(
            channel=channel,
            chat_id=chat_id,
            payload=payload,
            customer_id=customer_id,
            tag=tag,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        # No flush: the row is inserted with the transaction's next flush, together with the
        # other rows of the message (ids in the order they were added).
        self.session.add(row)
        return row

    async def get(self, outbox_id: int) -> OutboxMessage | None:
        return await self.session.get(OutboxMessage, outbox_id)

    async def first_with_tag(self, tag: str) -> OutboxMessage | None:
        """The first message sent under a tag (e.g. an order's staff alert)."""
        return await self.session.scalar(
            select(OutboxMessage)
            .where(OutboxMessage.tag == tag)
            .order_by(OutboxMessage.id)
            .limit(1)
        )

    async def fail_pending(self, channel: str, chat_id: str, reason: str, but: int) -> None:
        """Fail every pending row of a chat that refuses all messages (except row `but`, the
        one being handled); their payloads go with them."""
        await self.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.chat_id == chat_id,
                OutboxMessage.status == "pending",
                OutboxMessage.id != but,
            )
            .values(status="failed", last_error=reason, payload={})
        )

    async def queue_heads(self) -> Sequence[OutboxMessage]:
        """The oldest pending row of every chat: the one its delivery queue waits on."""
        heads = (
            select(func.min(OutboxMessage.id))
            .where(OutboxMessage.status == "pending")
            .group_by(OutboxMessage.channel, OutboxMessage.chat_id)
        )
        result = await self.session.scalars(
            select(OutboxMessage).where(OutboxMessage.id.in_(heads)).order_by(OutboxMessage.id)
        )
        return result.all()

    async def queue(self, channel: str, chat_id: str, limit: int) -> Sequence[OutboxMessage]:
        """One chat's pending rows, oldest first."""
        result = await self.session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.chat_id == chat_id,
                OutboxMessage.status == "pending",
            )
            .order_by(OutboxMessage.id)
            .limit(limit)
        )
        return result.all()

    async def by_ids(self, ids: Sequence[int]) -> Sequence[OutboxMessage]:
        result = await self.session.scalars(
            select(OutboxMessage).where(OutboxMessage.id.in_(ids)).order_by(OutboxMessage.id)
        )
        return result.all()

    async def mark_sent(
        self,
        ids: Sequence[int],
        now: datetime,
        platform_message_id: str | None,
        delete_at: datetime | None,
    ) -> None:
        """Delivered: keep only the platform id (the text may hold personal data)."""
        values: dict[str, Any] = {
            "status": "sent",
            "sent_at": now,
            "platform_message_id": platform_message_id,
            "payload": {},
            "attempts": OutboxMessage.attempts + 1,
            "send_started_at": None,
        }
        if delete_at is not None:
            values["delete_at"] = delete_at
        await self.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids))
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    async def interrupted(self) -> Sequence[OutboxMessage]:
        """Pending rows whose send had started when the process stopped (a crash)."""
        result = await self.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == "pending", OutboxMessage.send_started_at.is_not(None))
            .order_by(OutboxMessage.id)
        )
        return result.all()

    async def scheduled_deletions(self) -> Sequence[OutboxMessage]:
        result = await self.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.delete_at.is_not(None))
            .order_by(OutboxMessage.delete_at)
        )
        return result.all()

    async def by_platform_id(
        self, channel: str, chat_id: str, message_id: str
    ) -> OutboxMessage | None:
        # A message sent in parts is stored as "id1,id2,…": any part identifies it.
        return await self.session.scalar(
            select(OutboxMessage)
            .where(
                OutboxMessage.channel == channel,
                OutboxMessage.chat_id == chat_id,
                or_(
                    OutboxMessage.platform_message_id == message_id,
                    OutboxMessage.platform_message_id.like(f"{message_id},%"),
                    OutboxMessage.platform_message_id.like(f"%,{message_id}"),
                    OutboxMessage.platform_message_id.like(f"%,{message_id},%"),
                ),
            )
            .order_by(OutboxMessage.id)
            .limit(1)
        )


class InboxRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def next_pending(self, channel: str, chat_id: str) -> InboxEvent | None:
        return await self.session.scalar(
            select(InboxEvent)
            .where(
                InboxEvent.channel == channel,
                InboxEvent.chat_id == chat_id,
                InboxEvent.processed_at.is_(None),
            )
            .order_by(InboxEvent.id)
            .limit(1)
        )

    async def pending_conversations(self) -> list[tuple[str, str]]:
        return list(await self.pending_counts())

    async def pending_counts(self) -> dict[tuple[str, str], int]:
        """Unprocessed rows per conversation, oldest conversation first."""
        result = await self.session.execute(
            select(InboxEvent.channel, InboxEvent.chat_id, func.count())
            .where(InboxEvent.processed_at.is_(None))
            .group_by(InboxEvent.channel, InboxEvent.chat_id)
            .order_by(func.min(InboxEvent.id))
        )
        return {(channel, chat_id): count for channel, chat_id, count in result.all()}

    async def heads(self, keys: Sequence[tuple[str, str]]) -> list[PendingHead]:
        """The oldest unprocessed row of each of these conversations, with how many rows the
        conversation has pending (itself included), in one query."""
        if not keys:
            return []
        pending = (
            select(
                InboxEvent.id,
                InboxEvent.channel,
                InboxEvent.chat_id,
                InboxEvent.payload,
                InboxEvent.received_at,
                func.row_number()
                .over(partition_by=(InboxEvent.channel, InboxEvent.chat_id), order_by=InboxEvent.id)
                .label("position"),
                func.count()
                .over(partition_by=(InboxEvent.channel, InboxEvent.chat_id))
                .label("pending"),
            )
            .where(
                InboxEvent.processed_at.is_(None),
                tuple_(InboxEvent.channel, InboxEvent.chat_id).in_(keys),
            )
            .subquery()
        )
        result = await self.session.execute(
            select(
                pending.c.id,
                pending.c.channel,
                pending.c.chat_id,
                pending.c.payload,
                pending.c.pending,
                pending.c.received_at,
            )
            .where(pending.c.position == 1)
            .order_by(pending.c.id)
        )
        return [PendingHead(*row) for row in result.all()]

    async def mark_processed_many(
        self, marks: Sequence[tuple[int, str | None]], now: datetime
    ) -> None:
        """Mark many rows processed in one executemany (`(id, error)` pairs)."""
        if marks:
            await self.session.execute(
                _MARK_PROCESSED, [{"b_id": i, "b_error": e, "b_now": now} for i, e in marks]
            )

    async def mark_processed(self, event_id: int, now: datetime, error: str | None = None) -> None:
        # The payload holds the customer's words: keep only what deduplication needs.
        await self.session.execute(
            update(InboxEvent)
            .where(InboxEvent.id == event_id)
            .values(processed_at=now, payload={}, error=error)
        )


@dataclass(frozen=True)
class PendingHead:
    """A conversation's oldest unprocessed inbound."""

    id: int
    channel: str
    chat_id: str
    payload: dict[str, Any]
    pending: int  # unprocessed rows of the conversation, this one included
    received_at: datetime


_inbox = cast(Table, InboxEvent.__table__)
# The payload holds the customer's words: keep only what deduplication needs.
_MARK_PROCESSED = (
    update(_inbox)
    .where(_inbox.c.id == bindparam("b_id"))
    .values(processed_at=bindparam("b_now"), payload={}, error=bindparam("b_error"))
)


class AuditRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        now: datetime,
        actor: str,
        action: str,
        subject: str | None = None,
        detail: str | None = None,
    ) -> None:
        self.session.add(
            AuditEntry(at=now, actor=actor, action=action, subject=subject, detail=detail)
        )


class OrderRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def _query(self) -> Select[Order]:
        return select(Order).options(selectinload(Order.history))

    async def add(self, order: Order) -> Order:
        self.session.add(order)
        await self.session.flush()
        return order

    async def by_id(self, order_id: int) -> Order | None:
        return await self.session.scalar(self._query().where(Order.id == order_id))

    async def by_code(self, code: str) -> Order | None:
        return await self.session.scalar(self._query().where(Order.code == code))

    async def code_exists(self, code: str) -> bool:
        return bool(await self.session.scalar(select(func.count()).where(Order.code == code)))

    async def of_customer(self, customer_id: int) -> Sequence[Order]:
        result = await self.session.scalars(
            self._query().where(Order.customer_id == customer_id).order_by(Order.id.desc())
        )
        return result.all()

    async def latest_open(self, customer_id: int, open_statuses: Sequence[str]) -> Order | None:
        return await self.session.scalar(
            self._query()
            .where(Order.customer_id == customer_id, Order.status.in_(open_statuses))
            .order_by(Order.id.desc())
            .limit(1)
        )

    async def listing(self, status: str | None = None, limit: int = 20) -> Sequence[Order]:
        query = self._query().where(Order.erased_at.is_(None))
        if status:
            query = query.where(Order.status == status)
        result = await self.session.scalars(query.order_by(Order.id.desc()).limit(limit))
        return result.all()

    async def by_phone_part(self, phone_digits: str, limit: int = 20) -> Sequence[Order]:
        result = await self.session.scalars(
            self._query()
            .where(Order.phone.contains(phone_digits))
            .order_by(Order.id.desc())
            .limit(limit)
        )
        return result.all()

    async def latest_phone(self, customer_id: int) -> str | None:
        """The phone number of the customer's newest order that has one."""
        return await self.session.scalar(
            select(Order.phone)
            .where(Order.customer_id == customer_id, Order.phone.is_not(None))
            .order_by(Order.id.desc())
            .limit(1)
        )

    async def all_for_export(self) -> Sequence[Order]:
        result = await self.session.scalars(self._query().order_by(Order.id))
        return result.all()


class RelayedMessageRepository:
    """Messages relayed between customers and the staff chat (orders, talk to staff)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(
        self,
        customer_id: int | None,
        thread: str,
        direction: str,
        text: str,
        now: datetime,
        staff_actor: str | None = None,
    ) -> None:
        self.session.add(
            RelayedMessage(
                customer_id=customer_id,
                thread=thread,
                direction=direction,
                text=text,
                staff_actor=staff_actor,
                at=now,
            )
        )

    async def of_customer(self, customer_id: int) -> Sequence[RelayedMessage]:
        result = await self.session.scalars(
            select(RelayedMessage)
            .where(RelayedMessage.customer_id == customer_id)
            .order_by(RelayedMessage.id)
        )
        return result.all()


class DisclosureRepository:
    """What was shared outside the shop, with whom and why (shown to the customer)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, disclosure: Disclosure) -> None:
        self.session.add(disclosure)

    async def of_customer(self, customer_id: int) -> Sequence[Disclosure]:
        result = await self.session.scalars(
            select(Disclosure).where(Disclosure.customer_id == customer_id).order_by(Disclosure.id)
        )
        return result.all()


class ErasureRepository:
    """The bulk statements of erasing one customer. `handlers/rights/erasure.py` decides what
    goes and in which order; this is how, in the caller's transaction."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def clear_status_notes(self, order_id: int) -> None:
        """Status-change notes may quote the customer (e.g. a cancel reason)."""
        await self.session.execute(
            update(OrderStatusChange)
            .where(OrderStatusChange.order_id == order_id)
            .values(note=None)
        )

    async def detach_disclosures(self, customer_id: int) -> None:
        """The record that something was disclosed stays (anonymous); the reason goes."""
        await self.session.execute(
            update(Disclosure)
            .where(Disclosure.customer_id == customer_id)
            .values(customer_id=None, reason=None)
        )

    async def delete_relayed(self, customer_id: int) -> None:
        await self.session.execute(
            delete(RelayedMessage).where(RelayedMessage.customer_id == customer_id)
        )

    async def sent_copies(self, tags: Sequence[str]) -> Sequence[OutboxMessage]:
        """Delivered messages under these tags: the staff-chat copies to redact."""
        result = await self.session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.tag.in_(tags),
                OutboxMessage.status == "sent",
                OutboxMessage.platform_message_id.is_not(None),
            )
            .order_by(OutboxMessage.id)
        )
        return result.all()

    async def forget_conversations(
        self, customer_id: int, identities: Sequence[ChannelIdentity], now: datetime
    ) -> None:
        """Drafts, inbox and outbox rows of the customer's chats (they carry their words or
        are addressed to them)."""
        chats = [(i.channel, i.chat_id) for i in identities]
        users = [(i.channel, i.platform_user_id) for i in identities]
        if not chats:
            return
        await self.session.execute(
            delete(ConversationState).where(
                or_(
                    ConversationState.customer_id == customer_id,
                    *[
                        (ConversationState.channel == c) & (ConversationState.chat_id == chat)
                        for c, chat in chats
                    ],
                )
            )
        )
        # Inbox rows stay as bare dedupe keys (a redelivered event must not be processed
        # again, e.g. create a new customer from the /delete confirmation); their content and
        # sender go, and anything not yet processed is dropped with them.
        await self.session.execute(
            update(InboxEvent)
            .where(
                or_(
                    *[
                        (InboxEvent.channel == c) & (InboxEvent.platform_user_id == u)
                        for c, u in users
                    ],
                    *[
                        (InboxEvent.channel == c) & (InboxEvent.chat_id == chat)
                        for c, chat in chats
                    ],
                )
            )
            .values(
                payload={},
                chat_id="",
                platform_user_id="",
                processed_at=func.coalesce(InboxEvent.processed_at, now),
            )
        )
        their_chats: ColumnElement[bool] = or_(
            *[(OutboxMessage.channel == c) & (OutboxMessage.chat_id == chat) for c, chat in chats]
        )
        # Messages that were to delete themselves (/mydata) must still disappear: delete now.
        await self.session.execute(
            update(OutboxMessage)
            .where(their_chats, OutboxMessage.delete_at.is_not(None))
            .values(delete_at=now, payload={}, customer_id=None)
        )
        await self.session.execute(
            delete(OutboxMessage).where(their_chats, OutboxMessage.delete_at.is_(None))
        )

    async def drop_unsent_about(self, customer_id: int) -> None:
        """Undelivered staff messages about the customer still hold their data."""
        await self.session.execute(
            delete(OutboxMessage).where(
                OutboxMessage.customer_id == customer_id, OutboxMessage.status != "sent"
            )
        )

    async def delete_customer(self, customer: Customer) -> None:
        """The customer row; consents and channel identities cascade."""
        await self.session.delete(customer)
        await self.session.flush()


class ZaloTokenRepository:
    """The Zalo OA token pair (one row)."""

    ROW_ID = 1

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self) -> ZaloTokenPair | None:
        return await self.session.get(ZaloTokenPair, self.ROW_ID)

    async def put(
        self, access_token: str, refresh_token: str, access_expires_at: datetime, now: datetime
    ) -> None:
        row = await self.get()
        if row is None:
            row = ZaloTokenPair(id=self.ROW_ID)
            self.session.add(row)
        row.access_token = access_token
        row.refresh_token = refresh_token
        row.access_expires_at = access_expires_at
        row.updated_at = now


class UnitOfWork:
    """One transaction; handlers read and write through its repositories, then commit once."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._sessions()
        self.customers = CustomerRepository(self.session)
        self.consents = ConsentRepository(self.session)
        self.states = StateRepository(self.session)
        self.inbox = InboxRepository(self.session)
        self.outbox = OutboxRepository(self.session)
        self.audit = AuditRepository(self.session)
        self.orders = OrderRepository(self.session)
        self.relayed = RelayedMessageRepository(self.session)
        self.disclosures = DisclosureRepository(self.session)
        self.support = SupportRepository(self.session)
        self.catalog = CatalogRepository(self.session)
        self.payments = PaymentRepository(self.session)
        self.erasure = ErasureRepository(self.session)
        self.zalo_tokens = ZaloTokenRepository(self.session)
        self.retention = RetentionRepository(self.session)
        self.staff_web = StaffWebRepository(self.session)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.session.rollback()  # no-op after commit; undoes anything left uncommitted
        await self.session.close()

    async def commit(self) -> None:
        await self.session.commit()

    @contextlib.asynccontextmanager
    async def savepoint(self, enabled: bool = True) -> AsyncIterator[None]:
        """`async with uow.savepoint():` — a failure inside undoes only what was done inside
        (one message of a batch), and the transaction goes on. A database error is left to
        the caller, who must roll back the whole transaction: after e.g. SQLITE_FULL SQLite
        may have rolled it back already, and the savepoint is gone. `enabled=False`: no
        savepoint (the caller rolls back everything on failure)."""
        if not enabled:
            yield
            return
        nested = await self.session.begin_nested()
        try:
            yield
            await nested.commit()
        except Exception as exc:
            if not is_transient_db_error(exc):
                await nested.rollback()
            raise

    async def rollback(self) -> None:
        await self.session.rollback()
        self.customers.forget_prefetched()
        self.states.forget_prefetched()

    @property
    def database(self) -> object:
        """The database this unit works on (its engine), e.g. to key state that a running
        bot keeps in memory per database."""
        return self.session.bind


async def store_inbound(
    sessions: async_sessionmaker[AsyncSession],
    channel: str,
    dedupe_key: str,
    chat_id: str,
    platform_user_id: str,
    payload: dict[str, Any],
    now: datetime,
) -> int | None:
    """Insert into the inbox in its own transaction; None when the event was seen before."""
    async with sessions() as session:
        event = InboxEvent(
            channel=channel,
            dedupe_key=dedupe_key,
            chat_id=chat_id,
            platform_user_id=platform_user_id,
            payload=payload,
            received_at=now,
        )
        session.add(event)
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            return None
        return event.id


@dataclass(frozen=True)
class NewInbound:
    channel: str
    dedupe_key: str
    chat_id: str
    platform_user_id: str
    payload: dict[str, Any]


@functools.cache
def _insert_inbox(dialect: str) -> Insert:
    module = postgresql if dialect == "postgresql" else sqlite
    return (
        module.insert(InboxEvent.__table__)
        .on_conflict_do_nothing(index_elements=["channel", "dedupe_key"])
        .returning(InboxEvent.id, InboxEvent.channel, InboxEvent.dedupe_key)
    )


async def store_inbound_batch(
    sessions: async_sessionmaker[AsyncSession], events: Sequence[NewInbound], now: datetime
) -> list[int | None]:
    """Insert many inbound events in one transaction (group commit); for each, its inbox id,
    or None when the event was seen before (also earlier in the same batch)."""
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    for event in events:
        if (event.channel, event.dedupe_key) in seen:
            continue
        seen.add((event.channel, event.dedupe_key))
        rows.append({**event.__dict__, "received_at": now})
    async with sessions() as session:
        if rows:
            dialect = session.get_bind().dialect.name
            result = await session.execute(_insert_inbox(dialect), rows)
            stored = {(channel, key): row_id for row_id, channel, key in result.all()}
        else:
            stored = {}
        await session.commit()
    ids: list[int | None] = []
    for event in events:
        # Each stored id is handed out once: a second copy in the batch is a duplicate.
        ids.append(stored.pop((event.channel, event.dedupe_key), None))
    return ids

"""Complete erasure of one customer — the single implementation used by `/delete`, by the
retention purge and by nothing else.

In one transaction: open orders are cancelled (staff told), the personal fields and free text
of orders, tickets and disclosures are cleared (an anonymous stub stays for the shop's
counts), relayed messages, drafts, inbox and outbox rows holding their data are deleted, the
copies in the staff chat are edited to a redaction notice through the outbox, and finally the
customer row goes (consents and channel identities cascade). The caller asks the runtime for
a WAL checkpoint after the commit (`ctx.after_commit.append("checkpoint")`).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update

from handlers.context import ShopConfig, staff_notice
from handlers.i18n import t
from handlers.messages import Outbound
from handlers.orders import codes
from handlers.orders.service import CANCELLED, OPEN_STATUSES, order_tag
from handlers.router import Composition, Eraser
from storage.models import (
    ChannelIdentity,
    ConversationState,
    Customer,
    Disclosure,
    InboxEvent,
    Order,
    OrderStatusChange,
    OutboxMessage,
    RelayedMessage,
)
from storage.repositories import UnitOfWork


async def erase_customer(
    uow: UnitOfWork,
    erasers: Sequence[Eraser],
    config: ShopConfig,
    customer: Customer,
    now: datetime,
    actor: str,
) -> str:
    """Erase `customer` inside the caller's transaction; returns the erasure reference.
    `erasers` are the other features' hooks for their own rows (e.g. complaint tickets)."""
    session = uow.session
    reference = codes.new_code("DEL")
    identities = (
        await session.scalars(
            select(ChannelIdentity).where(ChannelIdentity.customer_id == customer.id)
        )
    ).all()
    staff_tags: list[str] = []

    orders = (await session.scalars(select(Order).where(Order.customer_id == customer.id))).all()
    for order in orders:
        staff_tags.append(order_tag(order))
        if order.status in OPEN_STATUSES:
            order.status = CANCELLED
            session.add(OrderStatusChange(order_id=order.id, status=CANCELLED, at=now, actor=actor))
            await staff_notice(
                uow, config, now, "rights.staff.order_cancelled_erased", code=order.code
            )
        order.full_name = order.phone = order.address = order.email = None
        order.request_text = None
        order.photos = []
        order.cancel_reason = None
        order.customer_id = None
        order.erased_at = now
        order.updated_at = now
        await session.execute(
            update(OrderStatusChange)
            .where(OrderStatusChange.order_id == order.id)
            .values(note=None)
        )

    await session.execute(
        update(Disclosure)
        .where(Disclosure.customer_id == customer.id)
        .values(customer_id=None, reason=None)
    )
    for eraser in erasers:
        staff_tags += await eraser(uow, customer.id, now)
    await session.execute(delete(RelayedMessage).where(RelayedMessage.customer_id == customer.id))

    # Staff-chat copies: edit every delivered message about them to a redaction notice.
    await _redact_staff_copies(uow, config, now, staff_tags)

    # Drafts, inbox and outbox rows that carry their words or are addressed to them.
    chats = [(i.channel, i.chat_id) for i in identities]
    users = [(i.channel, i.platform_user_id) for i in identities]
    if chats:
        await session.execute(
            delete(ConversationState).where(
                or_(
                    ConversationState.customer_id == customer.id,
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
        await session.execute(
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
        their_chats = or_(
            *[(OutboxMessage.channel == c) & (OutboxMessage.chat_id == chat) for c, chat in chats]
        )
        # Messages that were to delete themselves (/mydata) must still disappear: delete now.
        await session.execute(
            update(OutboxMessage)
            .where(their_chats, OutboxMessage.delete_at.is_not(None))
            .values(delete_at=now, payload={}, customer_id=None)
        )
        await session.execute(
            delete(OutboxMessage).where(their_chats, OutboxMessage.delete_at.is_(None))
        )
    # Undelivered staff messages about them still hold personal data: drop them.
    await session.execute(
        delete(OutboxMessage).where(
            OutboxMessage.customer_id == customer.id, OutboxMessage.status != "sent"
        )
    )
    await session.delete(customer)
    await uow.audit.add(now, actor, "customer_erased", subject=reference)
    await session.flush()
    return reference


async def _redact_staff_copies(
    uow: UnitOfWork, config: ShopConfig, now: datetime, tags: list[str]
) -> None:
    if not tags:
        return
    rows = (
        await uow.session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.tag.in_(tags),
                OutboxMessage.status == "sent",
                OutboxMessage.platform_message_id.is_not(None),
            )
            .order_by(OutboxMessage.id)
        )
    ).all()
    notice = html.escape(t(config.default_language, "rights.staff.redacted"))
    seen: set[tuple[str, str, str]] = set()
    for row in rows:
        # Redacted: no later edit or erasure needs it, so retention may drop it (untagged).
        row.customer_id = row.tag = None
        key = (row.channel, row.chat_id, row.platform_message_id or "")
        if key in seen:
            continue  # edits of the same message share its platform id
        seen.add(key)
        message = Outbound(
            channel=row.channel, chat_id=row.chat_id, text=notice, html=True, edit_of=row.id
        )
        await uow.outbox.add(message.channel, message.chat_id, message.to_json(), now)


async def purge_inactive(
    uow: UnitOfWork, app: Composition, config: ShopConfig, now: datetime
) -> int:
    """Retention: erase customers inactive longer than `config.retention_days` (0 = never)."""
    if config.retention_days <= 0:
        return 0
    cutoff = now - timedelta(days=config.retention_days)
    customers = await uow.customers.inactive_since(cutoff)
    for customer in customers:
        await erase_customer(uow, app.erasers, config, customer, now, actor="system:retention")
    return len(customers)

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

from handlers.context import ShopConfig, enqueue, staff_notice
from handlers.i18n import t
from handlers.messages import Outbound
from handlers.orders import codes
from handlers.orders.service import CANCELLED, OPEN_STATUSES, order_tag
from handlers.router import Composition, Eraser
from storage.models import Customer, OrderStatusChange
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
    reference = codes.new_code("DEL")
    identities = await uow.customers.identities_of(customer.id)
    staff_tags: list[str] = []

    orders = sorted(await uow.orders.of_customer(customer.id), key=lambda order: order.id)
    for order in orders:
        staff_tags.append(order_tag(order))
        if order.status in OPEN_STATUSES:
            order.status = CANCELLED
            order.history.append(OrderStatusChange(status=CANCELLED, at=now, actor=actor))
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
        await uow.erasure.clear_status_notes(order.id)

    await uow.erasure.detach_disclosures(customer.id)
    for eraser in erasers:
        staff_tags += await eraser(uow, customer.id, now)
    await uow.erasure.delete_relayed(customer.id)

    # Staff-chat copies: edit every delivered message about them to a redaction notice.
    await _redact_staff_copies(uow, config, now, staff_tags)

    await uow.erasure.forget_conversations(customer.id, identities, now)
    await uow.erasure.drop_unsent_about(customer.id)
    await uow.erasure.delete_customer(customer)
    await uow.audit.add(now, actor, "customer_erased", subject=reference)
    return reference


async def _redact_staff_copies(
    uow: UnitOfWork, config: ShopConfig, now: datetime, tags: list[str]
) -> None:
    if not tags:
        return
    rows = await uow.erasure.sent_copies(tags)
    notice = html.escape(t(config.default_language, "rights.staff.redacted"))
    seen: set[tuple[str, str, str]] = set()
    for row in rows:
        # Redacted: no later edit or erasure needs it, so retention may drop it (untagged).
        row.customer_id = row.tag = None
        key = (row.channel, row.chat_id, row.platform_message_id or "")
        if key in seen:
            continue  # edits of the same message share its platform id
        seen.add(key)
        message = Outbound(row.channel, row.chat_id, notice, html=True, edit_of=row.id)
        await enqueue(uow, message, now)
        row.customer_id = None


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

"""Order lifecycle shared by the customer and staff sides: statuses, the staff alert,
customer notifications and the carrier slip."""

from __future__ import annotations

import html
from datetime import datetime, timedelta, timezone
from typing import Literal, cast

from handlers.buttons import OrderStatus, OrderStatusButton, PaymentButton
from handlers.context import ButtonRows, Context
from handlers.i18n import t
from handlers.messages import Button
from handlers.orders.catalog import format_vnd
from handlers.orders.pricing import order_money_lines
from handlers.orders.validators import format_phone_display
from storage.catalog import PAID, UNPAID
from storage.models import Order, OrderStatusChange
from storage.tags import Tag

VIETNAM_TIME = timezone(timedelta(hours=7), "ICT")  # no daylight saving in Viet Nam

NEW, CLAIMED, CONTACTED, SHIPPING, DONE, CANCELLED = (
    "new",
    "claimed",
    "contacted",
    "shipping",
    "done",
    "cancelled",
)
OPEN_STATUSES = (NEW, CLAIMED, CONTACTED, SHIPPING)

# Which status may follow which; everything else is refused with a note to staff.
TRANSITIONS: dict[str, frozenset[str]] = {
    NEW: frozenset({CLAIMED, CONTACTED, SHIPPING, CANCELLED}),
    CLAIMED: frozenset({CONTACTED, SHIPPING, CANCELLED}),
    CONTACTED: frozenset({CLAIMED, SHIPPING, CANCELLED}),
    SHIPPING: frozenset({DONE, CANCELLED}),
    DONE: frozenset(),
    CANCELLED: frozenset(),
}

CARRIER_FIELDS = ("code", "full_name", "phone", "address")  # data minimization: nothing else


def order_tag(order: Order) -> str:
    return str(Tag("order", order.id))


def local_time(moment: datetime) -> str:
    return moment.astimezone(VIETNAM_TIME).strftime("%d/%m/%Y %H:%M")


def status_label(lang: str, status: str) -> str:
    return t(lang, f"order.status.{status}")


def product_line(lang: str, order: Order, name: str | None = None) -> str | None:
    """The ordered product; `name` in the reader's language when known (the order keeps the
    staff language's name)."""
    if not order.product_code:
        return None
    price = format_vnd(order.price_vnd) if order.price_vnd is not None else ""
    return t(
        lang,
        "order.product_line",
        code=order.product_code,
        name=name or order.product_name or "",
        price=price,
    )


def render_alert(ctx: Context, order: Order) -> str:
    """The staff alert (HTML): every customer value escaped, so no markup can be injected."""
    lang = ctx.config.default_language
    e = html.escape

    def row(key: str, value: str | None) -> str:
        return f"<b>{e(t(lang, key))}:</b> {e(value) if value else '—'}"

    lines = [
        f"🆕 <b>{e(t(lang, 'order.alert.title', code=order.code))}</b>",
        row("order.alert.time", local_time(order.created_at)),
        row("order.field.full_name", order.full_name),
        row("order.field.phone", format_phone_display(order.phone) if order.phone else None),
        row("order.field.address", order.address),
        row("order.field.email", order.email),
        row("order.field.product", product_line(lang, order)),
        *(e(f"   {line}") for line in order_money_lines(lang, order) if order.product_code),
        row("order.field.request", order.request_text),
        row("order.field.photos", ", ".join(order.photos) if order.photos else None),
        row("order.alert.channel", f"{order.channel} · {order.language}"),
        "",
        row("order.alert.status", status_label(lang, order.status)),
    ]
    for change in order.history:
        who = f" — {change.actor_name}" if change.actor_name else ""
        note = f" ({change.note})" if change.note else ""
        lines.append(e(f"• {local_time(change.at)} {status_label(lang, change.status)}{who}{note}"))
    if order.handed_to_carrier_at:
        lines.append(
            e(
                t(
                    lang,
                    "order.alert.handed",
                    carrier=ctx.config.carrier_name,
                    time=local_time(order.handed_to_carrier_at),
                )
            )
        )
    return "\n".join(lines)


def alert_buttons(ctx: Context, order: Order) -> ButtonRows:
    """One-tap status buttons for the statuses reachable from the current one."""
    lang = ctx.config.default_language
    allowed = TRANSITIONS[order.status]
    buttons = [
        Button(
            t(lang, f"order.action.{status}"),
            OrderStatusButton(order.id, cast(OrderStatus, status)).pack(),
        )
        for status in (CLAIMED, CONTACTED, SHIPPING, DONE, CANCELLED)
        if status in allowed
    ]
    rows = tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))
    next_payment: dict[str, Literal["paid", "refunded"]] = {UNPAID: "paid", PAID: "refunded"}
    payment = next_payment.get(order.payment_status)
    if payment is not None and order.total_vnd is not None and order.status != CANCELLED:
        label = t(lang, f"catalog.payment.action.{payment}")
        rows += ((Button(label, PaymentButton(order.id, payment).pack()),),)
    return rows


async def refresh_alert(ctx: Context, order: Order) -> None:
    """Edit the staff alert to show the current status and history."""
    alert = await ctx.uow.outbox.first_with_tag(order_tag(order))
    await ctx.to_staff(
        render_alert(ctx, order),
        alert_buttons(ctx, order),
        edit_of=alert.id if alert else None,
        tag=order_tag(order),
        customer_id=order.customer_id,
    )


def record_status(
    ctx: Context, order: Order, status: str, note: str | None = None, actor_name: str | None = None
) -> None:
    order.status = status
    order.updated_at = ctx.now
    order.history.append(
        OrderStatusChange(
            status=status, at=ctx.now, actor=ctx.actor, actor_name=actor_name, note=note
        )
    )


async def notify_customer(ctx: Context, order: Order, key: str, **params: object) -> None:
    if order.customer_id is None:
        return
    customer = await ctx.uow.customers.get(order.customer_id)
    if customer is not None:
        await ctx.to_customer(customer, key, {"code": order.code, **params})


def carrier_slip(ctx: Context, order: Order) -> str:
    """What the carrier receives: order code, name, phone, address — and nothing else."""
    lang = ctx.config.default_language
    phone = format_phone_display(order.phone) if order.phone else ""
    return t(
        lang,
        "order.carrier_slip",
        carrier=ctx.config.carrier_name,
        code=order.code,
        name=order.full_name or "",
        phone=phone,
        address=order.address or "",
    )

"""Order lifecycle shared by the customer and staff sides: statuses, the staff alert,
customer notifications and the carrier slip."""

from __future__ import annotations

import html
from datetime import datetime, timedelta, timezone
from typing import Literal, cast

from handlers.buttons import OrderStatus, OrderStatusButton, PaymentButton
from handlers.context import ButtonRows, Context, reachable_identity, window_end
from handlers.i18n import LANGUAGES, t
from handlers.messages import Button, Outbound
from handlers.orders.catalog import format_vnd
from handlers.orders.pricing import order_money_lines
from handlers.orders.validators import format_phone_display
from handlers.text import fold
from storage.catalog import PAID, UNPAID
from storage.models import Customer, Order, OrderStatusChange
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

# The alert's buttons, always all of them in this order while the order is open, so a
# button keeps its place (and its number on numbered channels) across status changes;
# one not allowed from the current status is refused with a note when pressed.
ACTIONS = (CLAIMED, CONTACTED, SHIPPING, DONE, CANCELLED)
STATUS_ICONS = {
    NEW: "🆕",
    CLAIMED: "🙋",
    CONTACTED: "📞",
    SHIPPING: "🚚",
    DONE: "✅",
    CANCELLED: "✖️",
}


def order_tag(order: Order) -> str:
    return str(Tag("order", order.id))


def local_time(moment: datetime) -> str:
    return moment.astimezone(VIETNAM_TIME).strftime("%d/%m/%Y %H:%M")


def status_label(lang: str, status: str) -> str:
    return t(lang, f"order.status.{status}")


def parse_status(typed: str) -> str | None:
    """The status staff mean by `typed`: its key ("shipping") or its name in either
    language, with or without diacritics, whole or its beginning ("dang giao", "Đã hủy",
    "huy"); None when it names no status or several."""
    wanted = fold(typed)
    if not wanted:
        return None
    names = {
        status: {status} | {fold(status_label(lang, status)) for lang in LANGUAGES}
        for status in TRANSITIONS
    }
    exact = [status for status, folded in names.items() if wanted in folded]
    if exact:
        return exact[0]
    matches = [
        status
        for status, folded in names.items()
        if any(name.startswith(wanted) or name.endswith(f" {wanted}") for name in folded)
    ]
    return matches[0] if len(matches) == 1 else None


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

    if order.status == NEW:
        title = t(lang, "order.alert.title", code=order.code)
    else:
        title = t(
            lang,
            "order.alert.title_status",
            code=order.code,
            status=status_label(lang, order.status),
        )
    lines = [
        f"{STATUS_ICONS.get(order.status, '')} <b>{e(title)}</b>",
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
    """The one-tap status buttons: every action in fixed places while the order is open
    (see `ACTIONS`), none once it is done or cancelled; then, for a priced order that is not
    cancelled, the payment button ("paid", then "refunded"), delivered orders included."""
    lang = ctx.config.default_language
    rows: ButtonRows = ()
    if TRANSITIONS[order.status]:
        buttons = [
            Button(
                t(lang, f"order.action.{status}"),
                OrderStatusButton(order.id, cast(OrderStatus, status)).pack(),
            )
            for status in ACTIONS
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
    """Tell the order's customer about its new status: in their chat, or — once their
    platform's messaging window has closed — as a template notification where the shop
    configured one for this status (`ShopConfig.zns_templates`)."""
    if order.customer_id is None:
        return
    customer = await ctx.uow.customers.get(order.customer_id)
    if customer is None:
        return
    if not await _template_notification(ctx, customer, order):
        await ctx.to_customer(customer, key, {"code": order.code, **params})


async def _template_notification(ctx: Context, customer: Customer, order: Order) -> bool:
    identity = reachable_identity(await ctx.uow.customers.identities_of(customer.id))
    if identity is None:
        return False
    end = window_end(ctx.config, customer, identity)
    channel = ctx.config.capabilities(identity.channel).notification_channel
    template_id = ctx.config.zns_templates.get(order.status)
    phone = order.phone or customer.phone
    if end is None or ctx.now < end or not (channel and template_id and phone):
        return False
    label = status_label(ctx.config.default_language, order.status)
    await ctx.send(
        Outbound(
            channel=channel,
            chat_id=identity.chat_id,
            text=f"{order.code}: {label}",
            template={
                "id": template_id,
                "phone": phone,
                "data": {"order_code": order.code, "status": label},
            },
        ),
        customer_id=customer.id,
    )
    await ctx.to_staff(
        ctx.staff_text("order.staff.zns_sent", code=order.code, since=local_time(end)),
        tag=order_tag(order),
    )
    return True


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

"""The staff side of orders, in the staff group chat.

- One-tap status buttons on the alert (`os:<order id>:<status>`): claim, contacted,
  shipping (= carrier hand-off: slip + disclosure), done, cancel (asks for a reason).
- Replies to an alert (or `CODE text`) are relayed to the customer, signed as the shop.
- Commands: /orders [status], /order CODE, /find <phone or name>, /export, /cancel CODE reason.

Every payload is re-checked here: the route is staff-only, the order must exist, and the
transition must be allowed from the order's current status.
"""

from __future__ import annotations

import csv
import html
import io
import re
from collections.abc import Sequence
from typing import get_args

from handlers.buttons import CancelReason, CancelReasonButton, OrderStatusButton
from handlers.context import Context
from handlers.i18n import t
from handlers.messages import Button, Document
from handlers.orders import codes
from handlers.orders.service import (
    CANCELLED,
    CARRIER_FIELDS,
    CLAIMED,
    SHIPPING,
    TRANSITIONS,
    carrier_slip,
    local_time,
    notify_customer,
    order_tag,
    record_status,
    refresh_alert,
    render_alert,
    status_label,
)
from handlers.orders.validators import format_phone_display
from handlers.relay import relay_to_customer, replied_thread
from handlers.router import Router
from handlers.text import fold
from storage.models import Disclosure, Order
from storage.tags import Tag

router = Router("order_staff")

CANCEL_REASONS: tuple[CancelReason, ...] = get_args(CancelReason)


async def _live_order(ctx: Context, order_id: int) -> Order | None:
    order = await ctx.uow.orders.by_id(order_id)
    if order is None or order.erased_at is not None:
        await ctx.to_staff(ctx.staff_text("order.staff.not_found"))
        return None
    return order


@router.payload(OrderStatusButton, staff=True, refused_key="order.staff.not_found")
async def status_button(ctx: Context, button: OrderStatusButton) -> None:
    order = await _live_order(ctx, button.order_id)
    if order is None:
        return
    target = button.status
    if target not in TRANSITIONS[order.status]:
        await ctx.to_staff(
            ctx.staff_text(
                "order.staff.invalid_transition",
                code=order.code,
                current=status_label(ctx.config.default_language, order.status),
                target=status_label(ctx.config.default_language, target),
            )
        )
        return
    if target == CANCELLED:
        await _ask_cancel_reason(ctx, order)
        return
    await change_status(ctx, order, target)


async def change_status(ctx: Context, order: Order, target: str, note: str | None = None) -> None:
    staff_name = ctx.inbound.user_display_name[:100] or None
    if target == CLAIMED:
        order.claimed_by = ctx.inbound.user_id
    if target == SHIPPING:
        await _hand_to_carrier(ctx, order)
    record_status(ctx, order, target, note=note, actor_name=staff_name)
    await ctx.audit(f"order_{target}", subject=order.code)
    await refresh_alert(ctx, order)
    extra = {"reason": note or "", "carrier": ctx.config.carrier_name}
    await notify_customer(ctx, order, f"order.notify.{target}", **extra)


async def _hand_to_carrier(ctx: Context, order: Order) -> None:
    """Post the carrier slip (minimal fields only) and record the disclosure."""
    order.handed_to_carrier_at = ctx.now
    await ctx.uow.disclosures.add(
        Disclosure(
            customer_id=order.customer_id,
            order_id=order.id,
            recipient_kind="carrier",
            recipient_name=ctx.config.carrier_name,
            fields=list(CARRIER_FIELDS),
            reason="delivery",
            staff_actor=ctx.actor,
            at=ctx.now,
        )
    )
    await ctx.to_staff(
        html.escape(carrier_slip(ctx, order)), tag=order_tag(order), customer_id=order.customer_id
    )


async def _ask_cancel_reason(ctx: Context, order: Order) -> None:
    lang = ctx.config.default_language
    buttons = tuple(
        (
            Button(
                t(lang, f"order.cancel_reason.{reason}"),
                CancelReasonButton(order.id, reason).pack(),
            ),
        )
        for reason in CANCEL_REASONS
    )
    await ctx.to_staff(ctx.staff_text("order.staff.ask_cancel_reason", code=order.code), buttons)


@router.payload(CancelReasonButton, staff=True, refused_key="order.staff.not_found")
async def cancel_reason_button(ctx: Context, button: CancelReasonButton) -> None:
    order = await _live_order(ctx, button.order_id)
    if order is None:
        return
    reason = button.reason
    if CANCELLED not in TRANSITIONS[order.status]:
        await ctx.to_staff(ctx.staff_text("order.staff.cannot_cancel", code=order.code))
        return
    await change_status(
        ctx, order, CANCELLED, note=t(order.language, f"order.cancel_reason.{reason}")
    )


@router.command("cancel", staff=True, help_key="help.staff.cancel")
async def cancel_command(ctx: Context) -> None:
    code_text, _, reason = ctx.inbound.args.partition(" ")
    order = await _order_by_typed_code(ctx, code_text)
    if order is None:
        return
    if not reason.strip():
        await ctx.to_staff(ctx.staff_text("order.staff.cancel_usage"))
        return
    if CANCELLED not in TRANSITIONS[order.status]:
        await ctx.to_staff(ctx.staff_text("order.staff.cannot_cancel", code=order.code))
        return
    await change_status(ctx, order, CANCELLED, note=reason.strip()[:300])


async def _order_by_typed_code(ctx: Context, typed: str) -> Order | None:
    code = codes.normalize_code(typed.strip())
    order = await ctx.uow.orders.by_code(code) if code else None
    if order is None or order.erased_at is not None:
        await ctx.to_staff(ctx.staff_text("order.staff.not_found"))
        return None
    return order


# ---- talking to the customer ---------------------------------------------------------------


def _leading_order_code(text: str) -> tuple[str | None, str]:
    """Split "VAV-7K3Q9 text" (or "VAV 7K3Q9 text") into the order code and the message."""
    head, _, rest = text.partition(" ")
    code = codes.normalize_code(head)
    if code is None:
        second, _, after = rest.partition(" ")
        code = codes.normalize_code(f"{head} {second}")
        rest = after if code else rest
    return code, rest.strip()


@router.staff_text
async def staff_reply(ctx: Context) -> bool:
    """A reply to an order message (or "VAV-XXXXX text") goes to that order's customer."""
    order: Order | None = None
    text = ctx.inbound.text.strip()
    tag = Tag.parse(await replied_thread(ctx))
    if tag is not None and tag.kind == "order":
        order = await ctx.uow.orders.by_id(tag.id)
    if order is None:
        code, text = _leading_order_code(text)
        order = await ctx.uow.orders.by_code(code) if code else None
        if order is None:
            return False
    if not text:
        await ctx.to_staff(ctx.staff_text("order.staff.empty_relay"))
        return True
    await relay_to_customer(
        ctx,
        order.customer_id,
        order_tag(order),
        order.code,
        text,
        message_key="order.staff_message",
        relayed_key="order.staff.relayed",
        gone_key="order.staff.customer_gone",
    )
    return True


# ---- staff commands ------------------------------------------------------------------------


@router.command("orders", staff=True, help_key="help.staff.orders")
async def list_orders(ctx: Context) -> None:
    status = ctx.inbound.args.strip().lower() or None
    if status is not None and status not in TRANSITIONS:
        await ctx.to_staff(
            ctx.staff_text("order.staff.bad_status", statuses=", ".join(TRANSITIONS))
        )
        return
    orders = await ctx.uow.orders.listing(status)
    await ctx.to_staff(_listing(ctx, orders))


def _listing(ctx: Context, rows: Sequence[Order]) -> str:
    if not rows:
        return ctx.staff_text("order.staff.no_orders")
    lang = ctx.config.default_language
    lines = [
        html.escape(
            f"{o.code} · {local_time(o.created_at)} · {status_label(lang, o.status)} · "
            f"{o.full_name or '—'} · {format_phone_display(o.phone) if o.phone else '—'}"
        )
        for o in rows
    ]
    return "\n".join(lines)


@router.command("order", staff=True, help_key="help.staff.order")
async def show_order(ctx: Context) -> None:
    order = await _order_by_typed_code(ctx, ctx.inbound.args)
    if order is not None:
        await ctx.to_staff(render_alert(ctx, order), tag=order_tag(order))


@router.command("find", staff=True, help_key="help.staff.find")
async def find_orders(ctx: Context) -> None:
    query = ctx.inbound.args.strip()
    if len(query) < 2:
        await ctx.to_staff(ctx.staff_text("order.staff.find_usage"))
        return
    digits = re.sub(r"\D", "", query)
    phone_part = None
    if len(digits) >= 3 and len(digits) >= len(query.replace(" ", "")) - 2:
        phone_part = digits[1:] if digits.startswith("0") else digits
    if phone_part:
        orders = list(await ctx.uow.orders.by_phone_part(phone_part))
    else:  # diacritic-insensitive: "nguyen" finds "Nguyễn"
        wanted = fold(query)
        recent = await ctx.uow.orders.recent_with_names()
        orders = [o for o in recent if wanted in fold(o.full_name or "")][:20]
    await ctx.to_staff(_listing(ctx, orders))


EXPORT_COLUMNS = (
    "code",
    "status",
    "created_at",
    "full_name",
    "phone",
    "address",
    "email",
    "product_code",
    "product_name",
    "price_vnd",
    "quantity",
    "shipping_fee_vnd",
    "total_vnd",
    "payment_status",
    "request_text",
    "channel",
    "language",
)


def _cell(value: object) -> object:
    """Customer text starting with = + - @ (or a tab/CR) would run as a formula in Excel.
    Phones are E.164 ("+84…") from the validator, so they are left as they are."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


@router.command("export", staff=True, help_key="help.staff.export")
async def export_orders(ctx: Context) -> None:
    """All orders as CSV, UTF-8 with BOM so that Excel shows Vietnamese correctly.
    Every customer's personal data at once: staff admins only, audited."""
    if await ctx.refuse_unless_admin():
        return
    orders = await ctx.uow.orders.all_for_export()
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    for order in orders:
        writer.writerow(
            [
                order.code,
                order.status,
                order.created_at.isoformat(),
                _cell(order.full_name or ""),
                order.phone or "",
                _cell(order.address or ""),
                _cell(order.email or ""),
                order.product_code or "",
                order.product_name or "",
                order.price_vnd if order.price_vnd is not None else "",
                order.quantity,
                order.shipping_fee_vnd if order.shipping_fee_vnd is not None else "",
                order.total_vnd if order.total_vnd is not None else "",
                order.payment_status,
                _cell(order.request_text or ""),
                order.channel,
                order.language,
            ]
        )
    content = ("\ufeff" + buffer.getvalue()).encode("utf-8")
    await ctx.audit("orders_exported", detail=f"rows={len(orders)}")
    await ctx.to_staff(
        ctx.staff_text("order.staff.export_ready", count=len(orders)),
        document=Document(
            filename=f"orders-{ctx.now:%Y%m%d-%H%M}.csv", content=content, mime_type="text/csv"
        ),
    )

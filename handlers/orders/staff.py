"""The staff side of orders, in the staff group chat.

- Status buttons on the alert (`os:<order id>:<status>`), always the same five in the same
  places while the order is open: claim, contacted, shipping, done, cancel. Shipping (the
  carrier hand-off: slip + disclosure) first shows exactly what the carrier will get and
  waits for "confirm" (`oh:<id>:<slip digest>`); cancel asks for a reason, or "keep".
- Replies to an alert (or `CODE text`) are relayed to the customer, signed as the shop.
- Commands: /orders [status], /order CODE, /find <phone or name>, /export, /cancel CODE reason.
  Statuses are typed in Vietnamese or English, with or without diacritics.

Every payload is re-checked here: the route is staff-only, the order must exist, and the
transition must be allowed from the order's current status.
"""

from __future__ import annotations

import hashlib
import html
from collections.abc import Sequence
from typing import get_args

from handlers.buttons import (
    CancelReason,
    CancelReasonButton,
    CarrierConfirmButton,
    KeepOrderButton,
    OrderStatusButton,
)
from handlers.context import Context
from handlers.i18n import t
from handlers.messages import Button, Document
from handlers.orders import codes
from handlers.orders.export import local_stamp, orders_csv
from handlers.orders.search import search_orders
from handlers.orders.service import (
    CANCELLED,
    CARRIER_FIELDS,
    CLAIMED,
    SHIPPING,
    TRANSITIONS,
    alert_buttons,
    carrier_slip,
    local_time,
    notify_customer,
    order_tag,
    parse_status,
    record_status,
    refresh_alert,
    render_alert,
    status_label,
)
from handlers.orders.validators import format_phone_display
from handlers.relay import relay_to_customer, replied_thread
from handlers.router import Router
from storage.models import Disclosure, Order
from storage.tags import Tag

router = Router("order_staff")

CANCEL_REASONS: tuple[CancelReason, ...] = get_args(CancelReason)


async def live_order(ctx: Context, order_id: int) -> Order | None:
    order = await ctx.uow.orders.by_id(order_id)
    if order is None or order.erased_at is not None:
        await ctx.to_staff(ctx.staff_text("order.staff.not_found"))
        return None
    return order


@router.payload(OrderStatusButton, staff=True, refused_key="order.staff.not_found")
async def status_button(ctx: Context, button: OrderStatusButton) -> None:
    order = await live_order(ctx, button.order_id)
    if order is None:
        return
    target = button.status
    if target not in TRANSITIONS[order.status]:
        await _refuse_transition(ctx, order, target)
        return
    if target == CANCELLED:
        await _ask_cancel_reason(ctx, order)
        return
    if target == SHIPPING:
        await _confirm_carrier(ctx, order)
        return
    await change_status(ctx, order, target)


def slip_check(slip: str) -> str:
    """A short digest of a carrier slip: the confirmation button carries it."""
    return hashlib.sha256(slip.encode("utf-8")).hexdigest()[:12]


async def _confirm_carrier(ctx: Context, order: Order) -> None:
    """Show the carrier slip as it will be shared and ask for confirmation."""
    slip = carrier_slip(ctx, order)
    lang = ctx.config.default_language
    buttons = (
        (
            Button(
                t(lang, "staff.carrier.confirm_btn", carrier=ctx.config.carrier_name),
                CarrierConfirmButton(order.id, slip_check(slip)).pack(),
            ),
            Button(t(lang, "staff.carrier.keep_btn"), KeepOrderButton(order.id).pack()),
        ),
    )
    text = ctx.staff_text("staff.carrier.confirm", code=order.code, carrier=ctx.config.carrier_name)
    await ctx.to_staff(f"{text}\n\n{html.escape(slip)}", buttons, tag=order_tag(order))


@router.payload(CarrierConfirmButton, staff=True, refused_key="order.staff.not_found")
async def carrier_confirmed(ctx: Context, button: CarrierConfirmButton) -> None:
    order = await live_order(ctx, button.order_id)
    if order is None:
        return
    if SHIPPING not in TRANSITIONS[order.status]:
        await _refuse_transition(ctx, order, SHIPPING)
        return
    if button.check != slip_check(carrier_slip(ctx, order)):
        await ctx.to_staff(ctx.staff_text("staff.carrier.changed", code=order.code))
        await _confirm_carrier(ctx, order)
        return
    await change_status(ctx, order, SHIPPING)


@router.payload(KeepOrderButton, staff=True, refused_key="order.staff.not_found")
async def keep_order(ctx: Context, button: KeepOrderButton) -> None:
    order = await live_order(ctx, button.order_id)
    if order is not None:
        await ctx.to_staff(
            ctx.staff_text(
                "staff.order.kept",
                code=order.code,
                status=status_label(ctx.config.default_language, order.status),
            )
        )


async def _refuse_transition(ctx: Context, order: Order, target: str) -> None:
    await ctx.to_staff(
        ctx.staff_text(
            "order.staff.invalid_transition",
            code=order.code,
            current=status_label(ctx.config.default_language, order.status),
            target=status_label(ctx.config.default_language, target),
        )
    )


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
    ) + ((Button(t(lang, "staff.cancel.keep_btn"), KeepOrderButton(order.id).pack()),),)
    await ctx.to_staff(
        ctx.staff_text("order.staff.ask_cancel_reason", code=order.code),
        buttons,
        tag=order_tag(order),
    )


@router.payload(CancelReasonButton, staff=True, refused_key="order.staff.not_found")
async def cancel_reason_button(ctx: Context, button: CancelReasonButton) -> None:
    order = await live_order(ctx, button.order_id)
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
    code_text, _, reason = ctx.inbound.args.strip().partition(" ")
    if not code_text:
        await ctx.to_staff(ctx.staff_text("order.staff.cancel_usage"))
        return
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
    await reply_to_order(ctx, order, text)
    return True


async def reply_to_order(ctx: Context, order: Order, text: str) -> bool:
    """Staff → the order's customer, signed as the shop; False when nothing was sent."""
    if not text.strip():
        await ctx.to_staff(ctx.staff_text("order.staff.empty_relay"))
        return False
    sent = await relay_to_customer(
        ctx,
        order.customer_id,
        order_tag(order),
        order.code,
        text,
        message_key="order.staff_message",
        relayed_key="order.staff.relayed",
        gone_key="order.staff.customer_gone",
    )
    await ctx.audit("order_replied", subject=order.code)
    return sent


# ---- staff commands ------------------------------------------------------------------------


@router.command("orders", staff=True, help_key="help.staff.orders")
async def list_orders(ctx: Context) -> None:
    typed = ctx.inbound.args.strip()
    status = parse_status(typed) if typed else None
    if typed and status is None:
        lang = ctx.config.default_language
        names = ", ".join(status_label(lang, s) for s in TRANSITIONS)
        await ctx.to_staff(ctx.staff_text("order.staff.bad_status", statuses=names))
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
    if not ctx.inbound.args.strip():
        await ctx.to_staff(ctx.staff_text("staff.order.usage"))
        return
    order = await _order_by_typed_code(ctx, ctx.inbound.args)
    if order is not None:
        await ctx.to_staff(
            render_alert(ctx, order), alert_buttons(ctx, order), tag=order_tag(order)
        )


@router.command("find", staff=True, help_key="help.staff.find")
async def find_orders(ctx: Context) -> None:
    query = ctx.inbound.args.strip()
    if len(query) < 2:
        await ctx.to_staff(ctx.staff_text("order.staff.find_usage"))
        return
    orders = await search_orders(ctx.uow, query, limit=20)
    await ctx.to_staff(_listing(ctx, orders))


@router.command("export", staff=True, help_key="help.staff.export")
async def export_orders(ctx: Context) -> None:
    """All orders as CSV for a Vietnamese office (see `orders_csv`). Every customer's
    personal data at once: staff admins only, audited."""
    if await ctx.refuse_unless_admin():
        return
    orders = await ctx.uow.orders.all_for_export()
    content = orders_csv(ctx.config.default_language, orders)
    await ctx.audit("orders_exported", detail=f"rows={len(orders)}")
    await ctx.to_staff(
        ctx.staff_text("order.staff.export_ready", count=len(orders)),
        document=Document(
            filename=f"don-hang-{local_stamp(ctx.now)}.csv", content=content, mime_type="text/csv"
        ),
    )

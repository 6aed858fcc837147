"""Returns and warranty requests, tied to one of the customer's own orders.

`/return` (also `/returns`, `/warranty`), the "returns" button or menu item, the
return/warranty intent — after consent:
    0. which order   (buttons `rt:<order id>` with the customer's own order codes only;
                      `/return VAV-XXXXX` picks one directly)
    1. kind          (buttons: return / warranty; typed words too)
    2. reason        (1–2000 characters)
    3. photos        (up to 5, optional)
    → review → ticket "DT-XXXXX" (return) or "BH-XXXXX" (warranty), staff alert threaded
      under the order's alert, confirmation to the customer.

The ticket follows the complaint lifecycle (acknowledge, resolve with a response,
re-announcement): see `complaints.py`. An order id in a payload is never trusted: the order
must belong to the customer, when the button is pressed and again when the ticket is filed.
"""

from __future__ import annotations

from typing import Any

from handlers import engine
from handlers.buttons import (
    MyTicketsButton,
    OrderButton,
    ReturnOrderButton,
    ReturnsButton,
    TalkButton,
)
from handlers.context import Context
from handlers.engine import Flow, Step, StepInput
from handlers.errors import InvalidInput
from handlers.flows.consent import after_consent, ensure_consent
from handlers.messages import Button
from handlers.orders import codes
from handlers.orders.service import CANCELLED, local_time
from handlers.router import Router
from handlers.support.complaints import (
    MAX_PHOTOS,
    create_ticket,
    parse_photos,
    parse_text,
)
from handlers.text import fold
from storage.models import Order
from storage.support import RETURN, WARRANTY

router = Router("returns")

MAX_ORDER_BUTTONS = 10
KIND_CHOICES = ((f"returns.choice.{RETURN}", RETURN), (f"returns.choice.{WARRANTY}", WARRANTY))


def parse_kind(answer: StepInput) -> str:
    folded = f" {fold(answer.text).strip(' .!?')} "
    if folded.strip() in (RETURN, WARRANTY):
        return folded.strip()
    if folded.strip() == "2" or any(
        f" {w} " in folded for w in ("bao hanh", "warranty", "sua", "sua chua", "repair", "bh")
    ):
        return WARRANTY
    if folded.strip() == "1" or any(
        f" {w} " in folded
        for w in ("doi", "tra", "doi tra", "tra hang", "hoan", "return", "refund", "exchange")
    ):
        return RETURN
    raise InvalidInput("returns.kind.unknown")


def _show_kind(ctx: Context, value: Any) -> str:
    return ctx.tr(f"returns.choice.{value}") if value in (RETURN, WARRANTY) else str(value)


async def _own_order(ctx: Context, order_id: object) -> Order | None:
    """The order with this id if it belongs to the current customer (else None)."""
    assert ctx.customer is not None
    if not isinstance(order_id, int):
        return None
    order = await ctx.uow.orders.by_id(order_id)
    if order is None or order.customer_id != ctx.customer.id or order.erased_at is not None:
        return None
    return order


async def _file_request(ctx: Context, values: dict[str, Any]) -> None:
    order = await _own_order(ctx, values.get("order_id"))
    if order is None:  # erased or otherwise gone meanwhile
        await ctx.reply(ctx.tr("returns.order_not_found"))
        return
    kind = str(values["kind"])
    ticket = await create_ticket(
        ctx,
        kind=kind,
        description=str(values["reason"]),
        photos=list(values.get("photos") or []),
        order=order,
    )
    await ctx.reply(
        ctx.tr(
            "returns.received",
            code=ticket.code,
            order=order.code,
            what=ctx.tr(f"support.kind.{kind}"),
            hours=ctx.config.shop_hours,
        ),
        ((ctx.button("support.btn.my_tickets", MyTicketsButton()),),),
    )


RETURN_FLOW = router.flow(
    Flow(
        name="returns",
        title="returns.review_title",
        on_complete=_file_request,
        prompt_params=lambda ctx, values: {"order": values.get("order_code", "")},
        steps=(
            Step(
                "kind",
                "returns.ask.kind",
                "returns.field.kind",
                parse_kind,
                show=_show_kind,
                choices=KIND_CHOICES,
            ),
            Step("reason", "returns.ask.reason", "returns.field.reason", parse_text),
            Step(
                "photos",
                "returns.ask.photos",
                "support.field.photos",
                parse_photos,
                collect_max=MAX_PHOTOS,
            ),
        ),
    )
)


@router.command("return", "returns", "warranty", help_key="help.cmd.return")
@router.payload(ReturnsButton)
async def returns_command(ctx: Context, _: object = None) -> None:
    """`/return` asks which order; `/return VAV-XXXXX` takes that (own) order directly."""
    typed = ctx.inbound.args.strip()
    if not typed:
        await start_returns(ctx, {})
        return
    assert ctx.customer is not None
    code = codes.normalize_code(typed)
    order = await ctx.uow.orders.by_code(code) if code else None
    # Someone else's order answers exactly like an order that does not exist.
    own = await _own_order(ctx, order.id) if order is not None else None
    if own is None:
        await ctx.reply(ctx.tr("returns.order_not_found"))
        return
    await begin_request(ctx, own)


@after_consent(router, "returns")
async def start_returns(ctx: Context, context: dict[str, Any]) -> None:
    assert ctx.customer is not None
    if "order_id" in context:
        order = await _own_order(ctx, context["order_id"])
        if order is not None:
            await begin_request(ctx, order)
            return
    orders = [
        o
        for o in await ctx.uow.orders.of_customer(ctx.customer.id)
        if o.status != CANCELLED and o.erased_at is None
    ][:MAX_ORDER_BUTTONS]
    if not orders:
        await ctx.reply(
            ctx.tr("returns.no_orders"),
            (
                (ctx.button("menu.talk", TalkButton()),),
                (ctx.button("menu.order", OrderButton()),),
            ),
        )
        return
    rows = tuple(
        (Button(f"{o.code} · {local_time(o.created_at)[:10]}", ReturnOrderButton(o.id).pack()),)
        for o in orders
    )
    await ctx.reply(ctx.tr("returns.choose_order"), rows)


@router.payload(ReturnOrderButton, refused_key="returns.order_not_found")
async def order_button(ctx: Context, button: ReturnOrderButton) -> None:
    assert ctx.customer is not None
    order = await _own_order(ctx, button.order_id)
    if order is None:
        await ctx.reply(ctx.tr("returns.order_not_found"))
        return
    await begin_request(ctx, order)


async def begin_request(ctx: Context, order: Order) -> None:
    if not await ensure_consent(ctx, then="returns", context={"order_id": order.id}):
        return
    values = {"order_id": order.id, "order_code": order.code}
    await engine.begin(ctx, RETURN_FLOW, values)

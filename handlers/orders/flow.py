"""The customer's side of ordering.

Order flow, one question at a time:
    1. full name       (saved profile offered for reuse)
    2. phone           (contact button, or typed in any Vietnamese format; stored E.164)
    3. address
    4. email           (optional: "Bỏ qua" / "skip")
    5. request         (a product code or a description)
    6. photos          (up to 5, optional)
    → review (edit N / confirm / cancel) → order code, staff alert, confirmation.

Also: `/orders` (own orders), `/order CODE` (one of them), and relaying free text to the
staff chat while an order is open.
"""

from __future__ import annotations

from typing import Any

from handlers import engine
from handlers.buttons import MyOrdersButton, OrderButton, TalkButton
from handlers.context import Context
from handlers.engine import Flow, Step, StepInput
from handlers.errors import InvalidInput
from handlers.flows.consent import after_consent
from handlers.orders import codes
from handlers.orders.catalog import Catalog, format_vnd
from handlers.orders.matching import offer_products
from handlers.orders.payments import request_payment
from handlers.orders.pricing import order_money_lines, quote, quote_lines, with_quantity
from handlers.orders.service import (
    NEW,
    OPEN_STATUSES,
    alert_buttons,
    local_time,
    order_tag,
    product_line,
    record_status,
    render_alert,
    status_label,
)
from handlers.orders.validators import (
    PHOTOS_MAX,
    format_phone_display,
    parse_address,
    parse_email,
    parse_full_name,
    parse_phone_answer,
    parse_photos,
    parse_request,
)
from handlers.relay import relay_from_customer
from handlers.router import Router
from handlers.text import fold
from storage.models import Order

router = Router("orders")


def _email(answer: StepInput) -> str:
    return parse_email(answer.text)


def _request(answer: StepInput) -> str:
    if not answer.text.strip() and answer.attachments:
        raise InvalidInput("order.request.photo_first")
    return parse_request(answer.text)


def _show_phone(ctx: Context, value: Any) -> str:
    return format_phone_display(str(value))


def describe_product(ctx: Context, code: str | None) -> str | None:
    """ "SD-001 — name — 4.500.000 ₫" for a known catalog code, else None."""
    product = ctx.catalog.get(code) if code else None
    if product is None:
        return None
    return f"{product.code} — {product.name(ctx.lang)} — {format_vnd(product.price_vnd)}"


def _show_request(ctx: Context, value: Any) -> str:
    product = describe_product(ctx, ctx.catalog.find_code_in(str(value)))
    if not product:
        return str(value)
    priced = quote(ctx.catalog, ctx.config, str(value))
    lines = [str(value), f"   → {product}"]
    lines += [f"   {line}" for line in quote_lines(ctx.lang, priced)] if priced else []
    return "\n".join(lines)


async def _confirm(ctx: Context, values: dict[str, Any]) -> None:
    assert ctx.customer is not None
    customer = ctx.customer
    request = str(values["request"])
    priced = quote(ctx.catalog, ctx.config, request)
    product = priced.product if priced else None
    code = codes.new_code()
    while await ctx.uow.orders.code_exists(code):
        code = codes.new_code()
    order = Order(
        code=code,
        customer_id=customer.id,
        status=NEW,
        channel=ctx.inbound.channel,
        language=ctx.lang,
        full_name=values["full_name"],
        phone=values["phone"],
        address=values["address"],
        email=values.get("email"),
        request_text=request,
        photos=list(values.get("photos") or []),
        product_code=product.code if product else None,
        product_name=product.name(ctx.config.default_language) if product else None,
        price_vnd=priced.unit_vnd if priced else None,
        quantity=priced.quantity if priced else 1,
        shipping_fee_vnd=priced.shipping_vnd if priced else None,
        total_vnd=priced.total_vnd if priced else None,
        created_at=ctx.now,
        updated_at=ctx.now,
        history=[],
    )
    record_status(ctx, order, NEW)
    await ctx.uow.orders.add(order)
    # The profile remembers the latest details for next time (an explicit skip keeps the old email).
    customer.full_name, customer.phone, customer.address = (
        order.full_name,
        order.phone,
        order.address,
    )
    if order.email:
        customer.email = order.email
    elif customer.email is None:
        customer.email = ""  # they have none: not asked again next time
    await ctx.audit("order_created", subject=order.code)
    await ctx.to_staff(
        render_alert(ctx, order),
        alert_buttons(ctx, order),
        tag=order_tag(order),
        customer_id=customer.id,
    )
    product_text = product_line(ctx.lang, order, product.name(ctx.lang) if product else None)
    if product_text:
        product_text = "\n".join([product_text, *order_money_lines(ctx.lang, order)])
    await ctx.reply(
        ctx.tr(
            "order.confirmed",
            code=order.code,
            product=f"\n{product_text}" if product_text else "",
            hours=ctx.config.shop_hours,
        ),
        ((ctx.button("order.btn.my_orders", MyOrdersButton()),),),
    )
    await request_payment(ctx, order)


ORDER_FLOW = router.flow(
    Flow(
        name="order",
        title="order.review_title",
        on_complete=_confirm,
        steps=(
            Step(
                "full_name",
                "order.ask.full_name",
                "order.field.full_name",
                lambda a: parse_full_name(a.text),
                profile_field="full_name",
                aliases=("ten", "ho ten", "name", "full name"),
            ),
            Step(
                "phone",
                "order.ask.phone",
                "order.field.phone",
                parse_phone_answer,
                ask_contact=True,
                profile_field="phone",
                show=_show_phone,
                aliases=("sdt", "so dt", "so dien thoai", "dien thoai", "dt", "phone", "so"),
            ),
            Step(
                "address",
                "order.ask.address",
                "order.field.address",
                lambda a: parse_address(a.text),
                profile_field="address",
                aliases=("dia chi", "dc", "d/c", "address", "cho giao", "noi nhan"),
            ),
            Step(
                "email",
                "order.ask.email",
                "order.field.email",
                _email,
                optional=True,
                profile_field="email",
                aliases=("email", "mail", "gmail"),
            ),
            Step(
                "request",
                "order.ask.request",
                "order.field.request",
                _request,
                show=_show_request,
                offer=offer_products,
                aliases=("yeu cau", "tranh", "mau", "san pham", "request", "painting"),
            ),
            Step(
                "photos",
                "order.ask.photos",
                "order.field.photos",
                parse_photos,
                collect_max=PHOTOS_MAX,
                aliases=("anh", "hinh", "hinh anh", "photo", "photos"),
            ),
        ),
    )
)


@after_consent(router, "order")
async def start_order(ctx: Context, context: dict[str, Any]) -> None:
    """Begin an order (after consent); a deep-linked product pre-fills the request, and what
    the customer already said they want is offered at the request step."""
    values: dict[str, Any] = {}
    suggested: dict[str, str] = {}
    product = ctx.catalog.get(str(context.get("product", "")))
    if product is not None and not product.hidden:
        quantity = int(context.get("quantity") or 1)
        values["request"] = with_quantity(product.code, quantity)
        described = describe_product(ctx, product.code) or product.code
        if quantity > 1:
            described += f" × {quantity}"
        await ctx.reply(ctx.tr("order.deep_link", product=described))
    elif wish := request_from_opening(str(context.get("text", "")), ctx.catalog):
        suggested["request"] = wish
    await engine.begin(ctx, ORDER_FLOW, values, suggested=suggested)


# Leading words of "em muốn đặt 1 bức tranh sơn dầu" that say "I want to order", and trailing
# particles; what remains is the request.
_WISH_LEAD = frozenset(
    [
        "e",
        "em",
        "toi",
        "minh",
        "anh",
        "chi",
        "a",
        "c",
        "shop",
        "oi",
        "cho",
        "muon",
        "can",
        "dat",
        "mua",
        "order",
        "lay",
        "xem",
        "hoi",
        "tu",
        "van",
        "1",
        "mot",
        "2",
        "hai",
        "buc",
        "cai",
        "bo",
        "i",
        "want",
        "would",
        "like",
        "to",
        "buy",
        "an",
        "the",
        "please",
        "pls",
        "hi",
        "hello",
        "chao",
        "alo",
        "i'd",
        "id",
        "i’d",
        "get",
        "some",
        "a",
    ]
)
_WISH_TAIL = frozenset(["a", "nhe", "nha", "voi", "di", "shop", "oi", "please", "pls"])


def request_from_opening(text: str, catalog: Catalog) -> str | None:
    """The request inside an opening message ("tranh sơn dầu" in "e muon dat 1 buc tranh
    son dau"), or None when it says nothing beyond "I want to order"."""
    words = text.strip().rstrip("?.!").split()
    while words and fold(words[0]).strip(",.!") in _WISH_LEAD:
        words.pop(0)
    while words and fold(words[-1]).strip(",.!") in _WISH_TAIL:
        words.pop()
    wish = " ".join(words)
    return wish if len(words) >= 2 or catalog.find_code_in(wish) else None


router.deep_link("p_", continuation="order", key="product")


@router.payload(OrderButton)
async def order_button(ctx: Context, _: OrderButton) -> None:
    await start_order(ctx, {})


@router.command("order", help_key="help.cmd.order")
async def order_command(ctx: Context) -> None:
    """`/order` starts an order; `/order CODE` shows one of the customer's own orders."""
    if ctx.inbound.args.strip():
        await show_own_order(ctx, ctx.inbound.args)
        return
    await start_order(ctx, {})


@router.command("orders", help_key="help.cmd.orders", locked_ok=True)
@router.payload(MyOrdersButton, locked_ok=True)
async def my_orders(ctx: Context, _: object = None) -> None:
    assert ctx.customer is not None
    orders = await ctx.uow.orders.of_customer(ctx.customer.id)
    if not orders:
        await ctx.reply(
            ctx.tr("order.none_yet"),
            (
                (ctx.button("menu.order", OrderButton()),),
                (ctx.button("menu.talk", TalkButton()),),
            ),
        )
        return
    lines = [ctx.tr("order.list_title")]
    for order in orders[:20]:
        lines.append(
            ctx.tr(
                "order.list_line",
                code=order.code,
                date=local_time(order.created_at),
                status=status_label(ctx.lang, order.status),
            )
        )
    lines.append(ctx.tr("order.list_hint"))
    await ctx.reply("\n".join(lines))


async def show_own_order(ctx: Context, typed_code: str) -> None:
    assert ctx.customer is not None
    code = codes.normalize_code(typed_code.strip())
    order = await ctx.uow.orders.by_code(code) if code else None
    # Someone else's order answers exactly like an order that does not exist.
    if order is None or order.customer_id != ctx.customer.id:
        await ctx.reply(ctx.tr("order.not_found", code=typed_code.strip()[:20]))
        return
    lines = [
        ctx.tr("order.detail_title", code=order.code, status=status_label(ctx.lang, order.status)),
        f"{ctx.tr('order.field.full_name')}: {order.full_name or '—'}",
        f"{ctx.tr('order.field.phone')}: {_show_phone(ctx, order.phone) if order.phone else '—'}",
        f"{ctx.tr('order.field.address')}: {order.address or '—'}",
        f"{ctx.tr('order.field.email')}: {order.email or '—'}",
        f"{ctx.tr('order.field.request')}: {order.request_text or '—'}",
    ]
    if product := product_line(ctx.lang, order):
        lines.append(f"{ctx.tr('order.field.product')}: {product}")
        lines += [f"   {line}" for line in order_money_lines(ctx.lang, order)]
    lines.append("")
    lines += [
        f"• {local_time(change.at)} — {status_label(ctx.lang, change.status)}"
        for change in order.history
    ]
    await ctx.reply("\n".join(lines))


@router.text
async def relay_to_staff(ctx: Context) -> bool:
    """While an order is open, the customer's free text goes to staff under its alert."""
    assert ctx.customer is not None
    order = await ctx.uow.orders.latest_open(ctx.customer.id, OPEN_STATUSES)
    if order is None or not ctx.inbound.text.strip():
        return False
    heading = ctx.staff_text(
        "order.relay_from_customer", code=order.code, name=order.full_name or ""
    )
    await relay_from_customer(ctx, order_tag(order), heading, ctx.inbound.text)
    await ctx.reply(ctx.tr("order.relayed", code=order.code))
    return True

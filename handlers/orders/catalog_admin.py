"""Staff admins edit the catalog from the staff chat; every change applies to the next
customer message (no restart) and never touches confirmed orders (they keep their snapshot).

Guided flow, one admin at a time per staff chat:

    send a photo with a caption        "Sen trắng — sơn dầu trên toan, 60×90 cm"
                                        (optional 2nd line: the English name — details)
      → "Loại tranh?"  (buttons: sơn dầu, lụa, sơn mài, Đông Hồ, bản in, khác)
      → "Giá bao nhiêu?"  4500000 / 4.500.000
      → product SD-009 created (the next free number of its letters), shown with its buttons
    a photo whose caption is an existing code ("SD-001")  → that product's new photo
    /products                           every product: code, price, hidden or not
    /product CODE                       one product with buttons: hide/show, price, photo

What is pending (the draft of a new product, "waiting for the price of SD-001") is kept in
the staff chat's conversation state, for the admin who started it, for 30 minutes.
"""

from __future__ import annotations

import html
from dataclasses import replace
from datetime import timedelta
from typing import Any, Literal, cast

from handlers.buttons import Category, NewProductButton, ProductAdminButton
from handlers.context import ButtonRows, Context, staff_message
from handlers.i18n import t
from handlers.messages import Button
from handlers.orders.catalog import CATEGORIES, CODE_PATTERN, Product, format_vnd
from handlers.orders.catalog_store import from_row, to_row
from handlers.orders.payments import parse_amount
from handlers.router import Router
from storage.catalog import ProductRow
from storage.models import ConversationState

router = Router("catalog_admin")

FLOW = "catalog_admin"
_LETTERS = {"oil": "SD", "silk": "LUA", "lacquer": "SM", "woodblock": "DH", "print": "IN"}
PENDING_FOR = timedelta(minutes=30)  # then a number typed in the staff chat is just chat
MAX_NAME = 120
MAX_DETAILS = 120


async def _pending(ctx: Context) -> ConversationState | None:
    state = await ctx.uow.states.get(ctx.inbound.channel, ctx.inbound.chat_id)
    if state is None or state.flow != FLOW:
        return None
    if state.expires_at <= ctx.now:
        await ctx.uow.states.remove(state)
        return None
    return state


async def _set_pending(ctx: Context, step: str, data: dict[str, Any]) -> None:
    state = await ctx.uow.states.get(ctx.inbound.channel, ctx.inbound.chat_id)
    if state is not None:
        await ctx.uow.states.remove(state, flush=True)
    await ctx.uow.states.save(
        ConversationState(
            channel=ctx.inbound.channel,
            chat_id=ctx.inbound.chat_id,
            customer_id=None,
            flow=FLOW,
            step=step,
            data={"user": ctx.inbound.user_id, **data},
            expires_at=ctx.now + PENDING_FOR,
            updated_at=ctx.now,
        )
    )


def _staff(ctx: Context, key: str, **params: object) -> str:
    return ctx.staff_text(key, **params)


def _card(ctx: Context, product: Product) -> tuple[str, ButtonRows]:
    lang = ctx.config.default_language
    e = html.escape
    hidden = t(lang, "catalog.admin.hidden") if product.hidden else t(lang, "catalog.admin.shown")
    text = "\n".join(
        [
            f"<b>{e(product.code)}</b> — {e(product.name(lang))}",
            e(product.name("en")),
            e(t(lang, "catalog.admin.card", price=format_vnd(product.price_vnd), state=hidden)),
            e(t(lang, f"catalog.category.{product.category}")),
        ]
    )
    toggle: Literal["show", "hide"] = "show" if product.hidden else "hide"
    rows: ButtonRows = (
        (
            Button(
                t(lang, f"catalog.admin.btn.{toggle}"),
                ProductAdminButton(product.code, toggle).pack(),
            ),
            Button(
                t(lang, "catalog.admin.btn.price"), ProductAdminButton(product.code, "price").pack()
            ),
        ),
        (
            Button(
                t(lang, "catalog.admin.btn.photo"), ProductAdminButton(product.code, "photo").pack()
            ),
        ),
    )
    return text, rows


async def _show(ctx: Context, product: Product) -> None:
    """The product card in the staff chat, with its photo as staff chat members see it."""
    text, rows = _card(ctx, product)
    photo = product.image_for(ctx.config.staff_channel)
    await ctx.send(replace(staff_message(ctx.config, text, rows), photo=photo))


async def _changed(ctx: Context, row: ProductRow, action: str) -> None:
    row.updated_at = ctx.now
    row.updated_by = ctx.actor
    await ctx.uow.catalog.changed()
    await ctx.audit(f"product_{action}", subject=row.code)
    await _show(ctx, from_row(row))


async def set_hidden(ctx: Context, row: ProductRow, hidden: bool) -> None:
    """Hide a work from the catalog (or show it again): from the chat and the web page."""
    row.hidden = hidden
    await _changed(ctx, row, "hidden" if hidden else "shown")


async def set_price(ctx: Context, row: ProductRow, amount: int) -> None:
    """A new price for new orders; open orders keep the price they were confirmed with."""
    row.price_vnd = amount
    await _changed(ctx, row, "price")


@router.command("products", staff=True, help_key="help.staff.products")
async def list_products(ctx: Context) -> None:
    if await ctx.refuse_unless_admin():
        return
    lang = ctx.config.default_language
    lines = [_staff(ctx, "catalog.admin.list_title")]
    for product in ctx.catalog:
        mark = " 🙈" if product.hidden else ""
        lines.append(
            html.escape(f"{product.code} · {product.title(lang)} · {format_vnd(product.price_vnd)}")
            + mark
        )
    lines.append(_staff(ctx, "catalog.admin.list_hint"))
    await ctx.to_staff("\n".join(lines))


@router.command("product", staff=True, help_key="help.staff.product")
async def show_product(ctx: Context) -> None:
    if await ctx.refuse_unless_admin():
        return
    product = ctx.catalog.get(ctx.inbound.args.strip())
    if product is None:
        await ctx.to_staff(_staff(ctx, "catalog.admin.unknown", code=ctx.inbound.args.strip()[:20]))
        return
    await _show(ctx, product)


@router.payload(ProductAdminButton, staff=True, refused_key="staff.stale_button")
async def product_action(ctx: Context, button: ProductAdminButton) -> None:
    if await ctx.refuse_unless_admin():
        return
    row = await ctx.uow.catalog.by_code(button.code)
    if row is None:
        await ctx.to_staff(_staff(ctx, "catalog.admin.unknown", code=button.code))
        return
    if button.action in ("hide", "show"):
        await set_hidden(ctx, row, button.action == "hide")
    elif button.action == "price":
        await _set_pending(ctx, "price", {"code": row.code})
        await ctx.to_staff(_staff(ctx, "catalog.admin.ask_price", code=row.code))
    elif button.action == "photo":
        await _set_pending(ctx, "photo", {"code": row.code})
        await ctx.to_staff(_staff(ctx, "catalog.admin.ask_photo", code=row.code))
    else:
        await _show(ctx, from_row(row))


@router.payload(NewProductButton, staff=True, refused_key="staff.stale_button")
async def new_product_category(ctx: Context, button: NewProductButton) -> None:
    if await ctx.refuse_unless_admin():
        return
    state = await _pending(ctx)
    if state is None or state.step != "category" or not button.category:
        await ctx.to_staff(_staff(ctx, "staff.stale_button"))
        return
    await _set_pending(ctx, "price", {**state.data, "category": button.category})
    await ctx.to_staff(_staff(ctx, "catalog.admin.ask_new_price", name=state.data["name_vi"]))


def _split(line: str) -> tuple[str, str]:
    """ "Name — details" (or "Name - details", "Name | details") → (name, details)."""
    for separator in (" — ", " – ", " - ", " | "):
        if separator in line:
            name, _, details = line.partition(separator)
            return name.strip()[:MAX_NAME], details.strip()[:MAX_DETAILS]
    return line.strip()[:MAX_NAME], ""


async def _next_code(ctx: Context, category: str) -> str:
    letters = _LETTERS.get(category, "TR")
    numbers = [
        int(code.split("-", 1)[1])
        for code in await ctx.uow.catalog.codes_with_prefix(letters)
        if code.split("-", 1)[1].isdigit()
    ]
    every = [int(p.code.split("-", 1)[1]) for p in ctx.catalog if p.code.split("-", 1)[1].isdigit()]
    return f"{letters}-{max([0, *numbers, *every]) + 1:03d}"


@router.staff_text
async def catalog_input(ctx: Context) -> bool:
    """A photo with a caption (new product or new photo), or the answer an edit waits for."""
    inbound = ctx.inbound
    photo = next((a.ref for a in inbound.attachments if a.kind == "photo"), None)
    state = await _pending(ctx)
    mine = state is not None and state.data.get("user") == inbound.user_id
    if state is not None and mine and state.step == "photo" and photo:
        return await _apply_photo(ctx, state, photo)
    if state is not None and mine and state.step == "price" and not photo:
        return await _apply_price(ctx, state)
    if photo is None or not inbound.text.strip() or not ctx.is_admin:
        return False  # staff share photos among themselves too: only admins' add products
    caption = inbound.text.strip()
    if CODE_PATTERN.match(caption.upper()):
        state_data = {"code": caption.upper()}
        await _set_pending(ctx, "photo", state_data)
        pending = await _pending(ctx)
        assert pending is not None
        return await _apply_photo(ctx, pending, photo)
    lines = [line for line in caption.splitlines() if line.strip()]
    name_vi, details_vi = _split(lines[0])
    name_en, details_en = _split(lines[1]) if len(lines) > 1 else (name_vi, details_vi)
    await _set_pending(
        ctx,
        "category",
        {
            "name_vi": name_vi,
            "details_vi": details_vi,
            "name_en": name_en,
            "details_en": details_en,
            "photo": f"{inbound.channel}:{photo}",
        },
    )
    lang = ctx.config.default_language
    rows = tuple(
        (Button(t(lang, f"catalog.category.{c}"), NewProductButton(cast(Category, c)).pack()),)
        for c in CATEGORIES
    )
    await ctx.to_staff(_staff(ctx, "catalog.admin.ask_category", name=name_vi), rows)
    return True


async def _apply_photo(ctx: Context, state: ConversationState, photo: str) -> bool:
    row = await ctx.uow.catalog.by_code(str(state.data.get("code", "")))
    await ctx.uow.states.remove(state)
    if row is None:
        await ctx.to_staff(
            _staff(ctx, "catalog.admin.unknown", code=str(state.data.get("code"))[:20])
        )
        return True
    row.photo_ref = f"{ctx.inbound.channel}:{photo}"
    await _changed(ctx, row, "photo")
    return True


async def _apply_price(ctx: Context, state: ConversationState) -> bool:
    amount = parse_amount(ctx.inbound.text)
    if amount is None:
        await ctx.to_staff(_staff(ctx, "catalog.admin.bad_price"))
        return True
    await ctx.uow.states.remove(state)
    data = state.data
    if "code" in data:  # a price change
        row = await ctx.uow.catalog.by_code(str(data["code"]))
        if row is None:
            await ctx.to_staff(_staff(ctx, "catalog.admin.unknown", code=str(data["code"])[:20]))
            return True
        await set_price(ctx, row, amount)
        return True
    category = str(data.get("category", "other"))
    product = Product(
        code=await _next_code(ctx, category),
        name_vi=str(data["name_vi"]),
        name_en=str(data["name_en"]),
        price_vnd=amount,
        category=category,
        details_vi=str(data["details_vi"]),
        details_en=str(data["details_en"]),
        photo_ref=str(data["photo"]),
    )
    row = to_row(product, ctx.now, actor=ctx.actor)
    await ctx.uow.catalog.add(row)
    await _changed(ctx, row, "added")
    return True

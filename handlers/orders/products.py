"""Browsing the catalog in chat.

    /catalog (or "xem tranh", "cho xem mẫu", "giá", "catalogue", "price")
      → the kinds of work (buttons, with how many of each)
      → one page of that kind: each product a photo with its caption (name, material and
        size, price) and "Đặt bức này"; the page's last product also "Xem tiếp" / "Danh mục"
      → "Đặt bức này" asks how many, then starts the order with the product filled in.

A description outside any flow that clearly names catalog works ("son dau sen") is answered
with those works; at the order's request step the same matching offers "Có phải quý khách
muốn…" (see `matching.offer_products`).
"""

from __future__ import annotations

import re
from typing import cast

from handlers.buttons import CatalogButton, Category, ProductButton
from handlers.context import ButtonRows, Context
from handlers.messages import Button
from handlers.orders.catalog import Product, format_vnd
from handlers.orders.flow import start_order
from handlers.orders.matching import matcher_for
from handlers.orders.pricing import parse_quantity
from handlers.router import Router
from handlers.text import fold

router = Router("catalog")

PAGE_SIZE = 3  # products per page: each is one message with a photo
QUANTITY_CHOICES = (1, 2, 3)

# What customers write when they want to see what the shop has (folded, whole words).
_BROWSE = re.compile(
    r"\b(?:xem (?:tranh|mau|hang|san pham|catalog\w*)|cho (?:em |minh |toi |e )?xem (?:mau|tranh)"
    r"|mau tranh|co (?:nhung )?(?:tranh|mau) (?:gi|nao)|bang gia|gia (?:tranh|ca|bao nhieu)"
    r"|^gia\??$|catalog\w*|price\w*|how much|what do you (?:have|sell)|show me)\b"
)


def caption(ctx: Context, product: Product) -> str:
    return ctx.tr(
        "catalog.caption",
        name=product.title(ctx.lang),
        details=product.details(ctx.lang) or "—",
        price=format_vnd(product.price_vnd),
        code=product.code,
    )


def _category_label(ctx: Context, category: str) -> str:
    return ctx.tr(f"catalog.category.{category}")


async def show_categories(ctx: Context, intro_key: str = "catalog.intro") -> None:
    catalog = ctx.catalog
    categories = catalog.categories()
    if not categories:
        await ctx.reply(ctx.tr("catalog.empty"))
        return
    rows: ButtonRows = tuple(
        (
            ctx.button(
                "catalog.btn.category",
                CatalogButton(cast(Category, category)),
                label=_category_label(ctx, category),
                count=len(catalog.visible(category)),
            ),
        )
        for category in categories
    )
    await ctx.reply(ctx.tr(intro_key), rows)


async def show_products(
    ctx: Context, products: list[Product], tail: tuple[Button, ...] = (), quantity: int = 0
) -> None:
    """Products with photo, caption and "Đặt bức này". Where buttons stay on their message
    (Telegram, Zalo OA) each product is a photo message of its own and `tail` rides on the
    last; elsewhere (numbered options) one listing carries every button."""
    if ctx.capabilities.inline_buttons:
        for index, product in enumerate(products):
            rows: list[tuple[Button, ...]] = [
                (ctx.button("catalog.btn.order", ProductButton(product.code, quantity)),)
            ]
            if tail and index == len(products) - 1:
                rows.append(tail)
            await ctx.reply(
                caption(ctx, product), tuple(rows), photo=product.image_for(ctx.inbound.channel)
            )
        return
    blocks = []
    for number, product in enumerate(products, start=1):
        lines = caption(ctx, product).splitlines()
        if image := product.image_for(ctx.inbound.channel):
            lines.append(f"🖼 {image}")
        blocks.append("\n".join([f"{number}) {lines[0]}", *(f"   {line}" for line in lines[1:])]))
    buttons = tuple(
        (
            ctx.button(
                "catalog.btn.order_code", ProductButton(product.code, quantity), code=product.code
            ),
        )
        for product in products
    )
    await ctx.reply("\n\n".join(blocks), (*buttons, *((tail,) if tail else ())))


async def show_page(ctx: Context, category: str, page: int) -> None:
    products = ctx.catalog.visible(category)
    pages = max(1, -(-len(products) // PAGE_SIZE))
    if not products or page >= pages:
        await show_categories(ctx, "catalog.page_gone")
        return
    await ctx.reply(
        ctx.tr(
            "catalog.page_title",
            category=_category_label(ctx, category),
            page=page + 1,
            pages=pages,
        )
    )
    tail: list[Button] = []
    if page + 1 < pages:
        tail.append(
            ctx.button("catalog.btn.more", CatalogButton(cast(Category, category), page + 1))
        )
    tail.append(ctx.button("catalog.btn.categories", CatalogButton()))
    shown = products[page * PAGE_SIZE : (page + 1) * PAGE_SIZE]
    await show_products(ctx, shown, tuple(tail))


@router.command("catalog", "catalogue", "tranh", help_key="help.cmd.catalog")
async def catalog_command(ctx: Context) -> None:
    await show_categories(ctx)


@router.payload(CatalogButton)
async def catalog_button(ctx: Context, button: CatalogButton) -> None:
    if not button.category:
        await show_categories(ctx)
    else:
        await show_page(ctx, button.category, button.page)


@router.payload(ProductButton)
async def product_button(ctx: Context, button: ProductButton) -> None:
    """ "Đặt bức này": how many, then the order with the product filled in."""
    product = ctx.catalog.get(button.code)
    if product is None or product.hidden:
        await show_categories(ctx, "catalog.product_gone")
        return
    if button.quantity == 0:
        rows = tuple(
            (ctx.button("catalog.btn.quantity", ProductButton(product.code, n), quantity=n),)
            for n in QUANTITY_CHOICES
        )
        await ctx.reply(
            ctx.tr(
                "catalog.ask_quantity",
                name=product.title(ctx.lang),
                price=format_vnd(product.price_vnd),
            ),
            rows,
        )
        return
    await start_order(ctx, {"product": product.code, "quantity": button.quantity})


@router.text
async def browse_words(ctx: Context) -> bool:
    """ "cho xem mẫu", "giá", "catalogue"… → the catalog; a clear description of catalog
    works ("son dau sen") → those works, to order with one tap."""
    text = ctx.inbound.text.strip()
    folded = fold(text)
    if ctx.catalog.find_code_in(text):
        return False  # a code: the order handlers take it
    found = matcher_for(ctx.catalog).candidates(text) if len(folded) <= 200 else []
    if found:
        await ctx.reply(ctx.tr("catalog.match.found"))
        products = [candidate.product for candidate in found]
        await show_products(ctx, products, quantity=parse_quantity(text) or 0)
        return True
    if _BROWSE.search(folded):
        await show_categories(ctx)
        return True
    return False

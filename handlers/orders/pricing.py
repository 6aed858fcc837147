"""Quantity, shipping fee and total of an order: one `Quote`, computed the same way for the
review screen, the confirmation, the staff alert and the payment QR.

The request text is the source: a product code ("SD-001") and a quantity written any way
customers write it ("lấy 2 bức", "2 buc", "x2", "hai bức", "2 paintings"). A size such as
"60x90" is never a quantity. Without a product (custom work) there is no price yet: staff
set it later.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.context import ShopConfig
from handlers.i18n import t
from handlers.orders.catalog import Catalog, Product, format_vnd
from handlers.text import fold
from storage.models import Order

MAX_QUANTITY = 50  # more than this is a wholesale enquiry: staff talk it over

# Sizes have two or more digits on both sides ("60x90", "100 × 150 cm"); "001 × 2" is not one.
_SIZE = re.compile(r"\d{2,4}(?:[.,]\d+)?\s*(?:cm)?\s*[x×*]\s*\d{2,4}(?:[.,]\d+)?")
_UNITS = r"buc|cai|tranh|ban|bo|chiec|tam|pcs|pc|pieces?|paintings?|prints?|copies|copy|items?"
_NUMBER_WORDS = {
    "mot": 1,
    "hai": 2,
    "ba": 3,
    "bon": 4,
    "tu": 4,
    "nam": 5,
    "sau": 6,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
}
_NUMBER = r"(\d{1,3}|" + "|".join(_NUMBER_WORDS) + r")"
_QUANTITY_PATTERNS = (
    re.compile(rf"(?<![\w.,]){_NUMBER}\s*(?:{_UNITS})\b"),  # "2 bức", "hai buc", "2 paintings"
    re.compile(r"(?:^|\s)[x×*]\s*(\d{1,3})\b"),  # "SD-001 x2", "× 2"
    re.compile(r"(?<![\w-])(\d{1,3})\s*[x×]$"),  # "2x" at the end
    re.compile(rf"\b(?:so luong|sl|qty|quantity|lay|mua|dat)\s*:?\s*{_NUMBER}\b(?!\s*[x×*-])"),
)


def parse_quantity(text: str) -> int | None:
    """The quantity a request asks for, or None when it names none (then 1 applies).
    Out-of-range numbers (0, more than MAX_QUANTITY) name none either."""
    folded = _SIZE.sub(" ", fold(text))
    folded = re.sub(r"\b[a-z]{2,8}\s*[-–]?\s*\d{3,6}\b", " ", folded)  # product codes
    folded = re.sub(r"\s+", " ", folded).strip()
    for pattern in _QUANTITY_PATTERNS:
        match = pattern.search(folded)
        if match:
            raw = match.group(1)
            number = _NUMBER_WORDS.get(raw) or (int(raw) if raw.isdigit() else 0)
            if 1 <= number <= MAX_QUANTITY:
                return number
    return None


def with_quantity(code: str, quantity: int) -> str:
    """The request text for a product picked by button: "SD-001" or "SD-001 × 2"."""
    return code if quantity <= 1 else f"{code} × {quantity}"


def shipping_fee(config: ShopConfig, subtotal: int) -> int:
    threshold = config.free_shipping_over_vnd
    if threshold > 0 and subtotal >= threshold:
        return 0
    return config.shipping_fee_vnd


@dataclass(frozen=True)
class Quote:
    product: Product
    quantity: int
    unit_vnd: int
    shipping_vnd: int

    @property
    def subtotal_vnd(self) -> int:
        return self.unit_vnd * self.quantity

    @property
    def total_vnd(self) -> int:
        return self.subtotal_vnd + self.shipping_vnd


def quote(catalog: Catalog, config: ShopConfig, request: str) -> Quote | None:
    """The price of what `request` asks for; None for custom work (no orderable product)."""
    code = catalog.find_code_in(request)
    product = catalog.get(code) if code else None
    if product is None or product.hidden:
        return None
    quantity = parse_quantity(request) or 1
    subtotal = product.price_vnd * quantity
    return Quote(product, quantity, product.price_vnd, shipping_fee(config, subtotal))


def quote_lines(lang: str, q: Quote) -> list[str]:
    """Unit price, quantity, shipping and total, one per line, in `lang`."""
    shipping = format_vnd(q.shipping_vnd) if q.shipping_vnd else t(lang, "catalog.shipping_free")
    return [
        t(lang, "catalog.quote.unit", price=format_vnd(q.unit_vnd)),
        t(lang, "catalog.quote.quantity", quantity=q.quantity),
        t(lang, "catalog.quote.shipping", fee=shipping),
        t(lang, "catalog.quote.total", total=format_vnd(q.total_vnd)),
    ]


def order_money_lines(lang: str, order: Order) -> list[str]:
    """What an order costs and whether it is paid, from the order's own snapshot (the
    catalog may have changed since): for the confirmation, the staff alert and /order."""
    if order.total_vnd is None or order.price_vnd is None:
        return [t(lang, "catalog.quote.custom")]
    fee = order.shipping_fee_vnd or 0
    return [
        t(lang, "catalog.quote.unit", price=format_vnd(order.price_vnd)),
        t(lang, "catalog.quote.quantity", quantity=order.quantity),
        t(
            lang,
            "catalog.quote.shipping",
            fee=format_vnd(fee) if fee else t(lang, "catalog.shipping_free"),
        ),
        t(lang, "catalog.quote.total", total=format_vnd(order.total_vnd)),
        t(lang, "catalog.payment.line", status=t(lang, f"catalog.payment.{order.payment_status}")),
    ]

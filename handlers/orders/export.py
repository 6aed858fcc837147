"""Orders as a CSV file a Vietnamese office opens as it is: UTF-8 with a BOM (Excel then
reads the diacritics), Vietnamese headers and status names, Viet Nam time as
`dd/mm/yyyy HH:MM`, phones in the local display format ("0912 345 678": text, so the
leading 0 stays), prices as plain integers in VND, and a totals row at the end.

Used by the staff chat's `/export` and the staff web page's bulk export (admins only).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime

from handlers.i18n import t
from handlers.orders.validators import format_phone_display
from storage.models import Order

COLUMNS = (
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
CANCELLED = "cancelled"


def local_stamp(moment: datetime) -> str:
    """A file-name-safe Viet Nam time, e.g. 20260115-1000."""
    from handlers.orders.service import VIETNAM_TIME

    return moment.astimezone(VIETNAM_TIME).strftime("%Y%m%d-%H%M")


def _cell(value: str) -> str:
    """Customer text starting with = + - @ (or a tab/CR) would run as a formula in Excel."""
    if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def orders_csv(lang: str, orders: Sequence[Order]) -> bytes:
    from handlers.orders.service import local_time, status_label

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([t(lang, f"staff.csv.{column}") for column in COLUMNS])
    total = 0
    for order in orders:
        value = order.total_vnd if order.total_vnd is not None else order.price_vnd
        if value is not None and order.status != CANCELLED:
            total += value
        writer.writerow(
            [
                order.code,
                status_label(lang, order.status),
                local_time(order.created_at),
                _cell(order.full_name or ""),
                _cell(format_phone_display(order.phone)) if order.phone else "",
                _cell(order.address or ""),
                _cell(order.email or ""),
                order.product_code or "",
                order.product_name or "",
                order.price_vnd if order.price_vnd is not None else "",
                order.quantity,
                order.shipping_fee_vnd if order.shipping_fee_vnd is not None else "",
                order.total_vnd if order.total_vnd is not None else "",
                t(lang, f"catalog.payment.{order.payment_status}"),
                _cell(order.request_text or ""),
                order.channel,
                order.language,
            ]
        )
    totals = [""] * len(COLUMNS)
    totals[0] = t(lang, "staff.csv.total_orders", count=len(orders))
    totals[COLUMNS.index("payment_status")] = t(lang, "staff.csv.total_value")
    totals[COLUMNS.index("total_vnd")] = str(total)
    writer.writerow(totals)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")

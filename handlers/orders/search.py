"""Finding orders the way staff name them: by code, by a part of the name (with or without
diacritics) or by a part of the phone number in any format ("0912 345 678", "+84 912…",
"912.345"), within a status and local dates. Used by `/find` and the staff web page."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

from handlers.orders import codes
from handlers.orders.service import VIETNAM_TIME
from handlers.text import fold
from storage.models import Order
from storage.repositories import UnitOfWork

SEARCH_SCAN = 5000  # newest orders a name search looks through


def local_day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=VIETNAM_TIME)


def phone_part(query: str) -> str | None:
    """The digits to look for when `query` is (a part of) a phone number, else None."""
    digits = re.sub(r"\D", "", query)
    if len(digits) < 3 or len(digits) < len(re.sub(r"[\s.\-()+]", "", query)) - 1:
        return None
    part = digits[1:] if digits.startswith("0") else digits
    return part[2:] if part.startswith("84") and len(part) > 9 else part


async def search_orders(
    uow: UnitOfWork,
    query: str = "",
    status: str | None = None,
    day_from: date | None = None,
    day_to: date | None = None,
    limit: int = 100,
    payment: str | None = None,
) -> list[Order]:
    """Orders matching `query` (see the module doc) within the status, payment status and
    local dates given, newest first; every order of those when `query` is empty."""
    query = query.strip()
    filtered = any(x is not None for x in (status, day_from, day_to, payment))
    part = phone_part(query) if query else None
    if part is not None and not filtered:  # every order, in the database
        return list(await uow.orders.by_phone_part(part, limit))
    since = local_day_start(day_from) if day_from else None
    until = local_day_start(day_to) + timedelta(days=1) if day_to else None
    orders = list(
        await uow.staff_web.orders_between(
            status, since, until, SEARCH_SCAN if query else limit, payment
        )
    )
    if not query:
        return orders
    code = codes.normalize_code(query)
    if code is not None:
        return [o for o in orders if o.code == code]
    if part is not None:
        return [o for o in orders if o.phone and part in o.phone][:limit]
    wanted = fold(query)
    return [o for o in orders if wanted in fold(o.full_name or "")][:limit]

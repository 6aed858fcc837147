"""Which customer a staff command names: the one lookup of every staff command that acts on
a customer (`/lock`, `/unlock`, `/legal`).

Staff name a customer by an order code, a ticket code (complaint, return, warranty), a
talk-to-staff thread code or a phone number, followed by the rest of the command (a reason,
a legal basis). A phone number can belong to several customers (a shared family phone, a
typo in an order): then the answer is `SeveralCustomers` and the command must refuse rather
than act on whichever customer happens to come first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from handlers.context import Context
from handlers.errors import InvalidInput
from handlers.orders import codes
from handlers.orders.validators import parse_phone
from handlers.support.complaints import leading_ticket_code
from handlers.support.talk import THREAD_PREFIX, leading_code
from storage.repositories import CustomerLookup

_PHONE_CHARS = re.compile(r"^[\d+ .\-()]+$")


@dataclass(frozen=True)
class Target:
    found: CustomerLookup
    code: str | None  # the reference code staff used; None when they gave a phone number
    rest: str  # the words after it


async def staff_target(ctx: Context, args: str) -> Target | None:
    """The customer named by the leading code or phone number of `args`; None when `args`
    starts with neither (the command then shows its usage line)."""
    args = args.strip()
    for code, rest in (
        leading_code(args, codes.ORDER_PREFIX),
        leading_ticket_code(args),
        leading_code(args, THREAD_PREFIX),
    ):
        if code is not None:
            return Target(await ctx.uow.customers.lookup_code(code), code, rest)
    phone, rest = _leading_phone(args)
    if phone is not None:
        return Target(await ctx.uow.customers.lookup_phone(phone), None, rest)
    return None


def _leading_phone(args: str) -> tuple[str | None, str]:
    """ "0912 345 678 reason" → ("+84912345678", "reason"): the longest run of leading words
    that parses as a phone number (so a reason starting with a digit is not swallowed)."""
    words = args.split()
    for count in range(min(len(words), 6), 0, -1):
        candidate = " ".join(words[:count])
        if not _PHONE_CHARS.match(candidate) or not any(ch.isdigit() for ch in candidate):
            continue
        try:
            return parse_phone(candidate), " ".join(words[count:])
        except InvalidInput:
            continue
    return None, args

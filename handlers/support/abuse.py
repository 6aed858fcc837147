"""Abuse protection: flood control and locking customers.

Flood control: at most `FLOOD_LIMIT` messages per `FLOOD_WINDOW` per customer (channel +
platform user), counted over a sliding window in memory (one bot process). The first message
beyond the limit gets one polite notice (`core.too_fast`); further ones are dropped without
an answer until the customer slows down below the limit. Dropped messages count too, so a
continuous flood stays muted. Staff are never limited. The dispatcher calls `allow()` first
on the customer path; other customers are unaffected.

Locking (`/lock <order code | ticket code | TK code | phone> <reason>`, `/unlock <same>`,
staff admins only, audited): a locked customer hears one notice on their next message and
nothing else is processed, except the data-rights routes (`locked_ok=True`), which always
work — the dispatcher enforces both. `/unlock` restores service and tells the customer.
"""

from __future__ import annotations

import weakref
from collections import deque
from datetime import datetime, timedelta
from typing import Literal

from handlers.context import Context, ShopConfig
from handlers.i18n import t
from handlers.lookup import staff_target
from handlers.router import Router
from storage.models import Customer
from storage.repositories import NoCustomer, OneCustomer, SeveralCustomers

router = Router("abuse")

FLOOD_LIMIT = ShopConfig.flood_limit  # defaults; the running bot uses the settings
FLOOD_WINDOW = ShopConfig.flood_window
_PRUNE_ABOVE = 10_000  # tracked senders before idle ones are forgotten

Verdict = Literal["ok", "notice", "drop"]
Key = tuple[str, str]


class FloodControl:
    """Sliding-window message counter per sender."""

    def __init__(self, limit: int = FLOOD_LIMIT, window: timedelta = FLOOD_WINDOW) -> None:
        self.limit = limit
        self.window = window
        self._seen: dict[Key, deque[datetime]] = {}
        self._noticed: set[Key] = set()

    def hit(self, key: Key, now: datetime) -> Verdict:
        """Count one message of `key` at `now`: "ok", "notice" (first over the limit) or
        "drop"."""
        if len(self._seen) > _PRUNE_ABOVE:
            self._prune(now)
        seen = self._seen.setdefault(key, deque(maxlen=self.limit + 1))
        while seen and seen[0] <= now - self.window:
            seen.popleft()
        seen.append(now)
        if len(seen) <= self.limit:
            self._noticed.discard(key)
            return "ok"
        if key in self._noticed:
            return "drop"
        self._noticed.add(key)
        return "notice"

    def over_limit(self, key: Key, now: datetime) -> bool:
        """Whether `key` is muted right now (read-only)."""
        seen = self._seen.get(key, ())
        return sum(1 for at in seen if at > now - self.window) > self.limit

    def _prune(self, now: datetime) -> None:
        for key in [
            k for k, seen in self._seen.items() if not seen or seen[-1] <= now - self.window
        ]:
            del self._seen[key]
            self._noticed.discard(key)


# One window per database engine, i.e. per running bot (each test database gets its own).
_controls: weakref.WeakKeyDictionary[object, FloodControl] = weakref.WeakKeyDictionary()
_default = FloodControl()


def flood_control(ctx: Context) -> FloodControl:
    database = ctx.uow.database
    if database is None:
        return _default
    control = _controls.get(database)
    if control is None:
        control = _controls[database] = FloodControl(
            ctx.config.flood_limit,
            ctx.config.flood_window,
        )
    return control


def is_flood_limited(bind: object, key: Key, now: datetime) -> bool:
    """Whether the sender `key` is over the flood limit in the bot on database engine `bind`
    (the runtime asks before showing "typing…", which a muted sender must not get)."""
    control = _controls.get(bind)
    return control is not None and control.over_limit(key, now)


def shed_if_flooding(bind: object, key: Key, now: datetime) -> bool:
    """Before storing: True (and counted, as a dropped message is) when the sender `key` is
    muted already. The filter below would drop the message anyway once processed; shedding
    it here keeps a flood out of the inbox, so other customers never queue behind it."""
    control = _controls.get(bind)
    if control is None or not control.over_limit(key, now):
        return False
    control.hit(key, now)
    return True


@router.inbound_filter
async def allow(ctx: Context) -> bool:
    """Count this customer message; False when it must be dropped (the notice, once, is
    already in the outbox then)."""
    if ctx.is_staff:
        return True
    verdict = flood_control(ctx).hit((ctx.inbound.channel, ctx.inbound.user_id), ctx.now)
    if verdict == "notice":
        await ctx.reply(ctx.tr("core.too_fast"))
        await ctx.audit("flood_limited")
    return verdict == "ok"


# ---- lock / unlock -------------------------------------------------------------------------


async def _target(ctx: Context) -> tuple[Customer | None, str, str]:
    """The customer named by the command (see `handlers.lookup`), what named them — for the
    audit and the staff reply — and the rest of the arguments. On failure the customer is
    None and the staff chat has been told why."""
    target = await staff_target(ctx, ctx.inbound.args)
    if target is None:
        await ctx.to_staff(ctx.staff_text("lock.staff.usage"))
        return None, "", ""
    used = target.code or t(ctx.config.default_language, "lock.staff.by_phone")
    match target.found:
        case OneCustomer(customer):
            return customer, used, target.rest
        case SeveralCustomers(count):
            await ctx.to_staff(ctx.staff_text("lock.staff.ambiguous", count=count))
        case NoCustomer():
            await ctx.to_staff(ctx.staff_text("lock.staff.not_found", target=used))
    return None, "", ""


@router.command("lock", admin=True, help_key="help.staff.lock")
async def lock_command(ctx: Context) -> None:
    if await ctx.refuse_unless_admin():
        return
    customer, used, reason = await _target(ctx)
    if customer is None:
        return
    if not reason.strip():
        await ctx.to_staff(ctx.staff_text("lock.staff.usage"))
        return
    if customer.locked_at is not None:
        await ctx.to_staff(ctx.staff_text("lock.staff.already_locked", target=used))
        return
    customer.locked_at = ctx.now
    customer.lock_reason = reason.strip()[:300]
    customer.lock_notified = False
    await ctx.audit("customer_locked", subject=f"customer:{customer.id}")
    await ctx.to_staff(ctx.staff_text("lock.staff.locked", target=used, customer=customer.id))


@router.command("unlock", admin=True, help_key="help.staff.unlock")
async def unlock_command(ctx: Context) -> None:
    if await ctx.refuse_unless_admin():
        return
    customer, used, _ = await _target(ctx)
    if customer is None:
        return
    if customer.locked_at is None:
        await ctx.to_staff(ctx.staff_text("lock.staff.not_locked", target=used))
        return
    customer.locked_at = None
    customer.lock_reason = None
    customer.lock_notified = False
    await ctx.audit("customer_unlocked", subject=f"customer:{customer.id}")
    await ctx.to_staff(ctx.staff_text("lock.staff.unlocked", target=used, customer=customer.id))
    await ctx.to_customer(customer, "lock.unlocked")

"""The staff desk: what the staff chat and the staff web page share beyond the single
actions (those live with their feature: orders/staff.py, support/complaints.py, talk.py).

- Sign-in links for the web page: `/web` in the staff chat (or `python -m bot web-login
  NAME`) issues a single-use link valid 10 minutes; `/web off` signs the member out
  everywhere. The role (admin or staff) comes from the same settings as the chat.
- `staff_context`: a `Context` for an action taken on the web page, so the web calls the very
  handlers the chat buttons call (one implementation, two front ends). Its actor names the
  staff member, so the audit log says who did it.
- Queries for the lists and the dashboard: order search (code, name or phone, with or
  without diacritics, any phone format), SLA clocks of tickets, orders per day, open tickets
  by age, the median time to the first staff answer.
"""

from __future__ import annotations

import secrets
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from handlers.context import (
    Context,
    ShopConfig,
    reachable_identity,
    staff_message,
    window_end,
    window_notice,
)
from handlers.i18n import t
from handlers.messages import Inbound
from handlers.orders.search import local_day_start
from handlers.orders.service import VIETNAM_TIME
from handlers.router import Composition, Router
from handlers.support.complaints import reannounce_intervals
from storage.models import Order
from storage.repositories import UnitOfWork
from storage.staff_web import ADMIN, STAFF_ROLE
from storage.support import OPEN, Ticket

router = Router("staff_desk")

LOGIN_TTL = timedelta(minutes=10)
SESSION_TTL = timedelta(hours=12)
WEB_CHANNEL = "web"  # the channel name of actions taken on the web page (audit, history)


@dataclass(frozen=True)
class StaffMember:
    id: str  # the platform user id the chat knows them by, or "cli"
    name: str
    role: str  # admin | staff

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


async def issue_login(uow: UnitOfWork, member: StaffMember, now: datetime) -> str:
    """A new single-use sign-in secret for `member` (only its digest is stored)."""
    secret = secrets.token_urlsafe(32)
    await uow.staff_web.add_login(secret, member.id, member.name, member.role, now, LOGIN_TTL)
    return secret


@router.command("web", staff=True, help_key="help.staff.web")
async def web_command(ctx: Context) -> None:
    """A sign-in link for the staff page, for the member who asked (removed from the chat
    when it expires); `/web off` signs them out of every browser."""
    if not ctx.config.staff_web_url:
        await ctx.to_staff(ctx.staff_text("staff.web.disabled"))
        return
    member = chat_member(ctx)
    if ctx.inbound.args.strip().lower() in ("off", "tat", "tắt", "logout"):
        count = await ctx.uow.staff_web.revoke_of(member.id, ctx.now)
        await ctx.audit("web_sessions_revoked", detail=f"count={count}")
        await ctx.to_staff(ctx.staff_text("staff.web.signed_out", count=count))
        return
    secret = await issue_login(ctx.uow, member, ctx.now)
    await ctx.audit("web_login_issued", detail=member.role)
    text = ctx.staff_text(
        "staff.web.link",
        name=member.name,
        url=f"{ctx.config.staff_web_url}/login/{secret}",
        minutes=int(LOGIN_TTL.total_seconds() // 60),
    )
    message = replace(
        staff_message(ctx.config, text), delete_after_seconds=int(LOGIN_TTL.total_seconds())
    )
    await ctx.send(message)


def chat_member(ctx: Context) -> StaffMember:
    name = ctx.inbound.user_display_name.strip() or ctx.inbound.user_id
    return StaffMember(ctx.inbound.user_id, name[:100], ADMIN if ctx.is_admin else STAFF_ROLE)


def member_role(config: ShopConfig, staff_id: str, issued_role: str) -> str:
    """The role now: a chat member's admin rights follow STAFF_ADMIN_IDS (taken away there,
    gone here too); a terminal-issued admin link ("cli") keeps the role it was issued with."""
    if staff_id == "cli":
        return issued_role
    return ADMIN if staff_id in config.staff_admin_ids else STAFF_ROLE


def staff_context(
    uow: UnitOfWork, config: ShopConfig, app: Composition, now: datetime, member: StaffMember
) -> Context:
    """The context of one action taken on the web page by `member`: it acts as a message
    from the staff chat would (to_staff posts there, so the team sees what happened), with
    the member's name in the actor, the order history and the audit log."""
    actor_id = f"{member.id}:{member.name}"[:48]
    inbound = Inbound(
        channel=WEB_CHANNEL,
        chat_id=config.staff_chat_id,
        user_id=actor_id,
        dedupe_key="",
        from_staff_chat=True,
        user_display_name=member.name,
    )
    admins = frozenset({actor_id}) if member.is_admin else frozenset()
    return Context(
        uow=uow, inbound=inbound, config=replace(config, staff_admin_ids=admins), now=now, app=app
    )


# ---- tickets and their clocks ---------------------------------------------------------------


def sla_due(config: ShopConfig, ticket: Ticket) -> datetime | None:
    """When an open ticket should have been taken up (urgent: 1 h, else 4 h by default, the
    re-announcement intervals); None once acknowledged."""
    if ticket.status != OPEN:
        return None
    normal, urgent = reannounce_intervals(config)
    return ticket.created_at + (urgent if ticket.urgent else normal)


def duration_text(lang: str, delta: timedelta) -> str:
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return t(lang, "staff.web.duration_days", days=days, hours=hours)
    if hours:
        return t(lang, "staff.web.duration_hours", hours=hours, minutes=minutes)
    return t(lang, "staff.web.duration_minutes", minutes=minutes)


async def window_text(
    uow: UnitOfWork, config: ShopConfig, lang: str, customer_id: int | None, now: datetime
) -> tuple[str, bool]:
    """The customer's messaging window as a line for the page, and whether it is closed."""
    from handlers.orders.service import local_time

    customer = await uow.customers.get(customer_id) if customer_id is not None else None
    if customer is None:
        return "", False
    identity = reachable_identity(await uow.customers.identities_of(customer.id))
    end = window_end(config, customer, identity) if identity is not None else None
    if end is None:
        return "", False
    if now < end:
        return t(lang, "staff.web.window_open", until=local_time(end)), False
    phone = customer.phone or await uow.orders.latest_phone(customer.id)
    key, values = window_notice(customer, end, phone)
    return t(lang, key, **values), True


# ---- dashboard --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dashboard:
    orders_per_day: list[tuple[date, int]]
    open_by_age: list[tuple[str, int]]  # (label key, count)
    median_first_answer: timedelta | None
    answered: int  # how many first answers the median is over


AGE_BUCKETS = (
    ("staff.web.age.hour", timedelta(hours=1)),
    ("staff.web.age.four_hours", timedelta(hours=4)),
    ("staff.web.age.day", timedelta(days=1)),
    ("staff.web.age.three_days", timedelta(days=3)),
    ("staff.web.age.older", timedelta.max),
)


async def dashboard(uow: UnitOfWork, now: datetime, days: int = 14) -> Dashboard:
    today = now.astimezone(VIETNAM_TIME).date()
    first_day = today - timedelta(days=days - 1)
    counts = {first_day + timedelta(days=i): 0 for i in range(days)}
    for created in await uow.staff_web.order_created_times(local_day_start(first_day)):
        day = created.astimezone(VIETNAM_TIME).date()
        if day in counts:
            counts[day] += 1

    ages = [0] * len(AGE_BUCKETS)
    for ticket in await uow.staff_web.open_tickets():
        age = now - ticket.created_at
        ages[next(i for i, (_, limit) in enumerate(AGE_BUCKETS) if age < limit)] += 1
    for thread in await uow.staff_web.open_threads():
        age = now - thread.opened_at
        ages[next(i for i, (_, limit) in enumerate(AGE_BUCKETS) if age < limit)] += 1

    waits = await first_answer_waits(uow, now - timedelta(days=30))
    return Dashboard(
        orders_per_day=sorted(counts.items()),
        open_by_age=[(key, ages[i]) for i, (key, _) in enumerate(AGE_BUCKETS)],
        median_first_answer=(
            timedelta(seconds=statistics.median(w.total_seconds() for w in waits))
            if waits
            else None
        ),
        answered=len(waits),
    )


async def first_answer_waits(uow: UnitOfWork, since: datetime) -> list[timedelta]:
    """How long customers waited for the first staff answer: a ticket's acknowledgement (a
    first reply acknowledges too); an order's first staff status change or message."""
    waits = [
        ticket.acknowledged_at - ticket.created_at
        for ticket in await uow.staff_web.tickets_since(since)
        if ticket.acknowledged_at is not None
    ]
    orders: Sequence[Order] = await uow.staff_web.orders_between(None, since, None, 10_000)
    first_messages = await uow.staff_web.first_answers([f"order:{o.id}" for o in orders])
    for order in orders:
        moments = [c.at for c in order.history if c.actor.startswith("staff:")]
        if (message := first_messages.get(f"order:{order.id}")) is not None:
            moments.append(message)
        if moments:
            waits.append(min(moments) - order.created_at)
    return waits

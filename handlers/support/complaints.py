"""Complaints, and the ticket lifecycle shared with returns/warranty requests.

Complaint flow (`/complaint`, the "complaint" button or menu item, the complaint intent),
after consent (a complaint stores personal free text):
    1. category     (buttons: suspected data leak / order or service / other; typed words too)
    2. description  (1–2000 characters)
    3. photos       (up to 5, optional)
    → review → ticket "KN-XXXXX", staff alert, confirmation to the customer.

Lifecycle of every ticket (complaint "KN-", return "DT-", warranty "BH-"):
    open ──(staff: ✅ acknowledge, `cp:<id>:ack`, or a first interim reply)──▶ acknowledged
         ──(staff: `/resolve CODE response`, or a reply to the resolve prompt)──▶ resolved
The customer is told at each step; the response is sent to them. A suspected data leak is
urgent: its alert says so and mentions the staff admins. Open tickets nobody acknowledged
are re-announced in the staff chat (`reannounce_due`, called by the runtime's periodic job)
after 4 hours, urgent ones after 1 hour.

Interim replies, without closing the ticket: `/reply CODE text`, "CODE text", or a reply
to the ticket's alert; the customer gets it signed by the shop. `/reply` takes every code
staff use (TK-, KN-, DT-, BH-, VAV-), so there is one way to answer anyone.

`/complaints` lists the customer's own tickets; staff `/tickets` lists unresolved ones.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta
from typing import Any

from handlers import engine
from handlers.buttons import ComplaintButton, MyTicketsButton, TalkButton, TicketButton
from handlers.context import ButtonRows, Context, ShopConfig, enqueue, staff_message
from handlers.engine import Flow, Step, StepInput
from handlers.errors import InvalidInput
from handlers.flows.consent import after_consent
from handlers.i18n import pick_language, t
from handlers.messages import Button, mention
from handlers.orders import codes
from handlers.orders.service import local_time, order_tag
from handlers.orders.staff import reply_to_order
from handlers.orders.validators import PHOTOS_MAX, parse_photos
from handlers.relay import addressed_in_staff_chat, relay_to_customer
from handlers.router import Composition, Router
from handlers.support.talk import THREAD_PREFIX, answer_in_thread, leading_code, new_support_code
from handlers.text import fold, word_set
from storage.models import Customer, Order
from storage.repositories import UnitOfWork
from storage.support import (
    ACKNOWLEDGED,
    COMPLAINT,
    OPEN,
    RESOLVED,
    RETURN,
    WARRANTY,
    Ticket,
    ticket_tag,
)
from storage.tags import Tag

router = Router("complaints")

MAX_TEXT = 2000
CODE_PREFIXES = {COMPLAINT: "KN", RETURN: "DT", WARRANTY: "BH"}

LEAK, SERVICE, OTHER = "leak", "service", "other"
CATEGORIES = (LEAK, SERVICE, OTHER)


# ---- choice steps (buttons that answer a step of the active flow) ---------------------------


def _has(folded: str, *phrases: str) -> bool:
    padded = f" {folded} "
    return any(f" {phrase} " in padded for phrase in phrases)


# ---- step parsers --------------------------------------------------------------------------


# Words naming a category, in the order they are tried (a leak first: it is urgent).
_CATEGORY_WORDS = (
    (
        LEAK,
        (
            "lo", "ro ri", "leak", "leaked", "du lieu", "data", "bao mat", "privacy",
            "nguoi la", "lua dao", "gia danh", "stranger", "scam",
        ),
    ),
    (
        SERVICE,
        (
            "don", "don hang", "dich vu", "order", "service", "giao hang", "san pham", "tranh",
            "painting", "delivery",
        ),
    ),
)  # fmt: skip
_NON_WORD = re.compile(r"[\W_]+")


def _words(text: str) -> str:
    return _NON_WORD.sub(" ", fold(text)).strip()


def category_from_text(text: str) -> str | None:
    """The category a customer's own words already name, or None: "tôi muốn khiếu nại việc
    lộ thông tin" → leak, "tranh giao chậm quá, mình muốn phản ánh" → service. Never
    "other": that one is only ever chosen."""
    words = _words(text)
    return next((c for c, phrases in _CATEGORY_WORDS if _has(words, *phrases)), None)


def parse_category(answer: StepInput) -> str:
    words = _words(answer.text)
    if words in CATEGORIES:
        return words
    numbered = {"1": LEAK, "2": SERVICE, "3": OTHER}.get(words)
    if numbered is not None:
        return numbered
    if found := category_from_text(words):
        return found
    if _has(words, "khac", "other", "van de khac"):
        return OTHER
    raise InvalidInput("complaint.category.unknown")


# Words that only say "I want to complain (about a leak / my order)": a message made of
# little else is a trigger, not a description, and the description step is still asked.
_TRIGGER_WORDS = word_set(
    """
    toi tui minh mk em e anh chi t a ad admin shop oi nhe nha voi di vay
    muon can se xin cho gui khieu nai phan anh bao cao viec chuyen ve bi da lo ro ri
    thong tin tt du lieu ca nhan cua bao mat dich vu don hang lam sao the nao o dau
    i my me we want to would like file make a an the about complain complaint report
    data information info personal privacy leak leaked order service please was is has been
    vi ve because for of
    """
    # the words that name a category say what it is about, not what happened
) | {word for _, phrases in _CATEGORY_WORDS for phrase in phrases for word in phrase.split()}
MIN_DESCRIPTION_WORDS = 3  # words beyond the trigger words


def description_from_text(text: str) -> str | None:
    """The message itself as the complaint's description when it says more than the trigger
    phrase ("có người gọi điện biết tên và địa chỉ của tôi…"), else None ("tôi bị lộ thông
    tin", "toi muon khieu nai")."""
    text = text.strip()
    extra = [w for w in _words(text).split() if w not in _TRIGGER_WORDS]
    if len(extra) < MIN_DESCRIPTION_WORDS or len(text) > MAX_TEXT:
        return None
    return text


def parse_text(answer: StepInput) -> str:
    """A description or reason: 1–2000 characters of text."""
    text = answer.text.strip()
    if not text:
        raise InvalidInput(
            "support.text.photo_first" if answer.attachments else "support.text.empty"
        )
    if len(text) > MAX_TEXT:
        raise InvalidInput("support.text.too_long", limit=MAX_TEXT, length=len(text))
    return text


def _show_category(ctx: Context, value: Any) -> str:
    return ctx.tr(f"complaint.choice.{value}") if value in CATEGORIES else str(value)


# ---- the complaint flow --------------------------------------------------------------------


async def _file_complaint(ctx: Context, values: dict[str, Any]) -> None:
    ticket = await create_ticket(
        ctx,
        kind=COMPLAINT,
        category=str(values["category"]),
        description=str(values["description"]),
        photos=list(values.get("photos") or []),
    )
    key = "complaint.received_urgent" if ticket.urgent else "complaint.received"
    await ctx.reply(
        ctx.tr(key, code=ticket.code, hours=ctx.config.shop_hours),
        ((ctx.button("support.btn.my_tickets", MyTicketsButton()),),),
    )


CATEGORY_CHOICES = tuple((f"complaint.choice.{c}", c) for c in CATEGORIES)


COMPLAINT_FLOW = router.flow(
    Flow(
        name="complaint",
        title="complaint.review_title",
        on_complete=_file_complaint,
        steps=(
            Step(
                "category",
                "complaint.ask.category",
                "complaint.field.category",
                parse_category,
                show=_show_category,
                choices=CATEGORY_CHOICES,
            ),
            Step(
                "description",
                "complaint.ask.description",
                "complaint.field.description",
                parse_text,
            ),
            Step(
                "photos",
                "complaint.ask.photos",
                "support.field.photos",
                parse_photos,
                collect_max=PHOTOS_MAX,
            ),
        ),
    )
)


@router.command("complaint", help_key="help.cmd.complaint")
@router.payload(ComplaintButton)
async def complaint_command(ctx: Context, _: object = None) -> None:
    await start_complaint(ctx, {})


@after_consent(router, "complaint")
async def start_complaint(ctx: Context, context: dict[str, Any]) -> None:
    """Start the complaint form. `context` may carry what the customer already said:
    "category" prefills the category step (a leak report: "leak"), "text" — the message that
    started the complaint — gives the category when none is given and becomes the
    description when it says more than "I want to complain". The customer is told what was
    taken over, and can change it on the review screen."""
    text = str(context.get("text") or "")
    category = context.get("category") or category_from_text(text)
    description = description_from_text(text)
    values: dict[str, Any] = {}
    notes = []
    if category in CATEGORIES:
        values["category"] = category
        notes.append(
            ctx.tr("complaint.noted_leak")
            if category == LEAK
            else ctx.tr("complaint.noted", category=ctx.tr(f"complaint.category.{category}"))
        )
    if description is not None:
        values["description"] = description
        notes.append(ctx.tr("complaint.noted_text"))
    if notes:
        await ctx.reply("\n".join(notes))
    await engine.begin(ctx, COMPLAINT_FLOW, values)


@router.command("complaints", help_key="help.cmd.complaints", locked_ok=True)
@router.payload(MyTicketsButton, locked_ok=True)
async def my_tickets(ctx: Context, _: object = None) -> None:
    assert ctx.customer is not None
    tickets = await ctx.uow.support.tickets_of(ctx.customer.id)
    if not tickets:
        await ctx.reply(
            ctx.tr("support.tickets.none"),
            (
                (ctx.button("menu.complaint", ComplaintButton()),),
                (ctx.button("menu.talk", TalkButton()),),
            ),
        )
        return
    lines = [ctx.tr("support.tickets.title")]
    lines += [
        ctx.tr(
            "support.tickets.line",
            code=ticket.code,
            what=describe(ctx.lang, ticket),
            date=local_time(ticket.created_at),
            status=ctx.tr(f"support.status.{ticket.status}"),
        )
        for ticket in tickets[:20]
    ]
    await ctx.reply("\n".join(lines))


# ---- tickets: creation and the staff alert -------------------------------------------------


def describe(lang: str, ticket: Ticket) -> str:
    """ "Complaint (suspected data leak)", "Return request", ... in `lang`."""
    what = t(lang, f"support.kind.{ticket.kind}")
    if ticket.category in CATEGORIES:
        what += f" ({t(lang, f'complaint.category.{ticket.category}')})"
    return what


async def create_ticket(
    ctx: Context,
    *,
    kind: str,
    description: str,
    photos: list[str],
    category: str | None = None,
    order: Order | None = None,
) -> Ticket:
    """Store a ticket of the current customer and alert the staff chat (threaded under the
    order's alert when the ticket is about an order)."""
    assert ctx.customer is not None
    ticket = await ctx.uow.support.add_ticket(
        Ticket(
            code=await new_support_code(ctx.uow, CODE_PREFIXES[kind]),
            kind=kind,
            category=category,
            customer_id=ctx.customer.id,
            order_id=order.id if order is not None else None,
            channel=ctx.inbound.channel,
            language=ctx.lang,
            description=description,
            photos=photos,
            status=OPEN,
            urgent=category == LEAK,
            created_at=ctx.now,
            last_announced_at=ctx.now,
        )
    )
    await ctx.audit(
        "ticket_created", subject=ticket.code, detail="urgent" if ticket.urgent else None
    )
    order_alert = await ctx.uow.outbox.first_with_tag(order_tag(order)) if order else None
    await ctx.to_staff(
        render_alert(ctx.config, ticket, ctx.customer, order),
        alert_buttons(ctx.config, ticket),
        tag=ticket_tag(ticket),
        reply_to=order_alert.id if order_alert else None,
        customer_id=ctx.customer.id,
    )
    return ticket


def mentions(config: ShopConfig) -> str:
    """The staff admins, mentioned (HTML): the staff channel's adapter renders them."""
    return ", ".join(mention(admin) for admin in sorted(config.staff_admin_ids))


def render_alert(
    config: ShopConfig, ticket: Ticket, customer: Customer | None, order: Order | None
) -> str:
    """The staff alert (HTML, every value escaped) with the ticket's current status."""
    lang = config.default_language
    e = html.escape

    def row(key: str, value: str | None) -> str:
        return f"<b>{e(t(lang, key))}:</b> {e(value) if value else '—'}"

    if ticket.urgent:
        title = f"🚨 <b>{e(t(lang, 'support.staff.urgent_title', code=ticket.code))}</b>"
    else:
        title = f"📝 <b>{e(t(lang, 'support.staff.title', code=ticket.code))}</b>"
    name = customer.full_name if customer is not None and customer.full_name else None
    who = t(
        lang,
        "support.staff.customer_line",
        name=name or t(lang, "support.staff.no_name"),
        customer=ticket.customer_id if ticket.customer_id is not None else "—",
        channel=ticket.channel,
        language=ticket.language,
    )
    lines = [
        title,
        row("support.staff.kind", describe(lang, ticket)),
        row("support.staff.time", local_time(ticket.created_at)),
    ]
    if ticket.order_id is not None:
        lines.append(row("support.staff.order", order.code if order is not None else None))
    lines += [
        row("support.staff.customer", who),
        row("support.staff.description", ticket.description),
        row("support.field.photos", ", ".join(ticket.photos) if ticket.photos else None),
        "",
        row("support.staff.status", _status_line(lang, ticket)),
    ]
    if ticket.response:
        lines.append(row("support.staff.response", ticket.response))
    if ticket.urgent and ticket.status == OPEN and config.staff_admin_ids:
        lines.append(f"📣 {e(t(lang, 'support.staff.admins'))}: {mentions(config)}")
    return "\n".join(lines)


def _status_line(lang: str, ticket: Ticket) -> str:
    parts = [t(lang, f"support.status.{ticket.status}")]
    if ticket.acknowledged_at is not None:
        parts.append(
            t(
                lang,
                "support.staff.acknowledged_line",
                name=ticket.acknowledged_by_name or ticket.acknowledged_by or "",
                time=local_time(ticket.acknowledged_at),
            )
        )
    if ticket.resolved_at is not None:
        parts.append(
            t(
                lang,
                "support.staff.resolved_line",
                name=ticket.resolved_by_name or ticket.resolved_by or "",
                time=local_time(ticket.resolved_at),
            )
        )
    return " · ".join(parts)


def alert_buttons(config: ShopConfig, ticket: Ticket) -> ButtonRows:
    lang = config.default_language
    buttons = []
    if ticket.status == OPEN:
        buttons.append(
            Button(t(lang, "support.staff.btn_ack"), TicketButton(ticket.id, "ack").pack())
        )
    if ticket.status != RESOLVED:
        buttons.append(
            Button(t(lang, "support.staff.btn_resolve"), TicketButton(ticket.id, "resolve").pack())
        )
    return (tuple(buttons),) if buttons else ()


async def _refresh_alert(ctx: Context, ticket: Ticket, customer: Customer | None) -> None:
    order = await ctx.uow.orders.by_id(ticket.order_id) if ticket.order_id else None
    alert = await ctx.uow.outbox.first_with_tag(ticket_tag(ticket))
    await ctx.to_staff(
        render_alert(ctx.config, ticket, customer, order),
        alert_buttons(ctx.config, ticket),
        edit_of=alert.id if alert else None,
        tag=ticket_tag(ticket),
        customer_id=ticket.customer_id,
    )


async def _customer_of(ctx: Context, ticket: Ticket) -> Customer | None:
    return await ctx.uow.customers.get(ticket.customer_id) if ticket.customer_id else None


def _customer_language(ctx: Context, customer: Customer) -> str:
    return pick_language(customer.language, None, ctx.config.default_language)


# ---- staff actions -------------------------------------------------------------------------


@router.payload(TicketButton, staff=True, refused_key="support.staff.not_found")
async def ticket_button(ctx: Context, button: TicketButton) -> None:
    ticket = await ctx.uow.support.ticket(button.ticket_id)
    if ticket is None:
        await ctx.to_staff(ctx.staff_text("support.staff.not_found"))
    elif button.action == "ack":
        await acknowledge(ctx, ticket)
    else:
        await ask_resolution(ctx, ticket)


def _mark_acknowledged(ctx: Context, ticket: Ticket) -> None:
    ticket.status = ACKNOWLEDGED
    ticket.acknowledged_at = ctx.now
    ticket.acknowledged_by = ctx.actor
    ticket.acknowledged_by_name = ctx.inbound.user_display_name[:100] or None


async def acknowledge(ctx: Context, ticket: Ticket) -> None:
    if ticket.status != OPEN:
        await _already(ctx, ticket)
        return
    _mark_acknowledged(ctx, ticket)
    await ctx.audit("ticket_acknowledged", subject=ticket.code)
    customer = await _customer_of(ctx, ticket)
    await _refresh_alert(ctx, ticket, customer)
    if customer is not None:
        lang = _customer_language(ctx, customer)
        await ctx.to_customer(
            customer,
            "support.notify.acknowledged",
            {"code": ticket.code, "what": describe(lang, ticket), "hours": ctx.config.shop_hours},
        )


async def ask_resolution(ctx: Context, ticket: Ticket) -> None:
    if ticket.status == RESOLVED:
        await _already(ctx, ticket)
        return
    # A reply to this prompt (Telegram) is taken as the response: see `resolution_reply`.
    await ctx.to_staff(
        ctx.staff_text("support.staff.resolve_how", code=ticket.code),
        tag=str(Tag("resolve", ticket.id)),
    )


async def _already(ctx: Context, ticket: Ticket) -> None:
    await ctx.to_staff(
        ctx.staff_text(
            "support.staff.already",
            code=ticket.code,
            status=t(ctx.config.default_language, f"support.status.{ticket.status}"),
        )
    )


async def resolve(ctx: Context, ticket: Ticket, response: str) -> None:
    response = response.strip()[:MAX_TEXT]
    if not response:
        await ctx.to_staff(ctx.staff_text("support.staff.resolve_usage"))
        return
    if ticket.status == RESOLVED:
        await _already(ctx, ticket)
        return
    name = ctx.inbound.user_display_name[:100] or None
    if ticket.acknowledged_at is None:
        ticket.acknowledged_at, ticket.acknowledged_by = ctx.now, ctx.actor
        ticket.acknowledged_by_name = name
    ticket.status = RESOLVED
    ticket.resolved_at, ticket.resolved_by, ticket.resolved_by_name = ctx.now, ctx.actor, name
    customer = await _customer_of(ctx, ticket)
    # The response is personal data of the customer: kept only while the customer exists.
    ticket.response = response if customer is not None else None
    await ctx.audit("ticket_resolved", subject=ticket.code)
    await _refresh_alert(ctx, ticket, customer)
    sent = None
    if customer is not None:
        lang = _customer_language(ctx, customer)
        sent = await ctx.to_customer(
            customer,
            "support.notify.resolved",
            {"code": ticket.code, "what": describe(lang, ticket), "response": response},
        )
    if sent is not None:
        await ctx.to_staff(
            ctx.staff_text("support.staff.resolved", code=ticket.code), tag=ticket_tag(ticket)
        )
    elif not ctx.window_closed:  # else staff were already told whom to call
        await ctx.to_staff(
            ctx.staff_text("support.staff.customer_gone", code=ticket.code), tag=ticket_tag(ticket)
        )


def leading_ticket_code(text: str) -> tuple[str | None, str]:
    for prefix in CODE_PREFIXES.values():
        code, rest = leading_code(text, prefix)
        if code is not None:
            return code, rest
    return None, text.strip()


@router.command("resolve", staff=True, help_key="help.staff.resolve")
async def resolve_command(ctx: Context) -> None:
    code, response = leading_ticket_code(ctx.inbound.args)
    if code is None:
        await ctx.to_staff(ctx.staff_text("support.staff.resolve_usage"))
        return
    ticket = await ctx.uow.support.ticket_by_code(code)
    if ticket is None:
        await ctx.to_staff(ctx.staff_text("support.staff.not_found"))
        return
    await resolve(ctx, ticket, response)


@router.staff_text
async def resolution_reply(ctx: Context) -> bool:
    """A staff reply to the "how to resolve" prompt is the response to the customer."""
    if not ctx.inbound.reply_to_message_id:
        return False
    replied = await ctx.uow.outbox.by_platform_id(
        ctx.inbound.channel, ctx.inbound.chat_id, ctx.inbound.reply_to_message_id
    )
    tag = Tag.parse(replied.tag if replied is not None else None)
    if tag is None or tag.kind != "resolve":
        return False
    ticket = await ctx.uow.support.ticket(tag.id)
    if ticket is None:
        await ctx.to_staff(ctx.staff_text("support.staff.not_found"))
        return True
    await resolve(ctx, ticket, ctx.inbound.text)
    return True


async def interim_reply(ctx: Context, ticket: Ticket, text: str) -> bool:
    """An answer to the customer that leaves the ticket open (a first answer acknowledges
    an open ticket); False when nothing was sent."""
    if not text.strip():
        await ctx.to_staff(ctx.staff_text("talk.staff.empty"))
        return False
    if ticket.status == RESOLVED:
        await _already(ctx, ticket)
        return False
    sent = await relay_to_customer(
        ctx,
        ticket.customer_id,
        ticket_tag(ticket),
        ticket.code,
        text,
        message_key="staff.ticket_message",
        relayed_key="staff.ticket.relayed",
        gone_key="support.staff.customer_gone",
    )
    if not sent:
        return False
    await ctx.audit("ticket_replied", subject=ticket.code)
    if ticket.status == OPEN:
        _mark_acknowledged(ctx, ticket)
        await _refresh_alert(ctx, ticket, await _customer_of(ctx, ticket))
    return True


@router.staff_text
async def ticket_reply(ctx: Context) -> bool:
    """A reply to a ticket's alert, or "KN-XXXXX text", is an interim reply."""
    addressed = await addressed_in_staff_chat(
        ctx,
        "ticket",
        ctx.uow.support.ticket,
        leading_ticket_code,
        ctx.uow.support.ticket_by_code,
        "support.staff.not_found",
    )
    if addressed is None:
        return False
    ticket, text = addressed
    if ticket is not None:
        await interim_reply(ctx, ticket, text)
    return True


@router.command("reply", staff=True, help_key="help.staff.reply")
async def reply_command(ctx: Context) -> None:
    """`/reply CODE text` for every code: a talk-to-staff thread, a ticket or an order."""
    args = ctx.inbound.args
    code, text = leading_code(args, THREAD_PREFIX)
    if code is not None:
        thread = await ctx.uow.support.thread_by_code(code)
        if thread is None:
            await ctx.to_staff(ctx.staff_text("talk.staff.not_found"))
        else:
            await answer_in_thread(ctx, thread, text)
        return
    code, text = leading_ticket_code(args)
    if code is not None:
        ticket = await ctx.uow.support.ticket_by_code(code)
        if ticket is None:
            await ctx.to_staff(ctx.staff_text("support.staff.not_found"))
        else:
            await interim_reply(ctx, ticket, text)
        return
    code, text = leading_code(args, codes.ORDER_PREFIX)
    if code is not None:
        order = await ctx.uow.orders.by_code(code)
        if order is None or order.erased_at is not None:
            await ctx.to_staff(ctx.staff_text("order.staff.not_found"))
        else:
            await reply_to_order(ctx, order, text)
        return
    await ctx.to_staff(ctx.staff_text("talk.staff.reply_usage"))


@router.command("tickets", staff=True, help_key="help.staff.tickets")
async def list_tickets(ctx: Context) -> None:
    tickets = await ctx.uow.support.unresolved()
    if not tickets:
        await ctx.to_staff(ctx.staff_text("support.staff.no_tickets"))
        return
    lang = ctx.config.default_language
    lines = [
        html.escape(
            f"{'🚨 ' if ticket.urgent else ''}{ticket.code} · {describe(lang, ticket)} · "
            f"{local_time(ticket.created_at)} · {t(lang, f'support.status.{ticket.status}')}"
        )
        for ticket in tickets
    ]
    await ctx.to_staff("\n".join(lines))


# ---- re-announcement (periodic job) --------------------------------------------------------


def reannounce_intervals(config: ShopConfig) -> tuple[timedelta, timedelta]:
    """(normal, urgent) waiting times before an unacknowledged ticket is re-announced."""
    normal = config.ticket_reannounce_after
    urgent = config.urgent_ticket_reannounce_after
    return normal, urgent


@router.periodic("tickets_reannounced")
async def reannounce_due(
    uow: UnitOfWork, app: Composition, config: ShopConfig, now: datetime
) -> int:
    """Re-post every open ticket nobody acknowledged within its interval (urgent: 1 h, else
    4 h since the last announcement) in the staff chat, threaded under its alert, with the
    alert's buttons. Returns how many; the caller commits and wakes the delivery worker."""
    normal, urgent = reannounce_intervals(config)
    lang = config.default_language
    count = 0
    for ticket in await uow.support.unacknowledged():
        if ticket.erased_at is not None:
            continue
        since = ticket.last_announced_at or ticket.created_at
        if now - since < (urgent if ticket.urgent else normal):
            continue
        waited = now - ticket.created_at
        hours, minutes = divmod(int(waited.total_seconds()) // 60, 60)
        text = html.escape(
            t(
                lang,
                "support.staff.reannounce",
                code=ticket.code,
                what=describe(lang, ticket),
                hours=hours,
                minutes=f"{minutes:02d}",
            )
        )
        if ticket.urgent and config.staff_admin_ids:
            text = (
                f"🚨 {text}\n📣 {html.escape(t(lang, 'support.staff.admins'))}: {mentions(config)}"
            )
        first = await uow.outbox.first_with_tag(ticket_tag(ticket))
        message = staff_message(
            config,
            text,
            alert_buttons(config, ticket),
            reply_to=first.id if first else None,
            tag=ticket_tag(ticket),
        )
        await enqueue(uow, message, now)
        ticket.last_announced_at = now
        await uow.audit.add(now, "system", "ticket_reannounced", subject=ticket.code)
        count += 1
    return count


# ---- data rights: what /mydata, export and erasure use -------------------------------------


@router.eraser
async def erase_customer_tickets(uow: UnitOfWork, customer_id: int, now: datetime) -> list[str]:
    """Clear description, photos and response of the customer's tickets, detach them and
    their support threads from the customer; returns the staff-chat tags ("ticket:<id>",
    "support:<id>") whose copies must be redacted."""
    return await uow.support.erase_customer(customer_id, now)


@router.unanswered
async def unanswered_tickets(ctx: Context) -> list[str]:
    """The customer's tickets the staff have not resolved yet, e.g. "Khiếu nại KN-7K3Q9"."""
    assert ctx.customer is not None
    return [
        f"{ctx.tr(f'support.kind.{ticket.kind}')} {ticket.code}"
        for ticket in await ctx.uow.support.tickets_of(ctx.customer.id)
        if ticket.status != RESOLVED and ticket.erased_at is None
    ]


@router.export_section("tickets")
async def _export_tickets(uow: UnitOfWork, customer_id: int) -> list[dict[str, Any]]:
    """The customer's tickets for /mydata and the export (see docs/export.schema.json)."""
    return [
        {
            "code": ticket.code,
            "kind": ticket.kind,
            "category": ticket.category,
            "status": ticket.status,
            "created_at": ticket.created_at.isoformat(),
            "description": ticket.description,
            "photos": list(ticket.photos or []),
            "response": ticket.response,
            "resolved_at": ticket.resolved_at.isoformat() if ticket.resolved_at else None,
        }
        for ticket in await uow.support.tickets_of(customer_id)
    ]

"""Talk to staff outside an order, and the relay shared with order conversations.

Customer side: `/staff`, the "talk" button or the talk-to-staff intent opens a support
thread "TK-XXXXX" (consent first: the messages are stored). The staff chat gets an alert
with a "close" button (`tk:<id>:close`). While the thread is open, every free-text message
of the customer is relayed to the staff chat under that alert.

Staff side: a reply to any message of the thread (Telegram), "TK-XXXXX text" or
`/reply TK-XXXXX text` (declared with the ticket replies in complaints.py) goes back to the
customer; the close button or `/close TK-XXXXX` ends
the conversation and the customer is told.

The relay itself is `handlers/relay.py`, shared with order conversations.
"""

from __future__ import annotations

import html
from typing import Any

from handlers.buttons import TalkButton, ThreadButton
from handlers.context import ButtonRows, Context
from handlers.flows.consent import after_consent
from handlers.i18n import t
from handlers.messages import Button
from handlers.orders import codes
from handlers.orders.service import local_time
from handlers.relay import addressed_in_staff_chat, relay_from_customer, relay_to_customer
from handlers.router import Router
from handlers.support.understanding import is_leak_report
from storage.models import Customer
from storage.repositories import UnitOfWork
from storage.support import SupportThread, thread_tag

router = Router("talk")

THREAD_PREFIX = "TK"


def leading_code(text: str, prefix: str) -> tuple[str | None, str]:
    """Split "TK-7K3Q9 text" (or "tk 7k3q9 text") into the canonical code and the rest."""
    head, _, rest = text.strip().partition(" ")
    code = codes.normalize_code(head, prefix)
    if code is None:
        second, _, after = rest.partition(" ")
        code = codes.normalize_code(f"{head} {second}", prefix)
        rest = after if code else rest
    return code, rest.strip()


async def new_support_code(uow: UnitOfWork, prefix: str) -> str:
    code = codes.new_code(prefix)
    while await uow.support.code_exists(code):
        code = codes.new_code(prefix)
    return code


# ---- customer side -------------------------------------------------------------------------


@router.command("staff", help_key="help.cmd.staff")
@router.payload(TalkButton)
async def talk_command(ctx: Context, _: object = None) -> None:
    await open_talk(ctx, {})


@after_consent(router, "talk")
async def open_talk(ctx: Context, context: dict[str, Any]) -> None:
    """Open a support thread (or point to the one already open)."""
    assert ctx.customer is not None
    thread = await ctx.uow.support.open_thread_of(ctx.customer.id)
    if thread is not None:
        await ctx.reply(ctx.tr("talk.already_open", code=thread.code))
        return
    thread = await ctx.uow.support.add_thread(
        SupportThread(
            code=await new_support_code(ctx.uow, THREAD_PREFIX),
            customer_id=ctx.customer.id,
            opened_at=ctx.now,
        )
    )
    await ctx.audit("support_thread_opened", subject=thread.code)
    await ctx.to_staff(
        render_thread_alert(ctx, thread, ctx.customer),
        thread_buttons(ctx, thread),
        tag=thread_tag(thread),
        customer_id=ctx.customer.id,
    )
    await ctx.reply(ctx.tr("talk.opened", code=thread.code, hours=ctx.config.shop_hours))


@router.text
async def relay_open_thread(ctx: Context) -> bool:
    """While a support thread is open, the customer's free text goes to the staff chat —
    except a leak report, which opens the urgent complaint (the handlers after this one)."""
    if ctx.customer is None or not ctx.inbound.text.strip() or is_leak_report(ctx.inbound.text):
        return False
    thread = await ctx.uow.support.open_thread_of(ctx.customer.id)
    if thread is None:
        return False
    heading = ctx.staff_text("talk.staff.from_customer", code=thread.code)
    await relay_from_customer(ctx, thread_tag(thread), heading, ctx.inbound.text)
    await ctx.reply(ctx.tr("talk.relayed"))
    return True


@router.unanswered
async def unanswered_thread(ctx: Context) -> list[str]:
    """An open staff conversation, which erasure closes."""
    assert ctx.customer is not None
    thread = await ctx.uow.support.open_thread_of(ctx.customer.id)
    return [f"{ctx.tr('talk.item')} {thread.code}"] if thread is not None else []


# ---- staff side ----------------------------------------------------------------------------


def render_thread_alert(ctx: Context, thread: SupportThread, customer: Customer | None) -> str:
    lang = ctx.config.default_language
    name = customer.full_name if customer is not None and customer.full_name else None
    lines = [
        f"💬 <b>{html.escape(t(lang, 'talk.staff.alert_title', code=thread.code))}</b>",
        ctx.staff_text(
            "talk.staff.alert_customer",
            name=name or t(lang, "support.staff.no_name"),
            customer=thread.customer_id if thread.customer_id is not None else "—",
            time=local_time(thread.opened_at),
        ),
    ]
    if thread.closed_at is None:
        lines.append(ctx.staff_text("talk.staff.alert_hint", code=thread.code))
    else:
        lines.append(ctx.staff_text("talk.staff.alert_closed", time=local_time(thread.closed_at)))
    return "\n".join(lines)


def thread_buttons(ctx: Context, thread: SupportThread) -> ButtonRows:
    if thread.closed_at is not None:
        return ()
    label = t(ctx.config.default_language, "talk.staff.btn_close")
    return ((Button(label, ThreadButton(thread.id, "close").pack()),),)


async def _thread_by_code(ctx: Context, typed: str) -> SupportThread | None:
    code = codes.normalize_code(typed.strip(), THREAD_PREFIX)
    thread = await ctx.uow.support.thread_by_code(code) if code else None
    if thread is None:
        await ctx.to_staff(ctx.staff_text("talk.staff.not_found"))
    return thread


@router.staff_text
async def staff_reply(ctx: Context) -> bool:
    """A reply to a support-thread message, or "TK-XXXXX text", goes to the customer."""
    addressed = await addressed_in_staff_chat(
        ctx,
        "support",
        ctx.uow.support.thread,
        lambda text: leading_code(text, THREAD_PREFIX),
        ctx.uow.support.thread_by_code,
        "talk.staff.not_found",
    )
    if addressed is None:
        return False
    thread, text = addressed
    if thread is not None:
        await answer_in_thread(ctx, thread, text)
    return True


async def answer_in_thread(ctx: Context, thread: SupportThread, text: str) -> bool:
    """Staff → the thread's customer; False when nothing was sent."""
    if not text.strip():
        await ctx.to_staff(ctx.staff_text("talk.staff.empty"))
        return False
    if thread.closed_at is not None:
        await ctx.to_staff(ctx.staff_text("talk.staff.already_closed", code=thread.code))
        return False
    await ctx.audit("support_thread_replied", subject=thread.code)
    return await relay_to_customer(
        ctx,
        thread.customer_id,
        thread_tag(thread),
        thread.code,
        text,
        message_key="talk.staff_message",
        relayed_key="talk.staff.relayed",
        gone_key="talk.staff.customer_gone",
    )


@router.payload(ThreadButton, staff=True, refused_key="talk.staff.not_found")
async def thread_button(ctx: Context, button: ThreadButton) -> None:
    thread = await ctx.uow.support.thread(button.thread_id)
    if thread is None:
        await ctx.to_staff(ctx.staff_text("talk.staff.not_found"))
        return
    await close_thread(ctx, thread)


@router.command("close", staff=True, help_key="help.staff.close")
async def close_command(ctx: Context) -> None:
    if not ctx.inbound.args.strip():
        await ctx.to_staff(ctx.staff_text("staff.close.usage"))
        return
    thread = await _thread_by_code(ctx, ctx.inbound.args)
    if thread is not None:
        await close_thread(ctx, thread)


async def close_thread(ctx: Context, thread: SupportThread) -> None:
    if thread.closed_at is not None:
        await ctx.to_staff(ctx.staff_text("talk.staff.already_closed", code=thread.code))
        return
    thread.closed_at = ctx.now
    thread.closed_by = ctx.actor
    await ctx.audit("support_thread_closed", subject=thread.code)
    customer = (
        await ctx.uow.customers.get(thread.customer_id) if thread.customer_id is not None else None
    )
    alert = await ctx.uow.outbox.first_with_tag(thread_tag(thread))
    await ctx.to_staff(
        render_thread_alert(ctx, thread, customer),
        edit_of=alert.id if alert else None,
        tag=thread_tag(thread),
        customer_id=thread.customer_id,
    )
    await ctx.to_staff(ctx.staff_text("talk.staff.closed", code=thread.code))
    if customer is not None:
        await ctx.to_customer(customer, "talk.closed", {"code": thread.code})

"""The relay between a customer and the staff chat, shared by order conversations
(thread "order:<id>") and talk-to-staff threads ("support:<id>").

Every relayed message is stored (`RelayedMessage`), so it shows in `/mydata` and goes with
the customer's erasure; staff-chat copies carry the thread tag, so they can be redacted.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable
from typing import TypeVar

from handlers.context import Context
from storage.tags import Tag, TagKind

Target = TypeVar("Target")

MAX_RELAY_CHARS = 2000


async def relay_from_customer(ctx: Context, thread: str, heading: str, text: str) -> None:
    """Customer → staff: store `text` in `thread` and post it to the staff chat, threaded
    under the thread's first staff message. `heading` is escaped HTML (`ctx.staff_text`)."""
    assert ctx.customer is not None
    text = text.strip()[:MAX_RELAY_CHARS]
    first = await ctx.uow.outbox.first_with_tag(thread)
    await ctx.uow.relayed.add(ctx.customer.id, thread, "in", text, ctx.now)
    await ctx.to_staff(
        f"{heading}\n{html.escape(text)}",
        reply_to=first.id if first else None,
        tag=thread,
        customer_id=ctx.customer.id,
    )


async def relay_to_customer(
    ctx: Context,
    customer_id: int | None,
    thread: str,
    code: str,
    text: str,
    *,
    message_key: str,
    relayed_key: str,
    gone_key: str,
) -> bool:
    """Staff → customer: deliver `text` with catalog message `message_key` (placeholders
    `{code}`, `{text}`) in the customer's language, store it in `thread`, and confirm in the
    staff chat (`relayed_key`) — or tell staff the customer is gone (`gone_key`): erased, or
    unreachable through the bot (when their messaging window has closed, `to_customer` has
    already told staff whom to call). Returns whether the message was sent."""
    text = text.strip()[:MAX_RELAY_CHARS]
    customer = await ctx.uow.customers.get(customer_id) if customer_id is not None else None
    sent = (
        await ctx.to_customer(customer, message_key, {"code": code, "text": text})
        if customer is not None
        else None
    )
    if customer is None or sent is None:
        if not ctx.window_closed:
            await ctx.to_staff(ctx.staff_text(gone_key, code=code))
        return False
    await ctx.uow.relayed.add(customer.id, thread, "out", text, ctx.now, ctx.actor)
    await ctx.to_staff(ctx.staff_text(relayed_key, code=code), tag=thread)
    return True


async def replied_thread(ctx: Context) -> str | None:
    """The thread tag ("order:12", "support:3", ...) of the staff-chat message a staff reply
    answers, if it answers one of the bot's messages."""
    if not ctx.inbound.reply_to_message_id:
        return None
    replied = await ctx.uow.outbox.by_platform_id(
        ctx.inbound.channel, ctx.inbound.chat_id, ctx.inbound.reply_to_message_id
    )
    return replied.tag if replied is not None else None


async def addressed_in_staff_chat(
    ctx: Context,
    kind: TagKind,
    by_id: Callable[[int], Awaitable[Target | None]],
    split_code: Callable[[str], tuple[str | None, str]],
    by_code: Callable[[str], Awaitable[Target | None]],
    not_found_key: str,
) -> tuple[Target | None, str] | None:
    """What a staff-chat text addresses, and the text meant for it: the `kind` item whose
    message it replies to, or the one whose code it starts with ("KN-7K3Q9 text").

    None: it addresses no such item (another handler may take the text). `(None, text)`: a
    code that names nothing; staff have been told (`not_found_key`)."""
    text = ctx.inbound.text.strip()
    tag = Tag.parse(await replied_thread(ctx))
    target = await by_id(tag.id) if tag is not None and tag.kind == kind else None
    if target is not None:
        return target, text
    code, rest = split_code(text)
    if code is None:
        return None
    target = await by_code(code)
    if target is None:
        await ctx.to_staff(ctx.staff_text(not_found_key))
    return target, rest

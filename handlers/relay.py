"""The relay between a customer and the staff chat, shared by order conversations
(thread "order:<id>") and talk-to-staff threads ("support:<id>").

Every relayed message is stored (`RelayedMessage`), so it shows in `/mydata` and goes with
the customer's erasure; staff-chat copies carry the thread tag, so they can be redacted.
"""

from __future__ import annotations

import html

from handlers.context import Context
from storage.models import Customer

MAX_RELAY_CHARS = 2000


async def relay_from_customer(ctx: Context, thread: str, heading: str, text: str) -> None:
    """Customer → staff: store `text` in `thread` and post it to the staff chat, threaded
    under the thread's first staff message. `heading` is escaped HTML (`ctx.staff_text`)."""
    assert ctx.customer is not None
    text = text.strip()[:MAX_RELAY_CHARS]
    first = await ctx.uow.outbox.latest_with_tag(thread)
    await ctx.uow.orders.add_relayed(ctx.customer.id, thread, "in", text, ctx.now)
    await ctx.to_staff(
        f"{heading}\n{html.escape(text)}",
        reply_to=first.id if first else None,
        tag=thread,
        customer_id=ctx.customer.id,
    )


async def relay_to_customer(
    ctx: Context,
    customer: Customer,
    thread: str,
    key: str,
    params: dict[str, object],
    text: str,
    confirmation: str,
) -> bool:
    """Staff → customer: deliver `text` with catalog message `key` (its `{text}` placeholder
    gets the text, `params` the rest) in the customer's language, store it in `thread`, and
    post `confirmation` (escaped HTML) in the staff chat. False when the customer cannot be
    reached through the bot (nothing stored or sent then)."""
    text = text.strip()[:MAX_RELAY_CHARS]
    sent = await ctx.to_customer(customer, key, {**params, "text": text})
    if sent is None:
        return False
    await ctx.uow.orders.add_relayed(customer.id, thread, "out", text, ctx.now, ctx.actor)
    await ctx.to_staff(confirmation, tag=thread)
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

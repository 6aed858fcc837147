"""Free text outside any flow: privacy questions answered from the knowledge base, and
intents started.

`understand()` (understanding.py) gives a topic or an intent with a confidence:

- confident topic  → the answer `kb.<topic>.answer` with buttons acting on it
                     (after "how do I delete?": a delete button; after "how to change": edit);
- confident intent → the action: start an order, a complaint, a return/warranty request,
                     talk to staff, show my data; "delete my data" always goes to the delete
                     *confirmation* screen; greeting → greeting and menu; thanks → a short reply;
- middle band      → "did you mean…?" with two or three buttons;
- unknown          → not handled here: the next handler runs (the order relay while an order
                     is open, else the dispatcher's fallback menu, which offers a human).

While an order is open, the customer is mostly talking to staff about it: only confident
privacy questions and action intents are handled here; small talk, "talk to staff" and
anything unclear is left to the order relay.

`/faq` and the "kb" button list the topics; `kb:<topic>` shows one answer.
"""

from __future__ import annotations

from dataclasses import replace

from handlers.context import ButtonRows, Context
from handlers.dispatcher import show_menu
from handlers.messages import Button
from handlers.orders.flow import start_order
from handlers.orders.service import OPEN_STATUSES
from handlers.router import router
from handlers.support.complaints import start_complaint
from handlers.support.returns import start_returns
from handlers.support.talk import open_talk
from handlers.support.understanding import Understanding, all_topics, topic_actions, understand

# What each action button of a topic (topics.toml `actions`) does: a payload route.
ACTION_PAYLOADS = {
    "order": "order",
    "mydata": "mydata",
    "edit": "rights:edit",
    "export": "rights:export",
    "delete": "rights:delete",
    "complaint": "complaint",
    "staff": "talk",
    "policy": "policy",
    "menu": "menu",
}
# The payload offering an intent in "did you mean…?" (greeting and thanks are never offered).
INTENT_PAYLOADS = {
    "order": "order",
    "complaint": "complaint",
    "mydata": "mydata",
    "delete_data": "rights:delete",
    "return_warranty": "returns",
    "talk_to_staff": "talk",
}
# Intents left to the order relay while an order is open (they belong to that conversation).
RELAYED_WHILE_ORDER_OPEN = frozenset({"greeting", "thanks", "talk_to_staff"})
# When a route is not available, the knowledge-base answer that explains the same thing.
FALLBACK_TOPICS = {"mydata": "collected", "rights:delete": "delete"}

# The support entries of the main menu (after the order entry), in this order.
for _label, _payload in (
    ("menu.faq", "kb"),
    ("menu.complaint", "complaint"),
    ("menu.returns", "returns"),
    ("menu.talk", "talk"),
):
    router.menu_item(_label, _payload)


@router.text(priority=10)
async def understand_free_text(ctx: Context) -> None:
    text = ctx.inbound.text.strip()
    if not text or ctx.customer is None:
        return
    result = understand(text)
    if result.kind == "unknown" or result.key is None:
        return
    order_open = await ctx.uow.orders.latest_open(ctx.customer.id, OPEN_STATUSES) is not None
    if result.confident and result.kind == "topic":
        await show_answer(ctx, result.key)
    elif result.confident:
        if order_open and result.key in RELAYED_WHILE_ORDER_OPEN:
            return
        await ctx.audit("intent", detail=result.key)
        await run_intent(ctx, result.key)
    elif not order_open:
        await suggest(ctx, result)


async def show_answer(ctx: Context, topic: str) -> None:
    actions = topic_actions(topic)
    buttons = [ctx.button(f"support.action.{a}", ACTION_PAYLOADS[a]) for a in actions]
    rows: ButtonRows = tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))
    await ctx.reply(ctx.tr(f"kb.{topic}.answer"), rows)


async def run_intent(ctx: Context, intent: str) -> None:
    if intent == "order":
        await start_order(ctx, {})
    elif intent == "complaint":
        await start_complaint(ctx, {})
    elif intent == "return_warranty":
        await start_returns(ctx, {})
    elif intent == "talk_to_staff":
        await open_talk(ctx, {})
    elif intent == "mydata":
        await run_payload(ctx, "mydata")
    elif intent == "delete_data":
        # Never erase from free text: this is the screen that asks for confirmation.
        await run_payload(ctx, "rights:delete")
    elif intent == "greeting":
        await show_menu(ctx, ctx.tr("support.greeting"))
    elif intent == "thanks":
        await ctx.reply(ctx.tr("support.thanks"))


async def run_payload(ctx: Context, payload: str) -> None:
    """Do what pressing a button with `payload` does (the data-rights screens)."""
    route = router.find_payload(payload)
    if route is None or route.staff:
        await show_answer(ctx, FALLBACK_TOPICS.get(payload, "collected"))
        return
    original = ctx.inbound
    ctx.inbound = replace(original, payload=payload)
    try:
        await route.handler(ctx)
    finally:
        ctx.inbound = original


def _suggestion_button(ctx: Context, key: str) -> Button | None:
    if key in all_topics():
        return Button(ctx.tr(f"kb.{key}.title"), f"kb:{key}")
    if key in INTENT_PAYLOADS:
        return ctx.button(f"support.intent.{key}", INTENT_PAYLOADS[key])
    return None


async def suggest(ctx: Context, result: Understanding) -> None:
    """ "Did you mean…?" with the likeliest two or three topics/intents, and the menu."""
    keys = result.alternatives or ((result.key,) if result.key else ())
    buttons = [b for k in keys[:3] if (b := _suggestion_button(ctx, k)) is not None]
    if not buttons:
        return  # nothing worth offering: the fallback menu follows
    rows: ButtonRows = (*((b,) for b in buttons), (ctx.button("support.btn.menu", "menu"),))
    await ctx.reply(ctx.tr("support.did_you_mean"), rows)


@router.command("faq", help_key="help.cmd.faq", locked_ok=True)
@router.payload("kb", locked_ok=True)
async def kb_button(ctx: Context) -> None:
    """ "kb:<topic>" shows one answer; "kb" and `/faq` list every topic."""
    topic = (ctx.inbound.payload or "").partition(":")[2]
    if topic in all_topics():
        await show_answer(ctx, topic)
        return
    if topic:
        await ctx.reply(ctx.tr("flow.stale_button"))
        return
    rows = tuple((Button(ctx.tr(f"kb.{key}.title"), f"kb:{key}"),) for key in all_topics())
    await ctx.reply(ctx.tr("support.faq_intro"), rows)

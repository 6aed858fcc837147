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

from handlers.buttons import (
    ComplaintButton,
    KbButton,
    MenuButton,
    MyDataButton,
    OrderButton,
    PolicyButton,
    ReturnsButton,
    RightsButton,
    TalkButton,
)
from handlers.context import ButtonRows, Context
from handlers.messages import Button
from handlers.orders.service import OPEN_STATUSES
from handlers.payloads import Payload
from handlers.router import Router
from handlers.support.understanding import Understanding, all_topics, topic_actions, understand
from handlers.words import looks_like_question

router = Router("answers")

# What each action button of a topic (topics.toml `actions`) does.
ACTION_PAYLOADS: dict[str, Payload] = {
    "order": OrderButton(),
    "mydata": MyDataButton(),
    "edit": RightsButton("edit"),
    "export": RightsButton("export"),
    "delete": RightsButton("delete"),
    "complaint": ComplaintButton(),
    "staff": TalkButton(),
    "policy": PolicyButton(),
    "menu": MenuButton(),
}
# The button offering an intent in "did you mean…?" (greeting and thanks are never offered).
INTENT_PAYLOADS: dict[str, Payload] = {
    "order": OrderButton(),
    "complaint": ComplaintButton(),
    "mydata": MyDataButton(),
    "delete_data": RightsButton("delete"),
    "return_warranty": ReturnsButton(),
    "talk_to_staff": TalkButton(),
}
# Intents that start a feature's continuation (the feature asks for consent when it must).
INTENT_CONTINUATIONS = {
    "order": "order",
    "complaint": "complaint",
    "return_warranty": "returns",
    "talk_to_staff": "talk",
}
# Intents left to the order relay while an order is open (they belong to that conversation).
RELAYED_WHILE_ORDER_OPEN = frozenset({"greeting", "thanks", "talk_to_staff"})
# When a route is not available, the knowledge-base answer that explains the same thing.
FALLBACK_TOPICS = {"mydata": "collected", "delete_data": "delete"}


@router.text
async def understand_free_text(ctx: Context) -> bool:
    text = ctx.inbound.text.strip()
    if not text or ctx.customer is None:
        return False
    result = understand(text)
    if result.kind == "unknown" or result.key is None:
        return False
    order_open = await ctx.uow.orders.latest_open(ctx.customer.id, OPEN_STATUSES) is not None
    if result.confident and result.kind == "topic":
        await show_answer(ctx, result.key)
        return True
    if result.confident:
        if order_open and result.key in RELAYED_WHILE_ORDER_OPEN:
            return False
        await ctx.audit("intent", detail=result.key)
        await run_intent(ctx, result.key)
        return True
    if order_open:
        return False
    return await suggest(ctx, result)


async def show_answer(ctx: Context, topic: str) -> None:
    actions = topic_actions(topic)
    buttons = [ctx.button(f"support.action.{a}", ACTION_PAYLOADS[a]) for a in actions]
    rows: ButtonRows = tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))
    await ctx.reply(ctx.tr(f"kb.{topic}.answer"), rows)


async def run_intent(ctx: Context, intent: str) -> None:
    continuation = ctx.app.continuations.get(INTENT_CONTINUATIONS.get(intent, ""))
    if continuation is not None:
        # What they wrote goes along: "em muốn đặt tranh sơn dầu" already says what to order.
        await continuation(ctx, {"text": ctx.inbound.text[:500]})
    elif intent in ("mydata", "delete_data"):
        # "delete" never erases from free text: its button shows the confirmation screen.
        await press(ctx, INTENT_PAYLOADS[intent], FALLBACK_TOPICS[intent])
    elif intent == "greeting":
        await ctx.show_menu(ctx.tr("support.greeting"))
    elif intent == "thanks":
        await ctx.reply(ctx.tr("support.thanks"))


async def press(ctx: Context, payload: Payload, fallback_topic: str) -> None:
    """Do what pressing a button with `payload` does (the data-rights screens); without
    that feature, the knowledge-base answer that explains it."""
    route = ctx.app.payloads.get(payload.prefix)
    if route is None or route.staff:
        await show_answer(ctx, fallback_topic)
        return
    await route.handler(ctx, payload)


def _suggestion_button(ctx: Context, key: str) -> Button | None:
    if key in all_topics():
        return ctx.button(f"kb.{key}.title", KbButton(key))
    if key in INTENT_PAYLOADS:
        return ctx.button(f"support.intent.{key}", INTENT_PAYLOADS[key])
    return None


async def suggest(ctx: Context, result: Understanding) -> bool:
    """ "Did you mean…?" with the likeliest two or three topics/intents, and the menu."""
    keys = result.alternatives or ((result.key,) if result.key else ())
    buttons = [b for k in keys[:3] if (b := _suggestion_button(ctx, k)) is not None]
    if not buttons:
        return False  # nothing worth offering: the fallback menu follows
    rows: ButtonRows = (*((b,) for b in buttons), (ctx.button("support.btn.menu", MenuButton()),))
    await ctx.reply(ctx.tr("support.did_you_mean"), rows)
    return True


@router.command("faq", help_key="help.cmd.faq", locked_ok=True)
@router.payload(KbButton, locked_ok=True)
async def kb_button(ctx: Context, button: KbButton | None = None) -> None:
    """A topic's button shows its answer; the bare "kb" button and `/faq` list every topic."""
    topic = button.topic if button is not None else ""
    if topic in all_topics():
        await show_answer(ctx, topic)
        return
    if topic:
        await ctx.reply(ctx.tr("flow.stale_button"))
        return
    rows = tuple((ctx.button(f"kb.{key}.title", KbButton(key)),) for key in all_topics())
    await ctx.reply(ctx.tr("support.faq_intro"), rows)


@router.interjection
async def answer_mid_flow(ctx: Context) -> bool:
    """A privacy question in the middle of a form gets its answer; the form goes on."""
    text = ctx.inbound.text.strip()
    if not text or not looks_like_question(text):
        return False
    result = understand(text)
    if result.kind == "topic" and result.confident and result.key is not None:
        await show_answer(ctx, result.key)
        return True
    return False

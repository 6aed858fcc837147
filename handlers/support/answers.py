"""Free text outside any flow: privacy questions answered from the knowledge base, and
intents started.

`understand()` (understanding.py) gives a topic or an intent with a confidence:

- confident topic  → the answer `kb.<topic>.answer` with buttons acting on it
                     (after "how do I delete?": a delete button; after "how to change": edit);
- confident intent → the action: start an order, a complaint, a return/warranty request,
                     talk to staff, show my data; "delete my data" always goes to the delete
                     *confirmation* screen; greeting → greeting and menu; thanks → a short reply;
                     a leak report → the urgent complaint, with what the customer wrote;
                     an intent asked as a question ("how do returns work?", "what do you
                     keep about me?") or whose action is not available (a return without any
                     order) → its answer topic (topics.toml `answer`) with the action buttons;
- middle band      → "did you mean…?" with two or three buttons;
- unknown          → not handled here: the next handler runs (the order relay while an order
                     is open, else the dispatcher's fallback menu, which offers a human).

While an order is open, the customer is mostly talking to staff about it: only confident
privacy questions and action intents are handled here — a leak report above all; small talk,
"talk to staff", delivery and payment questions (about that order) and anything unclear are
left to the order relay.

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
from handlers.orders.service import CANCELLED, OPEN_STATUSES
from handlers.payloads import Payload
from handlers.router import Router
from handlers.support.complaints import COMPLAINT_FLOW, LEAK
from handlers.support.understanding import (
    LEAK_REPORT,
    Understanding,
    all_topics,
    is_leak_report,
    is_question,
    topic,
    topic_actions,
    understand,
    understand_sentences,
)
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
    "returns": ReturnsButton(),
    "staff": TalkButton(),
    "policy": PolicyButton(),
    "menu": MenuButton(),
}
# The button offering an intent in "did you mean…?" (greeting and thanks are never offered).
INTENT_PAYLOADS: dict[str, Payload] = {
    "order": OrderButton(),
    "complaint": ComplaintButton(),
    "leak_report": ComplaintButton(),
    "mydata": MyDataButton(),
    "delete_data": RightsButton("delete"),
    "return_warranty": ReturnsButton(),
    "talk_to_staff": TalkButton(),
}
# Intents that start a feature's continuation (the feature asks for consent when it must).
INTENT_CONTINUATIONS = {
    "order": "order",
    "complaint": "complaint",
    "leak_report": "complaint",
    "return_warranty": "returns",
    "talk_to_staff": "talk",
}
# Left to the order relay while an order is open: they belong to that conversation, and the
# staff member handling the order knows its delivery and payment.
RELAYED_WHILE_ORDER_OPEN = frozenset({"greeting", "thanks", "talk_to_staff", "shipping", "payment"})
# Intents whose action is pressing a data-rights button (shown only when that route exists).
RIGHTS_INTENTS = frozenset({"mydata", "delete_data"})


@router.text
async def understand_free_text(ctx: Context) -> bool:
    text = ctx.inbound.text.strip()
    if not text or ctx.customer is None:
        return False
    result = understand(text)
    sentences = understand_sentences(text)
    if (result.kind == "unknown" or result.key is None) and not sentences:
        return False
    order_open = await ctx.uow.orders.latest_open(ctx.customer.id, OPEN_STATUSES) is not None
    relayed = RELAYED_WHILE_ORDER_OPEN if order_open else frozenset()
    if await _answer_each(ctx, result, sentences, relayed):
        return True
    if result.kind == "unknown" or result.key is None:
        return False
    if result.confident and result.key in relayed:
        return False
    if result.confident and result.kind == "topic":
        await show_answer(ctx, result.key)
        return True
    if result.confident:
        await ctx.audit("intent", detail=result.key)
        await run_intent(ctx, result.key, text)
        return True
    if order_open:
        return False
    return await suggest(ctx, result)


async def _answer_each(
    ctx: Context,
    whole: Understanding,
    sentences: list[Understanding],
    skip: frozenset[str] = frozenset(),
) -> bool:
    """Several questions in one message: each clear one answered, when more than one is
    clear or the message is not clear as a whole. True when it answered."""
    topics = [r.key for r in sentences if r.kind == "topic" and r.key and r.key not in skip]
    if not (len(topics) > 1 or (topics and not whole.confident)):
        return False
    for key in topics:
        await show_answer(ctx, key)
    return True


async def show_answer(ctx: Context, key: str) -> None:
    actions = topic_actions(key)
    if "returns" in actions and not await has_returnable_order(ctx):
        actions = tuple(a for a in actions if a != "returns")  # it would only say "no order"
    buttons = [ctx.button(f"support.action.{a}", ACTION_PAYLOADS[a]) for a in actions]
    rows: ButtonRows = tuple(tuple(buttons[i : i + 2]) for i in range(0, len(buttons), 2))
    text = ctx.tr(f"kb.{key}.answer", hours=ctx.config.shop_hours)
    more_help = ctx.tr("support.more_help")
    if ctx.tr("core.hotline") not in text:  # no dead end: a person is always one call away
        text += f"\n\n{more_help}"
    await ctx.reply(text, rows)


async def has_returnable_order(ctx: Context) -> bool:
    """Whether the customer has an order a return/warranty request can be about."""
    assert ctx.customer is not None
    orders = await ctx.uow.orders.of_customer(ctx.customer.id)
    return any(o.status != CANCELLED and o.erased_at is None for o in orders)


async def _available(ctx: Context, intent: str) -> bool:
    """Whether the intent's action can run for this customer now."""
    if intent == "return_warranty":
        return await has_returnable_order(ctx)
    if intent in RIGHTS_INTENTS:
        route = ctx.app.payloads.get(INTENT_PAYLOADS[intent].prefix)
        return route is not None and not route.staff
    return True


async def run_intent(ctx: Context, intent: str, text: str) -> None:
    answer = topic(intent).answer
    if answer is not None and (is_question(text) or not await _available(ctx, intent)):
        # A question about an action gets its answer, the action offered as a button.
        await show_answer(ctx, answer)
        return
    continuation = ctx.app.continuations.get(INTENT_CONTINUATIONS.get(intent, ""))
    if continuation is not None:
        await continuation(ctx, _intent_context(intent, text))
    elif intent in RIGHTS_INTENTS:
        # "delete" never erases from free text: its button shows the confirmation screen.
        payload = INTENT_PAYLOADS[intent]
        route = ctx.app.payloads[payload.prefix]
        await route.handler(ctx, payload)
    elif intent == "greeting":
        await ctx.show_menu(ctx.tr("support.greeting"))
    elif intent == "thanks":
        await ctx.reply(ctx.tr("support.thanks"))


def _intent_context(intent: str, text: str) -> dict[str, str]:
    """What the started feature takes over from the message (see start_complaint)."""
    if intent == "leak_report":
        return {"category": LEAK, "text": text}
    # What they wrote goes along: "em muốn đặt tranh sơn dầu" already says what to order.
    return {"text": text[:500]}


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
    """A privacy question in the middle of a form gets its answer; the form goes on. A leak
    report opens the urgent complaint instead of the form (unless it is the complaint)."""
    text = ctx.inbound.text.strip()
    if not text:
        return False
    in_complaint = ctx.state is not None and ctx.state.flow == COMPLAINT_FLOW.name
    if not in_complaint and is_leak_report(text):
        await ctx.audit("intent", detail=LEAK_REPORT)
        await run_intent(ctx, LEAK_REPORT, text)
        return True
    if not looks_like_question(text):
        return False
    result = understand(text)
    if await _answer_each(ctx, result, understand_sentences(text)):
        return True  # "Shop ở đâu? Phí ship bao nhiêu?": both answered
    if result.kind == "topic" and result.confident and result.key is not None:
        await show_answer(ctx, result.key)
        return True
    return False

"""Consent: asked with a short notice before any personal data is collected.

A feature that collects personal data starts through `after_consent(router, "name")`: without
consent the notice is shown and the wish is parked in the conversation state (a `ParkedWish`),
and the same function continues once the customer agrees.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from handlers.buttons import ConsentButton
from handlers.context import CONSENT_PURPOSE, Context, policy_version
from handlers.router import Continuation, Router
from handlers.words import answer_words
from storage.models import ConversationState

router = Router("consent")

PENDING = "_pending"  # state.flow of a parked wish (not a flow of the engine)

# Typed answers to the consent question.
AGREE_WORDS = frozenset(
    {
        "dong y",
        "toi dong y",
        "em dong y",
        "minh dong y",
        "ok dong y",
        "vang dong y",
        "da dong y",
        "co",
        "ok",
        "oke",
        "vang",
        "yes",
        "agree",
        "i agree",
        "yes i agree",
        "accept",
    }
)
DECLINE_WORDS = frozenset(
    {
        "khong dong y",
        "ko dong y",
        "k dong y",
        "toi khong dong y",
        "khong",
        "ko",
        "tu choi",
        "no",
        "decline",
        "i disagree",
        "i do not agree",
        "i dont agree",
    }
)


# "ok e đồng ý nhé", "vâng em đồng ý với chính sách", "I accept": agreement said in a sentence;
# a negation before it ("em chưa đồng ý", "I don't agree") is a refusal.
_AGREES = re.compile(r"\b(?:dong y|agree|accept|chap nhan)\b")
_REFUSES = re.compile(
    r"\b(?:khong|ko|k|kh|chua|hong|dont|don't|do not|not|never)\s+(?:\w+\s+)?"
    r"(?:dong y|agree|accept|chap nhan)\b|\btu choi\b|\bdisagree\b|\bdecline\b"
)


def consent_answer(text: str) -> bool | None:
    """True when typed text agrees, False when it refuses, None when it says neither."""
    words = answer_words(text)
    if words in AGREE_WORDS:
        return True
    if words in DECLINE_WORDS or _REFUSES.search(words):
        return False
    return True if _AGREES.search(words) else None


@dataclass(frozen=True)
class ParkedWish:
    """What the customer wanted before consent was asked: a continuation and its context."""

    then: str
    context: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, state: ConversationState | None) -> ParkedWish | None:
        if state is None or state.flow != PENDING or not isinstance(state.data.get("then"), str):
            return None
        return cls(state.data["then"], dict(state.data.get("context") or {}))


def after_consent(on: Router, name: str) -> Callable[[Continuation], Continuation]:
    """Declare `fn` as the continuation `name` of router `on`, run only once consent exists:
    without it, the customer is asked first and `fn` runs after they agree, with the same
    context."""

    def decorator(fn: Continuation) -> Continuation:
        async def gated(ctx: Context, context: dict[str, Any]) -> None:
            if await ensure_consent(ctx, then=name, context=context):
                await fn(ctx, context)

        gated.__name__ = gated.__qualname__ = fn.__name__
        gated.__doc__ = fn.__doc__
        return on.continuation(name, gated)

    return decorator


async def has_consent(ctx: Context) -> bool:
    assert ctx.customer is not None
    latest = await ctx.uow.consents.latest(ctx.customer.id, CONSENT_PURPOSE)
    return latest is not None and latest.granted and latest.withdrawn_at is None


async def ensure_consent(ctx: Context, then: str, context: dict[str, Any] | None = None) -> bool:
    if await has_consent(ctx):
        return True
    await ctx.reply(ctx.tr("consent.needed_first"))
    await ask_consent(ctx, then, context)
    return False


async def ask_consent(ctx: Context, then: str = "", context: dict[str, Any] | None = None) -> None:
    """Ask for consent, remembering what the customer wanted (`then`, a continuation) so it
    goes on once they agree. The notice itself is shown once: asked again while it is
    pending, only the question and its buttons come back."""
    already_asked = ParkedWish.of(ctx.state) is not None
    await ctx.replace_state(PENDING, "consent", asdict(ParkedWish(then, context or {})))
    buttons = (
        (ctx.button("consent.btn.agree", ConsentButton("yes")),),
        (ctx.button("consent.btn.read_policy", ConsentButton("policy")),),
        (ctx.button("consent.btn.decline", ConsentButton("no")),),
    )
    await ctx.reply(ctx.tr("consent.question" if already_asked else "consent.notice"), buttons)


@router.text
async def typed_consent(ctx: Context) -> bool:
    """ "đồng ý" / "không đồng ý" typed while the consent question is pending."""
    if ParkedWish.of(ctx.state) is None:
        return False
    answer = consent_answer(ctx.inbound.text)
    if answer is None:
        return False
    await decide(ctx, granted=answer)
    return True


@router.payload(ConsentButton)
async def on_consent_button(ctx: Context, button: ConsentButton) -> None:
    if button.choice == "policy":
        await ctx.reply(ctx.tr("policy.full_text"))
        parked = ParkedWish.of(ctx.state)
        await ask_consent(ctx, parked.then if parked else "", parked.context if parked else None)
        return
    await decide(ctx, granted=button.choice == "yes")


async def decide(ctx: Context, granted: bool) -> None:
    assert ctx.customer is not None
    await ctx.uow.consents.record(
        ctx.customer.id, CONSENT_PURPOSE, policy_version(), granted, ctx.now
    )
    await ctx.audit("consent_granted" if granted else "consent_declined")
    parked = ParkedWish.of(ctx.state)
    if parked is not None and ctx.state is not None:
        await ctx.uow.states.remove(ctx.state)
        ctx.state = None
    if not granted:
        await ctx.reply(ctx.tr("consent.declined"))
        return
    await ctx.reply(ctx.tr("consent.thanks"))
    follow_up = ctx.app.continuations.get(parked.then) if parked and parked.then else None
    if follow_up is not None and parked is not None:
        await follow_up(ctx, parked.context)
    else:
        await ctx.show_menu(ctx.tr("core.menu_intro"))

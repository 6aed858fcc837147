"""Consent: asked with a short notice before any personal data is collected.

A feature that collects personal data starts through `@after_consent("name")`: without
consent the notice is shown and the wish is parked in the conversation state, and the same
function continues once the customer agrees.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

from handlers.context import CONSENT_PURPOSE, Context, policy_version
from handlers.router import router
from storage.models import ConversationState

PENDING = "_pending"  # state.flow of a parked wish (not a flow of the engine)

Continuation = Callable[[Context, dict[str, Any]], Awaitable[None]]
CONTINUATIONS: dict[str, Continuation] = {}


def after_consent(name: str) -> Callable[[Continuation], Continuation]:
    """Register `fn` as the continuation `name`, run only once consent exists: without it,
    the customer is asked first and `fn` runs after they agree, with the same context."""

    def decorator(fn: Continuation) -> Continuation:
        @functools.wraps(fn)
        async def gated(ctx: Context, context: dict[str, Any]) -> None:
            if await ensure_consent(ctx, then=name, context=context):
                await fn(ctx, context)

        CONTINUATIONS[name] = gated
        return gated

    return decorator


async def has_consent(ctx: Context) -> bool:
    assert ctx.customer is not None
    latest = await ctx.uow.consents.latest(ctx.customer.id, CONSENT_PURPOSE)
    return latest is not None and latest.granted and latest.withdrawn_at is None


async def ensure_consent(ctx: Context, then: str, context: dict[str, Any] | None = None) -> bool:
    if await has_consent(ctx):
        return True
    if ctx.state is not None:
        await ctx.uow.states.remove(ctx.state, flush=True)
    ctx.state = ConversationState(
        channel=ctx.inbound.channel,
        chat_id=ctx.inbound.chat_id,
        customer_id=ctx.customer.id if ctx.customer else None,
        flow=PENDING,
        step="consent",
        data={"then": then, "context": context or {}},
        expires_at=ctx.now + ctx.config.draft_ttl,
        updated_at=ctx.now,
    )
    await ctx.uow.states.save(ctx.state)
    await ctx.reply(ctx.tr("consent.needed_first"))
    await ask_consent(ctx)
    return False


async def ask_consent(ctx: Context) -> None:
    buttons = (
        (ctx.button("consent.btn.agree", "consent:yes"),),
        (ctx.button("consent.btn.read_policy", "consent:policy"),),
        (ctx.button("consent.btn.decline", "consent:no"),),
    )
    await ctx.reply(ctx.tr("consent.notice"), buttons)


@router.payload("consent")
async def on_consent_button(ctx: Context) -> None:
    assert ctx.customer is not None and ctx.inbound.payload is not None
    choice = ctx.inbound.payload.partition(":")[2]
    if choice == "policy":
        await ctx.reply(ctx.tr("policy.full_text"))
        await ask_consent(ctx)
        return
    if choice not in ("yes", "no"):
        await ctx.reply(ctx.tr("flow.stale_button"))
        return
    granted = choice == "yes"
    await ctx.uow.consents.record(
        ctx.customer.id, CONSENT_PURPOSE, policy_version(), granted, ctx.now
    )
    await ctx.audit("consent_granted" if granted else "consent_declined")
    parked = ctx.state.data if ctx.state is not None and ctx.state.flow == PENDING else None
    if parked is not None:
        await ctx.uow.states.remove(ctx.state)  # type: ignore[arg-type]
        ctx.state = None
    if not granted:
        await ctx.reply(ctx.tr("consent.declined"))
        return
    await ctx.reply(ctx.tr("consent.thanks"))
    follow_up = CONTINUATIONS.get(parked["then"]) if parked else None
    if follow_up is not None and parked is not None:
        await follow_up(ctx, parked.get("context", {}))
    else:
        from handlers.dispatcher import show_menu

        await show_menu(ctx, ctx.tr("core.menu_intro"))

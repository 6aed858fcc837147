"""Route one inbound inside one unit of work (DESIGN.md, "the flow of one message", step 3).

Order of precedence: staff chat → staff routes; inbound filters (flood control); a locked
customer → only data rights; `/cancel`; engine buttons; other buttons; commands; the active
flow step; free text (the composition's text handlers, in order) → the fallback menu.
The routes themselves come from the `Composition` (handlers/composition.py).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from handlers import engine
from handlers.context import Context, ShopConfig
from handlers.messages import Inbound
from handlers.orders.catalog_store import shop_catalog
from handlers.payloads import prefix_of
from handlers.router import Composition, Route
from handlers.text import detect_language
from storage.models import ChannelIdentity, Customer
from storage.repositories import UnitOfWork

log = logging.getLogger(__name__)

LAST_SEEN_PRECISION = timedelta(hours=1)


async def dispatch(
    uow: UnitOfWork, inbound: Inbound, config: ShopConfig, now: datetime, app: Composition
) -> Context:
    """Handle `inbound`; everything it sends is in the outbox when the caller commits."""
    ctx = Context(uow=uow, inbound=inbound, config=config, now=now, app=app)
    ctx.shop_catalog = await shop_catalog(uow, config.catalog, now)
    if inbound.from_staff_chat:
        await _dispatch_staff(ctx)
        return ctx

    ctx.customer = await _customer_for(ctx)
    _language_from_text(ctx)
    for allowed in app.inbound_filters:  # e.g. flood control: one notice, then silence
        if not await allowed(ctx):
            return ctx
    ctx.state = await uow.states.get(inbound.channel, inbound.chat_id)
    if ctx.state is not None and ctx.state.expires_at <= now:
        await engine.finish(ctx)  # abandoned draft: its data goes with it
        await ctx.reply(ctx.tr("flow.expired"))

    route = _route_for(ctx)
    if ctx.customer.locked_at is not None and not (route and route.locked_ok):
        await _refuse_locked(ctx)
        return ctx
    if route is not None and route.staff and not ctx.is_staff:
        await ctx.audit("refused", detail=f"staff-only:{_what(inbound)}")
        await ctx.reply(ctx.tr("staff.not_allowed"))
        return ctx

    flow = engine.active_flow(ctx)
    flow_button = engine.FlowButton.unpack(inbound.payload) if inbound.payload else None
    if inbound.command == "cancel" or (flow_button and flow_button.action == "cancel" and not flow):
        await engine.cancel_flow(ctx)
    elif flow_button is not None:
        if flow is not None:
            await engine.handle_input(ctx, flow)
        else:
            await ctx.reply(ctx.tr("flow.stale_button"))
    elif route is not None:
        await _run_beside_flow(ctx, route)
    elif inbound.command is not None:
        await ctx.reply(ctx.tr("core.unknown_command", command=inbound.command[:32]))
        await _remind_flow(ctx)
    elif inbound.payload:
        await ctx.reply(ctx.tr("flow.stale_button"))
    elif flow is not None:
        if _is_empty(inbound):
            await ctx.reply(ctx.tr("core.empty_message"))
            await engine.repeat_current(ctx, flow)
        else:
            await engine.handle_input(ctx, flow)
    elif _is_empty(inbound):
        await ctx.reply(ctx.tr("core.empty_message"))
    else:
        await _free_text(ctx)
    return ctx


def _route_for(ctx: Context) -> Route | None:
    inbound = ctx.inbound
    if inbound.command == "cancel":
        return None  # /cancel belongs to the engine, whatever staff commands are named
    app = ctx.app
    if inbound.payload:
        return app.find_payload(inbound.payload)
    if inbound.command:
        return app.commands.get(inbound.command) or app.staff_commands.get(inbound.command)
    return None


def _what(inbound: Inbound) -> str:
    """What was attempted, for the audit log: a command name or payload prefix, no content."""
    if inbound.command:
        return f"/{inbound.command[:32]}"
    return prefix_of(inbound.payload or "")


def _is_empty(inbound: Inbound) -> bool:
    return not inbound.text.strip() and inbound.contact is None and not inbound.attachments


async def _customer_for(ctx: Context) -> Customer:
    inbound = ctx.inbound
    identity = await ctx.uow.customers.identity(inbound.channel, inbound.user_id)
    if identity is None:
        created = await ctx.uow.customers.create(
            inbound.channel, inbound.user_id, inbound.chat_id, ctx.now
        )
        log.info("new customer %s on %s", created.id, inbound.channel)
        return created
    _touch(identity, inbound)
    customer = await ctx.uow.customers.get(identity.customer_id)  # loaded with the identity
    assert customer is not None
    # Retention counts days of inactivity: an hour's precision saves a write per message.
    if customer.last_seen_at is None or ctx.now - customer.last_seen_at >= LAST_SEEN_PRECISION:
        customer.last_seen_at = ctx.now
    return customer


def _language_from_text(ctx: Context) -> None:
    """Without a platform hint (Zalo) or a chosen language, the customer's own words decide:
    an English message switches the conversation to English, a Vietnamese one back. /lang
    overrides it. Commands ("/return vav-am24z") are the bot's own English words, not the
    customer's language."""
    assert ctx.customer is not None
    if ctx.inbound.language_hint or ctx.customer.language_chosen:
        return
    text = ctx.inbound.text
    detected = detect_language(text) if text and not text.startswith("/") else None
    if detected is not None:
        ctx.customer.language = detected


def _touch(identity: ChannelIdentity, inbound: Inbound) -> None:
    identity.chat_id = inbound.chat_id
    identity.unreachable_since = None  # they wrote to us, so we can answer


async def _refuse_locked(ctx: Context) -> None:
    """A locked customer hears about it once; further messages get no answer."""
    assert ctx.customer is not None
    if not ctx.customer.lock_notified:
        ctx.customer.lock_notified = True
        await ctx.reply(ctx.tr("core.locked"))
    await ctx.audit("locked_message_dropped")


async def _run_route(ctx: Context, route: Route) -> None:
    """Call a command handler, or a button handler with its parsed payload. A payload that
    does not parse (forged, stale, from an older version) is refused politely."""
    if route.kind is None or ctx.inbound.payload is None:
        await route.handler(ctx)
        return
    payload = route.kind.unpack(ctx.inbound.payload)
    if payload is None:
        await ctx.audit("refused", detail=f"bad-payload:{_what(ctx.inbound)}")
        if ctx.inbound.from_staff_chat:
            await ctx.to_staff(ctx.staff_text(route.refused_key or "staff.stale_button"))
        else:
            await ctx.reply(ctx.tr(route.refused_key or "flow.stale_button"))
        return
    await route.handler(ctx, payload)


async def _run_beside_flow(ctx: Context, route: Route) -> None:
    """Run a command or button; if a flow was active and untouched, re-ask its question."""
    before = (ctx.state, ctx.state.step if ctx.state else None)
    await _run_route(ctx, route)
    if ctx.state is not None and (ctx.state, ctx.state.step) == before:
        await _remind_flow(ctx)


async def _remind_flow(ctx: Context) -> None:
    flow = engine.active_flow(ctx)
    if flow is not None:
        await ctx.reply(ctx.tr("flow.reminder"))
        await engine.repeat_current(ctx, flow)


async def _free_text(ctx: Context) -> None:
    for handler in ctx.app.text_handlers:
        if await handler(ctx):
            return
    await ctx.show_menu(ctx.tr("core.fallback"))


async def _dispatch_staff(ctx: Context) -> None:
    inbound = ctx.inbound
    route: Route | None = None
    if inbound.payload:
        route = ctx.app.find_payload(inbound.payload)
    elif inbound.command:
        route = ctx.app.staff_commands.get(inbound.command)
    if route is not None and (route.staff or route.everywhere):
        if route.admin and not ctx.is_admin:
            await ctx.audit("refused", detail=f"admin-only:{_what(inbound)}")
            await ctx.to_staff(ctx.tr("staff.admin_only"))
            return
        await _run_route(ctx, route)
        return
    if inbound.command or inbound.payload:
        await ctx.to_staff(ctx.tr("staff.unknown_command"))
        return
    for handler in ctx.app.staff_text_handlers:
        if await handler(ctx):
            return
    # Ordinary chatter among staff: the bot stays quiet.

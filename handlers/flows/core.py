"""First contact and the basics: /start, /help, /privacy, /lang, /menu."""

from __future__ import annotations

import html

from handlers.context import Context
from handlers.dispatcher import show_menu
from handlers.flows.consent import CONTINUATIONS, ask_consent, has_consent
from handlers.router import router

# Deep-link payloads of /start (e.g. "p_SD-001" from the shop's website) → continuation name
# and the context key that receives the rest of the payload.
DEEP_LINKS: dict[str, tuple[str, str]] = {}


@router.command("start", help_key="help.cmd.start")
async def start(ctx: Context) -> None:
    assert ctx.customer is not None
    latest = await ctx.uow.consents.latest(ctx.customer.id, "order_processing")
    for prefix, (then, key) in DEEP_LINKS.items():
        if ctx.inbound.args.startswith(prefix) and then in CONTINUATIONS:
            await CONTINUATIONS[then](ctx, {key: ctx.inbound.args[len(prefix) :][:64]})
            return
    await ctx.reply(ctx.tr("core.greeting"))
    if latest is None or latest.withdrawn_at is not None:
        await ask_consent(ctx)
    else:
        await show_menu(ctx, ctx.tr("core.menu_intro"))


@router.command("menu", help_key="help.cmd.menu")
@router.payload("menu")
async def menu(ctx: Context) -> None:
    await show_menu(ctx, ctx.tr("core.menu_intro"))


@router.command("help", help_key="help.cmd.help")
async def help_command(ctx: Context) -> None:
    lines = [ctx.tr("help.intro"), ""]
    lines += [f"/{name} — {ctx.tr(key)}" for name, key in router.help_entries()]
    if ctx.is_staff:
        lines += ["", ctx.tr("help.staff_intro")]
        lines += [f"/{name} — {ctx.tr(key)}" for name, key in router.help_entries(staff=True)]
    await ctx.reply("\n".join(lines))


@router.command("privacy", "policy", help_key="help.cmd.privacy", locked_ok=True)
@router.payload("policy", locked_ok=True)
async def privacy(ctx: Context) -> None:
    await ctx.reply(ctx.tr("policy.full_text"))
    if not await has_consent(ctx):
        await ask_consent(ctx)


@router.command("lang", "language", help_key="help.cmd.lang")
async def language(ctx: Context) -> None:
    choice = ctx.inbound.args.strip().lower()[:2]
    if choice in ("vi", "en"):
        await _set_language(ctx, choice)
        return
    buttons = ((ctx.button("lang.vi", "lang:vi"), ctx.button("lang.en", "lang:en")),)
    await ctx.reply(ctx.tr("lang.choose"), buttons)


@router.payload("lang")
async def language_button(ctx: Context) -> None:
    choice = (ctx.inbound.payload or "").partition(":")[2]
    if choice not in ("vi", "en"):
        await ctx.reply(ctx.tr("flow.stale_button"))
        return
    await _set_language(ctx, choice)


async def _set_language(ctx: Context, lang: str) -> None:
    assert ctx.customer is not None
    ctx.customer.language = lang
    await ctx.reply(ctx.tr("lang.changed"))


@router.payload("badchoice", locked_ok=True, everywhere=True)
async def bad_choice(ctx: Context) -> None:
    """A typed button number that the latest message does not have (numbered-button channels)."""
    number = (ctx.inbound.payload or "").partition(":")[2][:3]
    await ctx.reply(ctx.tr("console.no_such_button", number=number))


@router.payload("edited", everywhere=True)
async def edited_message(ctx: Context) -> None:
    """An edited message is not re-processed: the earlier answer already counted."""
    if not ctx.inbound.from_staff_chat:
        await ctx.reply(ctx.tr("core.edited_ignored"))


@router.command("help", staff=True, help_key="help.cmd.help")
async def staff_help(ctx: Context) -> None:
    lines = [ctx.tr("help.staff_intro"), ""]
    lines += [f"/{name} — {ctx.tr(key)}" for name, key in router.help_entries(staff=True)]
    await ctx.to_staff(html.escape("\n".join(lines)))

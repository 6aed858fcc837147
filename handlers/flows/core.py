"""First contact and the basics: /start, /help, /privacy, /lang, /menu, generic buttons."""

from __future__ import annotations

import html

from handlers.buttons import BadChoice, EditedMessage, LanguageButton, MenuButton, PolicyButton
from handlers.context import CONSENT_PURPOSE, Context
from handlers.flows.consent import ask_consent, has_consent
from handlers.maintenance import expire_drafts, purge_inbox_rows, purge_outbox_rows
from handlers.router import Router

router = Router("core")
router.periodic("expired_drafts")(expire_drafts)
router.periodic("inbox_purged")(purge_inbox_rows)
router.periodic("outbox_purged")(purge_outbox_rows)


@router.command("start", help_key="help.cmd.start")
async def start(ctx: Context) -> None:
    assert ctx.customer is not None
    latest = await ctx.uow.consents.latest(ctx.customer.id, CONSENT_PURPOSE)
    for link in ctx.app.deep_links:  # e.g. "p_SD-001" from the shop's website
        continuation = ctx.app.continuations.get(link.continuation)
        if ctx.inbound.args.startswith(link.prefix) and continuation is not None:
            await continuation(ctx, {link.key: ctx.inbound.args[len(link.prefix) :][:64]})
            return
    await ctx.reply(ctx.tr("core.greeting"))
    if latest is None or latest.withdrawn_at is not None:
        await ask_consent(ctx)
    else:
        await ctx.show_menu(ctx.tr("core.menu_intro"))


@router.command("menu", help_key="help.cmd.menu")
@router.payload(MenuButton)
async def menu(ctx: Context, _: object = None) -> None:
    await ctx.show_menu(ctx.tr("core.menu_intro"))


@router.command("help", help_key="help.cmd.help")
async def help_command(ctx: Context) -> None:
    lines = [ctx.tr("help.intro"), ""]
    lines += [f"/{name} — {ctx.tr(key)}" for name, key in ctx.app.help_entries()]
    if ctx.is_staff:
        lines += ["", ctx.tr("help.staff_intro")]
        lines += [f"/{name} — {ctx.tr(key)}" for name, key in ctx.app.help_entries(staff=True)]
    await ctx.reply("\n".join(lines))


@router.command("privacy", "policy", help_key="help.cmd.privacy", locked_ok=True)
@router.payload(PolicyButton, locked_ok=True)
async def privacy(ctx: Context, _: object = None) -> None:
    await ctx.reply(ctx.tr("policy.full_text"))
    if not await has_consent(ctx):
        await ask_consent(ctx)


@router.command("lang", "language", help_key="help.cmd.lang")
async def language(ctx: Context) -> None:
    choice = ctx.inbound.args.strip().lower()[:2]
    if choice in ("vi", "en"):
        await _set_language(ctx, choice)
        return
    buttons = (
        (ctx.button("lang.vi", LanguageButton("vi")), ctx.button("lang.en", LanguageButton("en"))),
    )
    await ctx.reply(ctx.tr("lang.choose"), buttons)


@router.payload(LanguageButton)
async def language_button(ctx: Context, button: LanguageButton) -> None:
    await _set_language(ctx, button.lang)


async def _set_language(ctx: Context, lang: str) -> None:
    assert ctx.customer is not None
    ctx.customer.language = lang
    ctx.customer.language_chosen = True
    await ctx.reply(ctx.tr("lang.changed"))


@router.payload(BadChoice, locked_ok=True, everywhere=True)
async def bad_choice(ctx: Context, choice: BadChoice) -> None:
    """A typed button number that the latest message does not have (numbered-button channels)."""
    if ctx.inbound.from_staff_chat:  # staff are addressed as staff, not as customers
        await ctx.to_staff(ctx.staff_text("staff.no_such_button", number=choice.number))
        return
    await ctx.reply(ctx.tr("console.no_such_button", number=choice.number))


@router.payload(EditedMessage, everywhere=True)
async def edited_message(ctx: Context, _: EditedMessage) -> None:
    """An edited message is not re-processed: the earlier answer already counted."""
    if not ctx.inbound.from_staff_chat:
        await ctx.reply(ctx.tr("core.edited_ignored"))


@router.command("help", staff=True, help_key="help.cmd.help")
async def staff_help(ctx: Context) -> None:
    lines = [ctx.tr("help.staff_intro"), ""]
    lines += [f"/{name} — {ctx.tr(key)}" for name, key in ctx.app.help_entries(staff=True)]
    await ctx.to_staff(html.escape("\n".join(lines)))

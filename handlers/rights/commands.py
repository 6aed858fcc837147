"""Customer data rights (Decree 13/2023/ND-CP; the shop's policy): see, correct, export,
delete, withdraw consent — plus the staff admins' legal disclosure. Locked customers keep
every one of these (`locked_ok`).

Buttons: `RightsButton` (handlers/buttons.py): edit, edit a field, export, delete, confirm
the deletion, keep, withdraw.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any, get_args

from handlers import engine
from handlers.buttons import MyDataButton, OrderButton, ProfileField, RightsButton, TalkButton
from handlers.context import CONSENT_PURPOSE, AfterCommit, Context, policy_version
from handlers.engine import Flow, Step
from handlers.i18n import catalog, t
from handlers.lookup import staff_target
from handlers.messages import Document
from handlers.orders.catalog import format_vnd
from handlers.orders.service import (
    OPEN_STATUSES,
    local_time,
    order_tag,
    refresh_alert,
    status_label,
)
from handlers.orders.validators import (
    format_phone_display,
    parse_address,
    parse_email,
    parse_full_name,
    parse_phone_answer,
)
from handlers.rights.erasure import erase_customer, purge_inactive
from handlers.rights.export import collect, to_json_bytes
from handlers.router import Router
from handlers.words import answer_words, interrupt_of, yes_or_no
from storage.models import Disclosure
from storage.repositories import OneCustomer, SeveralCustomers

router = Router("rights")
router.periodic("retention_erased")(purge_inactive)
# Typed answers to the deletion question. Its own router, listed early in the composition:
# "có, xóa đi" must reach the pending question before the free-text understanding reads it
# as a new request to delete.
answers_router = Router("rights_answers")
# The conversation state while the deletion question waits for a typed answer.
AWAITING, DELETE_QUESTION = "_pending", "delete"

EDITABLE: tuple[ProfileField, ...] = get_args(ProfileField)


# ---- /mydata -------------------------------------------------------------------------------


def _fmt_time(value: str | None) -> str:
    return local_time(datetime.fromisoformat(value)) if value else "—"


def _policy(ctx: Context, version: str) -> str:
    """The policy a consent was given under, in words: the hash stays in the export only."""
    current = version == policy_version()
    return ctx.tr("rights.policy.current" if current else "rights.policy.previous")


def _reason(ctx: Context, reason: str | None) -> str:
    """A disclosure's reason: a known purpose ("delivery") localized; free text as typed."""
    if not reason:
        return "—"
    key = f"rights.reason.{reason}"
    return ctx.tr(key) if key in catalog(ctx.lang) else reason


def _channel(ctx: Context, channel: str) -> str:
    key = f"rights.channel.{channel}"
    return ctx.tr(key) if key in catalog(ctx.lang) else channel


def _ticket_line(ctx: Context, item: dict[str, Any]) -> str:
    """A ticket with its localized kind and status (never the stored "open")."""
    kind = ctx.tr(f"support.kind.{item['kind']}")
    status = ctx.tr(f"support.status.{item['status']}")
    return f"• {item['code']} — {kind} — {status} — {_fmt_time(item['created_at'])}"


def _nothing_stored(data: dict[str, Any], sections: Iterable[str]) -> bool:
    return not data["orders"] and not any(data.get(name) for name in sections)


def render_mydata(ctx: Context, data: dict[str, Any]) -> str:
    profile = data["profile"]
    language = profile["language"] or ctx.lang
    dash = "—"
    lines = [
        ctx.tr("rights.mydata.title"),
        "",
        ctx.tr("rights.section.profile"),
        f"• {ctx.tr('order.field.full_name')}: {profile['full_name'] or dash}",
        f"• {ctx.tr('order.field.phone')}: "
        f"{format_phone_display(profile['phone']) if profile['phone'] else dash}",
        f"• {ctx.tr('order.field.address')}: {profile['address'] or dash}",
        f"• {ctx.tr('order.field.email')}: {profile['email'] or dash}",
        f"• {ctx.tr('rights.field.language')}: {ctx.tr('lang.' + language)}",
        "",
        ctx.tr("rights.section.consents"),
    ]
    for consent in data["consents"] or [None]:
        if consent is None:
            lines.append(f"• {ctx.tr('rights.none')}")
            continue
        key = "rights.consent.granted" if consent["granted"] else "rights.consent.declined"
        version = _policy(ctx, consent["policy_version"])
        line = ctx.tr(key, version=version, at=_fmt_time(consent["decided_at"]))
        if consent["withdrawn_at"]:
            line += " " + ctx.tr("rights.consent.withdrawn", at=_fmt_time(consent["withdrawn_at"]))
        lines.append(f"• {line}")
    lines += ["", ctx.tr("rights.section.orders")]
    for order in data["orders"] or [None]:
        if order is None:
            lines.append(f"• {ctx.tr('rights.none')}")
            continue
        lines.append(
            f"• {order['code']} — {status_label(ctx.lang, order['status'])} — "
            f"{_fmt_time(order['created_at'])}"
        )
        if order["total_vnd"] is not None:
            payment = ctx.tr(f"catalog.payment.{order['payment_status']}")
            lines.append(
                f"   {ctx.tr('catalog.quote.total', total=format_vnd(order['total_vnd']))}"
            )
            lines.append(f"   {ctx.tr('catalog.payment.line', status=payment)}")
        for message in order["messages"]:
            arrow = "→" if message["direction"] == "in" else "←"
            lines.append(f"   {arrow} {message['text'][:200]}")
    for name in ctx.app.export_sections:  # complaint tickets: items carry code, kind, status
        lines += ["", ctx.tr(f"rights.section.{name}")]
        lines += [_ticket_line(ctx, item) for item in data.get(name) or []] or [
            f"• {ctx.tr('rights.none')}"
        ]
    lines += ["", ctx.tr("rights.section.disclosures")]
    for disclosure in data["disclosures"] or [None]:
        if disclosure is None:
            lines.append(f"• {ctx.tr('rights.none')}")
            continue
        lines.append(
            "• "
            + ctx.tr(
                "rights.disclosure.line",
                recipient=disclosure["recipient"],
                kind=ctx.tr(f"rights.recipient.{disclosure['recipient_kind']}"),
                fields=", ".join(ctx.tr(f"rights.fieldname.{f}") for f in disclosure["fields"]),
                at=_fmt_time(disclosure["at"]),
                reason=_reason(ctx, disclosure["reason"]),
            )
        )
    lines += ["", ctx.tr("rights.section.identities")]
    lines += [
        "• "
        + ctx.tr(
            "rights.identity.line",
            channel=_channel(ctx, i["channel"]),
            since=_fmt_time(i["since"])[:10],
        )
        for i in data["channel_identities"]
    ]
    if _nothing_stored(data, ctx.app.export_sections):
        lines += ["", ctx.tr("rights.mydata.empty_hint")]
    return "\n".join(lines)


@router.command("mydata", help_key="help.cmd.mydata", locked_ok=True)
@router.payload(MyDataButton, locked_ok=True)
async def mydata(ctx: Context, _: object = None) -> None:
    assert ctx.customer is not None
    data = await collect(ctx.uow, ctx.app.export_sections, ctx.customer, ctx.now)
    text = render_mydata(ctx, data)
    seconds = int(ctx.config.mydata_delete_after.total_seconds())
    self_delete = seconds > 0 and ctx.capabilities.can_delete_messages
    if self_delete:
        minutes = max(1, round(seconds / 60))
        text += "\n\n" + ctx.tr("rights.mydata.self_delete", minutes=minutes)
    next_steps = (
        ((ctx.button("menu.order", OrderButton()), ctx.button("menu.talk", TalkButton())),)
        if _nothing_stored(data, ctx.app.export_sections)
        else ()
    )
    buttons = next_steps + (
        (
            ctx.button("rights.btn.edit", RightsButton("edit")),
            ctx.button("rights.btn.export", RightsButton("export")),
        ),
        (
            ctx.button("rights.btn.delete", RightsButton("delete")),
            ctx.button("rights.btn.withdraw", RightsButton("withdraw")),
        ),
    )
    await ctx.reply(text, buttons, delete_after_seconds=seconds if self_delete else None)
    await ctx.audit("mydata_viewed")


@router.command("export", help_key="help.cmd.export", locked_ok=True)
async def export_command(ctx: Context) -> None:
    await _export(ctx)


async def _export(ctx: Context) -> None:
    assert ctx.customer is not None
    data = await collect(ctx.uow, ctx.app.export_sections, ctx.customer, ctx.now)
    document = Document(
        filename=f"vietartview-data-{ctx.now:%Y%m%d}.json",
        content=to_json_bytes(data),
        mime_type="application/json",
    )
    await ctx.reply(ctx.tr("rights.export.ready"), document=document)
    await ctx.audit("data_exported")


# ---- edit ----------------------------------------------------------------------------------


def _edit_flow(field: str, step: Step) -> Flow:
    async def apply(ctx: Context, values: dict[str, Any]) -> None:
        await _apply_edit(ctx, field, values.get(field))

    return router.flow(
        Flow(
            name=f"edit_{field}",
            title="rights.edit.title",
            steps=(step,),
            on_complete=apply,
            review=False,
        )
    )


EDIT_FLOWS = {
    "full_name": _edit_flow(
        "full_name",
        Step(
            "full_name",
            "rights.edit.ask.full_name",
            "order.field.full_name",
            lambda a: parse_full_name(a.text),
        ),
    ),
    "phone": _edit_flow(
        "phone",
        Step(
            "phone",
            "rights.edit.ask.phone",
            "order.field.phone",
            parse_phone_answer,
            ask_contact=True,
        ),
    ),
    "address": _edit_flow(
        "address",
        Step(
            "address",
            "rights.edit.ask.address",
            "order.field.address",
            lambda a: parse_address(a.text),
        ),
    ),
    "email": _edit_flow(
        "email",
        Step(
            "email",
            "rights.edit.ask.email",
            "order.field.email",
            lambda a: parse_email(a.text),
            optional=True,
        ),
    ),
}


async def _apply_edit(ctx: Context, field: str, value: str | None) -> None:
    """Update the profile and every order not yet handed to the carrier."""
    assert ctx.customer is not None
    setattr(ctx.customer, field, value)
    updated = 0
    for order in await ctx.uow.orders.of_customer(ctx.customer.id):
        if order.status in OPEN_STATUSES and order.handed_to_carrier_at is None:
            setattr(order, field, value)
            order.updated_at = ctx.now
            updated += 1
            # Staff must work with the new value: update the alert and say what changed.
            await refresh_alert(ctx, order)
            await ctx.to_staff(
                ctx.staff_text(
                    "rights.staff.field_changed",
                    code=order.code,
                    field=t(ctx.config.default_language, f"order.field.{field}"),
                ),
                tag=order_tag(order),
                customer_id=ctx.customer.id,
            )
    await ctx.audit("profile_field_changed", detail=f"field={field};orders={updated}")
    await ctx.reply(
        ctx.tr("rights.edit.done", field=ctx.tr(f"order.field.{field}"), orders=updated)
    )


async def _edit_menu(ctx: Context) -> None:
    buttons = tuple(
        (ctx.button(f"order.field.{field}", RightsButton("edit", field)),) for field in EDITABLE
    )
    await ctx.reply(ctx.tr("rights.edit.choose"), buttons)


# ---- delete and withdraw -------------------------------------------------------------------


@router.command("delete", help_key="help.cmd.delete", locked_ok=True)
async def delete_command(ctx: Context) -> None:
    await _ask_delete(ctx)


async def _ask_delete(ctx: Context) -> None:
    assert ctx.customer is not None
    open_orders = [
        o for o in await ctx.uow.orders.of_customer(ctx.customer.id) if o.status in OPEN_STATUSES
    ]
    text = ctx.tr("rights.delete.explain")
    if open_orders:
        text += "\n\n" + ctx.tr(
            "rights.delete.open_orders", codes=", ".join(o.code for o in open_orders)
        )
    pending = [item for lister in ctx.app.unanswered_listers for item in await lister(ctx)]
    if pending:
        text += "\n\n" + ctx.tr("rights.delete.unanswered", items="; ".join(pending))
    buttons = (
        (ctx.button("rights.btn.delete_confirm", RightsButton("delete", "confirm")),),
        (ctx.button("rights.btn.keep", RightsButton("keep")),),
    )
    if ctx.state is None:  # a typed answer is taken too (a form keeps its own state)
        await ctx.replace_state(AWAITING, DELETE_QUESTION, {})
    await ctx.reply(text, buttons)


_DELETE_VERB = re.compile(r"\b(?:xoa|delete|erase|remove)\b")
_NEGATION = re.compile(r"\b(?:khong|ko|k|dung|chua|dont|don't|do not|not|no)\b")


def deletion_answer(text: str) -> bool | None:
    """The typed answer to "delete everything?": True for "có, xóa đi", "yes delete it";
    False for "không", "thôi khỏi, giữ lại", "hủy" (never mind); None for anything else."""
    words = answer_words(text)
    if interrupt_of(text) == "cancel" or words.startswith(("thoi", "thui")):
        return False
    answer = yes_or_no(text)
    if answer is None and _DELETE_VERB.search(words):
        return not _NEGATION.search(words)
    return answer


@answers_router.text
async def typed_deletion_answer(ctx: Context) -> bool:
    """A typed yes/no to the pending deletion question; anything else drops the question
    (only the button erases then) and goes on as free text."""
    state = ctx.state
    if state is None or (state.flow, state.step) != (AWAITING, DELETE_QUESTION):
        return False
    await ctx.uow.states.remove(state)
    ctx.state = None
    answer = deletion_answer(ctx.inbound.text)
    if answer is None:
        return False
    if answer:
        await _delete(ctx)
    else:
        await ctx.reply(ctx.tr("rights.delete.kept"))
    return True


async def _delete(ctx: Context) -> None:
    assert ctx.customer is not None
    reference = await erase_customer(
        ctx.uow, ctx.app.erasers, ctx.config, ctx.customer, ctx.now, ctx.actor
    )
    ctx.customer = None
    ctx.state = None
    ctx.after_commit.add(AfterCommit.CHECKPOINT_WAL)
    ctx.after_commit.add(AfterCommit.CHAT_ERASED)
    await ctx.reply(ctx.tr("rights.delete.done", reference=reference))


@router.command("withdraw", help_key="help.cmd.withdraw", locked_ok=True)
async def withdraw_command(ctx: Context) -> None:
    await _withdraw(ctx)


async def _withdraw(ctx: Context) -> None:
    assert ctx.customer is not None
    consent = await ctx.uow.consents.latest(ctx.customer.id, CONSENT_PURPOSE)
    if consent is None or not consent.granted or consent.withdrawn_at is not None:
        await ctx.reply(ctx.tr("rights.withdraw.none"))
        return
    consent.withdrawn_at = ctx.now
    await ctx.audit("consent_withdrawn")
    if ctx.state is not None:
        await engine.finish(ctx)  # no draft keeps collecting without consent
    for order in await ctx.uow.orders.of_customer(ctx.customer.id):
        if order.status in OPEN_STATUSES:
            await ctx.to_staff(ctx.staff_text("rights.staff.consent_withdrawn", code=order.code))
    await ctx.reply(
        ctx.tr("rights.withdraw.done"),
        ((ctx.button("rights.btn.delete", RightsButton("delete")),),),
    )


@router.payload(RightsButton, locked_ok=True)
async def rights_button(ctx: Context, button: RightsButton) -> None:
    action, detail = button.action, button.detail
    if action == "edit" and detail in EDIT_FLOWS:
        await engine.begin(ctx, EDIT_FLOWS[detail])
    elif action == "edit":
        await _edit_menu(ctx)
    elif action == "export":
        await _export(ctx)
    elif action == "delete" and detail == "confirm":
        await _delete(ctx)
    elif action == "delete":
        await _ask_delete(ctx)
    elif action == "keep":
        state = ctx.state
        if state is not None and (state.flow, state.step) == (AWAITING, DELETE_QUESTION):
            await engine.finish(ctx)
        await ctx.reply(ctx.tr("rights.delete.kept"))
    else:
        await _withdraw(ctx)


# ---- legal disclosure (staff admins) -------------------------------------------------------


@router.command("legal", admin=True, help_key="help.staff.legal")
async def legal_disclosure(ctx: Context) -> None:
    """`/legal <order code | ticket code | phone> <authority and reference>`: export to the
    staff chat. A phone number shared by several customers is refused: the export would go
    out for whichever came first."""
    target = await staff_target(ctx, ctx.inbound.args)
    basis = target.rest.strip() if target is not None else ""
    if target is None or not basis:
        await ctx.to_staff(ctx.staff_text("rights.legal.usage"))
        return
    if isinstance(target.found, SeveralCustomers):
        await ctx.to_staff(ctx.staff_text("rights.legal.ambiguous", count=target.found.count))
        return
    if not isinstance(target.found, OneCustomer):
        await ctx.to_staff(ctx.staff_text("rights.legal.not_found"))
        return
    customer = target.found.customer
    data = await collect(ctx.uow, ctx.app.export_sections, customer, ctx.now)
    await ctx.uow.disclosures.add(
        Disclosure(
            customer_id=customer.id,
            order_id=None,
            recipient_kind="authority",
            recipient_name=basis[:200],
            fields=["full_name", "phone", "address", "email", "orders", "messages"],
            reason=basis[:300],
            staff_actor=ctx.actor,
            at=ctx.now,
        )
    )
    await ctx.audit("legal_disclosure", subject=f"customer:{customer.id}")
    await ctx.to_staff(
        ctx.staff_text("rights.legal.done", basis=basis[:200]),
        document=Document(
            filename=f"legal-disclosure-{customer.id}-{ctx.now:%Y%m%d%H%M}.json",
            content=to_json_bytes(data),
            mime_type="application/json",
        ),
    )

"""The dialogue engine: flows declared as steps, with the generic behaviour written once.

A `Flow` is a list of `Step`s. Each step has a prompt (catalog id), a parser that returns a
value or raises `InvalidInput`, and flags. The engine provides, for every flow:

- `/cancel` anywhere (the dispatcher calls `cancel_flow`), "back" to the previous step,
- re-asking with the reason when an answer is rejected,
- "skip" for optional steps (button or typed "bỏ qua"/"skip"),
- collecting steps (photos) that take several inputs until "done",
- a review screen listing every field with "edit field N", confirm and cancel,
- an offer to reuse the saved profile ("dùng thông tin đã lưu") for returning customers,
- persistence of flow, step and draft in `conversation_states`, with expiry.

Payloads of engine buttons start with "f:"; they are checked against the current state, so
a stale button from an older message only gets a polite note.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from handlers.context import ButtonRows, Context
from handlers.errors import InvalidInput
from handlers.messages import Attachment, Button, Contact
from handlers.text import fold
from storage.models import ConversationState

REVIEW = "_review"
SAVED = "_saved"

BACK_WORDS = frozenset({"back", "quay lai", "tro lai", "lui lai", "lui"})
SKIP_WORDS = frozenset({"skip", "bo qua", "bq", "khong co", "ko co", "k co", "khong", "ko"})
DONE_WORDS = frozenset({"done", "xong", "het", "ok", "xong roi", "het roi", "du roi"})
CONFIRM_WORDS = frozenset({"confirm", "xac nhan", "ok", "dong y", "dung", "dung roi", "yes", "co"})
_EDIT_TYPED = re.compile(r"^(?:sua|edit|doi|chinh)\s*(?:muc|field|so)?\s*(\d{1,2})$")


@dataclass(frozen=True)
class StepInput:
    text: str
    contact: Contact | None = None
    attachments: tuple[Attachment, ...] = ()


Parser = Callable[[StepInput], Any]


@dataclass(frozen=True)
class Step:
    """One question. `name` is the draft key; `label` names it on the review screen."""

    name: str
    prompt: str
    label: str
    parse: Parser
    optional: bool = False
    ask_contact: bool = False
    collect_max: int = 0  # > 0: a collecting step (e.g. photos) taking up to this many inputs
    profile_field: str | None = None  # saved-profile field offered for reuse
    # Answer buttons: (label catalog id, value); a press is parsed as if the value were typed.
    choices: tuple[tuple[str, str], ...] = ()
    show: Callable[[Context, Any], str] | None = None  # how the review screen shows the value


CompleteHandler = Callable[[Context, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class Flow:
    name: str
    title: str  # catalog id of the review screen heading
    steps: tuple[Step, ...]
    on_complete: CompleteHandler
    review: bool = True
    prompt_params: Callable[[Context, dict[str, Any]], dict[str, object]] = field(
        default=lambda ctx, values: {}
    )

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)

    def index(self, name: str) -> int:
        return next(i for i, s in enumerate(self.steps) if s.name == name)


FLOWS: dict[str, Flow] = {}


def register(flow: Flow) -> Flow:
    FLOWS[flow.name] = flow
    return flow


# ---- state helpers -------------------------------------------------------------------------


def _values(ctx: Context) -> dict[str, Any]:
    assert ctx.state is not None
    return dict(ctx.state.data.get("values", {}))


def _save(ctx: Context, step: str, values: dict[str, Any], **extra: Any) -> None:
    """Persist flow position and draft; every save pushes the expiry forward."""
    assert ctx.state is not None
    data = {"values": values, **{k: v for k, v in ctx.state.data.items() if k != "values"}}
    data.update(extra)
    ctx.state.step = step
    ctx.state.data = data
    ctx.state.updated_at = ctx.now
    ctx.state.expires_at = ctx.now + ctx.config.draft_ttl


async def begin(
    ctx: Context, flow: Flow, values: dict[str, Any] | None = None, **extra: Any
) -> None:
    """Start `flow` in this conversation, replacing any previous state."""
    if ctx.state is not None:
        await ctx.uow.states.remove(ctx.state, flush=True)
    ctx.state = ConversationState(
        channel=ctx.inbound.channel,
        chat_id=ctx.inbound.chat_id,
        customer_id=ctx.customer.id if ctx.customer else None,
        flow=flow.name,
        step=flow.steps[0].name,
        data={},
        expires_at=ctx.now + ctx.config.draft_ttl,
        updated_at=ctx.now,
    )
    await ctx.uow.states.save(ctx.state)
    values = dict(values or {})
    saved = _saved_profile(ctx, flow, values)
    if saved:
        _save(ctx, SAVED, values, saved=saved, **extra)
        await _offer_saved(ctx, flow, saved)
        return
    _save(ctx, "", values, **extra)
    await _advance(ctx, flow, values)


async def finish(ctx: Context) -> None:
    if ctx.state is not None:
        await ctx.uow.states.remove(ctx.state)
        ctx.state = None


async def cancel_flow(ctx: Context) -> None:
    had_flow = ctx.state is not None
    await finish(ctx)
    await ctx.reply(ctx.tr("flow.cancelled" if had_flow else "flow.nothing_to_cancel"))


def active_flow(ctx: Context) -> Flow | None:
    return FLOWS.get(ctx.state.flow) if ctx.state is not None else None


# ---- prompting -----------------------------------------------------------------------------


def _saved_profile(ctx: Context, flow: Flow, values: dict[str, Any]) -> dict[str, Any]:
    if ctx.customer is None:
        return {}
    saved = {}
    for step in flow.steps:
        if step.profile_field and step.name not in values:
            value = getattr(ctx.customer, step.profile_field, None)
            if value:
                saved[step.name] = value
    return saved


async def _offer_saved(ctx: Context, flow: Flow, saved: dict[str, Any]) -> None:
    lines = [ctx.tr("flow.saved_intro")]
    for step in flow.steps:
        if step.name in saved:
            lines.append(f"• {ctx.tr(step.label)}: {_show(ctx, step, saved[step.name])}")
    buttons = (
        (ctx.button("flow.btn.use_saved", "f:saved"),),
        (ctx.button("flow.btn.enter_new", "f:new"),),
    )
    await ctx.reply("\n".join(lines), buttons)


def _show(ctx: Context, step: Step, value: Any) -> str:
    if value is None or value == [] or value == "":
        return ctx.tr("flow.value_empty")
    if step.show is not None:
        return step.show(ctx, value)
    if isinstance(value, list):
        return ctx.tr("flow.value_count", count=len(value))
    return str(value)


def _step_buttons(ctx: Context, flow: Flow, step: Step, values: dict[str, Any]) -> ButtonRows:
    choices = tuple((ctx.button(label, f"f:pick:{value}"),) for label, value in step.choices)
    row: list[Button] = []
    if step.collect_max:
        row.append(
            ctx.button("flow.btn.done" if values.get(step.name) else "flow.btn.skip", "f:skip")
        )
    elif step.optional:
        row.append(ctx.button("flow.btn.skip", "f:skip"))
    if flow.index(step.name) > 0:
        row.append(ctx.button("flow.btn.back", "f:back"))
    row.append(ctx.button("flow.btn.cancel", "f:cancel"))
    return (*choices, tuple(row))


async def prompt(ctx: Context, flow: Flow, step: Step, prefix: str = "") -> None:
    values = _values(ctx)
    text = ctx.tr(step.prompt, **flow.prompt_params(ctx, values))
    await ctx.reply(
        f"{prefix}\n\n{text}" if prefix else text,
        _step_buttons(ctx, flow, step, values),
        ask_contact=step.ask_contact,
    )


async def show_review(ctx: Context, flow: Flow, values: dict[str, Any]) -> None:
    lines = [ctx.tr(flow.title), ""]
    for number, step in enumerate(flow.steps, start=1):
        lines.append(f"{number}. {ctx.tr(step.label)}: {_show(ctx, step, values.get(step.name))}")
    lines += ["", ctx.tr("flow.review_hint")]
    edit_buttons = tuple(
        ctx.button("flow.btn.edit_n", f"f:edit:{n}", n=n) for n in range(1, len(flow.steps) + 1)
    )
    rows: ButtonRows = (
        (ctx.button("flow.btn.confirm", "f:ok"),),
        *(edit_buttons[i : i + 4] for i in range(0, len(edit_buttons), 4)),
        (ctx.button("flow.btn.cancel", "f:cancel"),),
    )
    await ctx.reply("\n".join(lines), rows, remove_keyboard=True)


async def _advance(
    ctx: Context, flow: Flow, values: dict[str, Any], after: str | None = None
) -> None:
    """Go to the first unanswered step after `after` (or the review when all are done)."""
    assert ctx.state is not None
    if ctx.state.data.get("editing"):
        _save(ctx, REVIEW, values, editing=False)
        await show_review(ctx, flow, values)
        return
    start = flow.index(after) + 1 if after else 0
    for step in flow.steps[start:]:
        if step.name not in values:
            _save(ctx, step.name, values)
            await prompt(ctx, flow, step)
            return
    if flow.review:
        _save(ctx, REVIEW, values)
        await show_review(ctx, flow, values)
    else:
        await _complete(ctx, flow, values)


async def _complete(ctx: Context, flow: Flow, values: dict[str, Any]) -> None:
    extra = {k: v for k, v in (ctx.state.data if ctx.state else {}).items() if k != "values"}
    await finish(ctx)
    await flow.on_complete(ctx, {**extra.get("context", {}), **values})


# ---- input ---------------------------------------------------------------------------------


async def handle_input(ctx: Context, flow: Flow) -> None:
    """Feed the inbound to the active flow (payload "f:…" or a typed answer)."""
    assert ctx.state is not None
    inbound = ctx.inbound
    payload = inbound.payload or ""
    typed = fold(inbound.text)
    values = _values(ctx)
    position = ctx.state.step

    if payload == "f:cancel":
        await cancel_flow(ctx)
        return
    if position == SAVED:
        await _handle_saved(ctx, flow, payload, typed, values)
        return
    if position == REVIEW:
        await _handle_review(ctx, flow, payload, typed, values)
        return

    step = flow.step(position)
    if step is None:  # the flow changed under a stored state: start it afresh
        await begin(ctx, flow)
        return
    if not payload:
        # A button label typed or sent back as text (reply keyboards, numbered channels).
        labels = {b.label: b.payload for row in _step_buttons(ctx, flow, step, values) for b in row}
        payload = labels.get(inbound.text.strip(), "")
        if payload == "f:cancel":
            await cancel_flow(ctx)
            return
    if payload == "f:back" or (not payload and typed in BACK_WORDS):
        await _back(ctx, flow, step, values)
        return
    wants_skip = payload == "f:skip" or (
        not payload and (step.optional or step.collect_max) and typed in SKIP_WORDS | DONE_WORDS
    )
    if wants_skip and (step.optional or step.collect_max):
        values.setdefault(step.name, [] if step.collect_max else None)
        await _advance(ctx, flow, values, after=step.name)
        return
    answer = inbound.text
    if payload.startswith("f:pick:") and payload[7:] in {v for _, v in step.choices}:
        answer, payload = payload[7:], ""
    if payload:
        await _stale_button(ctx, flow)
        return
    try:
        value = step.parse(StepInput(answer, inbound.contact, inbound.attachments))
    except InvalidInput as error:
        await prompt(ctx, flow, step, prefix=ctx.error_text(error))
        return
    if step.collect_max:
        collected = list(values.get(step.name) or []) + list(value)
        values[step.name] = collected[: step.collect_max]
        if len(collected) < step.collect_max:
            _save(ctx, step.name, values)
            await ctx.reply(
                ctx.tr("flow.collected", count=len(collected), limit=step.collect_max),
                _step_buttons(ctx, flow, step, values),
            )
            return
    else:
        values[step.name] = value
    if step.ask_contact:
        # Acknowledge and take the share-contact keyboard away before the next question.
        await ctx.reply(ctx.tr("flow.contact_saved"), remove_keyboard=True)
    await _advance(ctx, flow, values, after=step.name)


async def _back(ctx: Context, flow: Flow, step: Step, values: dict[str, Any]) -> None:
    index = flow.index(step.name)
    if index == 0:
        await prompt(ctx, flow, step, prefix=ctx.tr("flow.at_first_step"))
        return
    previous = flow.steps[index - 1]
    values.pop(previous.name, None)
    _save(ctx, previous.name, values)
    await prompt(ctx, flow, previous)


async def _handle_saved(
    ctx: Context, flow: Flow, payload: str, typed: str, values: dict[str, Any]
) -> None:
    assert ctx.state is not None
    if payload == "f:saved" or (not payload and typed in CONFIRM_WORDS | {"dung thong tin da luu"}):
        values.update(ctx.state.data.get("saved", {}))
    elif payload != "f:new" and typed not in {"nhap moi", "new", "khong", "ko"}:
        await ctx.reply(ctx.tr("flow.choose_button"))
        await _offer_saved(ctx, flow, ctx.state.data.get("saved", {}))
        return
    _save(ctx, "", values, saved={})
    await _advance(ctx, flow, values)


async def _handle_review(
    ctx: Context, flow: Flow, payload: str, typed: str, values: dict[str, Any]
) -> None:
    edit_number: int | None = None
    if payload.startswith("f:edit:") and payload[7:].isdigit():
        edit_number = int(payload[7:])
    elif not payload and (match := _EDIT_TYPED.match(typed)):
        edit_number = int(match.group(1))
    if edit_number is not None:
        if not 1 <= edit_number <= len(flow.steps):
            await ctx.reply(ctx.tr("flow.no_such_field", count=len(flow.steps)))
            await show_review(ctx, flow, values)
            return
        step = flow.steps[edit_number - 1]
        values.pop(step.name, None)
        _save(ctx, step.name, values, editing=True)
        await prompt(ctx, flow, step)
        return
    if payload == "f:ok" or (not payload and typed in CONFIRM_WORDS):
        await _complete(ctx, flow, values)
        return
    if payload:
        await _stale_button(ctx, flow)
        return
    await ctx.reply(ctx.tr("flow.review_unclear"))
    await show_review(ctx, flow, values)


async def _stale_button(ctx: Context, flow: Flow) -> None:
    await ctx.reply(ctx.tr("flow.stale_button"))
    await repeat_current(ctx, flow)


async def repeat_current(ctx: Context, flow: Flow) -> None:
    """Ask the current question again (after a side command, a restart or a stale button)."""
    assert ctx.state is not None
    values = _values(ctx)
    if ctx.state.step == REVIEW:
        await show_review(ctx, flow, values)
    elif ctx.state.step == SAVED:
        await _offer_saved(ctx, flow, ctx.state.data.get("saved", {}))
    elif (step := flow.step(ctx.state.step)) is not None:
        await prompt(ctx, flow, step)

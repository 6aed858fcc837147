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

Engine buttons carry a `FlowButton` payload ("f:<action>[:<arg>]"); they are checked against
the current state, so a stale button from an older message only gets a polite note. A flow's
position and draft are a typed `Draft`, stored as JSON in `conversation_states.data`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from handlers.buttons import FlowButton
from handlers.context import ButtonRows, Context
from handlers.errors import InvalidInput
from handlers.messages import Attachment, Button, Contact
from handlers.words import BACK_WORDS, CONFIRM_WORDS, DONE_WORDS, SKIP_WORDS, answer_words
from storage.models import ConversationState

Phase = Literal["step", "review", "saved"]


@dataclass
class Draft:
    """Where a flow stands and what the customer has answered so far."""

    values: dict[str, Any] = field(default_factory=dict)
    phase: Phase = "step"  # asking `state.step`, showing the review, or offering saved details
    editing: bool = False  # a review edit: go back to the review after this step
    saved: dict[str, Any] = field(default_factory=dict)  # the saved profile on offer

    @classmethod
    def load(cls, data: dict[str, Any]) -> Draft:
        phase = data.get("phase")
        return cls(
            values=dict(data.get("values") or {}),
            phase=phase if phase in ("step", "review", "saved") else "step",
            editing=bool(data.get("editing")),
            saved=dict(data.get("saved") or {}),
        )


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


# ---- state helpers -------------------------------------------------------------------------


def position(state: ConversationState) -> str:
    """Where a conversation stands: the step being asked, "review" or "saved" (the offer to
    reuse saved details)."""
    phase = Draft.load(state.data).phase
    return state.step if phase == "step" else phase


def draft(ctx: Context) -> Draft:
    assert ctx.state is not None
    return Draft.load(ctx.state.data)


def _values(ctx: Context) -> dict[str, Any]:
    return draft(ctx).values


def _save(
    ctx: Context,
    step: str,
    values: dict[str, Any],
    *,
    phase: Phase = "step",
    editing: bool | None = None,
    saved: dict[str, Any] | None = None,
) -> None:
    """Persist flow position and draft; every save pushes the expiry forward."""
    assert ctx.state is not None
    current = draft(ctx)
    new = Draft(
        values=values,
        phase=phase,
        editing=current.editing if editing is None else editing,
        saved=current.saved if saved is None else saved,
    )
    ctx.state.step = step
    ctx.state.data = asdict(new)
    ctx.state.updated_at = ctx.now
    ctx.state.expires_at = ctx.now + ctx.config.draft_ttl


async def begin(ctx: Context, flow: Flow, values: dict[str, Any] | None = None) -> None:
    """Start `flow` in this conversation, replacing any previous state."""
    if ctx.state is not None:
        await ctx.uow.states.remove(ctx.state)
        await ctx.uow.session.flush()
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
        _save(ctx, flow.steps[0].name, values, phase="saved", saved=saved)
        await _offer_saved(ctx, flow, saved)
        return
    _save(ctx, flow.steps[0].name, values)
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
    return ctx.app.flows.get(ctx.state.flow) if ctx.state is not None else None


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
        (ctx.button("flow.btn.use_saved", FlowButton("saved")),),
        (ctx.button("flow.btn.enter_new", FlowButton("new")),),
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
    choices = tuple(
        (ctx.button(label, FlowButton("pick", value)),) for label, value in step.choices
    )
    row: list[Button] = []
    skip = FlowButton("skip")
    if step.collect_max:
        row.append(ctx.button("flow.btn.done" if values.get(step.name) else "flow.btn.skip", skip))
    elif step.optional:
        row.append(ctx.button("flow.btn.skip", skip))
    if flow.index(step.name) > 0:
        row.append(ctx.button("flow.btn.back", FlowButton("back")))
    row.append(ctx.button("flow.btn.cancel", FlowButton("cancel")))
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
        ctx.button("flow.btn.edit_n", FlowButton("edit", str(n)), n=n)
        for n in range(1, len(flow.steps) + 1)
    )
    rows: ButtonRows = (
        (ctx.button("flow.btn.confirm", FlowButton("ok")),),
        *(edit_buttons[i : i + 4] for i in range(0, len(edit_buttons), 4)),
        (ctx.button("flow.btn.cancel", FlowButton("cancel")),),
    )
    await ctx.reply("\n".join(lines), rows, remove_keyboard=True)


async def _advance(
    ctx: Context, flow: Flow, values: dict[str, Any], after: str | None = None
) -> None:
    """Go to the first unanswered step after `after` (or the review when all are done)."""
    assert ctx.state is not None
    if draft(ctx).editing:
        _save(ctx, ctx.state.step, values, phase="review", editing=False)
        await show_review(ctx, flow, values)
        return
    start = flow.index(after) + 1 if after else 0
    for step in flow.steps[start:]:
        if step.name not in values:
            _save(ctx, step.name, values)
            await prompt(ctx, flow, step)
            return
    if flow.review:
        _save(ctx, flow.steps[-1].name, values, phase="review")
        await show_review(ctx, flow, values)
    else:
        await _complete(ctx, flow, values)


async def _complete(ctx: Context, flow: Flow, values: dict[str, Any]) -> None:
    await finish(ctx)
    await flow.on_complete(ctx, values)


# ---- input ---------------------------------------------------------------------------------


def _pressed(
    ctx: Context, flow: Flow, step: Step | None, values: dict[str, Any]
) -> FlowButton | None:
    """The engine button pressed — or typed as its label (reply keyboards, numbered
    channels). A payload that is not a valid engine button counts as a stale one."""
    inbound = ctx.inbound
    if inbound.payload:
        return FlowButton.unpack(inbound.payload)
    if step is not None:
        labels = {b.label: b.payload for row in _step_buttons(ctx, flow, step, values) for b in row}
        raw = labels.get(inbound.text.strip())
        if raw is not None:
            return FlowButton.unpack(raw)
    return None


async def handle_input(ctx: Context, flow: Flow) -> None:
    """Feed the inbound to the active flow (an engine button or a typed answer)."""
    assert ctx.state is not None
    inbound = ctx.inbound
    current = draft(ctx)
    values = current.values
    step = flow.step(ctx.state.step)
    if step is None:  # the flow changed under a stored state: start it afresh
        await begin(ctx, flow)
        return
    button = _pressed(ctx, flow, step if current.phase == "step" else None, values)
    if inbound.payload and button is None:
        await _stale_button(ctx, flow)
        return
    if button is not None and button.action == "cancel":
        await cancel_flow(ctx)
        return
    typed = "" if button is not None else answer_words(inbound.text)
    if current.phase == "saved":
        await _handle_saved(ctx, flow, button, typed, current)
        return
    if current.phase == "review":
        await _handle_review(ctx, flow, button, typed, values)
        return

    if (button and button.action == "back") or typed in BACK_WORDS:
        await _back(ctx, flow, step, values)
        return
    can_skip = step.optional or step.collect_max > 0
    wants_skip = (button and button.action == "skip") or typed in SKIP_WORDS | DONE_WORDS
    if wants_skip and can_skip:
        values.setdefault(step.name, [] if step.collect_max else None)
        await _advance(ctx, flow, values, after=step.name)
        return
    answer = inbound.text
    if button is not None:
        if button.action != "pick" or button.arg not in {v for _, v in step.choices}:
            await _stale_button(ctx, flow)
            return
        answer = button.arg
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
    ctx: Context, flow: Flow, button: FlowButton | None, typed: str, current: Draft
) -> None:
    values = current.values
    if (button and button.action == "saved") or typed in CONFIRM_WORDS | {"dung thong tin da luu"}:
        values.update(current.saved)
    elif not ((button and button.action == "new") or typed in {"nhap moi", "new", "khong", "ko"}):
        if button is not None:
            await _stale_button(ctx, flow)
            return
        await ctx.reply(ctx.tr("flow.choose_button"))
        await _offer_saved(ctx, flow, current.saved)
        return
    _save(ctx, flow.steps[0].name, values, saved={})
    await _advance(ctx, flow, values)


async def _handle_review(
    ctx: Context, flow: Flow, button: FlowButton | None, typed: str, values: dict[str, Any]
) -> None:
    edit_number: int | None = None
    if button is not None and button.action == "edit" and button.arg.isdigit():
        edit_number = int(button.arg)
    elif match := _EDIT_TYPED.match(typed):
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
    if (button and button.action == "ok") or typed in CONFIRM_WORDS:
        await _complete(ctx, flow, values)
        return
    if button is not None:
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
    current = draft(ctx)
    if current.phase == "review":
        await show_review(ctx, flow, current.values)
    elif current.phase == "saved":
        await _offer_saved(ctx, flow, current.saved)
    elif (step := flow.step(ctx.state.step)) is not None:
        await prompt(ctx, flow, step)

"""The dialogue engine: flows declared as steps, with the generic behaviour written once.

A `Flow` is a list of `Step`s. Each step has a prompt (catalog id), a parser that returns a
value or raises `InvalidInput`, and flags. The engine provides, for every flow:

- `/cancel` anywhere (the dispatcher calls `cancel_flow`), "back" to the previous step,
- re-asking with the reason when an answer is rejected,
- "skip" for optional steps (button or typed "bỏ qua"/"skip"),
- collecting steps (photos) that take several inputs until "done",
- a review screen listing every field with "edit field N", confirm and cancel,
- an offer to reuse the saved profile ("dùng thông tin đã lưu") for returning customers,
- answers offered as buttons for what was typed (`Step.offer`: "did you mean one of these?"),
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
from handlers.i18n import LANGUAGES, t
from handlers.messages import Attachment, Button, Contact
from handlers.text import fold
from handlers.words import (
    BACK_WORDS,
    CONFIRM_WORDS,
    DONE_WORDS,
    NEW_WORDS,
    SAVED_WORDS,
    answer_words,
    interrupt_of,
    is_chatter,
    is_skip,
    looks_like_question,
    yes_or_no,
)
from storage.models import ConversationState

Phase = Literal["step", "review", "saved"]


@dataclass
class Draft:
    """Where a flow stands and what the customer has answered so far."""

    values: dict[str, Any] = field(default_factory=dict)
    phase: Phase = "step"  # asking `state.step`, showing the review, or offering saved details
    editing: bool = False  # a review edit: go back to the review after this step
    saved: dict[str, Any] = field(default_factory=dict)  # the saved profile on offer
    # Answers taken from what the customer already said, offered for confirmation at their step.
    suggested: dict[str, str] = field(default_factory=dict)
    confirming_cancel: bool = False  # a typed "hủy" with answers given: asked whether to drop
    # Answers offered for what was typed at this step ([label, value] pairs), and that text:
    # a button "offer.N" picks value N, "offer.own" keeps the typed text.
    offered: list[list[str]] = field(default_factory=list)
    offered_for: str = ""

    @classmethod
    def load(cls, data: dict[str, Any]) -> Draft:
        phase = data.get("phase")
        return cls(
            values=dict(data.get("values") or {}),
            phase=phase if phase in ("step", "review", "saved") else "step",
            editing=bool(data.get("editing")),
            saved=dict(data.get("saved") or {}),
            suggested=dict(data.get("suggested") or {}),
            confirming_cancel=bool(data.get("confirming_cancel")),
            offered=[
                [str(pair[0]), str(pair[1])]
                for pair in data.get("offered") or []
                if isinstance(pair, list) and len(pair) == 2
            ],
            offered_for=str(data.get("offered_for") or ""),
        )


_EDIT_TYPED = re.compile(r"^(?:sua|edit|doi|chinh)\s*(?:muc|field|so)?\s*(\d{1,2})$")


@dataclass(frozen=True)
class StepInput:
    text: str
    contact: Contact | None = None
    attachments: tuple[Attachment, ...] = ()


Parser = Callable[[StepInput], Any]


@dataclass(frozen=True)
class Offer:
    """Answers to offer for what was typed: `text` asks, `choices` are (label, value) pairs,
    `own_label` is the button keeping the typed words as the answer."""

    text: str
    choices: tuple[tuple[str, str], ...]
    own_label: str


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
    # Other folded names customers use for this field at the review ("sửa sđt", "đổi đ/c").
    aliases: tuple[str, ...] = ()
    # Answers to offer instead of taking the typed text at once (None: take it).
    offer: Callable[[Context, StepInput], Offer | None] | None = None


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
    suggested: dict[str, str] | None = None,
    offer: Offer | None = None,
    offered_for: str = "",
) -> None:
    """Persist flow position and draft; every save pushes the expiry forward (and forgets
    answers offered earlier, unless it records a new offer)."""
    assert ctx.state is not None
    current = draft(ctx)
    new = Draft(
        values=values,
        phase=phase,
        editing=current.editing if editing is None else editing,
        saved=current.saved if saved is None else saved,
        suggested=current.suggested if suggested is None else suggested,
        offered=[[label, value] for label, value in offer.choices] if offer else [],
        offered_for=offered_for if offer else "",
    )
    ctx.state.step = step
    ctx.state.data = asdict(new)
    ctx.state.updated_at = ctx.now
    ctx.state.expires_at = ctx.now + ctx.config.draft_ttl


async def begin(
    ctx: Context,
    flow: Flow,
    values: dict[str, Any] | None = None,
    suggested: dict[str, str] | None = None,
) -> None:
    """Start `flow`, replacing any previous state; `values` are answered already, `suggested`
    answers are offered for confirmation when their step comes."""
    await ctx.replace_state(flow.name, flow.steps[0].name, {})
    values = dict(values or {})
    saved = _saved_profile(ctx, flow, values)
    if saved:
        _save(ctx, flow.steps[0].name, values, phase="saved", saved=saved, suggested=suggested)
        await _offer_saved(ctx, flow, saved)
        return
    _save(ctx, flow.steps[0].name, values, suggested=suggested)
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
            elif value == "" and step.optional:  # they told us they have none: remembered
                saved[step.name] = None
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
    current = draft(ctx)
    text = ctx.tr(step.prompt, **flow.prompt_params(ctx, current.values))
    buttons = _step_buttons(ctx, flow, step, current.values)
    suggestion = current.suggested.get(step.name)
    if suggestion:  # what they said already, offered for a one-tap confirmation
        text += "\n\n" + ctx.tr("flow.suggested", value=suggestion)
        buttons = ((ctx.button("flow.btn.keep", FlowButton("keep")),), *buttons)
    await ctx.reply(
        f"{prefix}\n\n{text}" if prefix else text, buttons, ask_contact=step.ask_contact
    )


def _field_name(ctx: Context, step: Step) -> str:
    """A field's label as it reads inside a sentence ("Sửa địa chỉ")."""
    label = ctx.tr(step.label)
    return label[:1].lower() + label[1:]


async def show_review(ctx: Context, flow: Flow, values: dict[str, Any]) -> None:
    lines = [ctx.tr(flow.title), ""]
    for number, step in enumerate(flow.steps, start=1):
        lines.append(f"{number}. {ctx.tr(step.label)}: {_show(ctx, step, values.get(step.name))}")
    lines += ["", ctx.tr("flow.review_hint")]
    edit_buttons = tuple(
        ctx.button("flow.btn.edit_field", FlowButton("edit", str(n)), field=_field_name(ctx, step))
        for n, step in enumerate(flow.steps, start=1)
    )
    rows: ButtonRows = (
        (ctx.button("flow.btn.confirm", FlowButton("ok")),),
        *(edit_buttons[i : i + 2] for i in range(0, len(edit_buttons), 2)),
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

_EDIT_VERB = re.compile(r"\b(?:sua|doi|chinh|chinh sua|thay|thay doi|edit|change|update|fix)\b")


def _pressed(
    ctx: Context, flow: Flow, step: Step | None, values: dict[str, Any]
) -> FlowButton | None:
    """The engine button pressed — or typed as its label or choice (reply keyboards,
    numbered channels, people who type instead of tapping). A payload that is not a valid
    engine button counts as a stale one."""
    inbound = ctx.inbound
    if inbound.payload:
        return FlowButton.unpack(inbound.payload)
    if step is None:
        return None
    labels = {b.label: b.payload for row in _step_buttons(ctx, flow, step, values) for b in row}
    raw = labels.get(inbound.text.strip())
    if raw is not None:
        return FlowButton.unpack(raw)
    typed = answer_words(inbound.text)
    for label, value in step.choices:
        if typed in (fold(ctx.tr(label)), fold(value)):
            return FlowButton("pick", value)
    return None


_OWN = "offer.own"


def _offered_answer(current: Draft, arg: str) -> str | None:
    """The answer an "offer.N" / "offer.own" button stands for (None: not on offer now)."""
    if arg == _OWN:
        return current.offered_for or None
    index = arg.removeprefix("offer.")
    if arg.startswith("offer.") and index.isdigit() and int(index) < len(current.offered):
        return current.offered[int(index)][1]
    return None


async def _make_offer(ctx: Context, flow: Flow, step: Step, values: dict[str, Any]) -> bool:
    """Offer answers for what was typed (`Step.offer`); True when an offer was made. The same
    text typed again after an offer is taken as it is."""
    inbound = ctx.inbound
    if step.offer is None or inbound.text.strip() == draft(ctx).offered_for:
        return False
    offer = step.offer(ctx, StepInput(inbound.text, inbound.contact, inbound.attachments))
    if offer is None:
        return False
    assert ctx.state is not None
    _save(ctx, step.name, values, offer=offer, offered_for=inbound.text.strip())
    picks = tuple(
        (Button(label, FlowButton("pick", f"offer.{n}").pack()),)
        for n, (label, _) in enumerate(offer.choices)
    )
    own = ((Button(offer.own_label, FlowButton("pick", _OWN).pack()),),)
    await ctx.reply(offer.text, (*picks, *own, *_step_buttons(ctx, flow, step, values)))
    return True


def _edit_target(ctx: Context, flow: Flow, typed: str) -> int | None:
    """The field number of "sửa 3", "sửa địa chỉ", "thôi em đổi địa chỉ khác nhé"."""
    if match := _EDIT_TYPED.match(typed):
        return int(match.group(1))
    if not _EDIT_VERB.search(typed):
        return None
    padded = f" {typed} "
    for number, step in enumerate(flow.steps, start=1):
        names = {fold(t(lang, step.label)) for lang in LANGUAGES} | set(step.aliases)
        if any(f" {name} " in padded for name in names):
            return number
    return None


def _has_answers(flow: Flow, values: dict[str, Any]) -> bool:
    return any(step.name in values for step in flow.steps)


async def _interrupt(ctx: Context, flow: Flow, current: Draft) -> bool:
    """Typed cancel / menu / help words, as if their buttons were pressed (back is the
    step's own business). True when handled."""
    interrupt = interrupt_of(ctx.inbound.text)
    if interrupt == "cancel":
        if _has_answers(flow, current.values):
            assert ctx.state is not None
            ctx.state.data = {**ctx.state.data, "confirming_cancel": True}
            buttons = (
                (ctx.button("flow.btn.cancel_confirm", FlowButton("cancel")),),
                (ctx.button("flow.btn.resume", FlowButton("resume")),),
            )
            await ctx.reply(ctx.tr("flow.cancel_ask"), buttons)
        else:
            await cancel_flow(ctx)
        return True
    if interrupt == "menu":
        await ctx.show_menu(ctx.tr("core.menu_intro"))
        await ctx.reply(ctx.tr("flow.reminder"))
        await repeat_current(ctx, flow)
        return True
    if interrupt == "help":
        route = ctx.app.commands.get("help")
        if route is not None:  # what typing /help shows, then how to answer this form
            await route.handler(ctx)
        await ctx.reply(ctx.tr("flow.help"))
        await repeat_current(ctx, flow)
        return True
    return False


async def _interjected(ctx: Context) -> bool:
    """A question, greeting or report in the middle of a step: answered (by the feature that
    knows the answer, else politely here) instead of being taken as the step's answer."""
    for interject in ctx.app.interjections:
        if await interject(ctx):
            return True
    if is_chatter(ctx.inbound.text):
        await ctx.reply(ctx.tr("flow.heard"))
        return True
    if looks_like_question(ctx.inbound.text):
        await ctx.reply(ctx.tr("flow.question_later"))
        return True
    return False


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
    if current.confirming_cancel:
        ctx.state.data = {**ctx.state.data, "confirming_cancel": False}
        decided = None if button is not None else yes_or_no(inbound.text)
        if decided:
            await cancel_flow(ctx)
            return
        if (button and button.action == "resume") or decided is False:
            await repeat_current(ctx, flow)
            return
    elif button is not None and button.action == "resume":
        await repeat_current(ctx, flow)
        return
    if button is None and await _interrupt(ctx, flow, current):
        return
    if current.phase == "saved":
        await _handle_saved(ctx, flow, button, typed, current)
        return
    if current.phase == "review":
        await _handle_review(ctx, flow, button, typed, values)
        return

    if (button and button.action == "back") or typed in BACK_WORDS:
        await _back(ctx, flow, step, values)
        return
    suggestion = current.suggested.get(step.name)
    if suggestion and ((button and button.action == "keep") or typed in CONFIRM_WORDS):
        await _take(ctx, flow, step, values, suggestion)  # "ok" accepts what they said before
        return
    can_skip = step.optional or step.collect_max > 0
    wants_skip = (button and button.action == "skip") or (
        button is None and (is_skip(inbound.text) or typed in DONE_WORDS)
    )
    if wants_skip and can_skip:
        values.setdefault(step.name, [] if step.collect_max else None)
        await _advance(ctx, flow, values, after=step.name)
        return
    if wants_skip and button is None:  # "bỏ qua" is no name: this question needs an answer
        await prompt(ctx, flow, step, prefix=ctx.tr("flow.required"))
        return
    answer = inbound.text
    if button is not None:
        offered = _offered_answer(current, button.arg) if button.action == "pick" else None
        if offered is not None:
            answer = offered
        elif button.action != "pick" or button.arg not in {v for _, v in step.choices}:
            await _stale_button(ctx, flow)
            return
        else:
            answer = button.arg
    elif await _make_offer(ctx, flow, step, values):
        return  # "did you mean…?" — a description of a product is an answer, not a remark
    elif not inbound.attachments and await _interjected(ctx):
        await _reask_after_interjection(ctx, flow)
        return
    await _take(ctx, flow, step, values, answer)


async def _take(ctx: Context, flow: Flow, step: Step, values: dict[str, Any], answer: str) -> None:
    """Parse `answer` for `step`: store it and go on, or say why not and ask again."""
    inbound = ctx.inbound
    try:
        value = step.parse(StepInput(answer, inbound.contact, inbound.attachments))
    except InvalidInput as error:
        # A collecting step names the button it shows ("Skip" before the first photo, then
        # "Done"), so the reason never mentions a button that is not there.
        done = "flow.btn.done" if values.get(step.name) else "flow.btn.skip"
        reason = ctx.tr(error.key, **{"button": ctx.tr(done), **error.params})
        await prompt(ctx, flow, step, prefix=reason)
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


async def _reask_after_interjection(ctx: Context, flow: Flow) -> None:
    """The remark was answered; the question still stands — unless the answer started
    something else (a leak report opens the urgent complaint in place of the form)."""
    if ctx.state is not None and ctx.state.flow == flow.name:
        await repeat_current(ctx, flow)


async def _back(ctx: Context, flow: Flow, step: Step, values: dict[str, Any]) -> None:
    index = flow.index(step.name)
    if index == 0:
        await prompt(ctx, flow, step, prefix=ctx.tr("flow.at_first_step"))
        return
    previous = flow.steps[index - 1]
    values.pop(previous.name, None)
    _save(ctx, previous.name, values)
    await prompt(ctx, flow, previous)


_SAVED_PHRASES = ("thong tin cu", "thong tin da luu", "saved details", "nhu cu", "nhu lan truoc")
_NEW_PHRASES = ("nhap moi", "nhap lai", "thong tin moi", "dien moi", "dien lai", "enter new", "new")


def _wants_saved(typed: str) -> bool | None:
    """True: reuse the saved details; False: enter new ones; None: neither was said."""
    if typed in NEW_WORDS or any(f" {p} " in f" {typed} " for p in _NEW_PHRASES):
        return False
    if typed in CONFIRM_WORDS | SAVED_WORDS or any(p in typed for p in _SAVED_PHRASES):
        return True
    return yes_or_no(typed)


async def _handle_saved(
    ctx: Context, flow: Flow, button: FlowButton | None, typed: str, current: Draft
) -> None:
    values = current.values
    wants = _wants_saved(typed) if button is None else None
    if (button and button.action == "saved") or wants:
        values.update(current.saved)
    elif not ((button and button.action == "new") or wants is False):
        if button is not None:
            await _stale_button(ctx, flow)
            return
        if not await _interjected(ctx):
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
    elif button is None:
        edit_number = _edit_target(ctx, flow, typed)
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
    if not await _interjected(ctx):
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

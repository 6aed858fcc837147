"""The dialogue engine on a small stub flow of its own (not the order flow): choice buttons,
typed answers, optional steps, back, re-ask with the reason, review with "edit N", stale
buttons, cancel, and resuming a draft with a new runtime on the same database."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers import engine
from handlers.buttons import FlowButton
from handlers.context import Context, ShopConfig
from handlers.engine import Flow, Step, StepInput
from handlers.errors import InvalidInput
from handlers.flows import consent, core
from handlers.router import Composition, Router
from tests.helpers import FakeClock, Harness, RecordingAdapter, first_line, texts, tr

stub = Router("stub")
COMPLETED: list[dict[str, Any]] = []


def _number(answer: StepInput) -> int:
    text = answer.text.strip()
    if not text.isdigit() or not 1 <= int(text) <= 10:
        raise InvalidInput("validation.request.empty")  # any catalog text: its reason is shown
    return int(text)


async def _done(ctx: Context, values: dict[str, Any]) -> None:
    COMPLETED.append(values)
    await ctx.reply(ctx.tr("flow.cancelled"))  # any catalog text marks completion


SURVEY = stub.flow(
    Flow(
        name="survey",
        title="order.review_title",
        on_complete=_done,
        steps=(
            Step(
                "colour",
                "order.ask.full_name",
                "order.field.full_name",
                lambda a: a.text.strip(),
                choices=(("lang.vi", "red"), ("lang.en", "blue")),
            ),
            Step(
                "nickname", "order.ask.email", "order.field.email", lambda a: a.text, optional=True
            ),
            Step("number", "order.ask.address", "order.field.address", _number),
        ),
    )
)


@stub.command("survey")
async def survey(ctx: Context) -> None:
    await engine.begin(ctx, SURVEY)


APP = Composition((core.router, consent.router, stub))
ASK_COLOUR, ASK_NICK, ASK_NUMBER = (
    first_line(f"order.ask.{n}") for n in ("full_name", "email", "address")
)


@pytest.fixture
async def h(sessions: async_sessionmaker[AsyncSession], clock: FakeClock, shop: ShopConfig):
    COMPLETED.clear()
    harness = Harness(sessions, clock=clock, config=shop, adapter=RecordingAdapter(), app=APP)
    try:
        yield harness
    finally:
        await harness.close()


async def where(h: Harness) -> str | None:
    state = await h.state("1")
    return engine.position(state) if state is not None else None


async def test_choice_button_skip_and_answer_complete_with_review(h: Harness) -> None:
    replies = await h.say("1", "/survey")
    assert ASK_COLOUR in replies[-1].text
    labels = [b.label for row in replies[-1].buttons for b in row]
    assert tr("lang.vi") in labels and tr("flow.btn.cancel") in labels
    await h.press("1", FlowButton("pick", "blue").pack())
    assert await where(h) == "nickname"
    await h.say("1", "bỏ qua nhé")  # typed skip with a polite particle
    review = await h.say("1", "7")
    assert await where(h) == "review"
    assert tr("order.review_title") in review[-1].text
    await h.say("1", "ok")
    assert COMPLETED == [{"colour": "blue", "nickname": None, "number": 7}]
    assert await h.state("1") is None


async def test_invalid_answer_is_asked_again_with_the_reason(h: Harness) -> None:
    await h.say("1", "/survey")
    await h.say("1", "red")
    await h.say("1", "Tí")
    replies = await h.say("1", "mười một")
    assert tr("validation.request.empty") in replies[-1].text
    assert ASK_NUMBER in replies[-1].text
    assert await where(h) == "number"
    state = await h.state("1")
    assert state is not None and state.data["values"] == {"colour": "red", "nickname": "Tí"}


async def test_back_clears_the_previous_answer(h: Harness) -> None:
    await h.say("1", "/survey")
    await h.say("1", "red")
    replies = await h.say("1", "quay lai")
    assert ASK_COLOUR in replies[-1].text
    state = await h.state("1")
    assert state is not None and state.data["values"] == {}


async def test_edit_from_the_review_returns_to_the_review(h: Harness) -> None:
    await h.say("1", "/survey")
    for answer in ("red", "Tí", "3"):
        await h.say("1", answer)
    replies = await h.press("1", FlowButton("edit", "3").pack())
    assert ASK_NUMBER in replies[-1].text
    replies = await h.say("1", "9")
    assert await where(h) == "review"
    assert "9" in replies[-1].text
    await h.press("1", FlowButton("ok").pack())
    assert COMPLETED == [{"colour": "red", "nickname": "Tí", "number": 9}]


async def test_a_pick_that_is_not_a_choice_is_a_stale_button(h: Harness) -> None:
    await h.say("1", "/survey")
    replies = await h.press("1", FlowButton("pick", "green").pack())
    assert tr("flow.stale_button") in texts(replies)
    assert await where(h) == "colour"


async def test_cancel_drops_the_draft(h: Harness) -> None:
    await h.say("1", "/survey")
    await h.say("1", "red")
    replies = await h.say("1", "/cancel")
    assert texts(replies) == [tr("flow.cancelled")]
    assert await h.state("1") is None and COMPLETED == []


async def test_a_new_runtime_resumes_the_draft(
    h: Harness, sessions: async_sessionmaker[AsyncSession], clock: FakeClock, shop: ShopConfig
) -> None:
    await h.say("1", "/survey")
    await h.say("1", "blue")
    await h.close()
    again = Harness(sessions, clock=clock, config=shop, adapter=RecordingAdapter(), app=APP)
    try:
        await again.say("1", "-")
        await again.say("1", "2")
        await again.say("1", "dong y")
    finally:
        await again.close()
    assert COMPLETED == [{"colour": "blue", "nickname": None, "number": 2}]

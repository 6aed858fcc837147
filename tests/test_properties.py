"""Property-based tests: any text (or any button payload) sent in any conversation state
gets at least one reply, and never the "something went wrong" apology.

The states are prepared once per session by real conversations in a template database
(one customer per state). Each example copies that file, so it starts from exactly the
prepared state, and sends one input as that state's customer.
"""

from __future__ import annotations

import asyncio
import shutil
import unicodedata
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from handlers.engine import position
from handlers.i18n import LANGUAGES
from handlers.messages import Outbound
from storage.db import create_engine, migrate_to_head, session_factory
from tests.helpers import START_TIME, FakeClock, Harness, to_chat, tr

# One worker runs them all when the suite runs in parallel: `states_template` is built once.
pytestmark = pytest.mark.xdist_group("properties")

STATES = (
    "new",  # never wrote to the bot
    "consent_pending",  # asked for an order before agreeing to the policy
    "idle",  # agreed, no flow running
    "full_name",
    "phone",
    "address",
    "email",
    "request",
    "photos",
    "review",
    "editing",  # chose "edit 3" on the review
    "saved_offer",  # returning customer, offered the saved details
    "open_order",  # idle with an order staff have not finished
    "expired",  # a review left for longer than the draft TTL
)
EXPECTED_STEP = {
    "consent_pending": "consent",
    "full_name": "full_name",
    "phone": "phone",
    "address": "address",
    "email": "email",
    "request": "request",
    "photos": "photos",
    "review": "review",
    "editing": "address",
    "saved_offer": "saved",
    "expired": "review",
}
LATER = {"expired": timedelta(hours=25)}  # when the example happens, after preparation
APOLOGIES = {tr("core.internal_error", lang) for lang in LANGUAGES}


def user_of(state: str) -> str:
    return f"p-{state}"


async def _prepare(url: str) -> None:
    engine = create_engine(url)
    await migrate_to_head(engine)
    h = Harness(session_factory(engine), clock=FakeClock())
    try:
        for state in STATES:
            user = user_of(state)
            if state == "new":
                continue
            if state == "consent_pending":
                await h.say(user, "/order")
            elif state == "idle":
                await h.consent(user)
            elif state in ("review", "editing", "expired"):
                await h.order_until(user, "review")
                if state == "editing":
                    await h.say(user, "sửa 3")
            elif state == "saved_offer":
                await h.place_order(user)
                await h.say(user, "/order")
            elif state == "open_order":
                await h.place_order(user)
            else:
                await h.order_until(user, state)
            stored = await h.state(user)
            assert (position(stored) if stored else None) == EXPECTED_STEP.get(state), state
    finally:
        await h.close()
        await engine.dispose()


@pytest.fixture(scope="session")
def states_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("states") / "states.db"
    asyncio.run(_prepare(f"sqlite+aiosqlite:///{path}"))
    return path


_copies = iter(range(1_000_000))


@asynccontextmanager
async def in_state(
    template: Path, workdir: Path, later: timedelta = timedelta(hours=1)
) -> AsyncIterator[Harness]:
    """A harness on a fresh copy of the prepared database, `later` than its preparation."""
    path = workdir / f"example-{next(_copies)}.db"
    shutil.copyfile(template, path)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    h = Harness(session_factory(engine), clock=FakeClock(START_TIME + later))
    try:
        yield h
    finally:
        await h.close()
        await engine.dispose()
        _remove(path)


def _remove(database: Path) -> None:
    """Delete an example's database copy (and its -wal/-shm files)."""
    for leftover in database.parent.glob(f"{database.name}*"):
        leftover.unlink()


def _when(state: str) -> dict[str, timedelta]:
    return {"later": LATER[state]} if state in LATER else {}


async def check_answered(h: Harness, user: str, replies: list[Outbound]) -> None:
    own = to_chat(replies, user)
    assert own, "no reply"
    assert not APOLOGIES & {m.text for m in own}, "the handler failed"
    assert all(m.text.strip() for m in own), "an empty message was sent"
    assert all(row.error is None for row in await h.inbox_rows())


# ---- strategies ------------------------------------------------------------------------------

VIETNAMESE = "aăâbcdđeêghiklmnoôơpqrstuưvxyAĂÂĐEÊOÔƠƯàáảãạằắẳẵặầấẩẫậèéẻẽẹềếểễệìíỉĩịòóỏõọ"
WORDS = [
    "/cancel",
    "/help",
    "/start",
    "/order",
    "/orders",
    "/lang en",
    "/lang",
    "/privacy",
    "/menu",
    "/mydata",
    "/unknown",
    "/",
    "bỏ qua",
    "skip",
    "quay lại",
    "sửa 2",
    "edit 99",
    "xác nhận",
    "ok",
    "xong",
    "1",
    "0912 345 678",
    "SD-001",
    "Nguyễn Thị Lan",
    "12 Hàng Bông, Hà Nội",
    "lan@example.com",
    "tôi muốn xóa dữ liệu",
    "cho em gặp nhân viên",
]
texts = st.one_of(
    st.text(max_size=60),
    st.sampled_from(WORDS),
    st.builds(lambda a, b: f"{a} {b}", st.sampled_from(WORDS), st.text(max_size=20)),
    st.text(alphabet=VIETNAMESE + " ", max_size=40).map(lambda s: unicodedata.normalize("NFD", s)),
    st.builds(lambda ch, n: ch * n, st.characters(), st.integers(1000, 5000)),
)
NASTY = [
    "",
    "   \n\t  ",
    "\x00\x01\x07\x1b[31m\x7f",
    "🎨🖼️👍🏽‍🔥",
    unicodedata.normalize("NFD", "Nguyễn Thị Lan"),
    "x" * 5000,
    "/" + "a" * 5000,
    "\u202eevil\u200b\ufeff",
]


def nasty_examples(test: Callable[..., Any]) -> Callable[..., Any]:
    """Always try the classic troublemakers, besides what hypothesis generates."""
    for text in NASTY:
        test = example(text=text)(test)
    return test


PROPERTY_SETTINGS = settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# ---- properties ------------------------------------------------------------------------------


@pytest.mark.parametrize("state", STATES)
@PROPERTY_SETTINGS
@nasty_examples
@given(text=texts)
async def test_any_text_in_any_state_gets_a_reply(
    states_template: Path, tmp_path: Path, state: str, text: str
) -> None:
    user = user_of(state)
    async with in_state(states_template, tmp_path, **_when(state)) as h:
        replies = await h.say(user, text)
        await check_answered(h, user, replies)


payloads = st.one_of(
    st.text(max_size=64),
    st.builds(
        lambda prefix, rest: f"{prefix}:{rest}",
        st.sampled_from(
            ["f", "consent", "lang", "order", "myorders", "os", "oc", "rights", "badchoice", "kb"]
        ),
        st.text(max_size=20),
    ),
    st.sampled_from(["f:ok", "f:edit:0", "f:edit:7", "f:skip", "f:back", "f:saved", "f:new"]),
)


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(state=st.sampled_from(STATES), payload=payloads)
async def test_any_button_payload_in_any_state_gets_a_reply(
    states_template: Path, tmp_path: Path, state: str, payload: str
) -> None:
    user = user_of(state)
    async with in_state(states_template, tmp_path, **_when(state)) as h:
        replies = await h.press(user, payload)
        await check_answered(h, user, replies)

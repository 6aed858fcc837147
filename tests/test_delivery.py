"""Delivery: one queue per chat, errors classified by cause, the rate-limited staff chat,
typing indicators, and what happens to sends a crash interrupted.

No timing assertions: a chat is "blocked" by holding its send on an event, rate limits and
backoffs move with the fake clock, and each test checks which messages were sent while
another chat was held up.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from telegram import Update

import bot.channels.telegram as tg
from handlers.messages import (
    STAFF,
    Outbound,
    PermanentSendError,
    SendResult,
    TemporarySendError,
)
from storage.models import OutboxMessage
from storage.repositories import UnitOfWork
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import (
    CHANNEL,
    FakeClock,
    Harness,
    RecordingAdapter,
    first_line,
    shop_config,
    texts,
    tr,
)
from tests.live_bot import wait_until


class GatedAdapter(RecordingAdapter):
    """A RecordingAdapter whose sends to a held chat wait at a gate, which refuses texts
    containing a fragment (every time), and which declares per-chat quotas."""

    def __init__(self) -> None:
        super().__init__(CHANNEL)
        self.gates: dict[str, asyncio.Event] = {}
        self.at_gate: dict[str, asyncio.Event] = {}
        self.refused: list[tuple[str, BaseException]] = []
        self.quotas: dict[str, tuple[int, float]] = {}
        self.started: list[tuple[str, bool]] = []  # (text, marked as sending when called)
        self.sessions: async_sessionmaker[AsyncSession] | None = None

    def hold(self, chat_id: str) -> asyncio.Event:
        """Sends to `chat_id` wait until the returned event is set."""
        self.at_gate[chat_id] = asyncio.Event()
        gate = self.gates[chat_id] = asyncio.Event()
        return gate

    def send_quota(self, chat_id: str) -> tuple[int, float] | None:
        return self.quotas.get(chat_id)

    async def send(
        self,
        message: Outbound,
        edit_message_id: str | None = None,
        reply_to_message_id: str | None = None,
    ) -> SendResult:
        gate = self.gates.get(message.chat_id)
        if gate is not None and not gate.is_set():
            self.at_gate[message.chat_id].set()
            await gate.wait()
        for fragment, error in self.refused:
            if fragment in message.text:
                self.attempts += 1
                raise error
        return await super().send(message, edit_message_id, reply_to_message_id)


def sent_texts(adapter: RecordingAdapter, chat_id: str) -> list[str]:
    return texts(adapter.to(chat_id))


@pytest.fixture
def gated() -> GatedAdapter:
    return GatedAdapter()


@pytest.fixture
async def gated_harness(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, gated: GatedAdapter
) -> AsyncIterator[Harness]:
    h = Harness(sessions, clock=clock, adapter=gated)
    yield h
    for gate in gated.gates.values():
        gate.set()
    await h.close()


# ---- each chat is independent ----------------------------------------------------------------


async def test_a_send_stuck_in_the_staff_chat_holds_up_no_customer(
    gated_harness: Harness, gated: GatedAdapter
) -> None:
    h = gated_harness
    await h.order_until("1", "review")
    gate = gated.hold(STAFF)
    h.runtime.start()  # the real worker, not the test's idle()

    await h.runtime.receive(h.inbound("1", "", payload="f:ok"))
    await gated.at_gate[STAFF].wait()  # the order alert is stuck in its send
    confirmed = first_line("order.confirmed", code="", product="", hours="").split("{")[0]
    await wait_until(lambda: any(confirmed[:20] in t for t in sent_texts(gated, "1")), "reply")
    # Another customer is served while the staff chat's send still hangs.
    await h.runtime.receive(h.inbound("2", "/start"))
    await wait_until(lambda: tr("core.greeting") in sent_texts(gated, "2"), "greeting of 2")
    assert gated.to(STAFF) == []

    gate.set()
    order = (await h.orders())[0]
    await wait_until(lambda: any(order.code in t for t in sent_texts(gated, STAFF)), "staff alert")


async def test_a_customer_waiting_for_retry_after_holds_up_nobody_else(
    harness: Harness, adapter: RecordingAdapter, clock: FakeClock
) -> None:
    adapter.fail_next(1, TemporarySendError("telegram 429", retry_after=900), chat_id="1")
    mark = harness.mark()
    await harness.runtime.receive(harness.inbound("1", "/start"))
    await harness.runtime.receive(harness.inbound("2", "/start"))
    await harness.runtime.idle()
    delivered = harness.since(mark)
    assert [m.chat_id for m in delivered] == ["2", "2"]  # 2's greeting and consent notice
    (first, *_) = [r for r in await harness.outbox_rows() if r.chat_id == "1"]
    assert first.next_attempt_at >= clock.now + timedelta(seconds=900)


# ---- the rate-limited staff chat -------------------------------------------------------------


async def test_staff_lines_beyond_the_group_quota_wait_and_go_out_merged(
    gated_harness: Harness, gated: GatedAdapter, clock: FakeClock
) -> None:
    h = gated_harness
    gated.quotas[STAFF] = (2, 60.0)  # like Telegram's 20 a minute, smaller
    for reason in ("r0", "r1", "r2", "r3"):
        await h.runtime.notify_staff("core.staff.zalo_token_failed", reason=reason)
        await h.deliver()
    # The quota is used up by the first two; the next two wait in the queue.
    assert sent_texts(gated, STAFF) == [
        tr("core.staff.zalo_token_failed", reason=r) for r in ("r0", "r1")
    ]

    # Customers do not wait for the staff chat's quota.
    replies = await h.say("5", "/start")
    assert [m.text for m in replies] == [tr("core.greeting"), tr("consent.notice")]
    assert len(gated.to(STAFF)) == 2

    clock.advance(seconds=61)
    await h.deliver()
    *_, merged = sent_texts(gated, STAFF)
    assert len(gated.to(STAFF)) == 3  # the two waiting lines, as one message
    assert merged == "\n\n".join(tr("core.staff.zalo_token_failed", reason=r) for r in ("r2", "r3"))
    rows = [r for r in await h.outbox_rows() if r.chat_id == STAFF]
    assert [r.status for r in rows] == ["sent"] * 4
    assert rows[2].platform_message_id == rows[3].platform_message_id
    assert all(r.payload == {} for r in rows)


async def test_alerts_with_buttons_are_never_merged(
    gated_harness: Harness, gated: GatedAdapter, clock: FakeClock
) -> None:
    h = gated_harness
    gated.quotas[STAFF] = (1, 60.0)
    codes = [await h.place_order(user) for user in ("1", "2", "3")]
    for _ in codes:
        clock.advance(seconds=61)
        await h.deliver()
    alerts = [m for m in gated.to(STAFF) if m.buttons]
    assert [sum(code in m.text for code in codes) for m in alerts] == [1, 1, 1]


# ---- errors by cause -------------------------------------------------------------------------


async def test_a_staff_message_refused_for_good_is_skipped_and_the_queue_moves_on(
    harness: Harness, adapter: RecordingAdapter
) -> None:
    code = await harness.place_order("1")
    adapter.fail_next(1, PermanentSendError("telegram unsendable (UnicodeEncodeError)"), STAFF)
    await harness.say("1", "Em gửi thêm ghi chú: khung màu trắng nhé")
    replies = await harness.say("1", "Khung màu đen cũng được ạ")

    staff = texts(m for m in replies if m.chat_id == STAFF)
    assert any("Khung màu đen" in t for t in staff)  # the next relay is not held up
    notices = [
        t
        for t in sent_texts(adapter, STAFF)
        if t.startswith(tr("core.staff.staff_delivery_failed", reason="")[:30])
    ]
    assert len(notices) == 1 and "UnicodeEncodeError" in notices[0]
    failed = [r for r in await harness.outbox_rows() if r.status == "failed"]
    assert [(r.chat_id, r.tag, r.payload) for r in failed] == [(STAFF, failed[0].tag, {})]
    assert failed[0].tag is not None and code


async def test_a_message_refused_again_and_again_while_others_go_through_fails_after_three(
    gated_harness: Harness, gated: GatedAdapter, clock: FakeClock
) -> None:
    """A refusal that looks temporary (a 500 for this one message) but never heals."""
    h = gated_harness
    await h.place_order("1")
    gated.refused.append(("POISON", TemporarySendError("telegram network NetworkError")))
    await h.say("1", "Em muốn đổi khung POISON ạ")
    await h.say("1", "Khung màu đen cũng được ạ")  # queued behind the refused relay
    assert not any("Khung màu đen" in t for t in sent_texts(gated, STAFF))
    for user in ("2", "3"):  # other messages go through meanwhile
        clock.advance(hours=1)
        await h.say(user, "/start")
    staff = sent_texts(gated, STAFF)
    assert any("Khung màu đen" in t for t in staff)
    assert not any("POISON" in t for t in staff)
    (failed,) = [r for r in await h.outbox_rows() if r.status == "failed"]
    assert (failed.attempts, failed.payload) == (3, {})
    assert failed.last_error is not None and "refused repeatedly" in failed.last_error
    assert sum(t.startswith(tr("core.staff.staff_delivery_failed", reason="")[:30]) for t in staff)


async def test_a_network_outage_is_retried_beyond_three_attempts(
    harness: Harness, adapter: RecordingAdapter, clock: FakeClock
) -> None:
    adapter.fail_next(5, "temporary")  # every chat: nothing goes through
    await harness.say("1", "/help")
    for _ in range(4):
        clock.advance(hours=1)
        await harness.deliver()
    (row,) = await harness.outbox_rows()
    assert (row.status, row.attempts) == ("pending", 5)
    clock.advance(hours=1)
    assert [m.chat_id for m in await harness.deliver()] == ["1"]


async def test_telegram_errors_are_classified_by_cause(api: FakeTelegramAPI) -> None:
    application = tg.build_application("123:ABC", api.base_url)
    await application.initialize()
    adapter = tg.TelegramAdapter(application)
    try:
        # The HTTP client cannot encode a lone surrogate: it never heals.
        with pytest.raises(PermanentSendError) as refused:
            await adapter.send(Outbound("telegram", "42", "xin chào \ud800"))
        assert refused.value.reason == "telegram unsendable (UnicodeEncodeError)"
        assert not refused.value.unreachable

        api.fail_next("sendMessage", "429", retry_after=7)
        with pytest.raises(TemporarySendError) as limited:
            await adapter.send(Outbound("telegram", "42", "xin chào"))
        assert limited.value.retry_after == 7

        api.poison_marker = "x9"
        with pytest.raises(TemporarySendError) as server:
            await adapter.send(Outbound("telegram", "42", "x9"))
        assert server.value.reason == "telegram network NetworkError"

        with pytest.raises(PermanentSendError) as long:
            await adapter.send(Outbound("telegram", "42", "<b>unclosed", html=True))
        assert long.value.reason.startswith("telegram 400")
        assert adapter.send_quota("-100123") == tg.GROUP_QUOTA
        assert adapter.send_quota("42") is None
    finally:
        await application.shutdown()


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token="123:ABC") as fake:
        yield fake


# ---- typing indicators -----------------------------------------------------------------------


async def test_one_typing_indicator_per_chat_however_many_messages(
    api: FakeTelegramAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tg, "TYPING_AFTER_SECONDS", 0.0)
    monkeypatch.setattr(tg, "TYPING_REPEAT_SECONDS", 0.0)
    checks: list[str] = []

    def wants_typing(channel: str, chat_id: str, user_id: str) -> bool:
        checks.append(chat_id)
        return len(checks) <= 3  # busy for three renewals, then done

    async def receive(inbound: object) -> bool:
        return True

    application = tg.build_application("123:ABC", api.base_url)
    await application.initialize()
    try:
        receiver = tg.TelegramReceiver(
            application, tg.TelegramAdapter(application), receive, "-100123", wants_typing
        )
        for i in range(50):
            update = Update.de_json(api.text_update(42, f"tin nhắn {i}"), application.bot)
            await receiver.handle(update)
        await wait_until(lambda: not receiver._typing, "the typing task to end")
        # One task for the chat (three renewals while busy), not one per message.
        assert len(api.calls("sendChatAction")) == 3
    finally:
        await application.shutdown()


async def test_no_typing_indicator_for_a_flood_limited_sender(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    h = Harness(sessions, clock=clock, config=shop_config(flood_limit=2))
    try:
        for text in ("chào", "chào shop", "có ai không"):  # the third is over the limit
            await h.say("1", text)
        await h.say("2", "chào")
        h.runtime.is_busy = lambda channel, chat_id: True  # type: ignore[method-assign]
        assert not h.runtime.wants_typing(CHANNEL, "1", "1")
        assert h.runtime.wants_typing(CHANNEL, "2", "2")
    finally:
        await h.close()


# ---- crash recovery --------------------------------------------------------------------------


async def test_the_send_is_marked_before_the_platform_is_called(
    gated_harness: Harness, gated: GatedAdapter, sessions: async_sessionmaker[AsyncSession]
) -> None:
    seen: list[bool] = []
    original = gated.send

    async def send(message: Outbound, *args: object, **kwargs: object) -> SendResult:
        async with sessions() as session:  # what a crash at this moment would leave behind
            rows = await session.scalars(
                select(OutboxMessage).where(OutboxMessage.chat_id == message.chat_id)
            )
            seen.append(any(row.send_started_at is not None for row in rows))
        return await original(message, *args, **kwargs)  # type: ignore[arg-type]

    gated.send = send  # type: ignore[method-assign]
    await gated_harness.say("1", "/start")
    assert seen == [True, True]
    rows = await gated_harness.outbox_rows()
    assert all(r.send_started_at is None and r.status == "sent" for r in rows)


async def test_after_a_crash_a_send_in_flight_is_sent_again_once_and_sent_rows_never(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, adapter: RecordingAdapter
) -> None:
    now = clock()
    async with UnitOfWork(sessions) as uow:
        done = await uow.outbox.add(CHANNEL, "1", Outbound(CHANNEL, "1", "done").to_json(), now)
        done.status, done.payload, done.platform_message_id = "sent", {}, "7"
        mid = await uow.outbox.add(CHANNEL, "1", Outbound(CHANNEL, "1", "mid").to_json(), now)
        mid.send_started_at = now  # the crash came between the platform call and its record
        await uow.outbox.add(CHANNEL, "1", Outbound(CHANNEL, "1", "never").to_json(), now)
        await uow.commit()

    h = Harness(sessions, clock=clock, adapter=adapter)  # the restarted process
    try:
        await h.deliver()
        await h.deliver()
        assert sent_texts(adapter, "1") == ["mid", "never"]
        rows = await h.outbox_rows()
        assert [(r.status, r.send_started_at) for r in rows] == [("sent", None)] * 3
        assert rows[1].last_error == "interrupted mid-send; sent again"
        assert rows[2].last_error is None
    finally:
        await h.close()

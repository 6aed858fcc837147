"""The message pipeline, in-process: inbox (dedupe) → per-conversation processing → outbox →
delivery with retries, crash recovery, privacy of stored rows, and handler failures."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import handlers.orders.flow as order_flow
from bot.runtime import DeliveryPolicy
from handlers.context import ShopConfig
from handlers.engine import position
from handlers.messages import STAFF, Outbound, TemporarySendError
from storage.models import ChannelIdentity, OutboxMessage
from storage.repositories import InboxRepository, UnitOfWork, store_inbound
from tests.helpers import (
    CHANNEL,
    FakeClock,
    Harness,
    RecordingAdapter,
    first_line,
    in_order,
    joined,
    texts,
    to_chat,
    tr,
)

# ---- inbox: duplicates ------------------------------------------------------------------------


async def test_duplicate_delivery_is_processed_once(harness: Harness) -> None:
    inbound = harness.inbound("1", "/start")
    assert await harness.runtime.receive(inbound) is True
    assert await harness.runtime.receive(inbound) is False  # the platform delivered it again
    await harness.runtime.idle()
    # a later redelivery (e.g. after a webhook timeout) is still recognised
    assert await harness.runtime.receive(inbound) is False
    await harness.runtime.idle()

    greetings = [m for m in harness.delivered("1") if m.text == tr("core.greeting")]
    assert len(greetings) == 1
    assert len(await harness.inbox_rows()) == 1


async def test_concurrent_duplicates_are_processed_once(harness: Harness) -> None:
    inbound = harness.inbound("1", "/start")
    results = await asyncio.gather(*(harness.runtime.receive(inbound) for _ in range(5)))
    await harness.runtime.idle()
    assert sorted(results) == [False] * 4 + [True]
    assert [m.text for m in harness.delivered("1")].count(tr("core.greeting")) == 1


# ---- concurrency ------------------------------------------------------------------------------

FAMILY = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ")
GIVEN = ("Thị Hồng", "Văn An", "Minh Châu", "Quốc Bảo", "Thu Hà")
CUSTOMERS = [
    (str(2000 + i), f"{FAMILY[i % 6]} {GIVEN[i // 6]}", f"+849123450{i:02d}") for i in range(30)
]


async def test_thirty_customers_five_messages_each_concurrently(harness: Harness) -> None:
    assert len({name for _, name, _ in CUSTOMERS}) == 30

    async def customer(user_id: str, name: str, phone: str) -> None:
        # Sent back to back, without waiting for any answer, like a fast typist.
        for inbound in (
            harness.inbound(user_id, "/start"),
            harness.inbound(user_id, "", payload="consent:yes"),
            harness.inbound(user_id, "/order"),
            harness.inbound(user_id, name),
            harness.inbound(user_id, phone.replace("+84", "0")),
        ):
            assert await harness.runtime.receive(inbound)

    await asyncio.gather(*(customer(*c) for c in CUSTOMERS))
    await harness.runtime.idle(limit=120)

    expected = [
        tr("core.greeting"),
        first_line("consent.notice"),
        tr("consent.thanks"),
        tr("core.menu_intro"),
        first_line("order.ask.full_name"),
        first_line("order.ask.phone"),
        first_line("order.ask.address"),
    ]
    for user_id, name, phone in CUSTOMERS:
        received = texts(harness.delivered(user_id))
        assert in_order(harness.delivered(user_id), expected), (user_id, received)
        # Each question exactly once: nothing was processed twice or out of turn.
        for want in expected:
            assert sum(text.startswith(want) for text in received) == 1, (user_id, want)
        others = [other for _, other, _ in CUSTOMERS if other != name]
        assert not any(other in text for other in others for text in received)
        state = await harness.state(user_id)
        assert state is not None and state.step == "address"
        assert state.data["values"] == {"full_name": name, "phone": phone}

    rows = await harness.inbox_rows()
    assert len(rows) == 150
    assert all(row.processed_at is not None and row.error is None for row in rows)


async def test_idle_delivers_a_burst_larger_than_one_delivery_page(
    harness: Harness, clock: FakeClock
) -> None:
    async with UnitOfWork(harness.sessions) as uow:
        for n in range(250):
            await uow.outbox.add(
                CHANNEL, "1", Outbound(CHANNEL, "1", f"message {n}").to_json(), clock()
            )
        await uow.commit()
    await harness.runtime.idle()
    assert len(harness.delivered("1")) == 250


# ---- delivery: retries and permanent failures -----------------------------------------------


async def _staff_alert_row(harness: Harness) -> OutboxMessage:
    rows = [r for r in await harness.outbox_rows() if r.chat_id == STAFF]
    assert len(rows) == 1
    return rows[0]


@pytest.mark.parametrize("failure", ["temporary", "generic"])
async def test_staff_alert_is_retried_until_delivered_exactly_once(
    harness: Harness, adapter: RecordingAdapter, clock: FakeClock, failure: str
) -> None:
    await harness.order_until("1", "review")
    adapter.fail_next(2, failure, chat_id=STAFF)

    replies = await harness.press("1", "f:ok")
    code = (await harness.orders())[0].code
    # The customer hears about the order at once; the staff chat is down for now.
    assert tr("order.confirmed", code=code, product="", hours="x").split("\n")[0] in joined(
        to_chat(replies, "1")
    )
    assert to_chat(replies, STAFF) == []
    row = await _staff_alert_row(harness)
    assert (row.status, row.attempts) == ("pending", 1)

    # Not retried before the backoff has passed… (a margin > 5 s: idle() polls in real time
    # for retries due within 5 s, and this clock only moves by hand)
    clock.now = row.next_attempt_at - timedelta(seconds=10)
    assert await harness.deliver() == []
    assert adapter.attempts == len(adapter.sent) + 1

    # …retried after it: fails a second time, with a longer wait.
    clock.now = row.next_attempt_at
    assert await harness.deliver() == []
    second = await _staff_alert_row(harness)
    assert second.attempts == 2
    assert second.next_attempt_at - clock.now > row.next_attempt_at - row.created_at

    clock.now = second.next_attempt_at + timedelta(seconds=1)
    delivered = await harness.deliver()
    assert [m.chat_id for m in delivered] == [STAFF]
    assert code in delivered[0].text

    # Later passes send nothing again.
    clock.advance(hours=2)
    assert await harness.deliver() == []
    alerts = [m for m in harness.delivered(STAFF) if code in m.text]
    assert len(alerts) == 1
    final = await _staff_alert_row(harness)
    assert (final.status, final.attempts, final.payload) == ("sent", 3, {})
    assert final.platform_message_id is not None


async def test_retry_after_from_the_platform_is_respected(
    harness: Harness, adapter: RecordingAdapter, clock: FakeClock
) -> None:
    adapter.fail_next(1, TemporarySendError("flood", retry_after=900), chat_id="1")
    assert await harness.say("1", "/start") == []
    first, second = await harness.outbox_rows()
    assert first.next_attempt_at >= clock.now + timedelta(seconds=900)
    assert second.attempts == 0  # waits behind the first: order within a chat is kept

    clock.advance(seconds=890)
    assert await harness.deliver() == []
    clock.advance(seconds=10)
    delivered = await harness.deliver()
    # Both replies arrive, still in their original order.
    assert [m.text for m in delivered] == [tr("core.greeting"), tr("consent.notice")]


async def test_a_message_waiting_for_retry_is_not_overtaken_in_its_chat(
    harness: Harness, adapter: RecordingAdapter, clock: FakeClock
) -> None:
    await harness.consent("1")
    adapter.fail_next(1, "temporary", chat_id="1")
    assert await harness.say("1", "/order") == []
    assert await harness.say("1", "Nguyễn Thị Lan") == []  # queued behind the failed prompt
    clock.advance(hours=1)
    delivered = await harness.deliver()
    assert [m.text.splitlines()[0] for m in delivered] == [
        first_line("order.ask.full_name"),
        first_line("order.ask.phone"),
    ]


async def test_delivery_gives_up_after_max_attempts(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, shop: ShopConfig
) -> None:
    adapter = RecordingAdapter()
    h = Harness(
        sessions,
        clock=clock,
        config=shop,
        adapter=adapter,
        delivery=DeliveryPolicy(base_delay=60, max_delay=60, max_attempts=3),
    )
    try:
        adapter.fail_next(10, "temporary", chat_id="1")
        await h.say("1", "/help")
        for _ in range(5):
            clock.advance(minutes=5)
            await h.deliver()
        row, notice = await h.outbox_rows()
        assert (row.status, row.attempts) == ("failed", 3)
        assert row.last_error is not None and "gave up" in row.last_error
        assert h.delivered("1") == []
        # Staff hear of it once, so they can reach the customer another way.
        assert notice.chat_id == STAFF and notice.status == "sent"
        (told,) = h.delivered(STAFF)
        assert told.text.startswith(tr("core.staff.delivery_failed").split("#")[0])
    finally:
        await h.close()


async def test_permanent_failure_marks_row_failed_and_identity_unreachable(
    harness: Harness, adapter: RecordingAdapter, clock: FakeClock
) -> None:
    await harness.consent("1")
    adapter.fail_next(1, "unreachable", chat_id="1")
    replies = await harness.say("1", "/help")
    assert to_chat(replies, "1") == []

    rows = [r for r in await harness.outbox_rows() if r.status == "failed"]
    assert len(rows) == 1
    assert rows[0].last_error == "bot blocked by user"
    assert rows[0].payload == {}  # nothing kept of a message that will never be sent
    async with sessions_of(harness)() as session:
        identity = await session.scalar(
            select(ChannelIdentity).where(ChannelIdentity.platform_user_id == "1")
        )
        assert identity is not None and identity.unreachable_since == clock.now

    # Not retried, ever.
    clock.advance(hours=5)
    assert to_chat(await harness.deliver(), "1") == []

    # When the customer writes again (they unblocked the bot), they are answered again.
    replies = await harness.say("1", "/help")
    assert tr("help.intro") in joined(replies)
    async with sessions_of(harness)() as session:
        identity = await session.scalar(
            select(ChannelIdentity).where(ChannelIdentity.platform_user_id == "1")
        )
        assert identity is not None and identity.unreachable_since is None


async def test_permanent_failure_without_unreachable_keeps_identity_reachable(
    harness: Harness, adapter: RecordingAdapter
) -> None:
    await harness.consent("1")
    adapter.fail_next(1, "permanent", chat_id="1")
    await harness.say("1", "/help")
    (failed,) = [r for r in await harness.outbox_rows() if r.status == "failed"]
    assert failed.last_error == "simulated refusal"
    async with sessions_of(harness)() as session:
        identity = await session.scalar(select(ChannelIdentity))
        assert identity is not None and identity.unreachable_since is None


def sessions_of(harness: Harness) -> async_sessionmaker[AsyncSession]:
    return harness.sessions


# ---- platform ids: edits and replies ----------------------------------------------------------


async def test_edits_and_replies_use_the_platform_ids_of_earlier_messages(
    harness: Harness, adapter: RecordingAdapter
) -> None:
    code = await harness.place_order("1")
    (order,) = await harness.orders()
    alert = next(s for s in adapter.sent if s.message.chat_id == STAFF and code in s.message.text)

    # A status button edits the alert in place (by its platform id) and tells the customer.
    replies = await harness.staff(payload=f"os:{order.id}:claimed")
    (edit,) = [s for s in adapter.sent if s.edit_message_id is not None]
    assert edit.edit_message_id == alert.platform_message_id
    assert tr("order.status.claimed") in edit.message.text
    assert tr("order.notify.claimed", code=code) in joined(to_chat(replies, "1"))

    # A staff reply to the alert reaches the customer, signed by the shop.
    replies = await harness.staff("Dạ, chiều nay em gọi lại ạ", reply_to=alert.platform_message_id)
    (to_customer,) = to_chat(replies, "1")
    assert "Dạ, chiều nay em gọi lại ạ" in to_customer.text and code in to_customer.text


# ---- crash recovery -------------------------------------------------------------------------


async def test_inbox_rows_left_by_a_crash_are_processed_on_restart(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, shop: ShopConfig
) -> None:
    crashed = Harness(sessions, clock=clock, config=shop)
    # Stored (and acknowledged to the platform) but the process died before processing.
    for inbound in (
        crashed.inbound("1", "/start"),
        crashed.inbound("1", "", payload="consent:yes"),
        crashed.inbound("2", "/help"),
    ):
        event_id = await store_inbound(
            sessions,
            inbound.channel,
            inbound.dedupe_key,
            inbound.chat_id,
            inbound.user_id,
            inbound.to_json(),
            clock(),
        )
        assert event_id is not None

    restarted = Harness(sessions, clock=clock, config=shop)
    try:
        assert await restarted.runtime.resume_pending() == 2
        await restarted.runtime.idle()
        assert [m.text.splitlines()[0] for m in restarted.delivered("1")] == [
            tr("core.greeting"),
            first_line("consent.notice"),
            tr("consent.thanks"),
            tr("core.menu_intro"),
        ]
        assert tr("help.intro") in joined(restarted.delivered("2"))
        assert all(row.processed_at is not None for row in await restarted.inbox_rows())
        # Nothing left to resume a second time.
        assert await restarted.runtime.resume_pending() == 0
    finally:
        await restarted.close()


async def test_unsent_outbox_rows_are_delivered_by_a_new_runtime(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, shop: ShopConfig
) -> None:
    # Committed together with a state change, then the process died before delivery.
    async with UnitOfWork(sessions) as uow:
        for chat_id, text in (("1", "first"), (STAFF, "alert"), ("1", "second")):
            await uow.outbox.add(
                CHANNEL, chat_id, Outbound(CHANNEL, chat_id, text).to_json(), clock()
            )
        await uow.commit()

    adapter = RecordingAdapter()
    restarted = Harness(sessions, clock=clock, config=shop, adapter=adapter)
    try:
        restarted.runtime.start()  # the background delivery worker alone
        await adapter.wait_for(3)
        # Chats are served concurrently; within a chat the order is kept.
        assert [m.text for m in adapter.messages if m.chat_id == "1"] == ["first", "second"]
        assert [m.text for m in adapter.messages if m.chat_id == STAFF] == ["alert"]
        await restarted.runtime.idle()
        assert len(adapter.sent) == 3  # and only once
        assert {r.status for r in await restarted.outbox_rows()} == {"sent"}
    finally:
        await restarted.close()


# ---- privacy of stored rows ------------------------------------------------------------------


async def test_processed_inbox_and_sent_outbox_rows_keep_no_personal_data(
    harness: Harness,
) -> None:
    await harness.place_order("1", full_name="Đặng Thùy Trâm", address="48 Tràng Tiền, Hà Nội")

    inbox = await harness.inbox_rows()
    assert inbox and all(row.processed_at is not None for row in inbox)
    assert all(row.payload == {} for row in inbox)

    outbox = await harness.outbox_rows()
    assert outbox and all(row.status == "sent" for row in outbox)
    assert all(row.payload == {} for row in outbox)
    assert all(row.platform_message_id for row in outbox)
    for row in [*inbox, *outbox]:
        assert "Trâm" not in repr(row.__dict__) and "Tràng Tiền" not in repr(row.__dict__)


# ---- handler failures ------------------------------------------------------------------------


async def test_handler_exception_apologizes_and_keeps_the_draft(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await harness.order_until("1", "address", full_name="Lý Thường Kiệt")

    def broken(text: str) -> str:
        raise RuntimeError("bug")

    monkeypatch.setattr(order_flow, "parse_address", broken)
    replies = await harness.say("1", "12 Hàng Bông, Hà Nội")
    assert texts(replies) == [tr("core.internal_error")]
    state = await harness.state("1")
    assert state is not None and state.step == "address"
    assert state.data["values"]["full_name"] == "Lý Thường Kiệt"
    (failed,) = [row for row in await harness.inbox_rows() if row.error]
    assert failed.error == "RuntimeError" and failed.payload == {}

    monkeypatch.undo()
    replies = await harness.say("1", "12 Hàng Bông, Hà Nội")
    assert first_line("order.ask.email") in joined(replies)
    await harness.say("1", "bỏ qua")
    await harness.say("1", "SD-001")
    review = await harness.say("1", "bỏ qua")
    assert "Lý Thường Kiệt" in joined(review)


async def test_failure_while_confirming_sends_nothing_that_was_not_committed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await harness.order_until("1", "review")
    real_render = order_flow.render_alert
    calls = 0

    def flaky(*args: object, **kwargs: object) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("bug")
        return real_render(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(order_flow, "render_alert", flaky)
    replies = await harness.press("1", "f:ok")
    # No order, no staff alert, no "thank you": only the apology.
    assert [(m.chat_id, m.text) for m in replies] == [("1", tr("core.internal_error"))]
    assert await harness.orders() == []
    state = await harness.state("1")
    assert state is not None and position(state) == "review"

    replies = await harness.press("1", "f:ok")
    (order,) = await harness.orders()
    assert order.code in joined(to_chat(replies, STAFF))
    assert order.code in joined(to_chat(replies, "1"))
    assert await harness.state("1") is None


# ---- races and logs --------------------------------------------------------------------------


async def test_message_arriving_while_its_conversation_task_finishes_is_processed(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The processing loop has read the conversation's only pending message when the next
    one arrives: the message must still be processed (and idle() must wait for it)."""
    real_mark = InboxRepository.mark_processed_many
    late = harness.inbound("1", "/help")
    arrivals: list[asyncio.Task[bool]] = []

    async def mark(self: InboxRepository, *args: Any, **kwargs: Any) -> None:
        if not arrivals:
            # Arrives at the worst moment (it is stored as soon as this transaction ends).
            arrivals.append(asyncio.create_task(harness.runtime.receive(late)))
        await real_mark(self, *args, **kwargs)

    monkeypatch.setattr(InboxRepository, "mark_processed_many", mark)
    await harness.say("1", "/start")
    (arrival,) = arrivals
    assert await arrival
    # idle() may return just before the late reply is delivered (a narrow race in
    # Runtime.idle, see the test report), so settle once more before looking.
    await harness.runtime.idle()
    received = joined(harness.delivered("1"))
    assert received.count(tr("core.greeting")) == 1
    assert received.count(tr("help.intro")) == 1
    assert all(row.processed_at is not None for row in await harness.inbox_rows())


async def test_logs_carry_no_personal_data(
    harness: Harness,
    adapter: RecordingAdapter,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # the level of `python -m bot run` with a channel
    name, phone, address = "Lương Thế Vinh", "0912 777 888", "99 Phố Huế, Hai Bà Trưng, Hà Nội"
    await harness.order_until("1", "address", full_name=name, phone=phone)

    def broken(text: str) -> str:
        raise RuntimeError("bug")

    monkeypatch.setattr(order_flow, "parse_address", broken)
    await harness.say("1", address)  # a handler failure is logged…
    monkeypatch.undo()
    await harness.say("1", address)
    adapter.fail_next(1, "temporary", chat_id="1")  # …and so is a failed send
    await harness.say("1", "bỏ qua")
    harness.advance(hours=1)
    await harness.deliver()
    await harness.say("1", "SD-001")
    await harness.say("1", "bỏ qua")
    await harness.press("1", "f:ok")

    assert "failed" in caplog.text  # the failures were logged
    for secret in (name, "912777888", "777 888", address, "Phố Huế"):
        assert secret not in caplog.text

"""Many messages at once (issue #13): nothing is lost, no conversation stops, each
conversation's messages are handled once and in order, and past the high-water mark the
runtime applies backpressure instead of failing. Real SQLite file, real pipeline."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

import handlers.dispatcher as dispatcher
from bot.web import TELEGRAM_PATH, TELEGRAM_SECRET_HEADER, telegram_route
from bot.zalo.webhook import make_zalo_routes
from handlers.context import Context
from handlers.messages import Inbound
from storage.models import InboxEvent
from storage.repositories import store_inbound
from tests.helpers import CHANNEL, Harness, tr


async def _inbox(sessions: async_sessionmaker[AsyncSession]) -> list[InboxEvent]:
    async with sessions() as session:
        return list(await session.scalars(select(InboxEvent).order_by(InboxEvent.id)))


def _helps(harness: Harness, chat_id: str) -> int:
    """How many /help answers the chat got."""
    return sum(tr("help.intro") in m.text for m in harness.delivered(chat_id))


def _record_dispatch(monkeypatch: pytest.MonkeyPatch) -> list[Inbound]:
    """Every inbound the dispatcher handles, in the order it handles them."""
    handled: list[Inbound] = []
    real = dispatcher.dispatch

    async def recording(uow: object, inbound: Inbound, *args: object) -> Context:
        handled.append(inbound)
        return await real(uow, inbound, *args)  # type: ignore[arg-type]

    monkeypatch.setattr("bot.runtime.dispatch", recording)
    return handled


async def test_500_messages_at_once_are_all_stored_and_each_handled_once(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    handled = _record_dispatch(monkeypatch)
    inbounds = [harness.inbound(str(user), "/help") for user in range(100) for _ in range(5)]
    stored = await asyncio.gather(*(harness.runtime.receive(i) for i in inbounds))
    assert stored == [True] * 500
    await harness.runtime.idle()

    rows = await _inbox(harness.sessions)
    assert len(rows) == 500
    assert all(row.processed_at is not None and row.error is None for row in rows)
    assert sorted(i.dedupe_key for i in handled) == sorted(i.dedupe_key for i in inbounds)
    for user in range(100):
        assert _helps(harness, str(user)) == 5


async def test_each_conversation_is_handled_in_arrival_order(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    handled = _record_dispatch(monkeypatch)
    inbounds = [harness.inbound(str(user), f"/help {n}") for n in range(6) for user in range(30)]
    assert all(await asyncio.gather(*(harness.runtime.receive(i) for i in inbounds)))
    await harness.runtime.idle()

    stored: dict[str, list[str]] = defaultdict(list)  # chat → dedupe keys in inbox order
    for row in await _inbox(harness.sessions):
        stored[row.chat_id].append(row.dedupe_key)
    seen: dict[str, list[str]] = defaultdict(list)
    for inbound in handled:
        seen[inbound.chat_id].append(inbound.dedupe_key)
    assert seen == stored
    assert all(len(keys) == 6 for keys in seen.values())


async def test_a_failing_handler_undoes_only_its_own_message(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In a batch shared by many conversations, one handler raising rolls back its own
    message only: it is apologised for, the others are answered, and its conversation goes
    on with the next message."""
    real = dispatcher.dispatch
    failed: list[str] = []

    async def flaky(uow: object, inbound: Inbound, *args: object) -> Context:
        ctx = await real(uow, inbound, *args)  # type: ignore[arg-type]
        if inbound.user_id == "7" and not failed:
            failed.append(inbound.dedupe_key)
            raise RuntimeError("bug")  # after its writes: they must be undone
        return ctx

    monkeypatch.setattr("bot.runtime.dispatch", flaky)
    first = [harness.inbound(str(user), "/start") for user in range(20)]
    assert all(await asyncio.gather(*(harness.runtime.receive(i) for i in first)))
    await harness.runtime.idle()

    assert [m.text for m in harness.delivered("7")] == [tr("core.internal_error")]
    for user in range(20):
        if user != 7:
            assert tr("core.greeting") in "\n".join(m.text for m in harness.delivered(str(user)))
    assert await harness.state("7") is None  # the consent question's state was undone
    rows = await _inbox(harness.sessions)
    assert [row.chat_id for row in rows if row.error] == ["7"]
    assert all(row.processed_at is not None for row in rows)

    replies = await harness.say("7", "/start")  # the conversation goes on
    assert tr("core.greeting") in "\n".join(m.text for m in replies)


async def test_past_the_high_water_mark_receive_waits_and_loses_nothing(
    harness: Harness,
) -> None:
    harness.runtime.high_water = 5
    inbounds = [harness.inbound(str(user), "/help") for user in range(60)]
    receiving = [asyncio.create_task(harness.runtime.receive(i)) for i in inbounds]
    overloaded = False
    while not all(task.done() for task in receiving):
        overloaded = overloaded or harness.runtime.overloaded()
        await asyncio.sleep(0)
    assert overloaded  # webhooks would have asked the platform to retry
    assert all(task.result() for task in receiving)
    await harness.runtime.idle()
    assert not harness.runtime.overloaded()
    rows = await _inbox(harness.sessions)
    assert len(rows) == 60 and all(row.processed_at is not None for row in rows)
    for user in range(60):
        assert _helps(harness, str(user)) == 1


async def test_a_duplicate_in_the_same_batch_is_stored_once(harness: Harness) -> None:
    inbound = harness.inbound("1", "/help")
    stored = await asyncio.gather(*(harness.runtime.receive(inbound) for _ in range(3)))
    assert sorted(stored) == [False, False, True]
    await harness.runtime.idle()
    assert _helps(harness, "1") == 1


async def test_the_sweep_processes_rows_nobody_kicked(harness: Harness) -> None:
    """An inbox row whose conversation the runtime does not know about (stored by another
    path, or left by a failure) is picked up by the periodic sweep without a new message."""
    inbound = harness.inbound("1", "/help")
    await store_inbound(
        harness.sessions,
        CHANNEL,
        inbound.dedupe_key,
        "1",
        "1",
        inbound.to_json(),
        harness.clock(),
    )
    harness.runtime.start(sweep_every=0.05)
    for _ in range(500):  # bounded wait for the sweep and the delivery worker
        if harness.delivered("1"):
            break
        await asyncio.sleep(0.02)
    assert _helps(harness, "1") == 1


async def test_overloaded_webhooks_answer_retry_before_storing(harness: Harness) -> None:
    """Past the high-water mark a webhook answers 503 (the platform delivers the event again
    later) and stores nothing; below it, the same event is stored and acknowledged."""
    stored: list[Inbound] = []

    async def receive(inbound: Inbound) -> bool:
        stored.append(inbound)
        return True

    async def handle(update: dict[str, object]) -> None:
        stored.append(harness.inbound("9", str(update["text"])))

    routes = [
        *make_zalo_routes(
            receive, app_id="app", oa_secret_key="secret", overloaded=harness.runtime.overloaded
        ),
        telegram_route("tg-secret", handle, harness.runtime.overloaded),
    ]
    transport = httpx.ASGITransport(app=Starlette(routes=routes))
    headers = {TELEGRAM_SECRET_HEADER: "tg-secret"}
    async with httpx.AsyncClient(transport=transport, base_url="https://bot.vav.vn") as client:
        harness.runtime.high_water = 0  # as if thousands of messages were waiting
        assert (await client.post("/zalo/webhook", content=b"{}")).status_code == 503
        busy = await client.post(TELEGRAM_PATH, json={"text": "hi"}, headers=headers)
        assert busy.status_code == 503
        assert stored == []
        harness.runtime.high_water = 2000
        again = await client.post(TELEGRAM_PATH, json={"text": "hi"}, headers=headers)
        assert again.status_code == 200
        assert len(stored) == 1

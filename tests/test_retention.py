"""Retention of the pipeline's own rows, with a fake clock: processed inbox rows live as long
as deduplication needs them, delivered outbox rows as long as an edit or a redaction may
need them; nothing pending is ever removed."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from handlers.messages import STAFF
from storage.models import InboxEvent, OutboxMessage
from storage.repositories import store_inbound
from tests.helpers import CHANNEL, Harness, tr


async def test_processed_inbox_rows_go_after_the_dedupe_window(harness: Harness) -> None:
    seen = harness.inbound("1", "/start")
    await harness.send(seen)
    await harness.say("1", "/help")
    # An event stored but not yet processed (e.g. just before a crash) is never removed.
    await store_inbound(
        harness.sessions,
        CHANNEL,
        "pending-1",
        "2",
        "2",
        {"x": 1},
        harness.clock() - timedelta(days=30),
    )

    harness.advance(days=6)
    assert (await harness.runtime.maintain())["inbox_purged"] == 0
    assert await harness.runtime.receive(seen) is False  # a redelivery is still recognised

    harness.advance(days=2)
    assert (await harness.runtime.maintain())["inbox_purged"] == 2
    rows = await harness.inbox_rows()
    assert [(row.dedupe_key, row.processed_at) for row in rows] == [("pending-1", None)]


async def test_delivered_messages_go_but_alerts_stay_until_erasure(harness: Harness) -> None:
    code = await harness.place_order("1", full_name="Nguyễn Thị Lan")
    order = await harness.order(code)
    rows = await harness.outbox_rows()
    alert = next(r for r in rows if r.chat_id == STAFF and r.tag == f"order:{order.id}")
    untagged = [r.id for r in rows if r.tag is None]
    assert untagged and all(r.status == "sent" for r in rows)

    harness.advance(days=29)
    assert (await harness.runtime.maintain())["outbox_purged"] == 0
    harness.advance(days=2)
    assert (await harness.runtime.maintain())["outbox_purged"] == len(untagged)
    kept = await harness.outbox_rows()
    assert {r.id for r in kept} == {r.id for r in rows if r.tag is not None}

    # A month later the alert still works: a status button edits the same staff message.
    replies = await harness.staff(payload=f"os:{order.id}:claimed")
    edit = next(s for s in harness.adapter.sent if s.message in replies and s.edit_message_id)
    assert edit.edit_message_id == alert.platform_message_id

    # Erasure redacts the staff copies through those rows; after that they can go too.
    await harness.press("1", "rights:delete")
    await harness.press("1", "rights:delete:confirm")
    redactions = [s for s in harness.adapter.sent if s.message.text == tr("rights.staff.redacted")]
    assert alert.platform_message_id in {s.edit_message_id for s in redactions}
    harness.advance(days=31)
    await harness.runtime.maintain()
    await harness.runtime.idle()
    harness.advance(days=31)
    await harness.runtime.maintain()
    async with harness.sessions() as session:
        left = (await session.scalars(select(OutboxMessage))).all()
        inbox = (await session.scalars(select(InboxEvent))).all()
    assert [(r.chat_id, r.status) for r in left if r.status != "pending"] == []
    assert inbox == []


async def test_rows_a_pending_edit_refers_to_are_kept(harness: Harness) -> None:
    code = await harness.place_order("1")
    order = await harness.order(code)
    harness.adapter.fail_next(1000, "temporary", chat_id=STAFF)  # the staff chat is down
    await harness.staff(payload=f"os:{order.id}:claimed")
    await harness.press("1", "rights:delete")
    await harness.press("1", "rights:delete:confirm")
    pending = [r for r in await harness.outbox_rows() if r.status == "pending"]
    edit_targets = {r.payload.get("edit_of") for r in pending} - {None}
    assert edit_targets

    harness.advance(days=60)
    await harness.runtime.maintain()
    left = {r.id for r in await harness.outbox_rows()}
    assert edit_targets <= left
    assert {r.id for r in pending} <= left

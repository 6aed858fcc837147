"""Staff chat tools that cannot misfire (issue 15): buttons that keep their places, a
confirmation before the carrier hand-off and before a cancellation, Vietnamese status names
typed with or without diacritics, an alert headed by its status, staff addressed as staff,
usage lines for bare commands, interim replies on every ticket kind, and Zalo's messaging
window (no blind sends outside it; ZNS for status updates where configured).
"""

from __future__ import annotations

import html
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.messages import STAFF, ChannelCapabilities
from handlers.orders.service import ACTIONS
from storage.models import Disclosure, RelayedMessage
from storage.support import SupportThread, Ticket
from tests.helpers import (
    CONSOLE_CAPABILITIES,
    FakeClock,
    Harness,
    RecordingAdapter,
    flat_buttons,
    shop_config,
    texts,
    to_chat,
    tr,
)
from tests.test_support_flows import file_complaint


def staff_tr(key: str, **params: object) -> str:
    return html.escape(tr(key, **params))


def alert_of(messages: list, order_id: int):  # type: ignore[no-untyped-def]
    return [m for m in messages if m.tag == f"order:{order_id}" and m.buttons][-1]


async def test_buttons_keep_their_places_across_status_changes(harness: Harness) -> None:
    code = await harness.place_order("1")
    order = await harness.order(code)
    # The statuses in fixed places, then the (priced) order's one-tap "paid".
    expected = [f"os:{order.id}:{status}" for status in ACTIONS] + [f"pay:{order.id}:paid"]
    first = alert_of(harness.delivered(STAFF), order.id)
    assert [b.payload for b in flat_buttons(first)] == expected
    assert first.text.startswith("🆕 <b>" + staff_tr("order.alert.title", code=code))

    for status, icon in (("claimed", "🙋"), ("contacted", "📞")):
        replies = await harness.staff(payload=f"os:{order.id}:{status}")
        edited = alert_of(replies, order.id)
        assert [b.payload for b in flat_buttons(edited)] == expected  # same places, same numbers
        title = tr("order.alert.title_status", code=code, status=tr(f"order.status.{status}"))
        assert edited.text.startswith(f"{icon} <b>{html.escape(title)}</b>")
        assert "🆕" not in edited.text

    # "Done" pressed too early (number 4 meant as something else) changes nothing.
    early = await harness.staff(payload=f"os:{order.id}:done")
    assert (await harness.order(code)).status == "contacted"
    assert to_chat(early, "1") == []

    await harness.hand_to_carrier(order.id)
    replies = await harness.staff(payload=f"os:{order.id}:done")
    assert alert_of(harness.delivered(STAFF), order.id).buttons != ()
    final = [m for m in replies if m.tag == f"order:{order.id}" and m.edit_of][-1]
    # Delivered: no status button any more, only the payment one (it may be paid on delivery).
    assert [b.payload for b in flat_buttons(final)] == [f"pay:{order.id}:paid"]
    assert final.text.startswith("✅ <b>")


async def test_carrier_hand_off_shows_exactly_what_is_shared_and_waits_for_confirmation(
    harness: Harness,
) -> None:
    code = await harness.place_order(
        "1", full_name="Ngô Bảo Châu", phone="0987 654 321", email="chau@example.com"
    )
    order = await harness.order(code)

    (question,) = await harness.staff(payload=f"os:{order.id}:shipping")
    slip = tr(
        "order.carrier_slip",
        carrier="Giao Hàng Nhanh",
        code=code,
        name="Ngô Bảo Châu",
        phone="0987 654 321",
        address=order.address,
    )
    assert html.unescape(question.text).endswith("\n\n" + slip)
    assert "chau@example.com" not in question.text
    payloads = [b.payload for b in flat_buttons(question)]
    assert payloads[1] == f"ok:{order.id}" and payloads[0].startswith(f"oh:{order.id}:")
    # Nothing happened yet: no status change, no disclosure, nothing to the customer.
    assert (await harness.order(code)).status == "new"
    assert await harness.rows(Disclosure) == []

    kept = await harness.staff(payload=f"ok:{order.id}")
    assert texts(kept) == [staff_tr("staff.order.kept", code=code, status=tr("order.status.new"))]

    # The slip changes before the confirmation (e.g. the customer corrected the address):
    # the old confirmation does not send the new data unseen.
    async with harness.sessions() as session:
        stored = await session.get(type(order), order.id)
        assert stored is not None
        stored.address = "1 Tràng Thi, Hoàn Kiếm, Hà Nội"
        await session.commit()
    again = await harness.staff(payload=payloads[0])
    assert texts(again)[0] == staff_tr("staff.carrier.changed", code=code)
    assert "1 Tràng Thi" in again[1].text
    assert (await harness.order(code)).status == "new"

    confirmed = await harness.staff(payload=flat_buttons(again[1])[0].payload)
    assert (await harness.order(code)).status == "shipping"
    assert len(await harness.rows(Disclosure)) == 1
    assert texts(to_chat(confirmed, "1")) == [
        tr("order.notify.shipping", code=code, carrier="Giao Hàng Nhanh")
    ]


async def test_cancel_can_be_declined(harness: Harness) -> None:
    code = await harness.place_order("1")
    order = await harness.order(code)
    await harness.staff(payload=f"os:{order.id}:cancelled")
    replies = await harness.staff(payload=f"ok:{order.id}")
    assert to_chat(replies, "1") == []
    assert (await harness.order(code)).status == "new"


@pytest.mark.parametrize(
    ("typed", "status"),
    [
        ("dang giao", "shipping"),
        ("Đang giao hàng", "shipping"),
        ("ĐANG GIAO", "shipping"),
        ("da huy", "cancelled"),
        ("huy", "cancelled"),
        ("moi", "new"),
        ("hoan tat", "done"),
        ("da lien he", "contacted"),
        ("shipping", "shipping"),
        ("cancelled", "cancelled"),
    ],
)
async def test_orders_filter_takes_vietnamese_status_names(
    harness: Harness, typed: str, status: str
) -> None:
    shipped = await harness.place_order("1")
    cancelled = await harness.place_order("2")
    fresh = await harness.place_order("3")
    await harness.hand_to_carrier((await harness.order(shipped)).id)
    await harness.staff(f"/cancel {cancelled} hết hàng")
    wanted = {"shipping": shipped, "cancelled": cancelled, "new": fresh}.get(status)

    (listing,) = await harness.staff(f"/orders {typed}")
    found = [line.split(" · ")[0] for line in html.unescape(listing.text).splitlines()]
    assert found == ([wanted] if wanted else []) or listing.text == staff_tr(
        "order.staff.no_orders"
    )
    if wanted:
        assert tr(f"order.status.{status}") in listing.text


async def test_an_unknown_status_is_answered_with_the_vietnamese_names(harness: Harness) -> None:
    (bad,) = await harness.staff("/orders da")  # several statuses start with "đã"
    names = ", ".join(
        tr(f"order.status.{s}")
        for s in ("new", "claimed", "contacted", "shipping", "done", "cancelled")
    )
    assert bad.text == staff_tr("order.staff.bad_status", statuses=names)
    assert "shipping" not in bad.text and "Đang giao hàng" in bad.text


@pytest.mark.parametrize(
    ("command", "key"),
    [
        ("/order", "staff.order.usage"),
        ("/cancel", "order.staff.cancel_usage"),
        ("/close", "staff.close.usage"),
        ("/reply", "talk.staff.reply_usage"),
        ("/reply xin chào", "talk.staff.reply_usage"),
    ],
)
async def test_bare_commands_answer_with_their_usage(
    harness: Harness, command: str, key: str
) -> None:
    assert texts(await harness.staff(command)) == [staff_tr(key)]


async def test_a_wrong_button_number_addresses_staff_as_staff(harness: Harness) -> None:
    (reply,) = await harness.staff(payload="badchoice:3")
    assert reply.chat_id == STAFF
    assert reply.text == staff_tr("staff.no_such_button", number=3)
    assert "quý khách" not in reply.text.lower()


# ---- interim replies on every ticket kind ----------------------------------------------------


async def test_reply_command_answers_a_complaint_without_closing_it(harness: Harness) -> None:
    ticket = await file_complaint(harness, "1", "service", "Tranh giao đến bị móp khung")
    replies = await harness.staff(f"/reply {ticket.code} Dạ shop đang kiểm tra với bên giao ạ")
    assert texts(to_chat(replies, "1")) == [
        tr("staff.ticket_message", code=ticket.code, text="Dạ shop đang kiểm tra với bên giao ạ")
    ]
    assert staff_tr("staff.ticket.relayed", code=ticket.code) in texts(replies)
    after = (await harness.rows(Ticket))[-1]
    assert after.status == "acknowledged" and after.resolved_at is None
    stored = (await harness.rows(RelayedMessage))[-1]
    assert (stored.thread, stored.direction) == (f"ticket:{ticket.id}", "out")

    # "KN-XXXXX text" and a reply to the ticket's alert work the same way.
    typed = await harness.staff(f"{ticket.code.lower()} Shop sẽ đổi khung mới ạ")
    assert texts(to_chat(typed, "1")) == [
        tr("staff.ticket_message", code=ticket.code, text="Shop sẽ đổi khung mới ạ")
    ]
    alert = next(
        s
        for s in harness.adapter.sent
        if s.message.tag == f"ticket:{ticket.id}" and s.message.buttons
    )
    answered = await harness.staff("Chiều nay shop gọi ạ", reply_to=alert.platform_message_id)
    assert texts(to_chat(answered, "1")) == [
        tr("staff.ticket_message", code=ticket.code, text="Chiều nay shop gọi ạ")
    ]
    assert (await harness.rows(Ticket))[-1].status == "acknowledged"


async def test_reply_command_reaches_orders_and_talk_threads_too(harness: Harness) -> None:
    code = await harness.place_order("1")
    replies = await harness.staff(f"/reply {code} Dạ tranh còn hàng ạ")
    assert texts(to_chat(replies, "1")) == [
        tr("order.staff_message", code=code, text="Dạ tranh còn hàng ạ")
    ]
    await harness.say("2", "/start")
    await harness.press("2", "consent:yes")
    await harness.say("2", "/staff")
    thread_code = (await harness.rows(SupportThread))[-1].code
    answered = await harness.staff(f"/reply {thread_code} Em chào anh/chị ạ")
    assert texts(to_chat(answered, "2")) == [
        tr("talk.staff_message", code=thread_code, text="Em chào anh/chị ạ")
    ]


async def test_reply_to_a_resolved_ticket_is_refused(harness: Harness) -> None:
    ticket = await file_complaint(harness, "1", "other", "Muốn góp ý về website ạ")
    await harness.staff(f"/resolve {ticket.code} Cảm ơn anh/chị đã góp ý")
    replies = await harness.staff(f"/reply {ticket.code} thêm nữa")
    assert to_chat(replies, "1") == []
    assert texts(replies) == [
        staff_tr("support.staff.already", code=ticket.code, status=tr("support.status.resolved"))
    ]


# ---- Zalo's messaging window ----------------------------------------------------------------

WINDOWED = replace(CONSOLE_CAPABILITIES, messaging_window=timedelta(days=7))


def windowed_harness(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, **config: object
) -> Harness:
    capabilities = replace(WINDOWED, notification_channel="zns" if config else "")
    adapter = RecordingAdapter("console", capabilities)
    harness = Harness(sessions, clock=clock, config=shop_config(**config), adapter=adapter)
    return harness


async def test_outside_the_window_nothing_is_sent_and_staff_are_told_to_call(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    harness = windowed_harness(sessions, clock)
    try:
        code = await harness.place_order("1", phone="0912 345 678")
        order = await harness.order(code)
        harness.advance(days=6)
        inside = await harness.staff(f"{code} Dạ shop gọi lại sau ạ")
        assert len(to_chat(inside, "1")) == 1

        harness.advance(days=2)  # 8 days after the customer's last message
        replies = await harness.staff(f"{code} Shop nhắn lần nữa ạ")
        assert to_chat(replies, "1") == []
        (notice,) = texts(replies)
        assert notice.startswith(html.escape("⚠️ Khách Zalo không nhận được tin nhắn từ "))
        assert "0912 345 678" in notice
        assert [m for m in await harness.rows(RelayedMessage) if m.direction == "out"][
            -1
        ].text == "Dạ shop gọi lại sau ạ"  # the unsent one is not stored as sent

        status = await harness.staff(payload=f"os:{order.id}:claimed")
        assert to_chat(status, "1") == []
        assert (await harness.order(code)).status == "claimed"  # the change itself happens
        assert any("0912 345 678" in m.text for m in status)

        # The customer writes again: the window opens again.
        await harness.say("1", "Shop ơi tranh của em sao rồi ạ")
        again = await harness.staff(f"{code} Dạ tranh đang đóng khung ạ")
        assert len(to_chat(again, "1")) == 1
    finally:
        await harness.close()


async def test_outside_the_window_status_updates_go_as_zns_when_configured(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    harness = windowed_harness(sessions, clock, zns_templates={"shipping": "301234"})
    zns = RecordingAdapter("zns")
    harness.runtime.add_adapter(zns)
    try:
        code = await harness.place_order("1", phone="0912 345 678")
        order = await harness.order(code)
        harness.advance(days=8)
        await harness.staff(payload=f"os:{order.id}:claimed")  # no template: not sent
        assert zns.sent == []
        replies = await harness.hand_to_carrier(order.id)
        (sent,) = zns.messages
        assert sent.template == {
            "id": "301234",
            "phone": "+84912345678",
            "data": {"order_code": code, "status": tr("order.status.shipping")},
        }
        assert to_chat(replies, "1") == []
        assert any(m.text.startswith(html.escape("📨")) for m in to_chat(replies, STAFF))
    finally:
        await harness.close()


async def test_without_a_window_nothing_changes(harness: Harness) -> None:
    code = await harness.place_order("1")
    harness.advance(days=30)
    replies = await harness.staff(f"{code} Dạ shop chào anh/chị")
    assert len(to_chat(replies, "1")) == 1
    assert ChannelCapabilities().messaging_window is None

"""Orders, the shop's side (issue 3): the staff alert and its one-tap lifecycle, customer
notifications in their own language, relaying messages both ways, the carrier slip and its
disclosure, authorization of button payloads, escaping of customer text in the staff chat,
delivery of an alert through platform failures, and the staff commands.

Staff act in the staff chat through `Harness.staff` (user 900 is a staff admin; other user ids
are ordinary members of the staff chat, shown by their display name "Staff <id>").
"""

from __future__ import annotations

import csv
import html
import io
import re
from datetime import timedelta

import pytest

from handlers.context import ShopConfig
from handlers.messages import STAFF, Outbound
from handlers.orders.export import COLUMNS
from handlers.orders.service import ACTIONS
from storage.models import AuditEntry, Disclosure, Order, OutboxMessage, RelayedMessage
from tests.helpers import (
    FakeClock,
    Harness,
    RecordingAdapter,
    flat_buttons,
    joined,
    shop_config,
    texts,
    to_chat,
    tr,
)

CARRIER = "Viettel Post"
STAFF_MEMBER = "777"  # in the staff chat, not an admin
TAG = re.compile(r"<[^>]*>")


@pytest.fixture
def shop() -> ShopConfig:
    """The test shop, with a carrier name that is not the default (it must come from config)."""
    return shop_config(carrier_name=CARRIER)


# ---- local helpers ----------------------------------------------------------------------------


async def alert_row(harness: Harness, order: Order) -> OutboxMessage:
    """The outbox row of the order's staff alert (the first staff message tagged with it)."""
    rows = [
        r
        for r in await harness.outbox_rows()
        if r.chat_id == STAFF and r.tag == f"order:{order.id}"
    ]
    assert rows, "no staff alert"
    return rows[0]


def edits(replies: list[Outbound]) -> list[Outbound]:
    return [m for m in to_chat(replies, STAFF) if m.edit_of is not None]


def only_tags(text: str) -> set[str]:
    return set(TAG.findall(text))


# ---- the lifecycle ------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", ["vi", "en"])
async def test_claim_contacted_shipping_done_edit_the_alert_and_notify_the_customer(
    harness: Harness, adapter: RecordingAdapter, lang: str
) -> None:
    await harness.consent("1")
    if lang == "en":
        await harness.say("1", "/lang en")
    code = await harness.place_order("1")
    order = await harness.order(code)
    alert = await alert_row(harness, order)
    buttons = flat_buttons(next(m for m in harness.delivered(STAFF) if "🆕" in m.text))
    # Every status in a stable place, then one tap to mark the (priced) order paid.
    assert [b.payload for b in buttons] == [f"os:{order.id}:{s}" for s in ACTIONS] + [
        f"pay:{order.id}:paid"
    ]

    steps = [
        ("claimed", STAFF_MEMBER, {}),
        ("contacted", "900", {}),
        ("shipping", "900", {"carrier": CARRIER}),
        ("done", STAFF_MEMBER, {}),
    ]
    for status, staff_user, params in steps:
        mark = harness.mark()
        if status == "shipping":
            await harness.hand_to_carrier(order.id, staff_user)
            replies = harness.since(mark)[1:]  # after the confirmation question
            mark += 1
        else:
            replies = await harness.staff(user_id=staff_user, payload=f"os:{order.id}:{status}")

        (edited,) = edits(replies)
        assert edited.edit_of == alert.id
        sent = adapter.sent[mark:]
        assert [s.edit_message_id for s in sent if s.message is edited] == [
            alert.platform_message_id
        ]
        assert edited.html
        status_line = f"<b>{tr('order.alert.status')}:</b> {tr(f'order.status.{status}')}"
        assert status_line in edited.text
        assert f"{tr(f'order.status.{status}')} — Staff {staff_user}" in edited.text

        notes = to_chat(replies, "1")
        assert texts(notes) == [tr(f"order.notify.{status}", lang, code=code, **params)]
        assert (await harness.order(code)).status == status

    final = edits(replies)[0]
    history = [line for line in final.text.splitlines() if line.startswith("• ")]
    assert [line.split(" ", 3)[3] for line in history] == [
        tr("order.status.new"),
        f"{tr('order.status.claimed')} — Staff {STAFF_MEMBER}",
        f"{tr('order.status.contacted')} — Staff 900",
        f"{tr('order.status.shipping')} — Staff 900",
        f"{tr('order.status.done')} — Staff {STAFF_MEMBER}",
    ]
    # Nothing follows "done" but the payment, which may still be due (cash on delivery).
    assert [b.payload for b in flat_buttons(final)] == [f"pay:{order.id}:paid"]
    assert (await harness.order(code)).claimed_by == STAFF_MEMBER
    actions = [a.action for a in await harness.rows(AuditEntry) if a.subject == code]
    assert actions == ["order_created", "order_claimed", "order_contacted"] + [
        "order_shipping",
        "order_done",
    ]


async def test_an_invalid_transition_is_refused_with_a_note_and_changes_nothing(
    harness: Harness,
) -> None:
    code = await harness.place_order("1")
    order = await harness.order(code)
    await harness.hand_to_carrier(order.id)
    await harness.staff(payload=f"os:{order.id}:done")
    outbox_before = len(await harness.outbox_rows())

    replies = await harness.staff(payload=f"os:{order.id}:shipping")  # done → shipping

    assert [(m.chat_id, m.text) for m in replies] == [
        (
            STAFF,
            html.escape(
                tr(
                    "order.staff.invalid_transition",
                    code=code,
                    current=tr("order.status.done"),
                    target=tr("order.status.shipping"),
                )
            ),
        )
    ]
    after = await harness.order(code)
    assert after.status == "done"
    assert [c.status for c in after.history] == ["new", "shipping", "done"]
    assert len(await harness.rows(Disclosure)) == 1  # no second carrier hand-off
    assert len(await harness.outbox_rows()) == outbox_before + 1  # only the note


async def test_a_stale_claim_button_after_cancel_is_refused(harness: Harness) -> None:
    code = await harness.place_order("1")
    order = await harness.order(code)
    await harness.staff(f"/cancel {code} khách đổi ý")
    replies = await harness.staff(payload=f"os:{order.id}:claimed")
    assert to_chat(replies, "1") == []
    assert edits(replies) == []
    assert (await harness.order(code)).status == "cancelled"


async def test_cancel_asks_for_a_reason_and_the_customer_gets_it(harness: Harness) -> None:
    code = await harness.place_order("1")
    order = await harness.order(code)

    replies = await harness.staff(payload=f"os:{order.id}:cancelled")
    (question,) = replies
    assert question.chat_id == STAFF
    assert question.text == html.escape(tr("order.staff.ask_cancel_reason", code=code))
    assert [b.payload for b in flat_buttons(question)] == [
        f"oc:{order.id}:customer_request",
        f"oc:{order.id}:out_of_stock",
        f"oc:{order.id}:unreachable",
        f"ok:{order.id}",  # "keep the order": the confirmation can be declined
    ]
    assert (await harness.order(code)).status == "new"  # not yet

    replies = await harness.staff(payload=f"oc:{order.id}:out_of_stock")
    reason = tr("order.cancel_reason.out_of_stock")
    assert texts(to_chat(replies, "1")) == [tr("order.notify.cancelled", code=code, reason=reason)]
    (edited,) = edits(replies)
    assert f"{tr('order.status.cancelled')} — Staff 900 ({reason})" in html.unescape(edited.text)
    assert (await harness.order(code)).status == "cancelled"


async def test_cancel_reason_reaches_an_english_customer_in_english(harness: Harness) -> None:
    await harness.consent("1")
    await harness.say("1", "/lang en")
    code = await harness.place_order("1")
    order = await harness.order(code)
    await harness.staff(payload=f"os:{order.id}:cancelled")
    replies = await harness.staff(payload=f"oc:{order.id}:unreachable")
    reason = tr("order.cancel_reason.unreachable", "en")
    assert texts(to_chat(replies, "1")) == [
        tr("order.notify.cancelled", "en", code=code, reason=reason)
    ]


async def test_staff_cancel_command_with_a_typed_reason(harness: Harness) -> None:
    code = await harness.place_order("1")

    usage = await harness.staff(f"/cancel {code}")
    assert texts(usage) == [html.escape(tr("order.staff.cancel_usage"))]
    assert (await harness.order(code)).status == "new"

    replies = await harness.staff(f"/cancel {code.lower()} Khách hẹn mua dịp Tết")
    assert texts(to_chat(replies, "1")) == [
        tr("order.notify.cancelled", code=code, reason="Khách hẹn mua dịp Tết")
    ]
    assert (await harness.order(code)).status == "cancelled"

    again = await harness.staff(f"/cancel {code} lần nữa")
    assert texts(again) == [html.escape(tr("order.staff.cannot_cancel", code=code))]
    assert to_chat(again, "1") == []

    unknown = await harness.staff("/cancel VAV-22222 nhầm")
    assert texts(unknown) == [html.escape(tr("order.staff.not_found"))]


# ---- talking to the customer -------------------------------------------------------------------


async def test_relay_both_ways_is_threaded_stored_and_shown_in_mydata(
    harness: Harness, adapter: RecordingAdapter
) -> None:
    code = await harness.place_order("1")
    order = await harness.order(code)
    alert = await alert_row(harness, order)

    # Customer → staff, threaded under the alert.
    question = "Dạ em ở nhà cả ngày mai, shop cứ gọi em nhé"
    replies = await harness.say("1", question)
    (to_staff,) = to_chat(replies, STAFF)
    assert to_staff.reply_to == alert.id
    assert [s.reply_to_message_id for s in adapter.sent if s.message is to_staff] == [
        alert.platform_message_id
    ]
    assert question in to_staff.text and code in to_staff.text
    assert texts(to_chat(replies, "1")) == [tr("order.relayed", code=code)]

    # Staff → customer, by "VAV-XXXXX text" in the staff chat …
    answer_1 = "Dạ shop sẽ gọi lại lúc 9 giờ sáng ạ"
    replies = await harness.staff(f"{code} {answer_1}")
    assert texts(to_chat(replies, "1")) == [tr("order.staff_message", code=code, text=answer_1)]
    assert texts(to_chat(replies, STAFF)) == [html.escape(tr("order.staff.relayed", code=code))]

    # … and by replying to the alert.
    answer_2 = "Tranh đã đóng khung xong rồi ạ"
    replies = await harness.staff(answer_2, reply_to=alert.platform_message_id)
    assert texts(to_chat(replies, "1")) == [tr("order.staff_message", code=code, text=answer_2)]

    stored = await harness.rows(RelayedMessage)
    assert [(m.direction, m.text, m.thread) for m in stored] == [
        ("in", question, f"order:{order.id}"),
        ("out", answer_1, f"order:{order.id}"),
        ("out", answer_2, f"order:{order.id}"),
    ]
    assert stored[1].staff_actor == "staff:console:900"

    mydata = joined(await harness.say("1", "/mydata"))
    for text in (question, answer_1, answer_2):
        assert text in mydata


async def test_replying_to_the_relayed_customer_message_also_reaches_the_customer(
    harness: Harness, adapter: RecordingAdapter
) -> None:
    code = await harness.place_order("2", full_name="Trịnh Công Sơn")
    await harness.say("2", "Em muốn hỏi thêm về khung tranh")
    relayed_copy = next(
        s for s in adapter.sent if s.message.chat_id == STAFF and s.message.reply_to
    )
    replies = await harness.staff("Khung gỗ sồi ạ", reply_to=relayed_copy.platform_message_id)
    assert texts(to_chat(replies, "2")) == [
        tr("order.staff_message", code=code, text="Khung gỗ sồi ạ")
    ]


async def test_ordinary_staff_chatter_is_not_relayed(harness: Harness) -> None:
    await harness.place_order("1")
    replies = await harness.staff("Ai trực chiều nay vậy mọi người?")
    assert replies == []
    assert await harness.rows(RelayedMessage) == []


async def test_free_text_without_an_open_order_is_not_relayed(harness: Harness) -> None:
    code = await harness.place_order("1")
    await harness.staff(f"/cancel {code} hết hàng")
    replies = await harness.say("1", "Dạ em cảm ơn shop")
    assert to_chat(replies, STAFF) == []
    assert await harness.rows(RelayedMessage) == []


# ---- carrier hand-off ------------------------------------------------------------------------


async def test_the_carrier_slip_has_exactly_code_name_phone_address_and_is_disclosed(
    harness: Harness,
) -> None:
    code = await harness.place_order(
        "1",
        full_name="Ngô Bảo Châu",
        phone="0987 654 321",
        address="15 Tạ Quang Bửu, Hai Bà Trưng, Hà Nội",
        email="chau.ngo@example.com",
        request="SD-001 — gói kỹ giúp em, giao giờ hành chính",
    )
    await harness.staff(
        user_id=STAFF_MEMBER, payload=f"os:{(await harness.order(code)).id}:claimed"
    )

    order = await harness.order(code)
    replies = await harness.hand_to_carrier(order.id)

    slips = [m for m in to_chat(replies, STAFF) if m.edit_of is None]
    assert len(slips) == 1
    slip = html.unescape(slips[0].text)
    assert slip == tr(
        "order.carrier_slip",
        carrier=CARRIER,
        code=code,
        name="Ngô Bảo Châu",
        phone="0987 654 321",
        address="15 Tạ Quang Bửu, Hai Bà Trưng, Hà Nội",
    )
    for withheld in ("chau.ngo@example.com", "gói kỹ", "SD-001", "Phố cổ", "4.500.000", "Lan"):
        assert withheld not in slip
    assert [line.split(": ", 1)[-1] for line in slip.splitlines()[1:]] == [
        code,
        "Ngô Bảo Châu",
        "0987 654 321",
        "15 Tạ Quang Bửu, Hai Bà Trưng, Hà Nội",
    ]

    (disclosure,) = await harness.rows(Disclosure)
    assert (disclosure.recipient_kind, disclosure.recipient_name) == ("carrier", CARRIER)
    assert disclosure.fields == ["code", "full_name", "phone", "address"]
    assert disclosure.staff_actor == "staff:console:900"
    assert disclosure.order_id == order.id
    assert (await harness.order(code)).handed_to_carrier_at is not None

    mydata = joined(await harness.say("1", "/mydata"))
    assert tr("rights.section.disclosures") in mydata
    line = next(line for line in mydata.splitlines() if CARRIER in line)
    assert tr("rights.recipient.carrier") in line
    for field in ("code", "full_name", "phone", "address"):
        assert tr(f"rights.fieldname.{field}") in line
    assert tr("rights.fieldname.email") not in line


# ---- authorization ------------------------------------------------------------------------------


@pytest.mark.parametrize("forged", ["os:{id}:done", "os:{id}:shipping", "oc:{id}:out_of_stock"])
async def test_a_forged_staff_payload_from_a_customer_is_refused_and_audited(
    harness: Harness, forged: str
) -> None:
    code = await harness.place_order("1")
    order = await harness.order(code)
    await harness.consent("2")
    outbox_before = len(await harness.outbox_rows())

    for attacker in ("2", "1"):  # another customer, and the order's own customer
        replies = await harness.press(attacker, forged.format(id=order.id))
        assert [(m.chat_id, m.text) for m in replies] == [(attacker, tr("staff.not_allowed"))]

    after = await harness.order(code)
    assert after.status == "new" and [c.status for c in after.history] == ["new"]
    assert await harness.rows(Disclosure) == []
    assert len(await harness.outbox_rows()) == outbox_before + 2  # the two refusals only
    refused = [a for a in await harness.rows(AuditEntry) if a.action == "refused"]
    assert len(refused) == 2
    assert all(a.actor.startswith("customer:") for a in refused)
    assert all(a.detail == "staff-only:" + forged.split(":")[0] for a in refused)


@pytest.mark.parametrize("command", ["/find 0912", "/find Lan", "/legal 0912345678 Công an"])
async def test_staff_commands_from_a_private_chat_are_refused_and_audited(
    harness: Harness, command: str
) -> None:
    await harness.place_order("1")
    replies = await harness.say("2", command)
    assert [(m.chat_id, m.text) for m in replies] == [("2", tr("staff.not_allowed"))]
    assert "Nguyễn Thị Lan" not in joined(replies)
    assert [a.action for a in await harness.rows(AuditEntry)][-1] == "refused"


async def test_payloads_for_missing_orders_or_unknown_statuses_change_nothing(
    harness: Harness,
) -> None:
    code = await harness.place_order("1")
    order = await harness.order(code)
    for payload in (f"os:{order.id + 99}:claimed", f"os:{order.id}:paid", "os:x:claimed", "os"):
        replies = await harness.staff(payload=payload)
        assert texts(replies) == [html.escape(tr("order.staff.not_found"))]
    assert (await harness.order(code)).status == "new"


# ---- markup injection ----------------------------------------------------------------------


async def test_customer_markup_is_escaped_everywhere_in_the_staff_chat(harness: Harness) -> None:
    name = "Nguyễn <b>Lan</b>"
    address = '<b>12</b> Hàng Bông &amp; <a title="x">Hà Nội</a>'
    email = "lan&amp@example.com"
    request = '<a href="http://evil">x</a> <b>đậm</b> &amp; SD-001'
    relay = '<a href="http://evil">bấm vào đây</a> &amp;'

    await harness.order_until("1", "full_name")
    rejected = await harness.say("1", name)  # names cannot carry markup at all
    assert rejected[0].text.startswith(tr("validation.name.invalid_chars"))
    code = await harness.place_order("1", address=address, email=email, request=request)
    order = await harness.order(code)
    await harness.say("1", relay)
    await harness.staff(payload=f"os:{order.id}:claimed")
    await harness.hand_to_carrier(order.id)
    await harness.staff(f"/order {code}")
    await harness.staff("/orders")
    await harness.staff("/find Lan")

    staff_messages = harness.delivered(STAFF)
    assert len(staff_messages) >= 7
    for message in staff_messages:
        assert message.html, message.text
        assert "<a" not in message.text and "<i" not in message.text
        assert only_tags(message.text) <= {"<b>", "</b>"}, message.text

    alert = next(m for m in staff_messages if "🆕" in m.text).text
    assert html.escape(address) in alert
    assert "&lt;b&gt;12&lt;/b&gt; Hàng Bông &amp;amp; &lt;a title=&quot;x&quot;&gt;" in alert
    assert html.escape(email) in alert and "lan&amp;amp@example.com" in alert
    assert html.escape(request) in alert
    assert "&lt;a href=&quot;http://evil&quot;&gt;x&lt;/a&gt;" in alert
    # Unescaped, staff read exactly what the customer typed.
    assert address in html.unescape(alert) and request in html.unescape(alert)
    relayed_copy = next(m for m in staff_messages if m.reply_to is not None)
    assert html.escape(relay) in relayed_copy.text


# ---- delivery through platform failures -----------------------------------------------------


async def test_an_alert_that_fails_twice_is_delivered_on_the_third_try_exactly_once(
    harness: Harness, adapter: RecordingAdapter, clock: FakeClock
) -> None:
    await harness.order_until("1", "review")
    adapter.fail_next(2, "temporary", chat_id=STAFF)

    replies = await harness.press("1", "f:ok")
    code = (await harness.orders())[0].code
    assert code in joined(to_chat(replies, "1"))  # the customer is answered at once
    assert to_chat(replies, STAFF) == []

    row = await alert_row(harness, await harness.order(code))
    assert (row.status, row.attempts) == ("pending", 1)
    clock.now = row.next_attempt_at + timedelta(seconds=1)
    assert await harness.deliver() == []  # second failure

    row = await alert_row(harness, await harness.order(code))
    assert (row.status, row.attempts) == ("pending", 2)
    clock.now = row.next_attempt_at + timedelta(seconds=1)
    delivered = await harness.deliver()
    assert [m.chat_id for m in delivered] == [STAFF]
    assert code in delivered[0].text and "🆕" in delivered[0].text

    clock.advance(hours=3)
    assert await harness.deliver() == []
    assert [m for m in harness.delivered(STAFF) if code in m.text] == delivered
    row = await alert_row(harness, await harness.order(code))
    assert (row.status, row.attempts) == ("sent", 3)
    assert adapter.failures_left == 0

    # The alert works as usual afterwards: a claim edits the delivered message.
    order = await harness.order(code)
    replies = await harness.staff(payload=f"os:{order.id}:claimed")
    assert edits(replies)[0].edit_of == row.id


# ---- staff commands ------------------------------------------------------------------------------


async def test_staff_orders_lists_all_or_by_status(harness: Harness) -> None:
    lan = await harness.place_order("1", full_name="Nguyễn Thị Lan", phone="0912 345 678")
    ha = await harness.place_order("2", full_name="Phạm Thu Hà", phone="0903 111 222")
    minh = await harness.place_order("3", full_name="Trần Văn Minh", phone="024 3825 1234")
    await harness.staff(payload=f"os:{(await harness.order(ha)).id}:claimed")

    (listing,) = await harness.staff("/orders")
    lines = html.unescape(listing.text).splitlines()
    assert len(lines) == 3
    assert [line.split(" · ")[0] for line in lines] == [minh, ha, lan]  # newest first
    assert lines[1].split(" · ")[2:] == [tr("order.status.claimed"), "Phạm Thu Hà", "0903 111 222"]
    assert lines[0].endswith("Trần Văn Minh · 024 3825 1234")

    (claimed,) = await harness.staff("/orders claimed")
    assert [line.split(" · ")[0] for line in html.unescape(claimed.text).splitlines()] == [ha]
    (none,) = await harness.staff("/orders done")
    assert none.text == html.escape(tr("order.staff.no_orders"))
    (bad,) = await harness.staff("/orders paid")
    assert bad.text.startswith(html.escape(tr("order.staff.bad_status", statuses="x")[:20]))


FIND_QUERIES = [
    ("345 678", ["lan"]),  # a phone part, with spaces
    ("0912345", ["lan"]),  # a phone part, national prefix
    ("+84903", ["ha"]),
    ("111.222", ["ha"]),
    ("thu hà", ["ha"]),  # a name part, any case
    ("Văn", ["minh"]),
    ("Nguyễn", ["lan"]),
    ("Hoàng Xuân", []),
]


async def test_staff_find_by_phone_part_or_name_part(harness: Harness) -> None:
    codes = {
        "lan": await harness.place_order("1", full_name="Nguyễn Thị Lan", phone="0912 345 678"),
        "ha": await harness.place_order("2", full_name="Phạm Thu Hà", phone="0903 111 222"),
        "minh": await harness.place_order("3", full_name="Trần Văn Minh", phone="0987 654 321"),
    }
    for query, expected in FIND_QUERIES:
        (result,) = await harness.staff(f"/find {query}")
        found = sorted(name for name, code in codes.items() if code in result.text)
        assert found == expected, (query, result.text)
        if not expected:
            assert result.text == html.escape(tr("order.staff.no_orders"))
        assert result.html
        assert ("Nguyễn Thị Lan" in result.text) == ("lan" in expected)  # only the matches


async def test_staff_find_needs_a_query(harness: Harness) -> None:
    (usage,) = await harness.staff("/find x")
    assert usage.text == html.escape(tr("order.staff.find_usage"))


async def test_staff_order_code_shows_the_full_alert(harness: Harness) -> None:
    code = await harness.place_order("1", request="IN-006")
    (shown,) = await harness.staff(f"/order {code.lower()}")
    assert shown.html and code in shown.text
    assert "IN-006 — Cầu Thê Húc" in shown.text and "1.250.000 ₫" in shown.text
    (missing,) = await harness.staff("/order VAV-22222")
    assert missing.text == html.escape(tr("order.staff.not_found"))


async def test_staff_export_is_a_csv_a_vietnamese_office_opens_as_it_is(
    harness: Harness,
) -> None:
    await harness.place_order("1", full_name="Nguyễn Thị Lan", request="SD-001")
    await harness.place_order(
        "2",
        full_name="Đặng Thùy Trâm",
        address="48 Tràng Tiền, Hoàn Kiếm, Hà Nội",
        email="tram@example.com",
        request='Tranh "sen" khổ lớn,\nkhung gỗ',
    )
    third = await harness.place_order("1", full_name="Nguyễn Thị Lan", request="DH-005")
    await harness.staff(f"/cancel {third} khách đổi ý")

    (message,) = await harness.staff("/export")
    assert message.chat_id == STAFF
    document = message.document
    assert document is not None
    assert document.filename.endswith(".csv") and document.mime_type == "text/csv"
    assert document.filename.startswith("don-hang-20260115-")  # Viet Nam time
    assert document.content.startswith(b"\xef\xbb\xbf")  # the UTF-8 BOM Excel needs
    assert message.text == html.escape(tr("order.staff.export_ready", count=3))

    rows = list(csv.reader(io.StringIO(document.content.decode("utf-8-sig"))))
    header, body, totals = rows[0], rows[1:-1], rows[-1]
    assert header == [tr(f"staff.csv.{column}") for column in COLUMNS]
    assert header[:5] == ["Mã đơn", "Trạng thái", "Ngày đặt", "Họ tên", "Điện thoại"]
    assert len(body) == 3
    records = [dict(zip(COLUMNS, row, strict=True)) for row in body]
    tram = records[1]
    assert tram["full_name"] == "Đặng Thùy Trâm"  # Vietnamese intact
    assert tram["address"] == "48 Tràng Tiền, Hoàn Kiếm, Hà Nội"
    assert tram["phone"] == "0912 345 678"  # local format: text, the leading 0 stays
    assert tram["email"] == "tram@example.com"
    assert tram["request_text"] == 'Tranh "sen" khổ lớn,\nkhung gỗ'
    assert re.fullmatch(r"15/01/2026 10:\d\d", tram["created_at"])  # UTC+7, dd/mm/yyyy HH:MM
    assert records[0]["product_name"].startswith("Phố cổ Hà Nội mùa thu")
    assert records[0]["price_vnd"] == "4500000"
    assert [r["status"] for r in records] == [
        tr("order.status.new"),
        tr("order.status.new"),
        tr("order.status.cancelled"),
    ]
    assert records[0]["quantity"] == "1" and records[0]["total_vnd"] == "4500000"
    assert records[0]["payment_status"] == tr("catalog.payment.unpaid")
    assert totals[0] == tr("staff.csv.total_orders", count=3)
    totals_of_open = [int(r["total_vnd"]) for r in records[:2] if r["total_vnd"]]
    assert totals[COLUMNS.index("total_vnd")] == str(sum(totals_of_open))  # not the cancelled
    assert [a.action for a in await harness.rows(AuditEntry)][-1] == "orders_exported"


async def test_staff_export_is_refused_to_staff_who_are_not_admins(harness: Harness) -> None:
    await harness.place_order("1", full_name="Nguyễn Thị Lan")
    (message,) = await harness.staff("/export", user_id="901")  # in the staff chat, not admin
    assert message.document is None
    assert message.text == html.escape(tr("staff.admin_only"))
    audit = (await harness.rows(AuditEntry))[-1]
    assert (audit.action, audit.actor, audit.detail) == (
        "refused",
        "staff:console:901",
        "admin-only:/export",
    )

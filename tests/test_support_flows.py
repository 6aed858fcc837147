"""Support in handlers (issue 7): knowledge-base answers and intents from free text,
complaints with their staff lifecycle and re-announcement, returns/warranty tied to the
customer's own order, talk to staff through the shared relay, flood control, lock/unlock.

Everything runs through the real pipeline (`Harness`: inbox → dispatcher → outbox →
delivery) on a fresh database per test.
"""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from hypothesis import given
from hypothesis import strategies as st

import handlers.orders.flow as order_flow
from handlers.composition import build
from handlers.engine import StepInput
from handlers.errors import InvalidInput
from handlers.flows import consent
from handlers.i18n import LANGUAGES, LOCALES_DIR
from handlers.messages import STAFF, Outbound, mention
from handlers.orders import products
from handlers.rights import commands as rights
from handlers.support import abuse, answers, complaints, returns, talk
from handlers.support.understanding import Understanding, topic_actions
from storage.models import AuditEntry, RelayedMessage
from storage.repositories import UnitOfWork
from storage.support import SupportThread, Ticket
from tests.helpers import STAFF_USER, Harness, flat_buttons, joined, kb_reply, texts, tr

APP = build()
SUPPORT_DIR = Path(answers.__file__).resolve().parent


# ---- helpers ----------------------------------------------------------------------------------


def staff_tr(key: str, **params: object) -> str:
    """A staff-chat line as the bot sends it (escaped HTML)."""
    return html.escape(tr(key, **params))


def payloads(message: Outbound) -> list[str]:
    return [b.payload for b in flat_buttons(message)]


def with_text(messages: list[Outbound], text: str) -> Outbound:
    return next(m for m in messages if text in m.text)


def staff_sent(harness: Harness, tag: str) -> list[str]:
    """Platform ids of the staff-chat messages (not edits) sent under `tag`."""
    return [
        s.platform_message_id
        for s in harness.adapter.sent
        if s.message.chat_id == STAFF and s.message.tag == tag and s.edit_message_id is None
    ]


async def file_complaint(
    harness: Harness, user: str, category: str, description: str, photo: str | None = None
) -> Ticket:
    """Consent (if needed), then a whole complaint; returns the stored ticket."""
    if not await harness.has_consent(user):
        await harness.consent(user)
    await harness.say(user, "/complaint")
    await harness.press(user, f"f:pick:{category}")
    await harness.say(user, description)
    if photo:
        await harness.photo(user, photo)
    await harness.press(user, "f:skip")
    await harness.press(user, "f:ok")
    return (await harness.rows(Ticket))[-1]


# ---- knowledge base and intents ---------------------------------------------------------------

KB_QUESTIONS = [
    ("shop luu thong tin cua minh bao lau", "retention"),
    ("ben giao hang nhan nhung thong tin gi cua minh", "carrier"),
    ("muon xoa du lieu thi lam sao", "delete"),
    ("lam the nao de sua dia chi", "change"),
]


@pytest.mark.parametrize(("question", "topic"), KB_QUESTIONS)
async def test_diacritic_free_question_gets_the_answer_and_its_action_buttons(
    harness: Harness, question: str, topic: str
) -> None:
    replies = await harness.say("1", question)
    assert len(replies) == 1
    answer = replies[0]
    assert answer.text == kb_reply(f"kb.{topic}.answer")
    expected = [answers.ACTION_PAYLOADS[a].pack() for a in topic_actions(topic)]
    assert payloads(answer) == expected
    assert all(p in {q.pack() for q in answers.ACTION_PAYLOADS.values()} for p in expected)


async def test_delete_answer_offers_the_delete_button_and_change_offers_edit(
    harness: Harness,
) -> None:
    delete = (await harness.say("1", "muon xoa du lieu thi lam sao"))[0]
    assert "rights:delete" in payloads(delete)
    change = (await harness.say("1", "lam the nao de sua dia chi"))[0]
    assert "rights:edit" in payloads(change)


async def test_english_question_is_answered_in_english(harness: Harness) -> None:
    replies = await harness.say("1", "how long do you keep my data", language_hint="en")
    assert replies[0].text == kb_reply("kb.retention.answer", "en")


async def test_kb_button_shows_an_answer_and_faq_lists_every_topic(harness: Harness) -> None:
    replies = await harness.press("1", "kb:carrier")
    assert replies[0].text == kb_reply("kb.carrier.answer")
    listing = (await harness.say("1", "/faq"))[0]
    assert listing.text == tr("support.faq_intro")
    assert "kb:retention" in payloads(listing) and "kb:contact" in payloads(listing)
    stale = await harness.press("1", "kb:nonsense")
    assert texts(stale) == [tr("flow.stale_button")]


async def test_middle_band_offers_did_you_mean_buttons(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    unsure = Understanding("topic", "carrier", 0.5, ("carrier", "collected", "complaint"))
    monkeypatch.setattr(answers, "understand", lambda text: unsure)
    replies = await harness.say("1", "shipper biet gi ve minh")
    assert len(replies) == 1
    assert replies[0].text == tr("support.did_you_mean")
    assert payloads(replies[0]) == ["kb:carrier", "kb:collected", "complaint", "menu"]
    assert flat_buttons(replies[0])[0].label == tr("kb.carrier.title")


async def test_unknown_text_gets_the_fallback_menu_with_a_human(harness: Harness) -> None:
    replies = await harness.say("1", "xyz qwerty 123")
    assert replies[0].text == tr("core.fallback")
    assert "talk" in payloads(replies[0])


async def test_order_intent_starts_the_order_flow(harness: Harness) -> None:
    await harness.consent("1")
    replies = await harness.say("1", "toi muon dat tranh")
    assert tr("order.ask.full_name") in joined(replies)
    state = await harness.state("1")
    assert state is not None and state.flow == "order"


async def test_delete_intent_only_asks_for_confirmation(harness: Harness) -> None:
    await harness.consent("1")
    before = await harness.customer("1")
    replies = await harness.say("1", "xoa du lieu cua toi di")
    assert replies, "the delete intent must answer"
    route = APP.find_payload("rights:delete")
    if route is not None:
        # The lead's confirmation screen: explain, then confirm / keep buttons.
        assert "rights:delete:confirm" in payloads(replies[-1])
    else:
        assert replies[0].text == kb_reply("kb.delete.answer")
    after = await harness.customer("1")
    assert before is not None and after is not None and after.id == before.id
    assert "customer_erased" not in [a.action for a in await harness.rows(AuditEntry)]


async def test_greeting_and_thanks(harness: Harness) -> None:
    greeting = await harness.say("1", "chao shop")
    assert greeting[0].text == tr("support.greeting")
    assert {"order", "complaint", "talk", "kb"} <= set(payloads(greeting[0]))
    thanks = await harness.say("1", "cam on shop nhieu")
    assert texts(thanks) == [tr("support.thanks")]


async def test_intents_for_complaint_returns_and_staff(harness: Harness) -> None:
    await harness.consent("1")
    complaint = await harness.say("1", "toi muon khieu nai")
    assert complaint[0].text == tr("complaint.ask.category")
    await harness.press("1", "f:cancel")
    no_orders = await harness.say("1", "tranh bi hong muon doi tra")
    assert no_orders[0].text == kb_reply("kb.returns.answer")  # no order to return: the policy
    assert "0815336668" in no_orders[0].text
    staff = await harness.say("1", "cho minh noi chuyen voi nhan vien")
    thread = (await harness.rows(SupportThread))[0]
    assert tr("talk.opened", code=thread.code, hours="8:00–21:00") in texts(staff)


async def test_while_an_order_is_open_questions_are_answered_and_the_rest_relayed(
    harness: Harness,
) -> None:
    code = await harness.place_order("1")
    answer = await harness.say("1", "shop luu thong tin cua minh bao lau")
    assert texts(answer) == [kb_reply("kb.retention.answer")]
    relayed = await harness.say("1", "khi nao thi giao tranh cho em duoc a")
    assert tr("order.relayed", code=code) in texts(relayed)
    assert any("khi nao thi giao tranh" in m.text for m in relayed if m.chat_id == STAFF)
    small_talk = await harness.say("1", "cam on shop")
    assert tr("order.relayed", code=code) in texts(small_talk)


def test_support_text_handlers_run_before_the_order_relay() -> None:
    handlers = APP.text_handlers
    assert handlers[0] is consent.typed_consent  # only while the consent question is pending
    assert handlers[1] is rights.typed_deletion_answer  # only while "delete?" is pending
    assert handlers[2] is talk.relay_open_thread
    assert handlers[3] is products.browse_words  # "xem tranh", "giá", a described work
    assert handlers[4] is answers.understand_free_text
    assert handlers.index(order_flow.relay_to_staff) > 4


# ---- complaints -----------------------------------------------------------------------------


async def test_urgent_complaint_lifecycle(harness: Harness) -> None:
    await harness.consent("1")
    ask = await harness.say("1", "/complaint")
    assert payloads(ask[0]) == [
        "f:pick:leak",
        "f:pick:service",
        "f:pick:other",
        "f:cancel",
    ]
    await harness.press("1", "f:pick:leak")
    await harness.say("1", "Có người lạ gọi điện, biết tên và địa chỉ của em")
    await harness.photo("1", "photo-ref-1")
    await harness.press("1", "f:skip")
    filed = await harness.press("1", "f:ok")

    ticket = (await harness.rows(Ticket))[0]
    assert re.fullmatch(r"KN-[2-9A-Z]{5}", ticket.code)
    assert ticket.urgent and ticket.status == "open" and ticket.category == "leak"
    assert ticket.photos == ["photo-ref-1"]
    alert = next(m for m in filed if m.chat_id == STAFF)
    assert alert.html and alert.tag == f"ticket:{ticket.id}"
    assert tr("support.staff.urgent_title", code=ticket.code) in alert.text
    assert mention(STAFF_USER) in alert.text  # admins mentioned (rendered by the adapter)
    assert "biết tên và địa chỉ" in alert.text
    assert payloads(alert) == [f"cp:{ticket.id}:ack", f"cp:{ticket.id}:resolve"]
    assert tr("complaint.received_urgent", code=ticket.code, hours="8:00–21:00") in texts(filed)

    acked = await harness.staff(payload=f"cp:{ticket.id}:ack")
    to_customer = [m for m in acked if m.chat_id == "1"]
    what = complaints.describe("vi", ticket)
    assert texts(to_customer) == [tr("support.notify.acknowledged", code=ticket.code, what=what)]
    edit = next(m for m in acked if m.chat_id == STAFF)
    assert edit.edit_of is not None and payloads(edit) == [f"cp:{ticket.id}:resolve"]
    again = await harness.staff(payload=f"cp:{ticket.id}:ack")
    assert [m.chat_id for m in again] == [STAFF]  # "already being handled", customer not bothered

    prompt = await harness.staff(payload=f"cp:{ticket.id}:resolve")
    assert f"/resolve {ticket.code}" in prompt[0].text
    prompt_id = staff_sent(harness, f"resolve:{ticket.id}")[-1]
    response = "Cửa hàng đã kiểm tra: dữ liệu của anh/chị không bị lộ từ hệ thống của chúng tôi."
    resolved = await harness.staff(response, reply_to=prompt_id)
    to_customer = [m for m in resolved if m.chat_id == "1"]
    assert len(to_customer) == 1 and response in to_customer[0].text
    assert ticket.code in to_customer[0].text
    assert tr("support.staff.resolved", code=ticket.code) in joined(resolved)

    stored = (await harness.rows(Ticket))[0]
    assert stored.status == "resolved" and stored.response == response
    assert stored.acknowledged_by == f"staff:console:{STAFF_USER}"
    listing = await harness.say("1", "/complaints")
    assert ticket.code in listing[0].text and tr("support.status.resolved") in listing[0].text
    actions = [a.action for a in await harness.rows(AuditEntry)]
    assert {"ticket_created", "ticket_acknowledged", "ticket_resolved"} <= set(actions)


async def test_normal_complaint_with_typed_category_and_resolve_command(harness: Harness) -> None:
    await harness.consent("1")
    await harness.say("1", "/complaint")
    bad = await harness.say("1", "loai nao cung duoc")
    assert tr("complaint.category.unknown") in bad[0].text
    await harness.say("1", "don hang giao cham")  # typed words choose "order or service"
    await harness.say("1", "Tranh giao trễ 5 ngày so với hẹn")
    await harness.press("1", "f:skip")
    filed = await harness.press("1", "f:ok")
    ticket = (await harness.rows(Ticket))[0]
    assert ticket.category == "service" and not ticket.urgent
    alert = next(m for m in filed if m.chat_id == STAFF)
    assert tr("support.staff.title", code=ticket.code) in alert.text
    assert mention(STAFF_USER) not in alert.text
    assert tr("complaint.received", code=ticket.code, hours="8:00–21:00") in texts(filed)

    usage = await harness.staff(f"/resolve {ticket.code}")
    assert texts(usage) == [staff_tr("support.staff.resolve_usage")]
    done = await harness.staff(f"/resolve {ticket.code.lower()} Xin lỗi quý khách, đã tặng voucher")
    customer_msg = next(m for m in done if m.chat_id == "1")
    assert "đã tặng voucher" in customer_msg.text
    stored = (await harness.rows(Ticket))[0]
    assert stored.status == "resolved" and stored.acknowledged_at is not None
    unknown = await harness.staff("/resolve KN-22222 hello")
    assert texts(unknown) == [staff_tr("support.staff.not_found")]


async def test_description_limits_and_the_complaint_needs_consent(harness: Harness) -> None:
    first = await harness.say("1", "/complaint")
    assert first[0].text == tr("consent.needed_first")
    resumed = await harness.press("1", "consent:yes")
    assert tr("complaint.ask.category") in texts(resumed)
    await harness.press("1", "f:pick:other")
    too_long = await harness.say("1", "x" * 2001)
    assert tr("support.text.too_long", limit=2000, length=2001) in too_long[0].text
    photo_first = await harness.photo("1", "ref")
    assert tr("support.text.photo_first") in photo_first[0].text


async def test_a_stale_category_button_is_refused_politely(harness: Harness) -> None:
    await harness.consent("1")
    replies = await harness.press("1", "f:pick:leak")
    assert texts(replies) == [tr("flow.stale_button")]
    assert await harness.rows(Ticket) == []


async def test_customers_cannot_press_staff_ticket_buttons(harness: Harness) -> None:
    ticket = await file_complaint(harness, "1", "other", "Nội dung khiếu nại")
    replies = await harness.press("1", f"cp:{ticket.id}:ack")
    assert texts(replies) == [tr("staff.not_allowed")]
    assert (await harness.rows(Ticket))[0].status == "open"


# ---- re-announcement ----------------------------------------------------------------------


async def reannounce_at(harness: Harness, moment: datetime) -> tuple[int, list[Outbound]]:
    """Move the clock to `moment` and run the periodic job once, as the runtime would."""
    harness.clock.advance(moment - harness.clock())
    mark = harness.mark()
    async with UnitOfWork(harness.sessions) as uow:
        count = await complaints.reannounce_due(uow, APP, harness.config, harness.clock())
        await uow.commit()
    await harness.runtime.idle()
    return count, harness.since(mark)


async def test_unacknowledged_tickets_are_reannounced_urgent_after_1h_normal_after_4h(
    harness: Harness,
) -> None:
    urgent = await file_complaint(harness, "1", "leak", "Nghi bị lộ số điện thoại")
    normal = await file_complaint(harness, "2", "service", "Giao sai tranh")
    acked = await file_complaint(harness, "3", "other", "Vấn đề khác")
    await harness.staff(payload=f"cp:{acked.id}:ack")
    start = urgent.created_at
    assert harness.clock() - start < timedelta(minutes=10)

    count, sent = await reannounce_at(harness, start + timedelta(minutes=59))
    assert count == 0 and sent == []

    count, sent = await reannounce_at(harness, start + timedelta(hours=1))
    assert count == 1
    (message,) = sent
    assert message.chat_id == STAFF and urgent.code in message.text
    assert message.tag == f"ticket:{urgent.id}" and mention(STAFF_USER) in message.text
    assert payloads(message) == [f"cp:{urgent.id}:ack", f"cp:{urgent.id}:resolve"]
    alert_id = staff_sent(harness, f"ticket:{urgent.id}")[0]
    threaded = next(s for s in harness.adapter.sent if s.message is message)
    assert threaded.reply_to_message_id == alert_id  # under the original alert

    count, _ = await reannounce_at(harness, start + timedelta(hours=1, minutes=30))
    assert count == 0  # the urgent one was announced half an hour ago

    count, sent = await reannounce_at(harness, normal.created_at + timedelta(hours=4))
    assert count == 2
    assert {m.tag for m in sent} == {f"ticket:{urgent.id}", f"ticket:{normal.id}"}
    assert all(acked.code not in m.text for m in sent)  # acknowledged: never re-announced

    # Acknowledged later: no longer re-announced either.
    await harness.staff(payload=f"cp:{urgent.id}:ack")
    count, sent = await reannounce_at(harness, harness.clock() + timedelta(hours=8))
    assert count == 1 and normal.code in sent[0].text


async def test_reannounce_intervals_can_come_from_the_config(harness: Harness) -> None:
    from dataclasses import dataclass

    from handlers.context import ShopConfig

    @dataclass(frozen=True)
    class Configured(ShopConfig):
        ticket_reannounce_after: timedelta = timedelta(hours=2)
        urgent_ticket_reannounce_after: timedelta = timedelta(minutes=15)

    assert complaints.reannounce_intervals(Configured()) == (
        timedelta(hours=2),
        timedelta(minutes=15),
    )
    assert complaints.reannounce_intervals(ShopConfig()) == (timedelta(hours=4), timedelta(hours=1))


# ---- returns and warranty -----------------------------------------------------------------


async def test_return_request_is_tied_to_the_customers_own_order(harness: Harness) -> None:
    own_code = await harness.place_order("1")
    other_code = await harness.place_order("2", full_name="Trần Văn An", phone="0987 654 321")
    orders = {o.code: o for o in await harness.orders()}
    own, other = orders[own_code], orders[other_code]

    choose = await harness.say("1", "/return")
    assert choose[0].text == tr("returns.choose_order")
    assert payloads(choose[0]) == [f"rt:{own.id}"]
    assert own_code in flat_buttons(choose[0])[0].label
    assert other_code not in joined(choose)

    forged = await harness.press("1", f"rt:{other.id}")
    assert texts(forged) == [tr("returns.order_not_found")]
    typed = await harness.say("1", f"/return {other_code}")
    assert texts(typed) == [tr("returns.order_not_found")]

    kind = await harness.press("1", f"rt:{own.id}")
    assert kind[0].text == tr("returns.ask.kind", order=own_code)
    assert payloads(kind[0])[:2] == ["f:pick:return", "f:pick:warranty"]
    await harness.say("1", "bao hanh")
    await harness.say("1", "Khung tranh bị nứt ở góc dưới")
    await harness.photo("1", "crack-photo")
    await harness.press("1", "f:skip")
    filed = await harness.press("1", "f:ok")

    (ticket,) = await harness.rows(Ticket)
    assert ticket.kind == "warranty" and ticket.order_id == own.id
    assert re.fullmatch(r"BH-[2-9A-Z]{5}", ticket.code)
    alert = next(m for m in filed if m.chat_id == STAFF)
    assert own_code in alert.text and "Khung tranh bị nứt" in alert.text
    assert payloads(alert) == [f"cp:{ticket.id}:ack", f"cp:{ticket.id}:resolve"]
    order_alert_id = staff_sent(harness, f"order:{own.id}")[0]
    sent = next(s for s in harness.adapter.sent if s.message is alert)
    assert sent.reply_to_message_id == order_alert_id  # threaded under the order's alert
    assert tr(
        "returns.received",
        code=ticket.code,
        order=own_code,
        what=tr("support.kind.warranty"),
        hours="8:00–21:00",
    ) in texts(filed)

    # Same lifecycle as complaints.
    acked = await harness.staff(payload=f"cp:{ticket.id}:ack")
    assert any(m.chat_id == "1" and ticket.code in m.text for m in acked)
    done = await harness.staff(f"/resolve {ticket.code} Shop sẽ qua lấy tranh để sửa khung")
    assert any(m.chat_id == "1" and "sửa khung" in m.text for m in done)
    assert not any(m.chat_id == "2" for m in acked + done)


async def test_return_by_code_and_typed_kind(harness: Harness) -> None:
    code = await harness.place_order("1")
    kind = await harness.say("1", f"/return {code.lower()}")
    assert kind[0].text == tr("returns.ask.kind", order=code)
    await harness.say("1", "doi tra")
    await harness.say("1", "Màu tranh khác ảnh mẫu")
    await harness.press("1", "f:skip")
    await harness.press("1", "f:ok")
    (ticket,) = await harness.rows(Ticket)
    assert ticket.kind == "return" and ticket.code.startswith("DT-")


@pytest.mark.parametrize("command", ["/return vav-am24z", "/help me", "/delete my data"])
async def test_a_command_does_not_switch_the_reply_language(harness: Harness, command: str) -> None:
    """Commands are the bot's English words; a Vietnamese customer keeps Vietnamese replies."""
    await harness.say("1", "chao shop")
    await harness.say("1", command)
    (reply,) = await harness.say("1", "/menu")
    assert reply.text == tr("core.menu_intro")


def test_kind_and_category_parsers() -> None:
    assert returns.parse_kind(StepInput("Bảo hành")) == "warranty"
    assert returns.parse_kind(StepInput("muon doi tra")) == "return"
    assert returns.parse_kind(StepInput("return")) == "return"
    assert complaints.parse_category(StepInput("Lộ dữ liệu")) == "leak"
    assert complaints.parse_category(StepInput("dich vu te")) == "service"
    assert complaints.parse_category(StepInput("khác")) == "other"
    with pytest.raises(InvalidInput):
        returns.parse_kind(StepInput("???"))


@given(st.text(max_size=200))
def test_choice_parsers_never_raise_anything_but_invalid_input(text: str) -> None:
    for parser in (complaints.parse_category, returns.parse_kind, complaints.parse_text):
        try:
            value = parser(StepInput(text))
        except InvalidInput as error:
            assert error.key
        else:
            assert isinstance(value, str) and value


# ---- talk to staff ------------------------------------------------------------------------


async def test_talk_to_staff_relays_both_ways_until_staff_close(harness: Harness) -> None:
    await harness.consent("1")
    opened = await harness.say("1", "/staff")
    (thread,) = await harness.rows(SupportThread)
    assert re.fullmatch(r"TK-[2-9A-Z]{5}", thread.code)
    alert = next(m for m in opened if m.chat_id == STAFF)
    assert alert.tag == f"support:{thread.id}" and payloads(alert) == [f"tk:{thread.id}:close"]
    again = await harness.press("1", "talk")
    assert texts(again) == [tr("talk.already_open", code=thread.code)]

    # Customer → staff, threaded under the alert; even a privacy question goes to the human.
    relayed = await harness.say("1", "shop luu thong tin cua minh bao lau vay")
    copy = next(m for m in relayed if m.chat_id == STAFF)
    assert "shop luu thong tin cua minh bao lau vay" in copy.text and copy.tag == alert.tag
    alert_id = staff_sent(harness, alert.tag)[0]
    assert (
        next(s for s in harness.adapter.sent if s.message is copy).reply_to_message_id == alert_id
    )
    assert texts([m for m in relayed if m.chat_id == "1"]) == [tr("talk.relayed")]

    # Staff → customer: a reply to the alert, "TK-… text", and /reply.
    first = await harness.staff("Dạ shop chào anh/chị ạ", reply_to=alert_id)
    assert any(m.chat_id == "1" and "Dạ shop chào anh/chị ạ" in m.text for m in first)
    second = await harness.staff(f"{thread.code.lower()} Anh/chị cần hỗ trợ gì ạ?")
    assert any(m.chat_id == "1" and "cần hỗ trợ gì" in m.text for m in second)
    third = await harness.staff(f"/reply {thread.code} Em gửi thêm thông tin nhé")
    assert any(m.chat_id == "1" and "gửi thêm thông tin" in m.text for m in third)

    rows = await harness.rows(RelayedMessage)
    assert [(r.thread, r.direction) for r in rows] == [(f"support:{thread.id}", "in")] + [
        (f"support:{thread.id}", "out")
    ] * 3

    closed = await harness.staff(payload=f"tk:{thread.id}:close")
    assert texts([m for m in closed if m.chat_id == "1"]) == [tr("talk.closed", code=thread.code)]
    edit = next(m for m in closed if m.chat_id == STAFF and m.edit_of is not None)
    assert payloads(edit) == []
    assert (await harness.rows(SupportThread))[0].closed_by == f"staff:console:{STAFF_USER}"

    after = await harness.say("1", "shop luu thong tin cua minh bao lau")
    assert texts(after) == [kb_reply("kb.retention.answer")]  # no longer relayed
    late = await harness.staff(f"{thread.code} còn đó không ạ")
    assert texts(late) == [staff_tr("talk.staff.already_closed", code=thread.code)]


async def test_a_typed_code_that_names_nothing_is_said_so(harness: Harness) -> None:
    """Staff type a thread's or a ticket's code with a typo: they are told, nothing is sent."""
    for typed, key in (
        ("TK-22222 dạ em gọi lại ngay", "talk.staff.not_found"),
        ("kn 22222 shop đang kiểm tra ạ", "support.staff.not_found"),
    ):
        replies = await harness.staff(typed)
        assert texts(replies) == [staff_tr(key)]
    assert await harness.rows(RelayedMessage) == []


async def test_talk_needs_consent_and_staff_chatter_is_ignored(harness: Harness) -> None:
    first = await harness.press("1", "talk")
    assert first[0].text == tr("consent.needed_first")
    assert await harness.rows(SupportThread) == []
    assert await harness.staff("mọi người ơi ăn trưa chưa") == []


# ---- flood control ------------------------------------------------------------------------


async def test_a_burst_from_one_customer_is_muted_while_another_is_served(
    harness: Harness,
) -> None:
    await harness.consent("2")
    mark = harness.mark()
    for i in range(30):
        await harness.runtime.receive(harness.inbound("1", f"tin nhan so {i}"))
        if i % 10 == 5:
            await harness.runtime.receive(harness.inbound("2", "shop luu thong tin bao lau"))
    await harness.runtime.idle()
    sent = harness.since(mark)
    to_1 = [m for m in sent if m.chat_id == "1"]
    notices = [m for m in to_1 if m.text == tr("core.too_fast")]
    assert len(notices) == 1
    assert len(to_1) == abuse.FLOOD_LIMIT + 1  # 20 answered, one notice, 9 dropped silently
    assert to_1[-1].text == tr("core.too_fast")
    to_2 = [m for m in sent if m.chat_id == "2"]
    assert texts(to_2) == [kb_reply("kb.retention.answer")] * 3

    # Still within the window: dropped without a word, before it is even stored (a flood
    # never fills the inbox that other customers' messages wait in).
    harness.clock.advance(seconds=30)
    mark = harness.mark()
    stored = len(await harness.inbox_rows())
    assert await harness.runtime.receive(harness.inbound("1", "alo")) is False
    await harness.runtime.idle()
    assert harness.since(mark) == [] and len(await harness.inbox_rows()) == stored

    # Once the window has passed, the customer is served again.
    harness.clock.advance(seconds=61)
    replies = await harness.say("1", "shop luu thong tin bao lau")
    assert texts(replies) == [kb_reply("kb.retention.answer")]


async def test_staff_are_never_flood_limited(harness: Harness) -> None:
    mark = harness.mark()
    for _ in range(abuse.FLOOD_LIMIT + 5):
        await harness.runtime.receive(harness.staff_inbound("/tickets"))
    await harness.runtime.idle()
    sent = harness.since(mark)
    assert len(sent) == abuse.FLOOD_LIMIT + 5
    assert tr("core.too_fast") not in texts(sent)


def test_flood_control_window() -> None:
    control = abuse.FloodControl(limit=3, window=timedelta(seconds=10))
    now = datetime(2026, 1, 1, tzinfo=UTC)
    key = ("console", "1")
    assert [control.hit(key, now) for _ in range(3)] == ["ok"] * 3
    assert control.hit(key, now) == "notice"
    assert control.hit(key, now + timedelta(seconds=5)) == "drop"  # dropped ones count too
    assert control.hit(("console", "2"), now) == "ok"
    assert control.hit(key, now + timedelta(seconds=7)) == "drop"  # still 4 in the window
    assert control.hit(key, now + timedelta(seconds=30)) == "ok"
    assert [control.hit(key, now + timedelta(seconds=31)) for _ in range(3)] == [
        "ok",
        "ok",
        "notice",  # a new burst gets a new notice
    ]


# ---- lock / unlock ------------------------------------------------------------------------


async def test_lock_blocks_everything_but_data_rights_and_unlock_restores(
    harness: Harness,
) -> None:
    code = await harness.place_order("1")
    locked = await harness.staff(f"/lock {code} gửi tin nhắn quấy rối nhân viên")
    customer = await harness.customer("1")
    assert customer is not None and customer.locked_at is not None
    assert texts(locked) == [staff_tr("lock.staff.locked", target=code, customer=customer.id)]

    notice = await harness.say("1", "/order")
    assert texts(notice) == [tr("core.locked")]
    assert await harness.say("1", "/order") == []
    assert await harness.say("1", "shop luu thong tin bao lau") == []
    assert await harness.say("1", "/complaint") == []
    assert await harness.press("1", "talk") == []
    privacy = await harness.say("1", "/privacy")  # a locked_ok route keeps working
    assert privacy and privacy[0].text == tr("policy.full_text")
    if "mydata" in APP.commands:
        assert await harness.say("1", "/mydata")
    complaints_list = await harness.say("1", "/complaints")
    assert complaints_list

    unlocked = await harness.staff(f"/unlock {code}")
    assert tr("lock.unlocked") in texts(unlocked)
    assert await harness.say("1", "/order")
    state = await harness.state("1")
    assert state is not None and state.flow == "order"
    actions = [a.action for a in await harness.rows(AuditEntry)]
    assert "customer_locked" in actions and "customer_unlocked" in actions
    assert "locked_message_dropped" in actions


async def test_lock_by_phone_and_by_ticket_code(harness: Harness) -> None:
    await harness.place_order("1", phone="0912 345 678")
    by_phone = await harness.staff("/lock 0912 345 678 spam liên tục")
    assert (await harness.customer("1")).locked_at is not None  # type: ignore[union-attr]
    assert "🔒" in by_phone[0].text
    await harness.staff("/unlock +84912345678")
    assert (await harness.customer("1")).locked_at is None  # type: ignore[union-attr]

    ticket = await file_complaint(harness, "2", "other", "Khiếu nại thử")
    await harness.staff(f"/lock {ticket.code} phá hoại hệ thống")
    assert (await harness.customer("2")).locked_at is not None  # type: ignore[union-attr]
    assert (await harness.customer("1")).locked_at is None  # type: ignore[union-attr]

    twice = await harness.staff(f"/lock {ticket.code} lần nữa")
    assert texts(twice) == [staff_tr("lock.staff.already_locked", target=ticket.code)]
    missing_reason = await harness.staff(f"/lock {ticket.code}")
    assert texts(missing_reason) == [staff_tr("lock.staff.usage")]
    nobody = await harness.staff("/lock VAV-22222 lý do")
    assert texts(nobody) == [staff_tr("lock.staff.not_found", target="VAV-22222")]
    usage = await harness.staff("/lock ai đó")
    assert texts(usage) == [staff_tr("lock.staff.usage")]


async def test_non_admin_lock_is_refused_and_audited(harness: Harness) -> None:
    code = await harness.place_order("1")
    refused = await harness.staff(f"/lock {code} lý do", user_id="901")
    assert texts(refused) == [tr("staff.admin_only")]
    assert (await harness.customer("1")).locked_at is None  # type: ignore[union-attr]
    from_customer = await harness.say("2", f"/lock {code} lý do")
    assert texts(from_customer) == [tr("staff.not_allowed")]
    refusals = [a for a in await harness.rows(AuditEntry) if a.action == "refused"]
    assert [a.detail for a in refusals] == ["admin-only:/lock", "staff-only:/lock"]


# ---- data rights hooks --------------------------------------------------------------------


async def test_erasing_a_customers_tickets_clears_their_personal_fields(harness: Harness) -> None:
    ticket = await file_complaint(harness, "1", "leak", "Số điện thoại bị lộ", photo="p1")
    await harness.staff(f"/resolve {ticket.code} Đã kiểm tra và xử lý")
    await harness.say("1", "/staff")
    customer = await harness.customer("1")
    assert customer is not None
    async with UnitOfWork(harness.sessions) as uow:
        listed = await uow.support.tickets_of(customer.id)
        assert [t.code for t in listed] == [ticket.code]
        tags = await complaints.erase_customer_tickets(uow, customer.id, harness.clock())
        await uow.commit()
    (thread,) = await harness.rows(SupportThread)
    assert sorted(tags) == sorted([f"ticket:{ticket.id}", f"support:{thread.id}"])
    (erased,) = await harness.rows(Ticket)
    assert erased.description is None and erased.response is None and erased.photos == []
    assert erased.customer_id is None and erased.erased_at is not None
    assert erased.code == ticket.code and erased.status == "resolved"  # anonymous stub stays
    assert thread.customer_id is None and thread.closed_at is not None


# ---- catalogs -----------------------------------------------------------------------------


def _support_catalog(lang: str) -> dict[str, str]:
    with (LOCALES_DIR / lang / "LC_MESSAGES" / "support.po").open("rb") as fh:
        return {str(m.id): str(m.string) for m in read_po(fh, locale=lang) if m.id}


def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


def test_support_catalogs_match_in_both_languages() -> None:
    vi, en = _support_catalog("vi"), _support_catalog("en")
    assert vi.keys() == en.keys()
    for key in vi:
        assert vi[key].strip() and en[key].strip(), key
        assert _placeholders(vi[key]) == _placeholders(en[key]), key


def test_support_keys_do_not_shadow_other_domains() -> None:
    for lang in LANGUAGES:
        ours = set(_support_catalog(lang))
        for po in (LOCALES_DIR / lang / "LC_MESSAGES").glob("*.po"):
            if po.name == "support.po":
                continue
            with po.open("rb") as fh:
                theirs = {str(m.id) for m in read_po(fh, locale=lang) if m.id}
            assert not ours & theirs, (po.name, sorted(ours & theirs))


_KEY_LITERAL = re.compile(
    r"""["']((?:support|complaint|returns|talk|lock|menu|help|kb|core|flow|staff|consent|order|"""
    r"""rights|policy)\.[a-z_]+(?:\.[a-z_]+)*)["']"""
)


def test_every_message_id_used_by_support_exists_in_both_languages() -> None:
    from handlers.i18n import catalog

    used: set[str] = set()
    for source in SUPPORT_DIR.glob("*.py"):
        used |= set(_KEY_LITERAL.findall(source.read_text(encoding="utf-8")))
    # Ids built from data: kinds, statuses, categories, choices, actions, intents.
    used |= {f"support.kind.{k}" for k in ("complaint", "return", "warranty")}
    used |= {f"support.status.{s}" for s in ("open", "acknowledged", "resolved")}
    used |= {f"complaint.category.{c}" for c in complaints.CATEGORIES}
    used |= {label for label, _ in complaints.CATEGORY_CHOICES + returns.KIND_CHOICES}
    used |= {f"support.action.{a}" for a in answers.ACTION_PAYLOADS}
    used |= {f"support.intent.{i}" for i in answers.INTENT_PAYLOADS}
    used |= {item.label_key for item in APP.menu}
    used |= {key for _, key in APP.help_entries() + APP.help_entries(staff=True)}
    assert len(used) > 80
    for lang in LANGUAGES:
        missing = sorted(k for k in used if k not in catalog(lang))
        assert not missing, (lang, missing)

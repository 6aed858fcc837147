"""Free-text understanding in whole conversations (issue 11): leak reports open the urgent
complaint even while an order is open, questions about deletion get the answer instead of
the delete screen, and returns/shipping/payment/contact questions get a policy answer with the
hotline — with or without an order.

Everything runs through the real pipeline (`Harness`) on a fresh database per test.
"""

from __future__ import annotations

from handlers.messages import STAFF, Outbound
from storage.models import AuditEntry, RelayedMessage
from storage.support import Ticket
from tests.helpers import Harness, first_line, flat_buttons, joined, kb_reply, texts, tr

LEAK = "co nguoi goi dien biet ten va dia chi cua toi, co phai shop lam lo khong?"
HOTLINE = "0815336668"


LANGS = ("vi", "en")  # the reply follows the language of the question


def payloads(messages: list[Outbound]) -> list[str]:
    return [b.payload for m in messages for b in flat_buttons(m)]


# ---- leak reports --------------------------------------------------------------------------


async def test_leak_report_while_an_order_is_open_files_an_urgent_ticket(
    harness: Harness,
) -> None:
    code = await harness.place_order("1")
    mark = harness.mark()
    replies = await harness.say("1", LEAK)
    assert tr("order.relayed", code=code) not in texts(replies)
    assert tr("complaint.noted_leak") in joined(replies)
    assert tr("complaint.noted_text") in joined(replies)
    # Category and description are taken from the message: the form asks for photos next.
    assert first_line("complaint.ask.photos") in joined(replies)
    assert first_line("complaint.ask.category") not in joined(replies)
    await harness.press("1", "f:skip")
    filed = await harness.press("1", "f:ok")

    (ticket,) = await harness.rows(Ticket)
    assert ticket.urgent and ticket.category == "leak" and ticket.kind == "complaint"
    assert ticket.description == LEAK
    assert tr("complaint.received_urgent", code=ticket.code, hours="8:00–21:00") in texts(filed)
    staff = [m.text for m in harness.since(mark) if m.chat_id == STAFF]
    assert any(tr("support.staff.urgent_title", code=ticket.code) in text for text in staff)
    # Nothing went into the order's staff thread.
    assert not [r for r in await harness.rows(RelayedMessage) if r.thread.startswith("order:")]


async def test_english_leak_report_without_an_order(harness: Harness) -> None:
    await harness.consent("1")
    replies = await harness.say("1", "someone called me and knew my address")
    assert tr("complaint.noted_leak", "en") in joined(replies)  # answered in English
    state = await harness.state("1")
    assert state is not None and state.flow == "complaint" and state.step == "photos"


async def test_short_leak_report_still_asks_for_the_description(harness: Harness) -> None:
    await harness.consent("1")
    replies = await harness.say("1", "toi bi lo thong tin")
    assert tr("complaint.noted_leak") in joined(replies)
    assert tr("complaint.noted_text") not in joined(replies)
    assert first_line("complaint.ask.description") in joined(replies)


async def test_a_complaint_about_a_leak_does_not_ask_the_category_again(
    harness: Harness,
) -> None:
    await harness.consent("1")
    replies = await harness.say("1", "toi muon khieu nai viec lo thong tin")
    assert first_line("complaint.ask.category") not in joined(replies)
    assert first_line("complaint.ask.description") in joined(replies)
    await harness.say("1", "Co nguoi la goi dien doc dung ten va so nha cua toi")
    await harness.press("1", "f:skip")
    await harness.press("1", "f:ok")
    (ticket,) = await harness.rows(Ticket)
    assert ticket.category == "leak" and ticket.urgent


async def test_a_plain_complaint_still_asks_the_category(harness: Harness) -> None:
    await harness.consent("1")
    replies = await harness.say("1", "toi muon khieu nai")
    assert replies[0].text == tr("complaint.ask.category")


async def test_a_service_complaint_takes_category_and_description_from_the_message(
    harness: Harness,
) -> None:
    await harness.consent("1")
    text = "tranh giao cham qua 2 tuan, nhan vien hen roi khong goi lai, minh muon phan anh"
    replies = await harness.say("1", text)
    category = tr("complaint.category.service")
    assert tr("complaint.noted", category=category) in joined(replies)
    await harness.press("1", "f:skip")
    await harness.press("1", "f:ok")
    (ticket,) = await harness.rows(Ticket)
    assert ticket.category == "service" and not ticket.urgent and ticket.description == text


# ---- questions are not commands ------------------------------------------------------------


async def test_when_is_my_data_destroyed_answers_and_offers_the_button(harness: Harness) -> None:
    await harness.consent("1")
    replies = await harness.say("1", "bao gio thi du lieu cua toi bi huy")
    assert texts(replies) == [kb_reply("kb.retention.answer")]
    assert "rights:delete" in payloads(replies)  # the action, offered
    assert "rights:delete:confirm" not in payloads(replies)  # not the confirmation screen
    assert "customer_erased" not in [a.action for a in await harness.rows(AuditEntry)]


async def test_deletion_questions_get_answers_and_requests_the_confirmation(
    harness: Harness,
) -> None:
    await harness.consent("1")
    for question in ("shop xoa du lieu cua toi khi nao?", "how do I delete my data?"):
        replies = await harness.say("1", question)
        assert "rights:delete:confirm" not in payloads(replies), question
        assert texts(replies)[0] in {
            kb_reply(f"kb.{topic}.answer", lang)
            for topic in ("retention", "delete")
            for lang in LANGS
        }
    request = await harness.say("1", "xoa du lieu cua toi di")
    assert "rights:delete:confirm" in payloads(request)
    assert await harness.customer("1") is not None  # only asked, nothing erased


async def test_a_question_about_my_data_gets_the_answer_with_the_button(
    harness: Harness,
) -> None:
    replies = await harness.say("1", "shop dang luu nhung thong tin gi cua toi vay?")
    assert texts(replies) == [kb_reply("kb.collected.answer")]
    assert "mydata" in payloads(replies)


# ---- no dead ends: returns, shipping, payment, contact -------------------------------------


async def test_returns_question_without_any_order_gets_the_policy_and_hotline(
    harness: Harness,
) -> None:
    replies = await harness.say("1", "chinh sach doi tra cua shop the nao")
    assert texts(replies) == [kb_reply("kb.returns.answer")]
    assert HOTLINE in replies[0].text
    assert "talk" in payloads(replies)
    assert "returns" not in payloads(replies)  # no order to return: no dead-end button
    broken = await harness.say("1", "tranh bi vo roi")
    assert texts(broken) == [kb_reply("kb.returns.answer")]


async def test_returns_with_an_order(harness: Harness) -> None:
    await harness.place_order("1")
    question = await harness.say("1", "tranh bi vo khi nhan thi sao?")
    assert texts(question) == [kb_reply("kb.returns.answer")]
    assert "returns" in payloads(question)
    request = await harness.say("1", "tranh giao den bi vo khung roi")
    assert tr("returns.choose_order") in texts(request)


async def test_shipping_and_payment_answered_without_an_order_relayed_with_one(
    harness: Harness,
) -> None:
    shipping = await harness.say("1", "phi ship ve da nang bao nhieu")
    assert texts(shipping) == [kb_reply("kb.shipping.answer")]
    payment = await harness.say("1", "co thanh toan khi nhan hang dc ko")
    assert texts(payment) == [kb_reply("kb.payment.answer")]
    assert HOTLINE in shipping[0].text and HOTLINE in payment[0].text
    code = await harness.place_order("2")
    relayed = await harness.say("2", "phi ship ve da nang bao nhieu")
    assert tr("order.relayed", code=code) in texts(relayed)


async def test_opening_hours_come_from_the_settings(harness: Harness) -> None:
    replies = await harness.say("1", "shop mo cua may gio")
    assert texts(replies) == [kb_reply("kb.contact.answer", hours="8:00–21:00")]
    assert "8:00–21:00" in replies[0].text and HOTLINE in replies[0].text

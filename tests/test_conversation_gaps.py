"""Issue #11's remaining gaps, typed the way customers type: the answer to "cancel the
draft?" said in a sentence, a leak report while a staff thread or a form is open, a typed
confirmation of /delete, "ko can anh" at the photos step, and no prompt naming a «Xong»
button that is not shown."""

from __future__ import annotations

import pytest

from handlers.engine import position
from handlers.support.understanding import understand_sentences
from storage.support import Ticket
from tests.helpers import Harness, first_line, joined, kb_reply, texts, tr


async def where(harness: Harness, user: str = "1") -> str | None:
    state = await harness.state(user)
    return None if state is None else f"{state.flow}:{position(state)}"


@pytest.mark.parametrize("yes", ["vâng hủy giúp em", "uh thoi", "đúng, hủy đơn", "ok huy di"])
async def test_a_sentence_saying_yes_to_cancel_cancels(harness: Harness, yes: str) -> None:
    await harness.order_until("1", "address")
    assert tr("flow.cancel_ask") in texts(await harness.say("1", "hủy"))
    replies = await harness.say("1", yes)
    assert tr("flow.cancelled") in texts(replies)
    assert await harness.state("1") is None and await harness.orders() == []


@pytest.mark.parametrize("no", ["ko, dat tiep", "khong huy dau", "no, continue"])
async def test_a_sentence_saying_no_to_cancel_keeps_the_step(harness: Harness, no: str) -> None:
    await harness.order_until("1", "address")
    await harness.say("1", "huy")
    replies = await harness.say("1", no)
    assert await where(harness) == "order:address"
    assert first_line("order.ask.address") in replies[-1].text
    customer_said = (await harness.state("1")).data["values"]  # type: ignore[union-attr]
    assert no not in customer_said.values()


@pytest.mark.parametrize(
    "said", ["thoi ko mua nua", "thôi em không đặt nữa đâu", "huy don giup em"]
)
async def test_a_change_of_mind_is_a_cancel_not_the_request(harness: Harness, said: str) -> None:
    await harness.order_until("1", "request")
    replies = await harness.say("1", said)
    assert tr("flow.cancel_ask") in texts(replies)
    assert "request" not in (await harness.state("1")).data["values"]  # type: ignore[union-attr]


async def test_leak_report_while_a_staff_thread_is_open_opens_the_urgent_complaint(
    harness: Harness,
) -> None:
    await harness.consent("1")
    await harness.say("1", "/staff")
    replies = await harness.say("1", "co nguoi goi dien biet het thong tin cua em, shop de lo a?")
    assert tr("talk.relayed") not in texts(replies)
    assert tr("complaint.noted_leak") in joined(replies)
    assert await where(harness) == "complaint:photos"
    await harness.say("1", "bỏ qua")
    await harness.say("1", "xác nhận")
    (ticket,) = await harness.rows(Ticket)
    assert (ticket.category, ticket.urgent) == ("leak", True)


async def test_plain_text_in_a_staff_thread_is_still_relayed(harness: Harness) -> None:
    await harness.consent("1")
    await harness.say("1", "/staff")
    replies = await harness.say("1", "em muon hoi ve khung tranh")
    assert tr("talk.relayed") in texts(replies)


async def test_leak_report_in_the_middle_of_the_order_form_is_not_an_address(
    harness: Harness,
) -> None:
    await harness.order_until("1", "address")
    replies = await harness.say("1", "hom qua co dua goi dien biet sdt cua e, shop lam lo a")
    assert tr("complaint.noted_leak") in joined(replies)
    assert await where(harness) == "complaint:photos"
    customer = await harness.customer("1")
    assert customer is not None and customer.address is None


@pytest.mark.parametrize("yes", ["co, xoa di", "vâng xóa hết đi", "yes delete it"])
async def test_typed_confirmation_of_delete_erases(harness: Harness, yes: str) -> None:
    await harness.consent("1")
    await harness.say("1", "/delete")
    replies = await harness.say("1", yes)
    assert tr("rights.delete.done", reference="")[:20] in joined(replies)
    assert await harness.customer("1") is None


@pytest.mark.parametrize("no", ["khong", "thoi khoi, giu lai", "hủy", "no keep it"])
async def test_typed_refusal_of_delete_keeps_everything(harness: Harness, no: str) -> None:
    await harness.consent("1")
    await harness.say("1", "/delete")
    replies = await harness.say("1", no)
    assert {tr("rights.delete.kept", lang) for lang in ("vi", "en")} & set(texts(replies))
    assert await harness.customer("1") is not None and await harness.state("1") is None


async def test_a_later_yes_never_erases_once_the_delete_question_was_left(
    harness: Harness,
) -> None:
    await harness.consent("1")
    await harness.say("1", "/delete")
    await harness.say("1", "shop o dau")  # something else: the question is dropped
    await harness.say("1", "co")
    assert await harness.customer("1") is not None


@pytest.mark.parametrize("said", ["ko can anh", "khong co anh nao", "ko can anh dau a"])
async def test_no_photos_answers_go_to_the_review(harness: Harness, said: str) -> None:
    await harness.order_until("1", "photos")
    replies = await harness.say("1", said)
    assert await where(harness) == "order:review"
    assert tr("order.review_title") in joined(replies)


async def test_the_photo_step_names_only_the_button_it_shows(harness: Harness) -> None:
    await harness.order_until("1", "photos")
    replies = await harness.say("1", "đây là ảnh")
    assert "«Xong»" not in joined(replies)
    assert tr("flow.need_photo", limit=5, button=tr("flow.btn.skip")) in joined(replies)
    await harness.photo("1", "photo-1")  # now the button is «Xong»
    replies = await harness.say("1", "anh day")
    assert tr("flow.need_photo", limit=5, button=tr("flow.btn.done")) in joined(replies)


async def test_typed_help_at_a_step_shows_the_commands_and_the_step_again(
    harness: Harness,
) -> None:
    await harness.order_until("1", "phone")
    replies = await harness.say("1", "help")
    assert tr("help.intro") in joined(replies)
    assert first_line("order.ask.phone") in replies[-1].text
    assert await where(harness) == "order:phone"


async def test_typed_consent_in_a_sentence(harness: Harness) -> None:
    await harness.say("1", "dat hang")
    replies = await harness.say("1", "ok e dong y nhe")
    assert await harness.has_consent("1")
    assert first_line("order.ask.full_name") in joined(replies)


async def test_refusal_in_a_sentence_is_not_consent(harness: Harness) -> None:
    await harness.say("1", "/start")
    await harness.say("1", "em chua dong y dau")
    assert not await harness.has_consent("1")


async def test_returning_customer_types_no_enter_new(harness: Harness) -> None:
    await harness.place_order("1")
    await harness.say("1", "/order")
    replies = await harness.say("1", "khong, nhap moi")
    assert await where(harness) == "order:full_name"
    assert first_line("order.ask.full_name") in joined(replies)


async def test_a_question_ending_in_vay_shop_at_the_phone_step_is_answered(
    harness: Harness,
) -> None:
    await harness.order_until("1", "phone")
    replies = await harness.say("1", "sao phai cho sdt vay shop")
    assert kb_reply("kb.purpose.answer") in texts(replies)
    assert first_line("order.ask.phone") in replies[-1].text
    assert await where(harness) == "order:phone"


def test_each_clear_sentence_of_a_long_message_is_understood() -> None:
    found = understand_sentences("Shop o dau vay? Phi ship ra Da Nang bao nhieu?")
    assert [r.key for r in found] == ["contact", "shipping"]
    assert understand_sentences("alo") == []

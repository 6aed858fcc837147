"""The order conversation follows the customer, not the script (issue: typed cancel and menu
words, questions and chatter mid-form, natural answers, the first message carried, typed
consent, returning customers)."""

from __future__ import annotations

import pytest

from handlers.engine import position
from tests.helpers import Harness, first_line, joined, texts, tr


async def where(harness: Harness, user: str = "1") -> str | None:
    state = await harness.state(user)
    return position(state) if state is not None else None


async def values(harness: Harness, user: str = "1") -> dict[str, object]:
    state = await harness.state(user)
    assert state is not None
    return dict(state.data.get("values", {}))


@pytest.mark.parametrize("word", ["huy", "hủy", "Hủy", "thôi", "cancel"])
async def test_typed_cancel_at_the_first_step_cancels_and_stores_nothing(
    harness: Harness, word: str
) -> None:
    await harness.order_until("1", "full_name")
    replies = await harness.say("1", word)
    assert tr("flow.cancelled") in texts(replies)
    assert await harness.state("1") is None
    customer = await harness.customer("1")
    assert customer is not None and customer.full_name is None


async def test_typed_cancel_with_answers_asks_once_then_cancels(harness: Harness) -> None:
    await harness.order_until("1", "address")
    replies = await harness.say("1", "huy nhe")
    assert tr("flow.cancel_ask") in texts(replies)
    assert await where(harness) == "address"
    replies = await harness.say("1", "co")
    assert tr("flow.cancelled") in texts(replies)
    assert await harness.state("1") is None and await harness.orders() == []


async def test_typed_cancel_then_going_on_keeps_the_draft(harness: Harness) -> None:
    await harness.order_until("1", "address")
    await harness.say("1", "thoi")
    replies = await harness.say("1", "ko, tiep tuc")
    assert await where(harness) == "address"
    replies = await harness.say("1", "12 Hàng Bông, Hoàn Kiếm, Hà Nội")
    assert first_line("order.ask.email") in joined(replies)
    assert (await values(harness))["address"] == "12 Hàng Bông, Hoàn Kiếm, Hà Nội"


async def test_typed_menu_shows_the_menu_and_keeps_the_step(harness: Harness) -> None:
    await harness.order_until("1", "address")
    replies = await harness.say("1", "menu")
    assert tr("core.menu_intro") in texts(replies)
    assert first_line("order.ask.address") in replies[-1].text
    assert await where(harness) == "address"


@pytest.mark.parametrize(
    ("step", "said"),
    [
        ("full_name", "alo"),
        ("full_name", "shop oi"),
        ("address", "gia bao nhieu"),
        ("address", "shop o dau vay"),
        ("request", "shop o dau"),
        ("phone", "How is my data used? Who will see my phone number?"),
    ],
)
async def test_questions_and_chatter_are_answered_never_stored(
    harness: Harness, step: str, said: str
) -> None:
    await harness.order_until("1", step)
    before = await values(harness)
    replies = await harness.say("1", said)
    assert await where(harness) == step
    assert await values(harness) == before
    # The question again (in English after an English remark: the reply follows the text).
    assert any(first_line(f"order.ask.{step}", lang) in replies[-1].text for lang in ("vi", "en"))
    assert len(replies) >= 2  # an answer to the remark, then the question again


async def test_phone_inside_a_sentence_is_taken(harness: Harness) -> None:
    await harness.order_until("1", "phone")
    await harness.say("1", "sdt e la 0912 345 678")
    assert (await values(harness))["phone"] == "+84912345678"


@pytest.mark.parametrize("said", ["ko co email", "k co mail a", "không có ạ", "-"])
async def test_no_email_answers(harness: Harness, said: str) -> None:
    await harness.order_until("1", "email")
    replies = await harness.say("1", said)
    assert first_line("order.ask.request") in joined(replies)
    assert (await values(harness))["email"] is None


@pytest.mark.parametrize("said", ["ok dung roi", "đúng rồi", "chốt", "chot don nhe"])
async def test_review_accepts_natural_confirmations(harness: Harness, said: str) -> None:
    await harness.order_until("1", "review")
    await harness.say("1", said)
    assert len(await harness.orders()) == 1


@pytest.mark.parametrize(
    ("said", "step"),
    [
        ("sua dia chi", "address"),
        ("thoi e doi dia chi khac nhe", "address"),
        ("đổi sđt", "phone"),
        ("change phone", "phone"),
        ("sửa tên", "full_name"),
    ],
)
async def test_review_edits_by_field_name(harness: Harness, said: str, step: str) -> None:
    await harness.order_until("1", "review")
    replies = await harness.say("1", said)
    assert await where(harness) == step
    assert any(first_line(f"order.ask.{step}", lang) in replies[-1].text for lang in ("vi", "en"))


async def test_review_edit_buttons_name_their_field(harness: Harness) -> None:
    replies = await harness.order_until("1", "review")
    labels = [b.label for row in replies[-1].buttons for b in row]
    assert tr("flow.btn.edit_field", field="địa chỉ") in labels
    assert not any(label == "Sửa 3" for label in labels)


@pytest.mark.parametrize("said", ["dong y", "Đồng ý", "ok", "i agree"])
async def test_typed_consent_counts(harness: Harness, said: str) -> None:
    await harness.say("1", "/start")
    replies = await harness.say("1", said)
    assert tr("consent.thanks") in texts(replies)
    assert await harness.has_consent("1")


async def test_the_consent_notice_is_not_shown_twice(harness: Harness) -> None:
    first = await harness.say("1", "/start")
    again = await harness.say("1", "/order")
    assert tr("consent.notice") in texts(first)
    assert tr("consent.notice") not in texts(again)
    assert tr("consent.question") in texts(again)
    replies = await harness.say("1", "dong y")
    assert first_line("order.ask.full_name") in joined(replies)  # the parked wish goes on


async def test_the_opening_message_is_carried_to_the_request_step(harness: Harness) -> None:
    await harness.consent("1")
    await harness.say("1", "e muon dat 1 buc tranh son dau")
    for answer in ("Nguyễn Thị Lan", "0912345678", "12 Hàng Bông, Hoàn Kiếm, Hà Nội", "ko"):
        replies = await harness.say("1", answer)
    assert await where(harness) == "request"
    assert tr("flow.suggested", value="tranh son dau") in replies[-1].text
    await harness.say("1", "dung roi")
    assert (await values(harness))["request"] == "tranh son dau"


async def test_returning_customer_types_yes_to_saved_details_and_is_not_asked_email(
    harness: Harness,
) -> None:
    await harness.place_order("1")  # skipped the email
    await harness.say("1", "/order")
    assert await where(harness) == "saved"
    replies = await harness.say("1", "vang dung thong tin cu")
    assert await where(harness) == "request"
    assert first_line("order.ask.request") in joined(replies)
    assert (await values(harness))["email"] is None

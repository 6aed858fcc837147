"""The dialogue engine's generic behaviour, seen through the order flow (a real 6-step flow):
cancel, back, re-ask with the reason, skip, review with "edit N", confirm, stale buttons,
prefill for returning customers, draft expiry and side commands in the middle of a flow."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from handlers.messages import STAFF, Outbound
from tests.helpers import (
    DEFAULT_ANSWERS,
    ORDER_STEPS,
    FakeClock,
    Harness,
    first_line,
    in_order,
    joined,
    shop_config,
    to_chat,
    tr,
)

ASK = {name: first_line(f"order.ask.{name}") for name in ORDER_STEPS}
REVIEW = tr("order.review_title")


def field_name(number: int) -> str:
    """How the edit button of order field `number` names it ("Sửa số điện thoại")."""
    label = tr(f"order.field.{ORDER_STEPS[number - 1]}")
    return label[:1].lower() + label[1:]


def asks(replies: list[Outbound], step: str) -> bool:
    """The last reply to the customer asks the question of `step` (or shows the review)."""
    own = [m for m in replies if m.chat_id != STAFF]
    return bool(own) and (REVIEW if step == "review" else ASK[step]) in own[-1].text


# ---- /cancel ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("where", "how"),
    [
        *((where, "button") for where in [*ORDER_STEPS, "review"]),
        ("full_name", "/cancel"),
        ("email", "/cancel"),
        ("review", "/CANCEL@VietArtViewBot"),
    ],
)
async def test_cancel_anywhere_deletes_the_draft(harness: Harness, where: str, how: str) -> None:
    await harness.order_until("1", where)
    assert await harness.state("1") is not None
    cancel = harness.payload_of("1", "flow.btn.cancel")

    if how == "button":
        replies = await harness.press("1", cancel)
    else:
        replies = await harness.say("1", how)

    assert tr("flow.cancelled") in joined(replies)
    assert await harness.state("1") is None
    assert await harness.orders() == []
    # The same button again (an old message) says there is nothing left to cancel.
    assert tr("flow.nothing_to_cancel") in joined(await harness.press("1", cancel))


async def test_cancel_while_consent_is_pending(harness: Harness) -> None:
    replies = await harness.say("1", "/order")
    assert tr("consent.needed_first") in joined(replies)
    assert await harness.state("1") is not None
    assert tr("flow.cancelled") in joined(await harness.say("1", "/cancel"))
    assert await harness.state("1") is None


async def test_cancel_command_with_nothing_to_cancel(harness: Harness) -> None:
    await harness.consent("1")
    assert tr("flow.nothing_to_cancel") in joined(await harness.say("1", "/cancel"))


# ---- back -------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["quay lại", "Quay lai", "back", "button"])
async def test_back_returns_to_the_previous_question(harness: Harness, how: str) -> None:
    await harness.order_until("1", "address", phone="0987 654 321")
    if how == "button":
        replies = await harness.press("1", harness.payload_of("1", "flow.btn.back"))
    else:
        replies = await harness.say("1", how)
    assert asks(replies, "phone")
    state = await harness.state("1")
    assert state is not None and state.step == "phone"
    assert "phone" not in state.data["values"]

    # Answering again continues from there.
    assert asks(await harness.say("1", "0912 000 111"), "address")


async def test_back_at_the_first_question_says_so(harness: Harness) -> None:
    await harness.order_until("1", "full_name")
    replies = await harness.say("1", "quay lại")
    assert tr("flow.at_first_step") in joined(replies)
    assert asks(replies, "full_name")


# ---- invalid input ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("step", "answer", "reason"),
    [
        ("full_name", "Lan 123", "validation.name.digits"),
        ("full_name", "x", None),
        ("phone", "số của em", "validation.phone.letters"),
        ("phone", "0912", None),
        ("address", "https://maps.app.goo.gl/abc", "validation.address.link"),
        ("email", "lan@", "validation.email.invalid"),
    ],
)
async def test_invalid_answer_is_asked_again_with_the_reason(
    harness: Harness, step: str, answer: str, reason: str | None
) -> None:
    await harness.order_until("1", step)
    replies = await harness.say("1", answer)
    (reply,) = to_chat(replies, "1")
    assert ASK[step] in reply.text  # the same question again…
    if reason is not None:
        assert reply.text.startswith(tr(reason).splitlines()[0])  # …after the reason
    else:
        assert not reply.text.startswith(ASK[step])  # some reason comes first
    state = await harness.state("1")
    assert state is not None and state.step == step
    assert step not in state.data["values"]


# ---- optional steps ---------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["button", "bỏ qua", "bo qua", "skip", "Bỏ qua"])
async def test_optional_step_can_be_skipped(harness: Harness, how: str) -> None:
    await harness.order_until("1", "email")
    if how == "button":
        replies = await harness.press("1", harness.payload_of("1", "flow.btn.skip"))
    else:
        replies = await harness.say("1", how)
    assert asks(replies, "request")
    await harness.say("1", "SD-001")
    review = await harness.say("1", "xong")
    assert f"{tr('order.field.email')}: {tr('flow.value_empty')}" in joined(review)


async def test_skip_button_on_a_required_step_is_refused(harness: Harness) -> None:
    await harness.order_until("1", "phone")
    replies = await harness.press("1", "f:skip")
    assert tr("flow.stale_button") in joined(replies)
    assert asks(replies, "phone")


async def test_photos_are_collected_until_done(harness: Harness) -> None:
    await harness.order_until("1", "photos")
    replies = await harness.photo("1", "photo-1")
    assert tr("flow.collected", count=1, limit=5) in joined(replies)
    assert tr("flow.btn.done") in [b.label for b in harness.last_buttons("1")]
    await harness.photo("1", "photo-2")
    review = await harness.say("1", "xong")
    assert REVIEW in joined(review)
    assert tr("flow.value_count", count=2) in joined(review)


# ---- review, edit, confirm ---------------------------------------------------------------------


@pytest.mark.parametrize("how", ["button", "sửa 2", "sua 2", "edit 2", "Sửa mục 2"])
async def test_edit_a_field_from_the_review_and_return_to_it(harness: Harness, how: str) -> None:
    await harness.order_until("1", "review")
    if how == "button":
        payload = harness.payload_of("1", "flow.btn.edit_field", field=field_name(2))
        replies = await harness.press("1", payload)
    else:
        replies = await harness.say("1", how)
    assert asks(replies, "phone")

    replies = await harness.say("1", "0987 654 321")
    # Straight back to the review (not on to the address), with the new value.
    review = joined(to_chat(replies, "1"))
    assert REVIEW in review
    assert "0987 654 321" in review and "0912 345 678" not in review
    assert DEFAULT_ANSWERS["address"] in review  # the other answers are kept


async def test_edit_number_out_of_range(harness: Harness) -> None:
    await harness.order_until("1", "review")
    replies = await harness.say("1", "sửa 9")
    assert tr("flow.no_such_field", count=6) in joined(replies)
    assert REVIEW in joined(replies)


async def test_unclear_answer_on_the_review(harness: Harness) -> None:
    await harness.order_until("1", "review")
    replies = await harness.say("1", "hmm để em nghĩ")
    assert tr("flow.review_unclear") in joined(replies)
    assert REVIEW in joined(replies)
    assert await harness.orders() == []


@pytest.mark.parametrize("how", ["button", "xác nhận", "xac nhan", "confirm"])
async def test_confirm_creates_the_order(harness: Harness, how: str) -> None:
    await harness.order_until("1", "review", full_name="Trần Hưng Đạo")
    if how == "button":
        replies = await harness.press("1", harness.payload_of("1", "flow.btn.confirm"))
    else:
        replies = await harness.say("1", how)
    (order,) = await harness.orders()
    assert order.full_name == "Trần Hưng Đạo" and order.phone == "+84912345678"
    assert order.product_code == "SD-001"
    assert order.code in joined(to_chat(replies, "1"))
    assert order.code in joined(to_chat(replies, STAFF))
    assert await harness.state("1") is None
    # A second confirm (double tap on the old button) does not create a second order.
    await harness.press("1", "f:ok")
    assert len(await harness.orders()) == 1


# ---- stale buttons ----------------------------------------------------------------------------


async def test_button_of_an_earlier_question_is_stale(harness: Harness) -> None:
    await harness.order_until("1", "review")
    edit_payload = harness.payload_of("1", "flow.btn.edit_field", field=field_name(1))
    await harness.press("1", "f:ok")
    # The flow is over: the old review's buttons do nothing but say so.
    replies = await harness.press("1", edit_payload)
    assert tr("flow.stale_button") in joined(replies)
    assert len(await harness.orders()) == 1


async def test_review_button_while_answering_a_question_is_stale(harness: Harness) -> None:
    await harness.order_until("1", "address")
    replies = await harness.press("1", "f:edit:1")
    assert tr("flow.stale_button") in joined(replies)
    assert asks(replies, "address")
    state = await harness.state("1")
    assert state is not None and state.step == "address"


@pytest.mark.parametrize("payload", ["f:edit:x", "f:nonsense", "zz:1", "os:1:done"])
async def test_forged_or_unknown_payloads_are_answered_politely(
    harness: Harness, payload: str
) -> None:
    await harness.order_until("1", "review")
    replies = await harness.press("1", payload)
    assert to_chat(replies, "1")
    assert await harness.orders() == []


# ---- returning customers --------------------------------------------------------------------


async def test_returning_customer_is_offered_the_saved_details(harness: Harness) -> None:
    await harness.place_order("1", full_name="Phạm Thị Mai", email="mai@example.com")
    replies = await harness.say("1", "/order")
    offer = joined(replies)
    assert tr("flow.saved_intro") in offer
    assert "Phạm Thị Mai" in offer and "mai@example.com" in offer
    assert {tr("flow.btn.use_saved"), tr("flow.btn.enter_new")} <= {
        b.label for b in harness.last_buttons("1")
    }

    replies = await harness.press("1", harness.payload_of("1", "flow.btn.use_saved"))
    assert asks(replies, "request")  # name, phone, address and email are filled in
    await harness.say("1", "LUA-002")
    review = joined(await harness.say("1", "bỏ qua"))
    assert "Phạm Thị Mai" in review and "mai@example.com" in review


@pytest.mark.parametrize("typed", ["dùng thông tin đã lưu", "dung thong tin da luu", "ok"])
async def test_saved_details_accepted_by_typing(harness: Harness, typed: str) -> None:
    await harness.place_order("1")
    await harness.say("1", "/order")
    replies = await harness.say("1", typed)
    assert asks(replies, "email")  # the first question without a saved answer


@pytest.mark.parametrize("how", ["button", "nhập mới", "new"])
async def test_returning_customer_can_enter_new_details(harness: Harness, how: str) -> None:
    await harness.place_order("1", full_name="Phạm Thị Mai")
    await harness.say("1", "/order")
    if how == "button":
        replies = await harness.press("1", harness.payload_of("1", "flow.btn.enter_new"))
    else:
        replies = await harness.say("1", how)
    assert asks(replies, "full_name")
    for step in ORDER_STEPS:
        answer = {"full_name": "Đỗ Văn Hùng"}.get(step, DEFAULT_ANSWERS[step])
        replies = await harness.say("1", answer)
    review = joined(replies)
    assert "Đỗ Văn Hùng" in review and "Phạm Thị Mai" not in review


async def test_unclear_answer_to_the_saved_offer(harness: Harness) -> None:
    await harness.place_order("1")
    await harness.say("1", "/order")
    replies = await harness.say("1", "gì vậy")
    assert tr("flow.choose_button") in joined(replies)
    assert tr("flow.saved_intro") in joined(replies)


# ---- expiry -----------------------------------------------------------------------------------


async def test_abandoned_draft_expires_after_the_configured_ttl(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    h = Harness(sessions, clock=clock, config=shop_config(draft_ttl=timedelta(hours=2)))
    try:
        await h.order_until("1", "address", full_name="Bùi Thị Xuân")

        # Within the TTL (counted from the last answer), the draft is kept.
        clock.advance(hours=1, minutes=59)
        assert asks(await h.say("1", "quay lại"), "phone")
        clock.advance(hours=1, minutes=59)
        assert asks(await h.say("1", "0912 345 678"), "address")

        clock.advance(hours=2, seconds=1)
        replies = await h.say("1", "12 Hàng Bông, Hà Nội")
        assert tr("flow.expired") in joined(replies)
        assert not asks(replies, "email")
        state = await h.state("1")
        assert state is None or "Bùi Thị Xuân" not in str(state.data)
        # Starting again begins at the first question.
        assert asks(await h.say("1", "/order"), "full_name")
    finally:
        await h.close()


# ---- side commands ----------------------------------------------------------------------------


async def test_help_in_the_middle_of_a_flow_asks_the_question_again(harness: Harness) -> None:
    await harness.order_until("1", "address")
    replies = await harness.say("1", "/help")
    assert in_order(replies, [tr("help.intro"), tr("flow.reminder"), ASK["address"]])
    state = await harness.state("1")
    assert state is not None and state.step == "address"
    assert asks(await harness.say("1", DEFAULT_ANSWERS["address"]), "email")


async def test_unknown_command_in_the_middle_of_a_flow(harness: Harness) -> None:
    await harness.order_until("1", "phone")
    replies = await harness.say("1", "/foo")
    assert tr("core.unknown_command", command="foo") in joined(replies)
    assert asks(replies, "phone")


async def test_language_switch_mid_flow_reasks_in_english(harness: Harness) -> None:
    await harness.order_until("1", "phone")
    replies = await harness.say("1", "/lang en")
    assert tr("lang.changed", "en") in joined(replies)
    assert first_line("order.ask.phone", "en") in joined(replies)


async def test_empty_message_mid_flow(harness: Harness) -> None:
    await harness.order_until("1", "address")
    replies = await harness.say("1", "   ")
    assert tr("core.empty_message") in joined(replies)
    assert asks(replies, "address")


async def test_shared_contact_answers_the_phone_question(harness: Harness) -> None:
    await harness.order_until("1", "phone")
    replies = await harness.contact("1", "84987654321", "Lan")
    assert asks(replies, "address")
    state = await harness.state("1")
    assert state is not None and state.data["values"]["phone"] == "+84987654321"

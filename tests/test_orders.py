"""Orders, the customer's side (issue 3): every step's validation through the real flow, the
Vietnamese phone formats, optional email, catalog products, photos, the console channel end to
end, returning customers, deep links from the shop's website, and `/orders` / `/order CODE`.

Everything runs through `Runtime.receive` with the `Harness` (tests/helpers.py); what a test
checks is what the customer (or the staff chat) would see, plus the stored order.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from handlers.engine import position
from handlers.messages import STAFF, Outbound
from storage.models import Order
from tests.helpers import (
    DEFAULT_ANSWERS,
    Harness,
    first_line,
    flat_buttons,
    joined,
    run_cli,
    texts,
    to_chat,
    tr,
)

CODE = re.compile(r"\bVAV-[2-9A-HJ-KM-NP-Z]{5}\b")
SD_001 = "SD-001 — Phố cổ Hà Nội mùa thu — sơn dầu trên toan, 60×90 cm — 4.500.000 ₫"
SD_001_EN = "SD-001 — Hanoi Old Quarter in Autumn — oil on canvas, 60×90 cm — 4.500.000 ₫"


# ---- local helpers ----------------------------------------------------------------------------


async def only_order(harness: Harness) -> Order:
    orders = await harness.orders()
    assert len(orders) == 1, [o.code for o in orders]
    return orders[0]


async def draft(harness: Harness, chat_id: str = "1") -> tuple[str, dict[str, Any]]:
    state = await harness.state(chat_id)
    assert state is not None, "the draft is gone"
    return position(state), dict(state.data.get("values", {}))


def review_of(replies: list[Outbound], lang: str = "vi") -> str:
    """The review screen among `replies` (the message that starts with the review title)."""
    title = tr("order.review_title", lang)
    screens = [m.text for m in replies if m.text.startswith(title)]
    assert screens, texts(replies)
    return screens[-1]


def staff_alert(replies: list[Outbound]) -> Outbound:
    alerts = [m for m in to_chat(replies, STAFF) if "🆕" in m.text]
    assert len(alerts) == 1, texts(replies)
    return alerts[0]


async def walk(harness: Harness, user_id: str, answers: list[Any]) -> list[Outbound]:
    """Send each answer: a string is typed, ("contact", phone) shares a contact, ("press",
    payload) presses a button. Returns the replies to the last one."""
    replies: list[Outbound] = []
    for answer in answers:
        if isinstance(answer, tuple) and answer[0] == "contact":
            replies = await harness.contact(user_id, answer[1])
        elif isinstance(answer, tuple) and answer[0] == "press":
            replies = await harness.press(user_id, answer[1])
        else:
            replies = await harness.say(user_id, answer)
    return replies


# ---- validation of every step, through the flow ---------------------------------------------

# (step, what the customer types, the localized reason they get, its parameters)
REJECTED = [
    ("full_name", "Nguyễn Văn 3", "validation.name.digits", {}),
    ("full_name", "Lan 1990", "validation.name.digits", {}),
    ("full_name", "https://facebook.com/lan.nguyen", "validation.name.link", {}),
    ("full_name", "www.lan.vn", "validation.name.link", {}),
    ("full_name", "L", "validation.name.too_short", {"min": 2}),
    ("full_name", "Lan 😊", "validation.name.invalid_chars", {}),
    ("full_name", "Nguyễn <b>Lan</b>", "validation.name.invalid_chars", {}),
    ("phone", "số nhà em", "validation.phone.letters", {}),
    ("phone", "0912 345", "validation.phone.too_short", {}),
    ("phone", "0912 345 678 9999", "validation.phone.too_long", {}),
    ("phone", "0000 000 000", "validation.phone.invalid", {}),
    ("phone", "0912+345678", "validation.phone.invalid", {}),
    ("address", "12", "validation.address.too_short", {"min": 5}),
    ("address", "123456", "validation.address.not_address", {}),
    ("address", "Hanoi", "validation.address.not_address", {}),
    ("address", "https://maps.app.goo.gl/xyz", "validation.address.link", {}),
    ("email", "lan@", "validation.email.invalid", {}),
    ("email", "lan nguyen@gmail.com", "validation.email.invalid", {}),
    ("request", "x" * 2001, "validation.request.too_long", {"max": 2000}),
    ("photos", "đây là ảnh", "flow.need_photo", {"limit": 5, "button": "Bỏ qua"}),  # no «Xong» yet
]


@pytest.mark.parametrize(
    ("step", "answer", "reason", "params"),
    REJECTED,
    ids=[
        f"{step}-{reason.rsplit('.', 1)[-1]}-{n}" for n, (step, _, reason, _) in enumerate(REJECTED)
    ],
)
async def test_a_rejected_answer_gets_the_reason_and_the_same_question_and_keeps_the_draft(
    harness: Harness, step: str, answer: str, reason: str, params: dict[str, object]
) -> None:
    await harness.order_until("1", step)
    before = await draft(harness)
    assert before[0] == step

    replies = await harness.say("1", answer)

    assert len(replies) == 1
    message = replies[0].text
    assert message.startswith(tr(reason, "vi", **params))  # the reason first …
    assert first_line(f"order.ask.{step}") in message  # … then the same question again
    assert await draft(harness) == before  # nothing answered so far is lost


async def test_rejected_answers_in_english_are_explained_in_english(harness: Harness) -> None:
    await harness.consent("1")
    await harness.say("1", "/lang en")
    await harness.order_until("1", "phone")
    replies = await harness.say("1", "call me")
    assert replies[0].text.startswith(tr("validation.phone.letters", "en"))
    assert first_line("order.ask.phone", "en") in replies[0].text


PHONE_FORMATS = [
    ("0912 345 678", "+84912345678"),
    ("0912.345.678", "+84912345678"),
    ("0912-345-678", "+84912345678"),
    ("+84 912345678", "+84912345678"),
    ("84912345678", "+84912345678"),
    ("0084 912 345 678", "+84912345678"),
    ("024 3825 1234", "+842438251234"),  # Hà Nội landline
    ("(028) 3822 1234", "+842838221234"),  # Hồ Chí Minh City landline
]


@pytest.mark.parametrize(("typed", "e164"), PHONE_FORMATS, ids=[p[0] for p in PHONE_FORMATS])
async def test_vietnamese_phone_formats_are_stored_in_e164(
    harness: Harness, typed: str, e164: str
) -> None:
    await harness.place_order("1", phone=typed)
    assert (await only_order(harness)).phone == e164


@pytest.mark.parametrize("shared", ["84912345678", "+84912345678", "0912345678"])
async def test_a_shared_contact_is_stored_in_e164(harness: Harness, shared: str) -> None:
    prompt = await harness.order_until("1", "phone")
    asking = prompt[-1]
    assert asking.ask_contact and asking.contact_label == tr("flow.btn.share_contact")

    replies = await harness.contact("1", shared, name="Lan")
    assert tr("flow.contact_saved") in texts(replies)
    assert any(m.remove_keyboard for m in replies)  # the contact keyboard goes away
    assert first_line("order.ask.address") in joined(replies)

    await walk(harness, "1", [DEFAULT_ANSWERS["address"], "bỏ qua", "SD-001", "bỏ qua"])
    await harness.press("1", "f:ok")
    assert (await only_order(harness)).phone == "+84912345678"


async def test_a_multiline_address_is_stored_on_one_line(harness: Harness) -> None:
    await harness.place_order("1", address="12 Hàng Bông\nphường Hoàn Kiếm\n  Hà Nội  ")
    assert (await only_order(harness)).address == "12 Hàng Bông, phường Hoàn Kiếm, Hà Nội"


async def test_address_abbreviations_are_not_mistaken_for_links(harness: Harness) -> None:
    await harness.place_order("1", address="Số 5 ngõ 12, xã Tiền Phong, H.Me Linh, Hà Nội")
    assert (await only_order(harness)).address == "Số 5 ngõ 12, xã Tiền Phong, H.Me Linh, Hà Nội"


@pytest.mark.parametrize("wish", ["tôi muốn mua tranh", "dat hang", "I want to order"])
async def test_an_order_starts_from_free_text(harness: Harness, wish: str) -> None:
    await harness.consent("1")
    replies = await harness.say("1", wish)
    assert first_line("order.ask.full_name") in joined(replies) or first_line(
        "order.ask.full_name", "en"
    ) in joined(replies)
    assert (await draft(harness))[0] == "full_name"


async def test_the_order_button_of_the_menu_starts_an_order(harness: Harness) -> None:
    menu = await harness.consent("1")
    assert "order" in [b.payload for m in menu for b in flat_buttons(m)]
    replies = await harness.press("1", "order")
    assert first_line("order.ask.full_name") in joined(replies)


async def test_cancel_anywhere_in_the_order_drops_the_draft(harness: Harness) -> None:
    await harness.order_until("1", "address")
    replies = await harness.say("1", "/cancel")
    assert texts(replies) == [tr("flow.cancelled")]
    assert await harness.state("1") is None
    assert await harness.orders() == []
    assert to_chat(replies, STAFF) == []


async def test_the_cancel_button_drops_the_draft_from_the_review(harness: Harness) -> None:
    await harness.order_until("1", "review")
    replies = await harness.press("1", harness.payload_of("1", "flow.btn.cancel"))
    assert texts(replies) == [tr("flow.cancelled")]
    assert await harness.state("1") is None
    assert await harness.orders() == []


# ---- email: optional ------------------------------------------------------------------------


async def test_the_email_step_shows_a_skip_button(harness: Harness) -> None:
    replies = await harness.order_until("1", "email")
    asking = replies[-1]
    assert asking.text == tr("order.ask.email")
    assert tr("flow.btn.skip") in [b.label for b in flat_buttons(asking)]


@pytest.mark.parametrize(
    "skip",
    [
        ("press", "f:skip"),
        "bỏ qua",
        "bo qua",
        "skip",
        "Bỏ Qua",
        unicodedata.normalize("NFD", "bỏ qua"),  # some phone keyboards send decomposed text
        "không cần",
        "ko co",
        "bỏ qua nhé",
        "-",
    ],
    ids=["button", "bỏ qua", "bo qua", "skip", "Bỏ Qua", "NFD", "khong can", "ko co", "nhe", "-"],
)
async def test_email_can_be_skipped(harness: Harness, skip: Any) -> None:
    await harness.order_until("1", "email")
    replies = await walk(harness, "1", [skip])
    assert first_line("order.ask.request") in joined(replies)

    replies = await walk(harness, "1", ["SD-001", "bỏ qua"])
    assert f"4. {tr('order.field.email')}: {tr('flow.value_empty')}" in review_of(replies)
    await harness.press("1", "f:ok")
    assert (await only_order(harness)).email is None


async def test_a_valid_email_is_stored_normalized(harness: Harness) -> None:
    await harness.place_order("1", email="  Lan.Nguyen@Gmail.COM ")
    assert (await only_order(harness)).email == "Lan.Nguyen@gmail.com"


# ---- request: catalog codes and free text ----------------------------------------------------


@pytest.mark.parametrize("typed", ["SD-001", "sd 001", "Cho em hỏi mua bức sd001 ạ"])
async def test_a_known_catalog_code_shows_name_and_price_in_review_and_staff_alert(
    harness: Harness, typed: str
) -> None:
    review = await harness.order_until("1", "review", request=typed)
    assert SD_001 in review_of(review)

    replies = await harness.press("1", "f:ok")
    order = await only_order(harness)
    assert (order.product_code, order.price_vnd, order.request_text) == (
        "SD-001",
        4_500_000,
        typed,
    )
    alert = staff_alert(replies)
    assert f"<b>{tr('order.field.product')}:</b> {SD_001}" in alert.text
    assert "4.500.000 ₫" in joined(to_chat(replies, "1"))  # the confirmation names it too


async def test_an_english_customer_sees_the_english_product_name(harness: Harness) -> None:
    await harness.consent("1")
    await harness.say("1", "/lang en")
    replies = await harness.order_until("1", "review")
    assert SD_001_EN in review_of(replies, "en")


async def test_an_unknown_code_is_kept_as_plain_text(harness: Harness) -> None:
    request = "XY-999, tranh sen khoảng 60×90"
    review = await harness.order_until("1", "review", request=request)
    assert f"5. {tr('order.field.request')}: {request}\n" in review_of(review) + "\n"
    assert "₫" not in review_of(review)

    replies = await harness.press("1", "f:ok")
    order = await only_order(harness)
    assert (order.product_code, order.price_vnd, order.request_text) == (None, None, request)
    alert = staff_alert(replies).text
    assert f"<b>{tr('order.field.product')}:</b> —" in alert
    assert f"<b>{tr('order.field.request')}:</b> XY-999, tranh sen khoảng 60×90" in alert


# ---- photos ------------------------------------------------------------------------------------


async def test_up_to_five_photos_are_kept_and_a_sixth_is_not(harness: Harness) -> None:
    await harness.order_until("1", "photos")
    for n in range(1, 5):
        replies = await harness.photo("1", f"photo-{n}")
        assert tr("flow.collected", count=n, limit=5) in texts(replies)
    replies = await harness.photo("1", "photo-5")  # the fifth completes the step
    assert "6. " + tr("order.field.photos") + ": " + tr("flow.value_count", count=5) in review_of(
        replies
    )

    replies = await harness.photo("1", "photo-6")
    assert "photo-6" not in joined(replies)
    step, values = await draft(harness)
    assert values["photos"] == [f"photo-{n}" for n in range(1, 6)]

    replies = await harness.press("1", "f:ok")
    order = await only_order(harness)
    assert order.photos == [f"photo-{n}" for n in range(1, 6)]
    alert = staff_alert(replies).text
    assert "photo-5" in alert and "photo-6" not in alert


async def test_photos_can_be_finished_early_with_done(harness: Harness) -> None:
    await harness.order_until("1", "photos")
    await harness.photo("1", "photo-a", caption="mẫu màu")
    replies = await harness.say("1", "xong")
    assert "6. " + tr("order.field.photos") + ": " + tr("flow.value_count", count=1) in review_of(
        replies
    )
    await harness.press("1", "f:ok")
    assert (await only_order(harness)).photos == ["photo-a"]


# ---- the whole order through the console channel (python -m bot chat) ------------------------


@pytest.mark.subprocess
def test_a_full_order_on_the_console_channel(tmp_path: Path) -> None:
    out = run_cli(
        tmp_path,
        "chat",
        lines=[
            "/start",
            "1",  # ✅ Tôi đồng ý
            "/order",
            "Trần Văn Minh",
            "/contact 84987654321 Minh",
            "45 Láng Hạ, Đống Đa, Hà Nội",
            "bo qua",
            "SD-001",
            "xong",
            "1",  # ✅ Xác nhận
            "@staff 1",  # 🙋 Nhận đơn, pressed in the staff chat
        ],
    )
    customer_lines = [line for line in out.splitlines() if not line.startswith("[")]
    staff_lines = [line for line in out.splitlines() if line.startswith("[staff] ")]

    confirmation = next(line for line in customer_lines if line.startswith("🎉"))
    code = CODE.search(confirmation)
    assert code is not None, confirmation
    alert_title = next(line for line in staff_lines if "🆕" in line)
    assert code.group() in alert_title
    staff_text = "\n".join(staff_lines)
    for shown in ("Trần Văn Minh", "0987 654 321", "45 Láng Hạ, Đống Đa, Hà Nội", SD_001):
        assert shown in staff_text
    # Staff claimed it: the alert is edited in place ("✎ #id") and the customer is told.
    assert any(line.startswith("[staff] ✎ #") for line in staff_lines)
    assert tr("order.notify.claimed", code=code.group()) in out
    assert (tmp_path / "data" / "vietartview.db").exists()


# ---- returning customers -----------------------------------------------------------------------


async def test_a_returning_customer_reuses_saved_details_in_one_tap(harness: Harness) -> None:
    await harness.place_order(
        "1",
        full_name="Phạm Thu Hà",
        phone="0903 111 222",
        address="7 Tràng Thi, Hoàn Kiếm, Hà Nội",
        email="ha.pham@example.com",
    )

    offer = await harness.say("1", "/order")
    assert len(offer) == 1
    assert offer[0].text.startswith(tr("flow.saved_intro"))
    for shown in ("Phạm Thu Hà", "0903 111 222", "7 Tràng Thi, Hoàn Kiếm, Hà Nội", "ha.pham@"):
        assert shown in offer[0].text
    assert harness.payload_of("1", "flow.btn.use_saved") == "f:saved"

    replies = await harness.press("1", "f:saved")  # "dùng thông tin đã lưu"
    assert first_line("order.ask.request") in joined(replies)  # straight to the request
    replies = await walk(harness, "1", ["LUA-002", "bỏ qua"])
    review = review_of(replies)
    for shown in ("Phạm Thu Hà", "0903 111 222", "7 Tràng Thi, Hoàn Kiếm, Hà Nội"):
        assert shown in review
    assert "ha.pham@example.com" in review

    await harness.press("1", "f:ok")
    second = (await harness.orders())[-1]
    assert (second.full_name, second.phone, second.address, second.email) == (
        "Phạm Thu Hà",
        "+84903111222",
        "7 Tràng Thi, Hoàn Kiếm, Hà Nội",
        "ha.pham@example.com",
    )


async def test_a_returning_customer_typing_the_reuse_words_also_works(harness: Harness) -> None:
    await harness.place_order("1", full_name="Phạm Thu Hà")
    await harness.say("1", "/order")
    replies = await harness.say("1", "dung thong tin da luu")
    # The email was skipped last time: remembered, not asked again.
    assert first_line("order.ask.request") in joined(replies)


async def test_each_reused_detail_is_still_editable_from_the_review(harness: Harness) -> None:
    await harness.place_order("1", email="ha.pham@example.com")
    await harness.say("1", "/order")
    await harness.press("1", "f:saved")
    await walk(harness, "1", ["SD-004", "bỏ qua"])

    new_values = [
        (1, "full_name", "Lê Minh Châu", "Lê Minh Châu"),
        (2, "phone", "0987.654.321", "0987 654 321"),
        (3, "address", "99 Kim Mã, Ba Đình, Hà Nội", "99 Kim Mã, Ba Đình, Hà Nội"),
        (4, "email", "chau.le@example.org", "chau.le@example.org"),
    ]
    for number, step, typed, shown in new_values:
        replies = await harness.press("1", f"f:edit:{number}")
        assert first_line(f"order.ask.{step}") in joined(replies)
        replies = await harness.say("1", typed)
        assert f"{number}. {tr(f'order.field.{step}')}: {shown}" in review_of(replies)

    await harness.press("1", "f:ok")
    second = (await harness.orders())[-1]
    assert (second.full_name, second.phone, second.address, second.email) == (
        "Lê Minh Châu",
        "+84987654321",
        "99 Kim Mã, Ba Đình, Hà Nội",
        "chau.le@example.org",
    )
    first = (await harness.orders())[0]
    assert first.full_name == DEFAULT_ANSWERS["full_name"]  # the earlier order is untouched


async def test_a_returning_customer_may_enter_new_details_instead(harness: Harness) -> None:
    await harness.place_order("1")
    await harness.say("1", "/order")
    replies = await harness.press("1", "f:new")
    assert first_line("order.ask.full_name") in joined(replies)


# ---- deep links from the website ------------------------------------------------------------


async def test_a_deep_link_without_consent_asks_consent_first_then_continues(
    harness: Harness,
) -> None:
    replies = await harness.say("1", "/start p_SD-001")
    assert tr("consent.needed_first") in texts(replies)
    assert first_line("consent.notice") in joined(replies)
    assert first_line("order.ask.full_name") not in joined(replies)  # nothing collected yet

    replies = await harness.press("1", "consent:yes")
    assert tr("order.deep_link", product=SD_001) in texts(replies)
    assert first_line("order.ask.full_name") in joined(replies)

    replies = await walk(harness, "1", ["Đỗ Hải Yến", "0912 345 678", DEFAULT_ANSWERS["address"]])
    replies = await harness.say("1", "bỏ qua")  # email: next comes photos, request is pre-filled
    assert first_line("order.ask.photos") in joined(replies)
    replies = await harness.say("1", "bỏ qua")
    assert SD_001 in review_of(replies)
    await harness.press("1", "f:ok")
    assert (await only_order(harness)).product_code == "SD-001"


async def test_a_deep_link_with_consent_starts_the_order_with_the_product(
    harness: Harness,
) -> None:
    await harness.consent("1")
    replies = await harness.say("1", "/start p_SD-001")
    assert texts(replies)[0] == tr("order.deep_link", product=SD_001)
    assert first_line("order.ask.full_name") in joined(replies)
    assert first_line("consent.notice") not in joined(replies)
    step, values = await draft(harness)
    assert (step, values) == ("full_name", {"request": "SD-001"})


async def test_a_deep_link_to_an_unknown_product_starts_a_plain_order(harness: Harness) -> None:
    await harness.consent("1")
    replies = await harness.say("1", "/start p_XX-404")
    assert first_line("order.ask.full_name") in joined(replies)
    assert "XX-404" not in joined(replies)
    assert (await draft(harness))[1] == {}


# ---- /orders and /order CODE --------------------------------------------------------------------


async def test_orders_lists_only_the_customers_own_orders_with_statuses(
    harness: Harness,
) -> None:
    mine = [await harness.place_order("1"), await harness.place_order("1", request="DH-005")]
    theirs = await harness.place_order("2", full_name="Vũ Thị Hồng")
    await harness.staff(payload=f"os:{(await harness.orders())[0].id}:claimed")

    replies = await harness.say("1", "/orders")
    listing = texts(replies)[0]
    assert listing.startswith(tr("order.list_title"))
    assert f"{mine[0]} — " in listing and tr("order.status.claimed") in listing
    assert f"{mine[1]} — " in listing and tr("order.status.new") in listing
    assert theirs not in listing
    assert listing.index(mine[1]) < listing.index(mine[0])  # newest first


async def test_orders_without_any_order_offers_to_order(harness: Harness) -> None:
    await harness.consent("1")
    replies = await harness.say("1", "/orders")
    assert texts(replies) == [tr("order.none_yet")]
    assert [b.payload for b in flat_buttons(replies[0])] == ["order", "talk"]


async def test_order_code_shows_one_of_the_customers_orders(harness: Harness) -> None:
    code = await harness.place_order("1", full_name="Hoàng Quốc Bảo", request="SM-003")
    replies = await harness.say("1", f"/order {code.lower().replace('-', ' ')}")
    detail = texts(replies)[0]
    assert detail.startswith(tr("order.detail_title", code=code, status=tr("order.status.new")))
    assert "Hoàng Quốc Bảo" in detail and "0912 345 678" in detail
    assert "SM-003 — Vịnh Hạ Long — tranh sơn mài, 40×60 cm — 6.800.000 ₫" in detail


async def test_another_customers_order_answers_exactly_like_a_missing_one(
    harness: Harness,
) -> None:
    theirs = await harness.place_order("2", full_name="Vũ Thị Hồng")
    await harness.consent("1")
    missing = "VAV-22222" if theirs != "VAV-22222" else "VAV-33333"

    other = await harness.say("1", f"/order {theirs}")
    absent = await harness.say("1", f"/order {missing}")

    assert len(other) == len(absent) == 1
    assert other[0].text.replace(theirs, "CODE") == absent[0].text.replace(missing, "CODE")
    assert other[0].buttons == absent[0].buttons
    assert other[0].text == tr("order.not_found", code=theirs)
    assert "Vũ Thị Hồng" not in joined(other)
    assert to_chat(other, STAFF) == []

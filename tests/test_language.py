"""Language from the text (`handlers.text.detect_language`), for channels without a
language hint (Zalo): real-style messages in both languages, and the ones that say nothing."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from handlers.text import detect_language

ENGLISH = [
    "how long do you keep my data",
    "How is my data used? Who will see my phone number?",
    "I want to buy a painting",
    "I'd like to order the lotus painting please",
    "delete my data",
    "someone called me and knew my address",
    "where is your shop located",
    "what's your phone number",
    "can I return the painting if it arrives broken",
    "the frame was cracked when it arrived",
    "do you sell my information to anyone",
    "thank you so much",
    "thanks a lot",
    "My name is Nguyễn Văn An and I want to order",
    "I live in Hà Nội, can you deliver tomorrow",
    "is my payment information safe",
    "please show me my data",
    "what are your opening hours",
    "WHO CAN SEE MY ADDRESS",
    "yes please",
    "can I talk to a human",
    "how much is the shipping fee",
]
VIETNAMESE = [
    "cho toi xem don VAV-IS24Z",
    "Shop lưu thông tin của tôi bao lâu?",
    "Tôi muốn đặt tranh sơn mài",
    "hủy",
    "Hủy",
    "HỦY ĐƠN",
    "thôi",
    "Cảm ơn shop nhé",
    "shop luu thong tin cua minh bao lau",
    "e muon dat 1 buc tranh son dau",
    "gia bao nhieu",
    "dat tranh",
    "ko",
    "ko co email",
    "sdt e la 0912 345 678",
    "co nguoi goi dien biet ten va dia chi cua toi, co phai shop lam lo khong?",
    "bao gio thi du lieu cua toi bi huy",
    "xoa du lieu cua toi di",
    "alo shop oi",
    "hi shop",
    "tks ad",
    "ok dung roi",
    "sua dia chi",
    "thoi e doi dia chi khac nhe",
    "Chào bạn",
    "toi bi lo thong tin",
    "ship co biet dia chi nha minh ko",
]
UNSURE = [
    "VAV-AM24Z",
    "vav-is24z",
    "ok",
    "Ok",
    "0912345678",
    "0912 345 678",
    "+84 912 345 678",
    "VAV-7K3Q9",
    "SD-001",
    "Nguyễn Thị Lan",
    "Nguyen Van An",
    "Tran Thi Mai",
    "Lê Minh",
    "hello",
    "thanks",
    "lol",
    ":))",
    "👍",
    "",
    "   ",
    "12 Nguyen Trai",
    "a@b.com",
]


@pytest.mark.parametrize("text", ENGLISH)
def test_english(text: str) -> None:
    assert detect_language(text) == "en"


@pytest.mark.parametrize("text", VIETNAMESE)
def test_vietnamese(text: str) -> None:
    assert detect_language(text) == "vi"


@pytest.mark.parametrize("text", UNSURE)
def test_unsure(text: str) -> None:
    assert detect_language(text) is None


def test_enough_examples() -> None:
    assert len(ENGLISH) + len(VIETNAMESE) + len(UNSURE) >= 40


@given(st.text(max_size=200))
def test_never_raises(text: str) -> None:
    assert detect_language(text) in ("en", "vi", None)

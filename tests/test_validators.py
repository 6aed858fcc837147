"""Order-step parsers: accepted forms, rejection keys, and their messages in both languages."""

from __future__ import annotations

import re
import string
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers.i18n import LANGUAGES, catalog, t
from handlers.messages import normalize_text
from handlers.orders.validators import (
    InvalidInput,
    format_phone_display,
    parse_address,
    parse_email,
    parse_full_name,
    parse_phone,
    parse_request,
    phone_from_contact,
)
from handlers.words import is_skip

Parser = Callable[[str], str]

PARSERS: dict[str, Parser] = {
    "name": parse_full_name,
    "phone": parse_phone,
    "address": parse_address,
    "email": parse_email,
    "request": parse_request,
    "contact": phone_from_contact,
}


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


# --- full name --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Nguyễn Văn An", "Nguyễn Văn An"),
        ("  Nguyễn   Văn\tAn  ", "Nguyễn Văn An"),
        ("nguyễn thị lan", "nguyễn thị lan"),  # no title-casing: kept as typed
        ("Đặng Thị Ngọc Ánh", "Đặng Thị Ngọc Ánh"),
        ("Trương Ưng Ơn", "Trương Ưng Ơn"),
        ("Lê Thu Hà", "Lê Thu Hà"),
        (nfc("Nguye\u0302\u0303n Va\u0306n An"), "Nguyễn Văn An"),  # typed decomposed
        ("Nguye\u0302\u0303n", "Nguyễn"),  # even if a caller forgot to NFC-normalize
        ("Nguyễn V. An", "Nguyễn V. An"),
        ("Nguyen Thi.Ly", "Nguyen Thi.Ly"),  # not a domain
        ("Sean O'Brien", "Sean O'Brien"),
        ("Sean O’Brien", "Sean O’Brien"),
        ("Anne-Marie Dupont", "Anne-Marie Dupont"),
        ("李小龍", "李小龍"),
        ("Lý", "Lý"),
        ("Lê", "Lê"),  # exactly 2 characters
        ("A" * 100, "A" * 100),
    ],
)
def test_full_name_accepted(raw: str, expected: str) -> None:
    assert parse_full_name(raw) == expected


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("", "validation.name.empty"),
        ("   ", "validation.name.empty"),
        ("A", "validation.name.too_short"),
        (" Ă ", "validation.name.too_short"),
        ("A" * 101, "validation.name.too_long"),
        ("Nguyễn " + "A" * 94, "validation.name.too_long"),
        ("Lan 2", "validation.name.digits"),
        ("Nguyễn Văn An 0912345678", "validation.name.digits"),
        ("Lan ²", "validation.name.digits"),
        ("https://facebook.com/lan", "validation.name.link"),
        ("http://x", "validation.name.link"),
        ("www.lan", "validation.name.link"),
        ("lan.nguyen.com", "validation.name.link"),
        ("shop.vn", "validation.name.link"),
        ("t.me/lan", "validation.name.link"),
        ("Lan 😀", "validation.name.invalid_chars"),
        ("Lan❤️", "validation.name.invalid_chars"),
        ("@lan_nguyen", "validation.name.invalid_chars"),
        ("lan@gmail", "validation.name.invalid_chars"),
        ("Lan, Hà Nội", "validation.name.invalid_chars"),
        ("--", "validation.name.invalid_chars"),
        (". .", "validation.name.invalid_chars"),
    ],
)
def test_full_name_rejected(raw: str, key: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_full_name(raw)
    assert info.value.key == key


# --- phone --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0912 345 678", "+84912345678"),
        ("0912.345.678", "+84912345678"),
        ("0912-345-678", "+84912345678"),
        ("0912–345–678", "+84912345678"),  # en dash from autocorrect
        ("0912345678", "+84912345678"),
        ("+84 912345678", "+84912345678"),
        ("+84 912 345 678", "+84912345678"),
        ("84912345678", "+84912345678"),
        ("(+84) 912 345 678", "+84912345678"),
        ("0084 912 345 678", "+84912345678"),
        ("+84 0912 345 678", "+84912345678"),  # a 0 kept after the country code
        ("  0912 345 678  ", "+84912345678"),
        ("０９１２ ３４５ ６７８", "+84912345678"),  # fullwidth digits
        ("0362 123 456", "+84362123456"),
        ("0865 123 456", "+84865123456"),
        ("024 3825 1234", "+842438251234"),
        ("02438251234", "+842438251234"),
        ("(024) 3825 1234", "+842438251234"),
        ("028 3822 1234", "+842838221234"),
        ("+33 1 42 68 53 00", "+33142685300"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+1 (202) 555-0142", "+12025550142"),
    ],
)
def test_phone_accepted(raw: str, expected: str) -> None:
    assert parse_phone(raw) == expected


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("", "validation.phone.empty"),
        ("   ", "validation.phone.empty"),
        ("không có", "validation.phone.letters"),
        ("0912 345 abc", "validation.phone.letters"),
        ("zero nine one two", "validation.phone.letters"),
        ("0912#345678", "validation.phone.invalid"),
        ("0912 345 678 😀", "validation.phone.invalid"),
        ("0912+345678", "validation.phone.invalid"),
        ("+-+", "validation.phone.invalid"),
        ("...", "validation.phone.invalid"),
        ("12", "validation.phone.too_short"),
        ("0912 345", "validation.phone.too_short"),
        ("091 234 567", "validation.phone.too_short"),  # one digit missing
        ("024 3825 123", "validation.phone.too_short"),
        ("0912 345 6789", "validation.phone.too_long"),  # one digit too many
        ("0912 345 678 0987 654 321", "validation.phone.too_long"),  # two numbers
        ("1" * 20, "validation.phone.too_long"),
        ("0123 456 789", "validation.phone.invalid"),  # no such VN prefix
        ("3825 1234", "validation.phone.too_short"),  # landline without its area code
        ("+999 1234 5678", "validation.phone.invalid"),  # no such country
        ("0000000000", "validation.phone.invalid"),
    ],
)
def test_phone_rejected(raw: str, key: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_phone(raw)
    assert info.value.key == key


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("84912345678", "+84912345678"),  # Telegram: international digits without "+"
        ("+84912345678", "+84912345678"),
        ("0912345678", "+84912345678"),  # national form
        ("33142685300", "+33142685300"),
        (" 84912345678 ", "+84912345678"),
    ],
)
def test_phone_from_contact(raw: str, expected: str) -> None:
    assert phone_from_contact(raw) == expected


@pytest.mark.parametrize("raw", ["", "12", "999123", "abc"])
def test_phone_from_contact_rejected(raw: str) -> None:
    with pytest.raises(InvalidInput):
        phone_from_contact(raw)


@pytest.mark.parametrize(
    ("e164", "expected"),
    [
        ("+84912345678", "0912 345 678"),
        ("+842438251234", "024 3825 1234"),
        ("+33142685300", "+33 1 42 68 53 00"),
        ("not a number", "not a number"),  # display never raises
    ],
)
def test_format_phone_display(e164: str, expected: str) -> None:
    assert format_phone_display(e164) == expected


# --- address ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (
            "12 Hàng Bông, phường Hoàn Kiếm, Hà Nội",
            "12 Hàng Bông, phường Hoàn Kiếm, Hà Nội",
        ),
        ("  Số 5   ngõ 12 Láng Hạ  ", "Số 5 ngõ 12 Láng Hạ"),
        ("Số 5 ngõ 12,\n  Láng Hạ,\n\nHà Nội", "Số 5 ngõ 12, Láng Hạ, Hà Nội"),
        ("P.12/3 Q.1 TP.HCM", "P.12/3 Q.1 TP.HCM"),
        ("Thôn 3, H.Me Linh, Hà Nội", "Thôn 3, H.Me Linh, Hà Nội"),  # not "h.me"
        ("Q1 HN", "Q1 HN"),  # exactly 5 characters
        ("Hà Nội", "Hà Nội"),
        ("x " * 149 + "yz", "x " * 149 + "yz"),  # exactly 300
    ],
)
def test_address_accepted(raw: str, expected: str) -> None:
    assert parse_address(raw) == expected


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("", "validation.address.empty"),
        (" \n ", "validation.address.empty"),
        ("Q1 H", "validation.address.too_short"),  # 4 characters
        ("x " * 150 + "y", "validation.address.too_long"),  # 301
        ("12345", "validation.address.not_address"),
        ("12 34 56", "validation.address.not_address"),
        ("Hanoi", "validation.address.not_address"),
        ("HoànKiếm,", "validation.address.not_address"),
        ("https://maps.app.goo.gl/AbC123", "validation.address.link"),
        ("maps.app.goo.gl/AbC123", "validation.address.link"),
        ("nhà em ở www.google.com/maps", "validation.address.link"),
    ],
)
def test_address_rejected(raw: str, key: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_address(raw)
    assert info.value.key == key


# --- email --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("lan.nguyen@gmail.com", "lan.nguyen@gmail.com"),
        ("  Lan.Nguyen@Gmail.COM ", "Lan.Nguyen@gmail.com"),
        ("an+art@vietartview.vn", "an+art@vietartview.vn"),
    ],
)
def test_email_accepted(raw: str, expected: str) -> None:
    assert parse_email(raw) == expected


@pytest.mark.parametrize(
    "raw", ["", "lan", "lan@", "@gmail.com", "lan@gmail", "lan nguyen@gmail.com", "a@b@c.com"]
)
def test_email_rejected(raw: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_email(raw)
    assert info.value.key == "validation.email.invalid"


@pytest.mark.parametrize(
    "raw",
    [
        "bỏ qua",
        "bo qua",
        "Bỏ qua",
        "BỎ QUA",
        "skip",
        "Skip.",
        "ko",
        "không",
        "khong",
        "k co",
        "không có",
        "Không có ạ",
        "bỏ qua nhé",
        "-",
        " - ",
        nfc("kho\u0302ng"),
    ],
)
def test_is_skip_true(raw: str) -> None:
    assert is_skip(raw)


@pytest.mark.parametrize("raw", ["", "có", "lan@gmail.com", "bỏ", "không biết", "skipper"])
def test_is_skip_false(raw: str) -> None:
    assert not is_skip(raw)


# --- request ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("x", "x"),
        ("  Tôi muốn mua SD-001\nkhổ 60×90  ", "Tôi muốn mua SD-001\nkhổ 60×90"),
        ("a" * 2000, "a" * 2000),
        (" " + "a" * 2000 + " ", "a" * 2000),
    ],
)
def test_request_accepted(raw: str, expected: str) -> None:
    assert parse_request(raw) == expected


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("", "validation.request.empty"),
        (" \n\t ", "validation.request.empty"),
        ("a" * 2001, "validation.request.too_long"),
    ],
)
def test_request_rejected(raw: str, key: str) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_request(raw)
    assert info.value.key == key


# --- robustness ---------------------------------------------------------------------------


@pytest.mark.parametrize("parser", PARSERS.values(), ids=list(PARSERS))
@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=400))
def test_parsers_only_raise_invalid_input(parser: Parser, text: str) -> None:
    try:
        result = parser(normalize_text(text))
    except InvalidInput as exc:
        assert exc.key.startswith("validation.")
    else:
        assert isinstance(result, str) and result


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=string.digits + " +.-()", max_size=30))
def test_phone_like_text_only_raises_invalid_input(text: str) -> None:
    try:
        result = parse_phone(text)
    except InvalidInput:
        return
    assert re.fullmatch(r"\+[1-9][0-9]{6,14}", result)  # E.164


@given(text=st.text(max_size=200))
def test_is_skip_never_raises(text: str) -> None:
    assert isinstance(is_skip(text), bool)


# --- messages -----------------------------------------------------------------------------

# One bad input per error key; each is checked against both catalogs.
REJECTIONS: list[tuple[Parser, str]] = [
    (parse_full_name, ""),
    (parse_full_name, "A"),
    (parse_full_name, "A" * 101),
    (parse_full_name, "Lan 2"),
    (parse_full_name, "www.lan.vn"),
    (parse_full_name, "Lan 😀"),
    (parse_phone, ""),
    (parse_phone, "abc"),
    (parse_phone, "091 234 567"),
    (parse_phone, "0912 345 6789"),
    (parse_phone, "0123 456 789"),
    (parse_address, ""),
    (parse_address, "Q1"),
    (parse_address, "x" * 301),
    (parse_address, "12345"),
    (parse_address, "https://maps.app.goo.gl/x"),
    (parse_email, "lan@"),
    (parse_request, ""),
    (parse_request, "a" * 2001),
]


def _raised(parser: Parser, raw: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parser(raw)
    return info.value


def _keys_in_source() -> set[str]:
    source = Path(__file__).resolve().parent.parent / "handlers" / "orders" / "validators.py"
    return set(re.findall(r'"(validation\.[a-z_]+\.[a-z_]+)"', source.read_text("utf-8")))


def test_every_key_in_source_is_exercised() -> None:
    exercised = {_raised(parser, raw).key for parser, raw in REJECTIONS}
    assert exercised == _keys_in_source()


@pytest.mark.parametrize("lang", LANGUAGES)
@pytest.mark.parametrize(("parser", "raw"), REJECTIONS)
def test_error_message_exists_and_formats(lang: str, parser: Parser, raw: str) -> None:
    exc = _raised(parser, raw)
    template = catalog(lang)[exc.key]
    fields = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    # t() formats only when params are given, so every placeholder must come with a param.
    assert fields <= set(exc.params)
    text = t(lang, exc.key, **exc.params)
    assert "{" not in text and "}" not in text
    assert "ví dụ" in text if lang == "vi" else "for example" in text


def test_catalogs_have_the_same_validation_keys() -> None:
    vi = {k for k in catalog("vi") if k.startswith("validation.")}
    en = {k for k in catalog("en") if k.startswith("validation.")}
    assert vi == en == _keys_in_source()


@pytest.mark.parametrize(("parser", "raw"), REJECTIONS)
def test_exception_text_has_no_customer_input(parser: Parser, raw: str) -> None:
    exc = _raised(parser, raw)
    assert str(exc) == exc.key
    assert all(not isinstance(v, str) for v in exc.params.values())


def test_exception_text_has_no_phone_number() -> None:
    exc = _raised(parse_phone, "0912 345 6789")
    assert "0912" not in str(exc) and "0912" not in repr(exc)

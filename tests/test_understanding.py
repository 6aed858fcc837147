"""Free-text understanding and the privacy knowledge base (handlers/support)."""

from __future__ import annotations

import csv
import dataclasses
import tomllib
import unicodedata
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from hypothesis import example, given, settings
from hypothesis import strategies as st

from handlers.i18n import LANGUAGES, LOCALES_DIR
from handlers.support.understanding import (
    ACTIONS,
    ANSWER_THRESHOLD,
    SUGGEST_THRESHOLD,
    TOPICS_FILE,
    Understanding,
    _parse_topic,
    all_intents,
    all_topics,
    is_question,
    normalize,
    topic,
    topic_actions,
    understand,
)
from handlers.text import fold

EVAL_FILE = Path(__file__).parent / "data" / "nlu_eval.tsv"
MIN_ACCURACY = 0.95

TOPICS = (
    "collected", "purpose", "sharing", "carrier", "retention", "change", "delete", "complain",
    "account_safety", "tampering", "accuracy", "confidentiality", "contact", "shipping",
    "payment", "returns",
)  # fmt: skip
# Topics without examples: never matched themselves, they answer an intent asked as a question.
ANSWER_ONLY = ("returns",)
INTENTS = (
    "order", "complaint", "leak_report", "mydata", "delete_data", "return_warranty",
    "talk_to_staff", "greeting", "thanks",
)  # fmt: skip


def load_eval() -> list[tuple[str, str]]:
    with EVAL_FILE.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [(row["text"], row["expected"]) for row in reader]


def label(result: Understanding) -> str:
    return result.key if result.kind != "unknown" and result.key else "unknown"


def kb_catalog(lang: str) -> dict[str, str]:
    with (LOCALES_DIR / lang / "LC_MESSAGES" / "privacy_kb.po").open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    return {str(m.id): str(m.string) for m in catalog if m.id}


# ---------------------------------------------------------------- evaluation set


def test_eval_set_is_large_and_covers_every_key() -> None:
    rows = load_eval()
    assert len(rows) >= 160
    matched = [key for key in (*TOPICS, *INTENTS) if key not in ANSWER_ONLY]
    counts = {key: sum(1 for _, e in rows if e == key) for key in matched}
    assert all(n >= 6 for n in counts.values()), counts
    assert sum(1 for _, e in rows if e == "unknown") >= 10
    assert {e for _, e in rows} <= {*matched, "unknown"}


def test_eval_set_does_not_repeat_the_examples() -> None:
    """The eval set measures generalization: no message may be a topics.toml example."""
    data = tomllib.loads(TOPICS_FILE.read_text(encoding="utf-8"))
    examples = {normalize(ex) for entry in data.values() for ex in entry["examples"]}
    leaked = [text for text, _ in load_eval() if normalize(text) in examples]
    assert not leaked


def test_accuracy_on_eval_set() -> None:
    rows = load_eval()
    wrong = [(t, e, understand(t)) for t, e in rows if label(understand(t)) != e]
    accuracy = 1 - len(wrong) / len(rows)
    report = "\n".join(f"  {e} → {label(r)} ({r.confidence:.2f}) {t!r}" for t, e, r in wrong)
    print(f"accuracy {accuracy:.1%}; misclassified:\n{report}")
    assert accuracy >= MIN_ACCURACY, f"accuracy {accuracy:.1%}, misclassified:\n{report}"


# ---------------------------------------------------------------- normalization


def test_diacritics_nfd_and_case_do_not_matter() -> None:
    for text, _ in load_eval():
        nfc = understand(text)
        assert understand(unicodedata.normalize("NFD", text)) == nfc, text
        assert understand(fold(text)) == nfc, text
        assert understand(text.upper()) == nfc, text


@pytest.mark.parametrize(
    ("with_marks", "without"),
    [
        ("Shop lưu thông tin của tôi bao lâu?", "shop luu thong tin cua toi bao lau"),
        (
            "Đơn vị vận chuyển biết số điện thoại của tôi không",
            "don vi van chuyen biet sdt cua toi ko",
        ),
        ("Xóa dữ liệu của tôi đi", "xoa du lieu cua toi di"),
        ("Hotline của shop là gì?", "hotline cua shop la gi"),
    ],
)
def test_same_answer_with_and_without_diacritics(with_marks: str, without: str) -> None:
    a, b = understand(with_marks), understand(without)
    assert a.key == b.key and a.key is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("sdt cua e co dua cho ai ko", "so dien thoai cua em co dua cho ai khong"),
        ("so dt cua mk", "so dien thoai cua minh"),
        ("doi dt", "doi so dien thoai"),
        ("doi dc nha", "doi dia chi nha"),  # dc + whose/which → address
        ("đc giao hàng", "dia chi giao hang"),
        ("co xoa dc ko", "co xoa duoc khong"),  # dc + question tag → "được"
        ("ai dc xem tt", "ai duoc xem thong tin"),  # after "ai" → "được"
        ("shop luu dc bao lau", "shop luu duoc bao lau"),
        ("sua dc", "sua dia chi"),  # bare → address
        ("co dc hong", "co duoc khong"),  # bare "hong" is "không"...
        ("tranh bi hong", "tranh bi hong"),  # ...except after "bị" (broken)
        ("tranh hỏng rồi", "tranh hong roi"),  # and "hỏng" with its mark is never "không"
        ("hk bik j het", "khong biet gi het"),
        ("ad oi", "admin oi"),
        ("tks shop", "cam on shop"),
        ("thanks a lot", "cam on a lot"),  # English: "a" stays an article
        ("cho a hoi", "cho anh hoi"),  # Vietnamese: "a" is "anh"
        ("cam on a", "cam on a"),  # final "a" is the particle "ạ"
        ("gia bn", "gia bao nhieu"),
        ("e ns voi nv dc ko", "em noi voi nhan vien duoc khong"),
        ("alooo shop oiii!!!", "alo shop oi"),
        ("what's your e-mail?", "whats your email"),
    ],
)
def test_teencode_expansion(text: str, expected: str) -> None:
    assert normalize(text) == expected


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("xoa tt cua mk di", "delete_data"),
        ("lam sao xoa tt cua mk", "delete"),
        ("sdt cua e co dua cho ai ko", "sharing"),
        ("ship co bik dc nha e ko", "carrier"),
        ("tt cua mk luu bn lau", "retention"),
        ("ad oi", "talk_to_staff"),
        ("tks ad", "thanks"),
        ("tranh bi hong roi", "return_warranty"),
        ("shop cho mik xin sdt vs dc shop", "contact"),
    ],
)
def test_teencode_messages(text: str, key: str) -> None:
    assert understand(text).key == key


# ---------------------------------------------------------------- result shape and bands


def test_result_is_frozen_and_consistent() -> None:
    result = understand("shop luu thong tin cua minh bao lau")
    assert result == Understanding(result.kind, "retention", result.confidence, result.alternatives)
    assert result.kind == "topic" and result.confident
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.key = "x"  # type: ignore[misc]


def test_thresholds_are_ordered() -> None:
    assert 0 < SUGGEST_THRESHOLD < ANSWER_THRESHOLD <= 1


def test_unknown_for_off_topic_and_empty() -> None:
    for text in ("", "   ", "1234", "asdfgh", "🙂🙂", "hom nay troi dep qua"):
        result = understand(text)
        assert result.kind == "unknown" and result.key is None, text


def test_middle_band_offers_two_or_three_alternatives() -> None:
    middle = 0
    for text, _ in load_eval():
        result = understand(text)
        if result.kind != "unknown" and not result.confident:
            middle += 1
            assert 2 <= len(result.alternatives) <= 3, text
            assert result.alternatives[0] == result.key, text
    assert middle  # the eval set does exercise the band


def test_ambiguous_message_lands_in_the_middle_band() -> None:
    # Asked about the shop's deletion *and* how long data is kept: answerable by two topics.
    result = understand("bao lau thi shop xoa tt")
    assert result.kind == "topic"
    assert SUGGEST_THRESHOLD <= result.confidence < ANSWER_THRESHOLD
    assert {"delete", "retention"} <= set(result.alternatives)


# ---------------------------------------------------------------- topics and catalog


def test_topics_and_intents() -> None:
    assert all_topics() == TOPICS
    assert all_intents() == INTENTS


def test_topic_actions() -> None:
    for key in (*TOPICS, *INTENTS):
        actions = topic_actions(key)
        assert actions and set(actions) <= set(ACTIONS), key
    assert topic_actions("delete")[0] == "delete"
    assert "edit" in topic_actions("change")
    assert "complaint" in topic_actions("complain")
    with pytest.raises(KeyError):
        topic_actions("nope")


@pytest.mark.parametrize(
    "raw",
    [
        {"kind": "faq", "actions": [], "examples": ["x"]},
        {"kind": "topic", "actions": ["fly"], "examples": ["x"]},
        {"kind": "topic", "actions": [], "examples": ["x", "?!"]},
        {"kind": "topic", "actions": [], "examples": ["x"], "keywords": {"a": "high"}},
        {"kind": "topic", "actions": [], "examples": ["x"], "keywords": {"a + ": 3}},
        {"kind": "topic", "actions": [], "examples": ["x"], "mood": "angry"},
    ],
)
def test_bad_topic_entries_are_rejected(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _parse_topic("broken", raw)


@pytest.mark.parametrize("lang", LANGUAGES)
def test_every_topic_has_title_and_answer(lang: str) -> None:
    catalog = kb_catalog(lang)
    for key in TOPICS:
        title, answer = catalog.get(f"kb.{key}.title"), catalog.get(f"kb.{key}.answer")
        assert title and len(title) <= 30, (key, title)
        assert answer and 60 <= len(answer) <= 600, (key, answer)
        assert answer.format(hours="8:00–21:00")  # str.format-safe: {hours} at most
        assert unicodedata.is_normalized("NFC", title + answer)
    for key in INTENTS:  # intents start flows; they have no answer text
        assert f"kb.{key}.answer" not in catalog


POLICY_FACTS: dict[str, dict[str, tuple[str, ...]]] = {
    "vi": {
        "collected": ("họ tên", "số điện thoại", "địa chỉ", "email (nếu"),
        "purpose": ("thông báo", "đơn đặt hàng", "đổi trả", "bảo hành"),
        "sharing": ("bên thứ ba", "bên giao hàng", "pháp luật", "tư pháp", "tranh chấp"),
        "carrier": ("tên", "địa chỉ", "số điện thoại"),
        "retention": ("cung cấp dịch vụ", "hủy", "yêu cầu"),
        "change": ("/mydata", "0815336668", "vietartview@gmail.com"),
        "delete": ("/delete", "ngay lập tức"),
        "complain": ("khiếu nại", "ban quản trị", "tiếp nhận", "giải quyết"),
        "account_safety": ("tài khoản", "thanh toán", "giao nhận", "đăng xuất"),
        "tampering": ("công cụ", "cơ sở dữ liệu", "máy chủ", "khóa tài khoản vĩnh viễn", "truy tố"),
        "accuracy": ("trách nhiệm pháp lý", "không chính xác", "tranh chấp"),
        "confidentiality": ("bảo mật tuyệt đối", "giao dịch"),
        "contact": (
            "Số nhà 6, ngõ 553, đường Nguyễn Khoái, P. Thanh Trì, Q. Hoàng Mai, Tp. Hà Nội",
            "0815336668", "vietartview@gmail.com", "0109833521", "25/11/2021", "Sở Kế hoạch",
            "{hours}",
        ),
        # Shop practice the policy does not fix: staff confirm, the hotline is given.
        "shipping": ("tên, địa chỉ và số điện thoại", "nhân viên sẽ báo", "0815336668"),
        "payment": ("bảo mật tuyệt đối", "nhân viên xác nhận", "0815336668"),
        "returns": ("đổi trả", "hoàn tiền", "bảo hành", "chụp ảnh", "0815336668"),
    },
    "en": {
        "collected": ("name", "phone", "address", "email"),
        "purpose": ("notifications", "orders", "returns", "warranty"),
        "sharing": ("third parties", "carrier", "law", "disputes"),
        "carrier": ("name", "address", "phone"),
        "retention": ("as long as", "destroyed"),
        "change": ("/mydata", "0815336668", "vietartview@gmail.com"),
        "delete": ("/delete", "immediately"),
        "complain": ("complaint", "management", "resolve"),
        "account_safety": ("account", "payment", "delivery", "log out"),
        "tampering": ("database", "servers", "lock the account permanently", "legal action"),
        "accuracy": ("legally responsible", "not liable", "inaccurate"),
        "confidentiality": ("strictly confidential", "transaction"),
        "contact": ("Nguyễn Khoái", "0815336668", "vietartview@gmail.com", "0109833521",
                    "25/11/2021", "{hours}"),
        "shipping": ("name, address and phone number", "Staff will tell you", "0815336668"),
        "payment": ("strictly confidential", "Staff confirm", "0815336668"),
        "returns": ("returns", "refunds", "warranty", "photos", "0815336668"),
    },
}  # fmt: skip


@pytest.mark.parametrize("lang", LANGUAGES)
def test_answers_state_the_policy_facts(lang: str) -> None:
    catalog = kb_catalog(lang)
    assert set(POLICY_FACTS[lang]) == set(TOPICS)
    for key, facts in POLICY_FACTS[lang].items():
        answer = catalog[f"kb.{key}.answer"]
        missing = [fact for fact in facts if fact not in answer]
        assert not missing, (key, missing)
    if lang == "vi":
        assert all("quý khách" in catalog[f"kb.{key}.answer"].lower() for key in TOPICS)


def test_catalog_headers() -> None:
    for lang in LANGUAGES:
        with (LOCALES_DIR / lang / "LC_MESSAGES" / "privacy_kb.po").open("rb") as fh:
            catalog = read_po(fh, locale=lang)
        assert str(catalog.locale) == lang
        assert catalog.charset.lower() == "utf-8"


# ---------------------------------------------------------------- robustness


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
@example("")
@example("\x00\x01\x1b[31m\u200b\ufeff")
@example("😀🎨🖼️ " * 50)
@example("a" * 10_000)
@example("xoa " * 2_500)
@example("đc " * 500)
@example("\u0301\u0300 dc dt a hong")
def test_never_raises(text: str) -> None:
    result = understand(text)
    assert 0.0 <= result.confidence <= 1.0
    assert (result.key is None) == (result.kind == "unknown")
    assert result.key is None or result.key in (*TOPICS, *INTENTS)
    assert len(result.alternatives) <= 3
    assert set(result.alternatives) <= {*TOPICS, *INTENTS}


# ---------------------------------------------------------------- shop-practice answers


def test_no_answer_states_a_price_or_a_period_the_policy_does_not() -> None:
    """Shipping, payment and returns answers never invent fees, days or percentages."""
    for lang in LANGUAGES:
        catalog = kb_catalog(lang)
        for key in ("shipping", "payment", "returns"):
            answer = catalog[f"kb.{key}.answer"].replace("0815336668", "")
            assert not any(ch.isdigit() for ch in answer), (lang, key, answer)


def test_intents_name_their_answer_topic() -> None:
    assert topic("return_warranty").answer == "returns"
    assert topic("mydata").answer == "collected"
    assert topic("delete_data").answer == "delete"
    assert all(topic(key).answer in (None, *TOPICS) for key in INTENTS)
    assert topic("returns").examples == ()  # answer-only: never matched by itself
    assert "returns" in topic_actions("returns") and "staff" in topic_actions("returns")


@pytest.mark.parametrize(
    "raw",
    [
        {"kind": "topic", "actions": [], "examples": ["x"], "answer": "collected"},
        {"kind": "intent", "actions": [], "examples": ["x"], "answer": 3},
        {"kind": "intent", "actions": [], "examples": []},
    ],
)
def test_bad_answer_entries_are_rejected(raw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        _parse_topic("broken", raw)


# ---------------------------------------------------------------- leak reports


@pytest.mark.parametrize(
    "text",
    [
        "co nguoi goi dien biet ten va dia chi cua toi, co phai shop lam lo khong?",
        "toi bi lo thong tin",
        "someone called me and knew my address",
        "sao nguoi la co sdt cua toi",
        "Có người lạ nhắn tin cho tôi, biết cả tên và số điện thoại",
        "a stranger knows my phone number, did you leak it?",
        "tu hom dat tranh e bi spam goi dien suot",
    ],
)
def test_leak_reports_are_their_own_intent(text: str) -> None:
    result = understand(text)
    assert result.key == "leak_report" and result.confident, result


@pytest.mark.parametrize(
    ("text", "key"),
    [
        # how to complain, in general or "if": the knowledge-base answer, not a report
        ("Nếu thông tin của tôi bị lộ thì khiếu nại ở đâu?", "complain"),
        ("who handles complaints about privacy", "complain"),
        # a general complaint stays the complaint intent
        ("toi muon khieu nai", "complaint"),
        # the shipper knowing the address is the carrier topic
        ("shipper co biet dia chi cua toi ko", "carrier"),
    ],
)
def test_leak_report_is_distinct_from_complaints_and_privacy_topics(text: str, key: str) -> None:
    assert understand(text).key == key


# ---------------------------------------------------------------- questions vs commands


@pytest.mark.parametrize(
    "text",
    [
        "bao gio thi du lieu cua toi bi huy",
        "shop xoa du lieu cua toi khi nao?",
        "how do I delete my data?",
        "how do I delete my data",
        "Khi nào dữ liệu của tôi bị xóa",
        "co xoa dc du lieu ko",
        "can I delete my data",
        "toi muon biet cach xoa tai khoan",
        "what do you keep about me",
        "delete my data?",
        "chinh sach doi tra the nao",
    ],
)
def test_questions(text: str) -> None:
    assert is_question(text)


@pytest.mark.parametrize(
    "text",
    [
        "xoa du lieu cua toi di",
        "delete my data",
        "delete my data please",
        "Xóa dữ liệu của tôi đi",
        "xoa giup minh du lieu duoc khong",  # a polite request is still a request
        "toi muon xoa du lieu ngay",
        "show me what you have on me",
        "toi muon doi tra",
        "I want a refund",
        "",
    ],
)
def test_requests_and_statements_are_not_questions(text: str) -> None:
    assert not is_question(text)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("bao gio thi du lieu cua toi bi huy", "retention"),
        ("shop xoa du lieu cua toi khi nao?", "retention"),
        ("how do I delete my data?", "delete"),
        ("co the xoa du lieu cua minh khong", "delete"),
    ],
)
def test_a_question_about_deletion_never_is_the_delete_intent(text: str, key: str) -> None:
    result = understand(text)
    assert result.key == key and "delete_data" not in result.alternatives


@pytest.mark.parametrize("text", ["xoa du lieu cua toi di", "delete my data"])
def test_a_deletion_request_stays_the_intent(text: str) -> None:
    assert understand(text).key == "delete_data"

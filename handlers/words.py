"""What customers type instead of pressing a button, folded (see `handlers.text.fold`).

One place for the words that mean "skip", "back", "done" or "yes", so that every step and
every flow understands the same answers.
"""

from __future__ import annotations

import re
from typing import Literal

from handlers.text import fold

# "I'd rather not / I don't have one" for optional steps.
SKIP_WORDS = frozenset(
    {
        "bo qua",
        "bq",
        "skip",
        "ko",
        "k",
        "kg",
        "khong",
        "k co",
        "ko co",
        "kh co",
        "khong co",
        "khong can",
        "ko can",
        "k can",
        "no",
        "none",
        "n/a",
        "-",
        "–",
        "—",
    }
)
BACK_WORDS = frozenset(
    {"back", "go back", "quay lai", "tro lai", "lui lai", "lui", "quay lai buoc truoc"}
)
DONE_WORDS = frozenset({"done", "xong", "het", "ok", "xong roi", "het roi", "du roi"})
CONFIRM_WORDS = frozenset(
    {
        "confirm",
        "xac nhan",
        "ok",
        "oke",
        "okie",
        "okay",
        "dong y",
        "dung",
        "dung roi",
        "dung het roi",
        "ok dung roi",
        "dung vay",
        "chuan",
        "chuan roi",
        "chot",
        "chot don",
        "ok chot",
        "ok chot don",
        "dat luon",
        "dat di",
        "vang",
        "vang dung roi",
        "da dung roi",
        "yes",
        "yes correct",
        "correct",
        "looks good",
        "co",
        "uh",
        "u",
        "um",
    }
)
# Typed instead of the cancel / menu / help buttons, at any step of any flow.
CANCEL_WORDS = frozenset(
    {
        "huy",
        "huy bo",
        "huy di",
        "huy don",
        "huy dat",
        "huy don hang",
        "thoi",
        "thoi khoi",
        "thoi khong dat nua",
        "thoi ko dat nua",
        "thoi k dat nua",
        "khong dat nua",
        "ko dat nua",
        "k dat nua",
        "bo di",
        "dung lai",
        "cancel",
        "stop",
        "cancel order",
        "never mind",
        "nevermind",
    }
)
MENU_WORDS = frozenset({"menu", "main menu", "danh muc", "trang chu", "quay ve menu"})
HELP_WORDS = frozenset({"help", "giup", "giup em", "tro giup", "huong dan", "?", "??", "sao"})
# "Yes, use my saved details" at the offer to reuse them.
SAVED_WORDS = frozenset(
    {
        "dung thong tin da luu",
        "dung thong tin cu",
        "vang dung thong tin cu",
        "nhu cu",
        "giu nguyen",
        "giu nhu cu",
        "van nhu cu",
        "thong tin cu",
        "use saved",
        "use my saved details",
        "yes use my saved details",
        "same as before",
        "same",
    }
)
NEW_WORDS = frozenset({"nhap moi", "nhap lai", "thong tin moi", "new", "enter new", "khong", "ko"})

# Polite particles Vietnamese customers add at the end ("không có ạ", "bỏ qua nhé").
_POLITE_TAIL = re.compile(r"(?:\s+(?:a|nhe|nha|nhen|ha|nhe shop|nha shop|shop|ban|please|pls))+$")


_PUNCTUATION = re.compile(r"[.,;:!~…]+")


def answer_words(text: str) -> str:
    """The folded answer without end punctuation and polite particles."""
    folded = _PUNCTUATION.sub(" ", fold(text)).strip()
    return _POLITE_TAIL.sub("", " ".join(folded.split())).strip()


# What a "don't have one" answer may name: "ko co email", "không có ảnh nào ạ".
_SKIPPED_THING = re.compile(
    r"\s+(?:email|mail|gmail|e-mail|anh|hinh|hinh anh|photo|photos|picture|pictures|a)"
    r"(?:\s+(?:nao|dau|gi|ca|het|mau|of it|one|any))?$"
)
# "em không dùng email", "mình ko có mail đâu", "i don't have an email", "no photos thanks":
# a person (optional), a negation, a verb of having / using / needing, maybe a thing.
_DECLINE_SENTENCE = re.compile(
    r"^(?:(?:em|e|minh|toi|tui|t|anh|a|chi|c|i)\s+)?(?:(?:thi|cung|hien)\s+)?"
    r"(?:khong|ko|k|kh|khg|hok|hong|chua|don'?t|do not|have no|no)\s+"
    r"(?:co|dung|xai|su dung|can|gui|have|use|need|want|got)?\s*(?:an?|any)?\s*"
    r"(?:email|mail|gmail|e-mail|anh|hinh|hinh anh|photo|photos|picture|pictures|ca|gi|one)?"
    r"(?:\s+(?:nao|dau|gi|ca|het|mau|lam|nua|thanks|thank you|sorry))*$"
)


def is_skip(text: str) -> bool:
    """True when the customer declines an optional step ("bỏ qua", "không", "skip", "-",
    "ko co email", "em ko dùng email", "không cần ảnh đâu", "I don't have an email")."""
    words = answer_words(text)
    if words in SKIP_WORDS or _SKIPPED_THING.sub("", words) in SKIP_WORDS:
        return True
    return bool(words) and bool(_DECLINE_SENTENCE.match(words))


Interrupt = Literal["cancel", "menu", "help", "back"]


# "thôi không mua nữa", "huỷ đơn giúp em", "em không đặt nữa đâu", "cancel the order",
# "forget it": a change of mind about the whole thing, not an answer.
_CANCEL_SENTENCE = re.compile(
    r"^(?:(?:uh|u|vang|da|ok|thoi|thui|oi|ah)\s+)*"
    r"(?:(?:thoi|thui)\s+)?(?:(?:em|e|minh|toi|tui|anh|chi)\s+)?"
    r"(?:(?:khong|ko|k|kh|hong|hok)\s+(?:dat|mua|lay|order|can\s+(?:tranh|don|dat|mua))"
    r"(?:\s+(?:tranh|don|hang|nua|luon|dau|roi))*"
    r"|huy(?:\s+(?:bo|don|dat|don hang|het|luon|di|giup|gium|dum|em|minh|nhe|nha|nha shop))*"
    r"|cancel(?:\s+(?:it|this|that|the order|my order|order|please|everything))*"
    r"|(?:i\s+)?(?:changed my mind|forget it|don'?t want (?:it|to order|to buy)(?: anymore)?)"
    r"|bo\s+(?:di|qua don|don)|dung lai)$"
)
_YES_START = frozenset(
    {"vang", "da", "uh", "u", "um", "ok", "oke", "okie", "okay", "yes", "yeah", "yep", "co",
     "dung", "chac", "chuan", "duoc", "dc", "sure", "y", "ừ"}
)  # fmt: skip
_NO_START = frozenset({"khong", "ko", "k", "kh", "khg", "hok", "hong", "no", "nope", "dung co"})
_GO_ON = re.compile(r"\b(?:tiep|tiep tuc|dat tiep|lam tiep|dien tiep|giu|continue|keep|go on)\b")


def yes_or_no(text: str) -> bool | None:
    """The answer to a yes/no question ("Cancel the draft?", "Delete everything?"): True for
    "vâng hủy giúp em", "uh thôi", "đúng, hủy đơn", "co, xoa di", "yes delete it"; False for
    "ko, đặt tiếp", "không hủy", "no keep it"; None when it answers neither."""
    words = answer_words(text)
    if not words:
        return None
    tokens = words.split()
    if words in CONFIRM_WORDS or words in CANCEL_WORDS or _CANCEL_SENTENCE.match(words):
        return True
    if tokens[0] in _NO_START or _GO_ON.search(words):
        return False
    if tokens[0] in _YES_START:
        return True
    return None


def interrupt_of(text: str) -> Interrupt | None:
    """A typed word that means a button every step has (cancel, back) or a way out (menu,
    help); only the whole answer counts, so "thôi em đổi địa chỉ" is not a cancel."""
    words = answer_words(text)
    if words in CANCEL_WORDS or _CANCEL_SENTENCE.match(words):
        return "cancel"
    if words in BACK_WORDS:
        return "back"
    if words in MENU_WORDS:
        return "menu"
    if words in HELP_WORDS or text.strip() in ("?", "??"):
        return "help"
    return None


# Remarks that are not an answer to anything: greetings, thanks, fillers.
CHATTER_WORDS = frozenset(
    {
        "alo",
        "a lo",
        "hello",
        "hi",
        "hey",
        "chao",
        "chao shop",
        "xin chao",
        "chao em",
        "shop oi",
        "ad oi",
        "admin oi",
        "e oi",
        "em oi",
        "ban oi",
        "cam on",
        "cam on shop",
        "cam on em",
        "thanks",
        "thank you",
        "tks",
        "ok shop",
        "uh",
        "um",
        "hmm",
        "ha",
        "hehe",
        "haha",
        "da",
        "vang",
    }
)
_QUESTION_PHRASES = (
    "bao nhieu",
    "o dau",
    "khi nao",
    "bao gio",
    "bao lau",
    "the nao",
    "tai sao",
    "vi sao",
    "sao lai",
    "lam sao",
    "la gi",
    "duoc khong",
    "duoc ko",
    "co phai",
    "co dung khong",
    "ai se",
    "ai xem",
    "ai biet",
    "gi vay",
    "gi the",
    "sao phai",
    "de lam gi",
    "lam gi",
    "bn",
    "bnhieu",
    "bao nhiu",
    "may ngay",
    "may gio",
    "the nao",
    "ntn",
    "nhu nao",
    "co duoc khong",
)
_QUESTION_TAIL = re.compile(r"\s(?:khong|ko|k|hong|chua|ha|nhi)$")
_QUESTION_START = re.compile(
    r"^(?:(?:what|who|whom|whose|where|when|why|how|which|sao|tai sao|vi sao|ai)\s\S"
    r"|(?:is|are|do|does|did|can|could|will|would|should|may)\s"
    r"(?:you|i|we|they|it|my|your|the|this|that|there|he|she|anyone|someone)\b)"
)


def looks_like_question(text: str) -> bool:
    """A question rather than an answer: "?", question words ("bao nhiêu", "ở đâu", "how"),
    or a yes/no question ("shop có giao tỉnh không")."""
    if text.strip().endswith(("?", "？")):
        return True
    folded = fold(text).strip(" .!~")
    padded = f" {folded} "
    if any(f" {phrase} " in padded for phrase in _QUESTION_PHRASES):
        return True
    words = text.split()
    title_case = len(words) > 1 and all(w[:1].isupper() for w in words)  # "Sao Mai": a name
    if _QUESTION_START.match(folded) and not title_case:
        return True
    return len(folded.split()) >= 4 and bool(_QUESTION_TAIL.search(folded))


def is_chatter(text: str) -> bool:
    """Only a greeting, thanks or filler ("alo", "shop ơi", "cảm ơn ạ")."""
    return answer_words(text) in CHATTER_WORDS

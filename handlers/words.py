"""What customers type instead of pressing a button, folded (see `handlers.text.fold`).

One place for the words that mean "skip", "back", "done" or "yes", so that every step and
every flow understands the same answers.
"""

from __future__ import annotations

import re

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
BACK_WORDS = frozenset({"back", "quay lai", "tro lai", "lui lai", "lui"})
DONE_WORDS = frozenset({"done", "xong", "het", "ok", "xong roi", "het roi", "du roi"})
CONFIRM_WORDS = frozenset({"confirm", "xac nhan", "ok", "dong y", "dung", "dung roi", "yes", "co"})

# Polite particles Vietnamese customers add at the end ("không có ạ", "bỏ qua nhé").
_POLITE_TAIL = re.compile(r"(?:\s+(?:a|nhe|nha|nhen|ha|nhe shop|nha shop))+$")


def answer_words(text: str) -> str:
    """The folded answer without end punctuation and polite particles."""
    folded = fold(text).rstrip(".!")
    return _POLITE_TAIL.sub("", folded).strip()


def is_skip(text: str) -> bool:
    """True when the customer declines an optional step ("bỏ qua", "không", "skip", "-")."""
    return answer_words(text) in SKIP_WORDS

"""Short reference codes customers can read out and type back: "VAV-7K3Q9", "KN-M4TXP".

The alphabet leaves out 0/O, 1/I/L, which people confuse when reading or typing. Codes are
random, not guaranteed unique: with 5 characters (31**5 ≈ 28.6 million) a repeat within a few
thousand codes is unlikely but possible, so the store must keep a unique constraint and draw
again on conflict.
"""

from __future__ import annotations

import re
import secrets
import unicodedata

ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
DEFAULT_LENGTH = 5
ORDER_PREFIX = "VAV"

# What people type between prefix and body: nothing, a dash (incl. phone-keyboard dashes),
# spaces, an underscore or a dot.
_SEPARATOR = r"[\s\-–—_.]*"


def _clean_prefix(prefix: str) -> str:
    # Accept both "KN" and "KN-": the dash is always added by the code itself.
    clean = prefix.strip().rstrip("-").upper()
    if not clean.isascii() or not clean.isalpha():
        raise ValueError("code prefix must be ASCII letters, e.g. 'VAV' or 'KN-'")
    return clean


def new_code(prefix: str = ORDER_PREFIX, length: int = DEFAULT_LENGTH) -> str:
    """A fresh random code such as "VAV-7K3Q9" (prefix "VAV" or "VAV-" give the same)."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(length))
    return f"{_clean_prefix(prefix)}-{body}"


def normalize_code(
    text: str, prefix: str = ORDER_PREFIX, length: int = DEFAULT_LENGTH
) -> str | None:
    """The canonical code for what a customer typed ("vav 7k3q9", "VAV7K3Q9", "#vav-7k3q9"),
    or None when the text is not exactly one such code.
    """
    pattern = _code_pattern(prefix, length)
    candidate = unicodedata.normalize("NFKC", text).strip().strip("#.,!?;:\"'()[]").strip()
    match = pattern.fullmatch(candidate)
    return None if match is None else _canonical(prefix, match)


def find_code(text: str, prefix: str = ORDER_PREFIX, length: int = DEFAULT_LENGTH) -> str | None:
    """The first code of this prefix mentioned anywhere in free text, canonical, or None."""
    match = _code_pattern(prefix, length).search(unicodedata.normalize("NFKC", text))
    return None if match is None else _canonical(prefix, match)


def _code_pattern(prefix: str, length: int) -> re.Pattern[str]:
    clean = _clean_prefix(prefix)
    return re.compile(
        rf"(?<![0-9A-Za-z]){clean}{_SEPARATOR}(?P<body>[{ALPHABET}]{{{length}}})(?![0-9A-Za-z])",
        re.IGNORECASE,
    )


def _canonical(prefix: str, match: re.Match[str]) -> str:
    return f"{_clean_prefix(prefix)}-{match.group('body').upper()}"

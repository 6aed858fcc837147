"""Parsers for what customers type at each order step.

Every parser takes the raw (already NFC-normalized) text and returns a clean value or raises
`InvalidInput`, whose `key` is a message id in `locales/<lang>/LC_MESSAGES/validation.po`
and whose `params` fill that message's placeholders. Parsers never raise anything else, and
exception text never contains what the customer typed (it may end up in logs).
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers
from email_validator import EmailNotValidError, validate_email

from handlers.errors import InvalidInput

NAME_MIN, NAME_MAX = 2, 100
ADDRESS_MIN, ADDRESS_MAX = 5, 300
REQUEST_MAX = 2000
EMAIL_MAX = 254  # RFC 5321 path limit; longer input is not worth handing to the validator

DEFAULT_REGION = "VN"


_SPACES = re.compile(r"\s+")

# Links: a scheme, "www.", a bare domain with a common TLD, or "host.tld/path" (t.me/…,
# zalo.me/…, bit.ly/…). Short ambiguous TLDs (.me, .co, .ly) only count with a path, so that
# abbreviations customers type in addresses ("H.Me Linh", "P.Co Nhue") are not taken for links.
_LINK = re.compile(
    r"[a-z][a-z0-9+.-]*://"
    r"|\bwww\."
    r"|\b[\w-]{2,}\.(?:com|net|org|vn|info|biz|xyz|io|app|dev|shop|store|site|online)\b"
    r"|\b\w+(?:\.\w+)*\.[a-z]{2,}/\S",
    re.IGNORECASE,
)

# Punctuation that belongs in names: "Nguyễn V. An", "O'Brien", "Anne-Marie"; ’ is what
# phone keyboards insert for an apostrophe.
_NAME_PUNCTUATION = frozenset(".'-’ ")


def _collapse(text: str) -> str:
    return _SPACES.sub(" ", text).strip()


def _has_link(text: str) -> bool:
    return _LINK.search(text) is not None


def parse_full_name(text: str) -> str:
    """A full name as typed (trimmed, spaces collapsed, no case change).

    Keys: validation.name.empty, .too_short (min), .too_long (max), .link, .digits,
    .invalid_chars.
    """
    # NFC again so that names typed with combining marks compare and store like the rest.
    name = _collapse(unicodedata.normalize("NFC", text))
    if not name:
        raise InvalidInput("validation.name.empty")
    if len(name) < NAME_MIN:
        raise InvalidInput("validation.name.too_short", min=NAME_MIN)
    if len(name) > NAME_MAX:
        raise InvalidInput("validation.name.too_long", max=NAME_MAX)
    # Links before digits: a pasted link usually contains digits too, and this message helps more.
    if _has_link(name):
        raise InvalidInput("validation.name.link")
    if any(unicodedata.category(ch).startswith("N") for ch in name):
        raise InvalidInput("validation.name.digits")
    letters = 0
    for ch in name:
        category = unicodedata.category(ch)
        if category.startswith("L"):
            letters += 1
        elif not (category.startswith("M") or ch in _NAME_PUNCTUATION):
            raise InvalidInput("validation.name.invalid_chars")
    if letters == 0:  # e.g. "--" or ". ."
        raise InvalidInput("validation.name.invalid_chars")
    return name


# Characters people put between digits of a phone number; anything else is not a phone number.
_PHONE_SEPARATORS = frozenset(" .-–()/\u00a0")
_VN_COUNTRY_CODE = 84
_VN_MOBILE_NSN, _VN_LANDLINE_NSN = 9, 10  # digits after the leading 0


def _phone_digits(text: str) -> str:
    """ASCII digits and "+" only; raises for letters or stray symbols."""
    out: list[str] = []
    for ch in text:
        if ch.isdecimal():
            # Fullwidth or other-script digits from some keyboards.
            out.append(str(unicodedata.decimal(ch)))
        elif ch == "+" or ch == "＋":
            out.append("+")
        elif ch in _PHONE_SEPARATORS or ch.isspace():
            continue
        elif unicodedata.category(ch).startswith("L"):
            raise InvalidInput("validation.phone.letters")
        else:
            raise InvalidInput("validation.phone.invalid")
    return "".join(out)


# A run of digits with the separators people type inside a number, e.g. in
# "sdt e la 0912 345 678 nhe" or "my number is +84 912-345-678".
_PHONE_IN_TEXT = re.compile(r"[+＋]?\(?\d[\d .\-–()/\u00a0]{6,22}\d")


def parse_phone(text: str, region: str = DEFAULT_REGION) -> str:
    """A valid phone number in E.164 ("+84912345678"), alone or within a sentence.

    Vietnamese numbers may be written nationally (0912 345 678, 024 3825 1234) or with 84 /
    +84 / 0084; other countries need "+" and the country code.
    Keys: validation.phone.empty, .letters, .too_short, .too_long, .invalid.
    """
    try:
        return _parse_phone_alone(text, region)
    except InvalidInput as error:
        if error.key != "validation.phone.letters":
            raise
        # Words around a number ("sđt em là 0912 345 678 ạ"): take the number in them.
        for candidate in _PHONE_IN_TEXT.findall(text):
            try:
                return _parse_phone_alone(candidate, region)
            except InvalidInput:
                continue
        raise


def _parse_phone_alone(text: str, region: str) -> str:
    stripped = text.strip()
    if not stripped:
        raise InvalidInput("validation.phone.empty")
    compact = _phone_digits(stripped)
    # "+" is only meaningful in front: "0912+345" is not a number.
    if "+" in compact[1:]:
        raise InvalidInput("validation.phone.invalid")
    digits = compact.lstrip("+")
    if len(digits) < 8:
        raise InvalidInput("validation.phone.too_short" if digits else "validation.phone.invalid")
    if len(digits) > 17:  # 15 (E.164 maximum) plus a "00" international prefix
        raise InvalidInput("validation.phone.too_long")
    try:
        number = phonenumbers.parse(compact, region)
    except phonenumbers.NumberParseException as exc:
        if exc.error_type == phonenumbers.NumberParseException.TOO_LONG:
            raise InvalidInput("validation.phone.too_long") from None
        if exc.error_type in (
            phonenumbers.NumberParseException.TOO_SHORT_NSN,
            phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD,
        ):
            raise InvalidInput("validation.phone.too_short") from None
        raise InvalidInput("validation.phone.invalid") from None
    if phonenumbers.is_valid_number(number):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    raise InvalidInput(_phone_problem(number))


def _phone_problem(number: phonenumbers.PhoneNumber) -> str:
    """The most helpful key for a number that parsed but is not valid."""
    if number.country_code == _VN_COUNTRY_CODE:
        # phonenumbers calls most VN lengths "possible"; a missing or extra digit is the usual
        # mistake, so compare with the real lengths: landlines (0)2x have 10 digits after the
        # 0, mobiles 9.
        nsn = phonenumbers.national_significant_number(number)
        expected = _VN_LANDLINE_NSN if nsn.startswith("2") else _VN_MOBILE_NSN
        if len(nsn) < expected:
            return "validation.phone.too_short"
        if len(nsn) > expected:
            return "validation.phone.too_long"
        return "validation.phone.invalid"
    reason = phonenumbers.is_possible_number_with_reason(number)
    if reason == phonenumbers.ValidationResult.TOO_SHORT:
        return "validation.phone.too_short"
    if reason == phonenumbers.ValidationResult.TOO_LONG:
        return "validation.phone.too_long"
    return "validation.phone.invalid"


def phone_from_contact(contact_phone: str) -> str:
    """E.164 from a shared contact's phone (Telegram sends "84912345678", without "+").

    A contact number that does not start with 0 is already international, so "+" is added
    before parsing; national "0…" numbers (some Zalo payloads) are parsed as Vietnamese.
    Raises InvalidInput with the parse_phone keys.
    """
    stripped = contact_phone.strip()
    if stripped.isdecimal() and not stripped.startswith("0"):
        stripped = "+" + stripped
    return parse_phone(stripped)


def format_phone_display(e164: str) -> str:
    """National format for Vietnamese numbers ("0912 345 678"), international otherwise.

    Display only: a value that does not parse is returned unchanged rather than raising.
    """
    try:
        number = phonenumbers.parse(e164, DEFAULT_REGION)
    except phonenumbers.NumberParseException:
        return e164
    if number.country_code == _VN_COUNTRY_CODE:
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


def parse_address(text: str) -> str:
    """A delivery address on one line: spaces collapsed, lines joined with ", ".

    Keys: validation.address.empty, .too_short (min), .too_long (max), .link, .not_address.
    """
    lines = (_collapse(line).rstrip(",").strip() for line in text.splitlines())
    address = ", ".join(line for line in lines if line)
    if not address:
        raise InvalidInput("validation.address.empty")
    if len(address) < ADDRESS_MIN:
        raise InvalidInput("validation.address.too_short", min=ADDRESS_MIN)
    if len(address) > ADDRESS_MAX:
        raise InvalidInput("validation.address.too_long", max=ADDRESS_MAX)
    # Customers often paste a Google Maps link; staff need a written address.
    if _has_link(address):
        raise InvalidInput("validation.address.link")
    words = [w for w in re.split(r"[\s,]+", address) if w]
    if len(words) < 2 or not any(ch.isalpha() for ch in address):
        raise InvalidInput("validation.address.not_address")
    return address


def parse_email(text: str) -> str:
    """A syntactically valid email, normalized (domain lower-cased); no DNS lookup.

    Key: validation.email.invalid.
    """
    candidate = text.strip()
    if not candidate or len(candidate) > EMAIL_MAX:
        raise InvalidInput("validation.email.invalid")
    try:
        return validate_email(candidate, check_deliverability=False).normalized
    except (EmailNotValidError, ValueError):
        # ValueError also covers IDNA/Unicode errors from exotic domains.
        raise InvalidInput("validation.email.invalid") from None


def parse_request(text: str) -> str:
    """The customer's free-text request, trimmed (inner line breaks kept).

    Keys: validation.request.empty, .too_long (max).
    """
    request = text.strip()
    if not request:
        raise InvalidInput("validation.request.empty")
    if len(request) > REQUEST_MAX:
        raise InvalidInput("validation.request.too_long", max=REQUEST_MAX)
    return request

"""Translation catalogs: gettext `.po` files managed with Babel.

Layout: `locales/<lang>/LC_MESSAGES/<domain>.po`, one domain per area (core, orders, ...),
all domains of a language merged. Message ids are symbolic keys (`order.ask_name`);
placeholders use `str.format` syntax (`{code}`). Vietnamese is the first language.
`{hotline}` is filled in everywhere from the one catalog entry `core.hotline`.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"
LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
HOTLINE_PLACEHOLDER = "{hotline}"


class MissingTranslation(KeyError):
    """A message id has no text in the requested language (a bug caught by tests)."""


@cache
def catalog(lang: str) -> dict[str, str]:
    """All messages of one language, merged across domains."""
    messages: dict[str, str] = {}
    for po_path in sorted((LOCALES_DIR / lang / "LC_MESSAGES").glob("*.po")):
        with po_path.open("rb") as fh:
            for message in read_po(fh, locale=lang):
                if message.id and isinstance(message.id, str) and message.string:
                    messages[message.id] = str(message.string)
    return messages


def pick_language(setting: str | None, hint: str | None, default: str = DEFAULT_LANGUAGE) -> str:
    """The user's setting, else the platform's language hint, else the shop default."""
    for candidate in (setting, (hint or "")[:2].lower()):
        if candidate in LANGUAGES:
            return candidate
    return default if default in LANGUAGES else DEFAULT_LANGUAGE


def t(lang: str, key: str, **params: object) -> str:
    """Translate `key` into `lang` and fill its placeholders."""
    try:
        text = catalog(lang if lang in LANGUAGES else DEFAULT_LANGUAGE)[key]
    except KeyError:
        raise MissingTranslation(key) from None
    if HOTLINE_PLACEHOLDER in text:
        params = {"hotline": catalog(DEFAULT_LANGUAGE)["core.hotline"], **params}
    return text.format(**params) if params else text

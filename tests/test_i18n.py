"""Translation catalogs: every message id the code uses exists in Vietnamese and English,
with the same placeholders, in NFC; and the language is chosen in the documented order.

Message ids are found three ways:
- string literals passed to the translation helpers (`tr`, `t`, `staff_text`, `button`, ...)
  or given as `help_key=` / `title=` / `prompt=` / `label=`, found by parsing `handlers/` and
  `bot/`; any other literal shaped like an id of a catalog namespace counts too;
- the registries the code builds at import time: flows (title, each step's prompt and
  label), the main menu and the `/help` entries;
- f-string families such as f"order.status.{status}": the members of the order families are
  taken from the order code's own constants; every other family must at least have the same
  members in both languages.
"""

from __future__ import annotations

import ast
import re
import string
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest

from handlers.composition import build
from handlers.i18n import LANGUAGES, MissingTranslation, catalog, pick_language, t
from handlers.orders import service, staff

APP = build()

PROJECT_DIR = Path(__file__).resolve().parent.parent
SOURCE_DIRS = (PROJECT_DIR / "handlers", PROJECT_DIR / "bot")

MESSAGE_ID = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+$")
FAMILY_PREFIX = re.compile(r"^[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)*\.$")
TRANSLATING_CALLS = frozenset(
    {
        "tr",
        "t",
        "staff_text",
        "button",
        "to_customer",
        "notify_customer",
        "notify_staff",
        "_staff_notice",
        "InvalidInput",
        "menu_item",
    }
)
ID_KEYWORDS = frozenset({"help_key", "title", "prompt", "label", "key", "label_key"})

VI, EN = catalog("vi"), catalog("en")
NAMESPACES = {key.split(".", 1)[0] for key in (*VI, *EN)}


# ---- collecting ids from the source --------------------------------------------------------


def _sources() -> Iterator[tuple[str, ast.AST]]:
    for directory in SOURCE_DIRS:
        for path in sorted(directory.rglob("*.py")):
            yield str(path.relative_to(PROJECT_DIR)), ast.parse(path.read_text("utf-8"))


def _call_name(node: ast.Call) -> str | None:
    if isinstance(node.func, ast.Name):
        return node.func.id
    if isinstance(node.func, ast.Attribute):
        return node.func.attr
    return None


def _string_constants(node: ast.AST) -> Iterator[str]:
    """String literals in an argument, through `a if c else b` and `a or b`."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        yield node.value
    elif isinstance(node, ast.IfExp):
        yield from _string_constants(node.body)
        yield from _string_constants(node.orelse)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            yield from _string_constants(value)


def _step_declaration_args(node: ast.Call) -> list[ast.AST]:
    """`Step(name, prompt, label, ...)`: the prompt and label positions."""
    return list(node.args[1:3]) if _call_name(node) == "Step" else []


def _looks_like_an_id(node: ast.AST, shape: re.Pattern[str] = MESSAGE_ID) -> bool:
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and shape.match(node.value) is not None
        and node.value.split(".", 1)[0] in NAMESPACES
    )


def collect_literal_ids() -> dict[str, str]:
    """Message id → where it is used (first place), from literals in the source."""
    found: dict[str, str] = {}
    for where, tree in _sources():
        for node in ast.walk(tree):
            candidates: list[ast.AST] = []
            if isinstance(node, ast.Call):
                if _call_name(node) in TRANSLATING_CALLS:
                    candidates += node.args
                candidates += _step_declaration_args(node)
                candidates += [kw.value for kw in node.keywords if kw.arg in ID_KEYWORDS]
            elif _looks_like_an_id(node):
                # Any other literal shaped like an id of a catalog namespace (e.g. passed
                # through a local helper such as `row("order.alert.time", ...)`).
                candidates.append(node)
            for candidate in candidates:
                for text in _string_constants(candidate):
                    if MESSAGE_ID.match(text):
                        found.setdefault(text, f"{where}:{getattr(candidate, 'lineno', '?')}")
    return found


def collect_families() -> dict[str, list[str]]:
    """f-string id families: "order.status." → places like f"order.status.{status}"."""
    families: dict[str, list[str]] = {}
    for where, tree in _sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.JoinedStr) or not node.values:
                continue
            head = node.values[0]
            if _looks_like_an_id(head, FAMILY_PREFIX):
                assert isinstance(head, ast.Constant)
                families.setdefault(str(head.value), []).append(f"{where}:{node.lineno}")
    return families


def registry_ids() -> dict[str, str]:
    """Ids held by the composition's routers (flows, menu, /help)."""
    found: dict[str, str] = {}
    for flow in APP.flows.values():
        found[flow.title] = f"flow {flow.name} title"
        for step in flow.steps:
            found[step.prompt] = f"flow {flow.name} step {step.name} prompt"
            found[step.label] = f"flow {flow.name} step {step.name} label"
    for item in APP.menu:
        found[item.label_key] = f"menu item {item.payload.prefix}"
    for staff_only in (False, True):
        for name, key in APP.help_entries(staff=staff_only):
            found[key] = f"/help entry /{name}"
    return found


# The order families, with members from the order code's own constants.
STATUSES = tuple(service.TRANSITIONS)
TARGETS = tuple(sorted({target for targets in service.TRANSITIONS.values() for target in targets}))
ORDER_FAMILIES: dict[str, tuple[str, ...]] = {
    "order.status.": STATUSES,
    "order.action.": TARGETS,
    "order.notify.": TARGETS,
    "order.cancel_reason.": staff.CANCEL_REASONS,
}


def _missing(ids: dict[str, str]) -> list[str]:
    return [
        f"{key} ({where}) missing in {lang}"
        for key, where in sorted(ids.items())
        for lang, messages in (("vi", VI), ("en", EN))
        if key not in messages
    ]


# ---- presence --------------------------------------------------------------------------------


def test_the_scan_finds_the_known_ids() -> None:
    """Guard the scanner itself: ids used in well-known places are found."""
    ids = collect_literal_ids()
    for key in ("core.greeting", "flow.cancelled", "order.confirmed", "consent.notice"):
        assert key in ids
    assert "order.ask.full_name" in ids  # a Step declaration
    assert "validation.name.digits" in ids  # an InvalidInput
    assert "order.alert.time" in ids  # through a local helper
    assert set(ORDER_FAMILIES) <= set(collect_families())


def test_every_literal_message_id_exists_in_both_languages() -> None:
    assert _missing(collect_literal_ids()) == []


def test_every_registered_flow_menu_and_help_id_exists_in_both_languages() -> None:
    ids = registry_ids()
    assert ids
    assert _missing(ids) == []


@pytest.mark.parametrize("prefix", sorted(ORDER_FAMILIES))
def test_order_families_have_every_member(prefix: str) -> None:
    ids = {f"{prefix}{member}": f"family {prefix}*" for member in ORDER_FAMILIES[prefix]}
    assert _missing(ids) == []


def test_status_labels_are_distinct() -> None:
    for lang in LANGUAGES:
        labels = [t(lang, f"order.status.{status}") for status in STATUSES]
        assert len(set(labels)) == len(labels)


def test_every_family_has_the_same_members_in_both_languages() -> None:
    problems = []
    for prefix, places in sorted(collect_families().items()):
        vi = {key for key in VI if key.startswith(prefix)}
        en = {key for key in EN if key.startswith(prefix)}
        if not vi or vi != en:
            problems.append(f"{prefix}* used at {places[0]}: vi-only {vi - en}, en-only {en - vi}")
    assert problems == []


def test_both_languages_have_the_same_ids() -> None:
    assert set(VI) - set(EN) == set()
    assert set(EN) - set(VI) == set()


def test_unknown_id_raises() -> None:
    with pytest.raises(MissingTranslation):
        t("vi", "no.such.message")


# ---- placeholders and normalization ---------------------------------------------------------


def placeholders(text: str) -> set[str]:
    names = set()
    for _, field, _, _ in string.Formatter().parse(text):
        if field is not None:
            names.add(re.split(r"[.\[]", field, maxsplit=1)[0])
    return names


@pytest.mark.parametrize("key", sorted(set(VI) & set(EN)))
def test_placeholders_are_the_same_in_both_languages(key: str) -> None:
    assert placeholders(VI[key]) == placeholders(EN[key])
    # Each text can be filled with its own placeholders (no stray braces).
    params = dict.fromkeys(placeholders(VI[key]), 1)
    if params:
        for lang in LANGUAGES:
            t(lang, key, **params)
    assert "" not in placeholders(VI[key]), "positional {} placeholders cannot be filled"


@pytest.mark.parametrize("lang", LANGUAGES)
def test_texts_are_nfc(lang: str) -> None:
    not_nfc = [
        key
        for key, text in catalog(lang).items()
        if unicodedata.is_normalized("NFC", text) is False
    ]
    assert not_nfc == []


def test_vietnamese_texts_are_really_vietnamese() -> None:
    """A sanity check that the vi catalog is not a copy of the English one."""
    assert "Xin chào" in VI["core.greeting"]

    def words(text: str) -> str:  # what is left once placeholders are removed
        return "".join(ch for ch in re.sub(r"\{[^}]*\}", "", text) if ch.isalpha())

    same = [key for key in VI if VI[key] == EN[key] and len(words(VI[key])) > 20]
    assert same == []


# ---- choosing the language -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "hint", "default", "expected"),
    [
        ("en", "vi", "vi", "en"),  # the user's own choice wins
        ("vi", "en-US", "en", "vi"),
        (None, "en-US", "vi", "en"),  # then the platform's hint (region ignored)
        (None, "EN", "vi", "en"),
        (None, "vi", "en", "vi"),
        (None, "fr", "vi", "vi"),  # an unsupported hint falls back to the default
        (None, "fr", "en", "en"),
        (None, None, "en", "en"),
        (None, "", "vi", "vi"),
        ("de", None, "en", "en"),  # an unsupported setting is ignored
        (None, None, "xx", "vi"),  # and Vietnamese is the last resort
    ],
)
def test_pick_language_precedence(
    setting: str | None, hint: str | None, default: str, expected: str
) -> None:
    assert pick_language(setting, hint, default) == expected


def test_unsupported_language_falls_back_to_vietnamese_text() -> None:
    assert t("fr", "core.greeting") == VI["core.greeting"]

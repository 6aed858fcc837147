"""The dependency rules of DESIGN.md, checked on the source: `bot → handlers → storage`.

- handlers/ imports no platform library, web framework, SQL library or bot/ module, and never
  reaches behind the unit of work (`uow.session`): every query is a repository in storage/;
- storage/ imports neither handlers/ nor bot/; bot/ reaches the database through storage's
  API too (no sqlalchemy import);
- handlers/ code names no channel: it asks `ChannelCapabilities` (what the adapter declared)
  and writes neutral elements such as `mention()`, which each adapter renders. Channel names
  are the registered adapters' own names, so a new adapter is covered without editing this.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator

import pytest

from bot.channels.console import ConsoleAdapter
from bot.channels.telegram import TelegramAdapter
from bot.channels.zalo_bot import ZaloBotAdapter
from bot.channels.zalo_oa import ZaloOAAdapter
from handlers.i18n import catalog
from tests.helpers import PROJECT_DIR

ADAPTERS = (ConsoleAdapter, TelegramAdapter, ZaloOAAdapter, ZaloBotAdapter)
CHANNEL_NAMES = frozenset(adapter.name for adapter in ADAPTERS) | {"telegram", "zalo"}
PLATFORM_WORD = re.compile(
    r"(?i)tg://|(?<![a-z0-9])(?:" + "|".join(sorted(CHANNEL_NAMES)) + r")(?![a-z0-9])"
)
MESSAGE_IDS = frozenset(catalog("vi"))  # "console.no_such_button" is an id, not a channel

FORBIDDEN_IMPORTS = {
    "handlers": ("telegram", "httpx", "starlette", "uvicorn", "sqlalchemy", "alembic", "bot"),
    "storage": ("handlers", "bot", "telegram", "httpx", "starlette"),
    "bot": ("sqlalchemy", "alembic"),
}


def _files(package: str) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted((PROJECT_DIR / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Alembic migrations are storage's own SQL
        yield str(path.relative_to(PROJECT_DIR)), ast.parse(path.read_text("utf-8"))


def _imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from ((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def _docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring nodes (prose may explain a platform; code may not depend on one)."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def platform_mentions(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, text) of every string literal or name in code that names a channel."""
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if id(node) in docstrings or node.value in MESSAGE_IDS:
                continue
            text = node.value
        elif isinstance(node, ast.Name):
            text = node.id
        elif isinstance(node, ast.Attribute):
            text = node.attr
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            text = node.name
        else:
            continue
        if PLATFORM_WORD.search(text.replace("_", " ")):
            yield node.lineno, text


@pytest.mark.parametrize("package", sorted(FORBIDDEN_IMPORTS))
def test_layers_import_only_downwards(package: str) -> None:
    forbidden = FORBIDDEN_IMPORTS[package]
    offences = [
        f"{path}:{line} imports {module}"
        for path, tree in _files(package)
        for line, module in _imported(tree)
        if module.split(".")[0] in forbidden
    ]
    assert offences == []


def test_handlers_name_no_channel() -> None:
    offences = [
        f"{path}:{line} {text!r}"
        for path, tree in _files("handlers")
        for line, text in platform_mentions(tree)
    ]
    assert offences == []


@pytest.mark.parametrize(
    "code",
    [
        'SELF_DELETING = frozenset({"telegram", "console"})',
        'staff_channel: str = "console"',
        "link = f'<a href=\"tg://user?id={admin}\">'",
        'if ctx.inbound.channel == "zalobot": pass',
        'if ctx.inbound.channel.startswith("Zalo"): pass',
        "def telegram_only(): pass",
        "is_zalo = False",
    ],
)
def test_the_check_catches_platform_knowledge(code: str) -> None:
    assert list(platform_mentions(ast.parse(code)))


@pytest.mark.parametrize(
    "code",
    [
        '"""Telegram sends the phone without "+"."""',
        'ctx.tr("console.no_such_button", number=3)',
        "# on telegram\nself_delete = ctx.capabilities.can_delete_messages",
        'text = "consoles and telegrams"',
    ],
)
def test_the_check_leaves_prose_and_message_ids_alone(code: str) -> None:
    assert list(platform_mentions(ast.parse(code))) == []


def test_every_adapter_declares_its_capabilities() -> None:
    for adapter in ADAPTERS:
        assert "capabilities" in vars(adapter), adapter.__name__
    assert TelegramAdapter.capabilities.user_mentions
    assert not ZaloOAAdapter.capabilities.can_delete_messages


def test_handlers_never_reach_behind_the_unit_of_work() -> None:
    """No `uow.session`: every query is a repository method in storage/."""
    offending = [
        f"{path.relative_to(PROJECT_DIR)}:{node.lineno}"
        for path in sorted((PROJECT_DIR / "handlers").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text("utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "session"
    ]
    assert offending == []


def test_the_check_sees_imports() -> None:
    """Guard against a check that passes because it reads nothing."""

    def imported(package: str) -> set[str]:
        return {m.split(".")[0] for _, tree in _files(package) for _, m in _imported(tree)}

    assert {"storage", "handlers"} <= imported("handlers")
    assert "sqlalchemy" in imported("storage")

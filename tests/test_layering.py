"""The layering of DESIGN.md, checked on the imports of every module: `bot → handlers →
storage`. handlers/ knows no platform, web framework or SQL (it calls the repositories of
storage's unit of work and reads ORM objects' attributes); storage/ knows neither handlers/
nor bot/; bot/ reaches the database through storage's API too."""

from __future__ import annotations

import ast
from collections.abc import Iterator

import pytest

from tests.helpers import PROJECT_DIR

FORBIDDEN = {
    "handlers": ("telegram", "httpx", "starlette", "uvicorn", "sqlalchemy", "alembic", "bot"),
    "storage": ("handlers", "bot", "telegram", "httpx", "starlette"),
    # The runtime edges reach the database through storage's API only.
    "bot": ("sqlalchemy", "alembic"),
}


def _imports(package: str) -> Iterator[tuple[str, str]]:
    """(file, imported module) for every import in `package`, also those inside functions."""
    for path in sorted((PROJECT_DIR / package).rglob("*.py")):
        if "migrations" in path.parts:
            continue  # Alembic migrations are storage's own SQL
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                yield str(path.relative_to(PROJECT_DIR)), name


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers_import_only_what_they_may(package: str) -> None:
    offending = [
        f"{file}: {name}"
        for file, name in _imports(package)
        if name.split(".")[0] in FORBIDDEN[package]
    ]
    assert offending == []


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
    handlers = {name.split(".")[0] for _, name in _imports("handlers")}
    assert {"storage", "handlers"} <= handlers
    assert "sqlalchemy" in {name.split(".")[0] for _, name in _imports("storage")}

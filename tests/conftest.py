"""Shared fixtures for the whole suite.

- `db_url`     – a SQLite URL in the test's temporary folder, holding a copy of a database
                 migrated to head once per session (so each test starts empty and fast).
                 With `TEST_DATABASE_URL=postgresql://…` (a server's admin URL, as
                 `scripts/postgres.sh start` exports it) every test gets its own PostgreSQL
                 database instead, created from a migrated template database; tests marked
                 `sqlite_only` (they read SQLite's files) are left out of that run.
- `engine`     – an async engine on `db_url` (with the production pragmas), migrated to head.
- `sessions`   – an `async_sessionmaker` on that engine (what `Runtime` and `UnitOfWork` take).
- `clock`      – a `FakeClock` the test moves by hand (`clock.advance(hours=25)`).
- `adapter`    – a `RecordingAdapter` named "console" (records sends, can be told to fail).
- `shop`       – the test `ShopConfig` (example catalog, staff chat `STAFF` on "console",
                 staff admin "900").
- `harness`    – a `Harness` wiring all of the above into a real `Runtime`; stopped at the end.

Every test gets its own database file, so tests never see each other's data, and the suite
runs in parallel (`pytest -n 2`, pytest-xdist). A test that starts a process is marked
`@pytest.mark.subprocess` (enforced below); `pytest -m "not subprocess"` is the fast loop.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from handlers.context import ShopConfig
from storage.db import create_engine, migrate_to_head, session_factory
from tests.helpers import FakeClock, Harness, RecordingAdapter, shop_config


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    try:
        await migrate_to_head(engine)
    finally:
        await engine.dispose()  # the last connection closing folds the WAL into the file


POSTGRES_SERVER = os.environ.get("TEST_DATABASE_URL", "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On PostgreSQL, the tests that read SQLite's own files are not part of the run."""
    if not POSTGRES_SERVER:
        return
    kept = [item for item in items if item.get_closest_marker("sqlite_only") is None]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


def _database_url(name: str) -> str:
    url = make_url(POSTGRES_SERVER).set(drivername="postgresql+asyncpg", database=name)
    return url.render_as_string(hide_password=False)


async def _admin(*statements: str) -> None:
    engine = create_async_engine(_database_url("postgres"), isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as connection:
            for statement in statements:
                await connection.execute(text(statement))
    finally:
        await engine.dispose()


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A database migrated to head once per test session (per xdist worker); `db_url` copies
    it: a SQLite file, or on PostgreSQL a template database (its name in the path's stem)."""
    if POSTGRES_SERVER:
        name = f"vav_template_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
        drop = f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"
        asyncio.run(_admin(drop, f"CREATE DATABASE {name}"))
        asyncio.run(_migrate(_database_url(name)))
        yield Path(name)
        asyncio.run(_admin(drop))
        return
    path = tmp_path_factory.mktemp("template") / "template.db"
    asyncio.run(_migrate(f"sqlite+aiosqlite:///{path}"))
    assert not path.with_name(path.name + "-wal").exists()
    yield path


@pytest.fixture
def db_url(tmp_path: Path, migrated_template: Path) -> Iterator[str]:
    """A fresh, already migrated database for this test."""
    if POSTGRES_SERVER:
        name = f"vav_test_{secrets.token_hex(6)}"
        asyncio.run(_admin(f"CREATE DATABASE {name} TEMPLATE {migrated_template.name}"))
        yield _database_url(name)
        asyncio.run(_admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        return
    path = tmp_path / "test.db"
    shutil.copyfile(migrated_template, path)
    yield f"sqlite+aiosqlite:///{path}"


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)  # the copied template is at head: no migration to run
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return session_factory(engine)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def adapter() -> RecordingAdapter:
    return RecordingAdapter("console")


@pytest.fixture
def shop() -> ShopConfig:
    return shop_config()


@pytest.fixture
async def harness(
    sessions: async_sessionmaker[AsyncSession],
    clock: FakeClock,
    adapter: RecordingAdapter,
    shop: ShopConfig,
) -> AsyncIterator[Harness]:
    h = Harness(sessions, clock=clock, config=shop, adapter=adapter)
    try:
        yield h
    finally:
        await h.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Any:
    """A test that starts a process must be marked `@pytest.mark.subprocess`, so that
    `pytest -m "not subprocess"` really is the fast loop: unmarked, starting one fails."""
    if item.get_closest_marker("subprocess") is not None:
        return (yield)

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError(f"{item.nodeid} starts a process: mark it @pytest.mark.subprocess")

    # Popen's own start step (behind subprocess.run, Popen and asyncio's subprocesses alike);
    # failing there lets Popen close the pipes it opened.
    original = subprocess.Popen._execute_child  # type: ignore[attr-defined]
    subprocess.Popen._execute_child = refuse  # type: ignore[attr-defined]
    try:
        return (yield)
    finally:
        subprocess.Popen._execute_child = original  # type: ignore[attr-defined]

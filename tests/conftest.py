"""Shared fixtures for the whole suite.

- `db_url`     – a SQLite URL in the test's temporary folder (nothing is created yet).
- `engine`     – an async engine on `db_url` (with the production pragmas), migrated to head.
- `sessions`   – an `async_sessionmaker` on that engine (what `Runtime` and `UnitOfWork` take).
- `clock`      – a `FakeClock` the test moves by hand (`clock.advance(hours=25)`).
- `adapter`    – a `RecordingAdapter` named "console" (records sends, can be told to fail).
- `shop`       – the test `ShopConfig` (example catalog, staff chat `STAFF` on "console",
                 staff admin "900").
- `harness`    – a `Harness` wiring all of the above into a real `Runtime`; stopped at the end.

Every test gets its own database file, so tests never see each other's data.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from handlers.context import ShopConfig
from storage.db import create_engine, migrate_to_head, session_factory
from tests.helpers import FakeClock, Harness, RecordingAdapter, shop_config


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(db_url)
    await migrate_to_head(engine)
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


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "slow_cli: runs `python -m bot` as a subprocess")

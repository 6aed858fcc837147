"""Storage foundation: SQLite pragmas on every connection, migrations, timezone-aware UTC
datetimes, constraints the pipeline relies on, and clear errors for unusable files."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, delete, inspect, select
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from storage.db import (
    BUSY_TIMEOUT_MS,
    DatabaseUnavailable,
    create_engine,
    migrate_to_head,
    session_factory,
)
from storage.models import Base, ChannelIdentity, Customer, InboxEvent, Order
from storage.repositories import (
    NoCustomer,
    OneCustomer,
    SeveralCustomers,
    UnitOfWork,
    store_inbound,
)

HANOI = timezone(timedelta(hours=7))


@pytest.fixture
def empty_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'fresh' / 'bot.db'}"


async def orphan_insert_error(
    sessions: async_sessionmaker[AsyncSession], platform_user_id: str
) -> IntegrityError:
    """Insert a channel identity of customer 999, who does not exist: it must fail; the error."""
    async with sessions() as session:
        session.add(
            ChannelIdentity(
                customer_id=999,
                channel="console",
                platform_user_id=platform_user_id,
                chat_id="1",
                created_at=datetime.now(UTC),
            )
        )
        with pytest.raises(IntegrityError) as info:
            await session.commit()
    return info.value


async def _pragmas(engine: AsyncEngine) -> dict[str, object]:
    async with engine.connect() as conn:
        values = {}
        for name in ("journal_mode", "foreign_keys", "secure_delete", "busy_timeout"):
            values[name] = (await conn.exec_driver_sql(f"PRAGMA {name}")).scalar()
        return values


@pytest.mark.sqlite_only  # SQLite's PRAGMAs
async def test_pragmas_are_set_on_every_connection(engine: AsyncEngine) -> None:
    expected = {
        "journal_mode": "wal",
        "foreign_keys": 1,
        "secure_delete": 1,
        "busy_timeout": BUSY_TIMEOUT_MS,
    }
    assert await _pragmas(engine) == expected
    # Two connections open at once (a second engine: the process's pool holds one SQLite
    # connection): both configured, not only the first one.
    other = create_engine(str(engine.url))
    try:
        async with engine.connect() as first, other.connect() as second:
            for conn in (first, second):
                assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
                assert (await conn.exec_driver_sql("PRAGMA secure_delete")).scalar() == 1
    finally:
        await other.dispose()
    assert BUSY_TIMEOUT_MS >= 1000


@pytest.mark.sqlite_only  # SQLite's PRAGMAs
async def test_pragmas_survive_pool_recycling(engine: AsyncEngine) -> None:
    await engine.dispose()  # drop pooled connections: the next one is brand new
    assert (await _pragmas(engine))["secure_delete"] == 1


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


def _schema_diff(conn: Connection) -> list[object]:
    diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # Only structural differences matter here (SQLite reports types loosely).
    return [d for d in diffs if isinstance(d, tuple) and d[0].startswith(("add_", "remove_"))]


async def test_migrations_create_every_table_and_are_idempotent(empty_url: str) -> None:
    engine = create_engine(empty_url)  # also creates the missing data folder
    try:
        before, after = await migrate_to_head(engine)
        assert before is None and after is not None
        async with engine.connect() as conn:
            tables = await conn.run_sync(_tables)
            assert set(Base.metadata.tables) | {"alembic_version"} <= tables
            # The migrations build exactly what the models describe.
            assert await conn.run_sync(_schema_diff) == []

        again = await migrate_to_head(engine)
        assert again == (after, after)
        async with engine.connect() as conn:
            assert await conn.run_sync(_tables) == tables
    finally:
        await engine.dispose()


async def test_migrating_keeps_existing_data(empty_url: str) -> None:
    engine = create_engine(empty_url)
    try:
        await migrate_to_head(engine)
        sessions = session_factory(engine)
        now = datetime.now(UTC)
        async with UnitOfWork(sessions) as uow:
            await uow.customers.create("console", "42", "42", now)
            await uow.commit()
        await migrate_to_head(engine)
        async with UnitOfWork(sessions) as uow:
            assert await uow.customers.identity("console", "42") is not None
    finally:
        await engine.dispose()


async def test_utc_datetimes_round_trip_timezone_aware(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    hanoi_time = datetime(2026, 1, 15, 10, 30, 15, 123456, tzinfo=HANOI)
    async with sessions() as session:
        customer = Customer(created_at=hanoi_time, last_seen_at=hanoi_time, lock_notified=False)
        session.add(customer)
        await session.commit()
        customer_id = customer.id

    async with sessions() as session:
        loaded = await session.get(Customer, customer_id)
        assert loaded is not None
        assert loaded.created_at.tzinfo is not None
        assert loaded.created_at.utcoffset() == timedelta(0)
        assert loaded.created_at == hanoi_time  # the same instant
        assert loaded.created_at.hour == 3  # stored and returned as UTC
        # Comparisons with aware "now" values work (no naive/aware TypeError).
        assert loaded.created_at < datetime(2027, 1, 1, tzinfo=UTC)
        assert loaded.locked_at is None


async def test_naive_datetimes_are_refused(sessions: async_sessionmaker[AsyncSession]) -> None:
    naive = datetime(2026, 1, 15, 10, 30)
    async with sessions() as session:
        session.add(Customer(created_at=naive, last_seen_at=naive, lock_notified=False))
        with pytest.raises(StatementError):
            await session.commit()


async def test_foreign_keys_are_enforced_and_cascade(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    await orphan_insert_error(sessions, "1")
    async with UnitOfWork(sessions) as uow:
        customer = await uow.customers.create("console", "7", "7", now)
        await uow.commit()
        customer_id = customer.id
    async with sessions() as session:
        await session.execute(delete(Customer).where(Customer.id == customer_id))
        await session.commit()
        assert (await session.scalars(select(ChannelIdentity))).all() == []


async def test_inbox_is_unique_per_channel_event(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    now = datetime.now(UTC)
    first = await store_inbound(sessions, "telegram", "update-1", "5", "5", {"text": "hi"}, now)
    again = await store_inbound(sessions, "telegram", "update-1", "5", "5", {"text": "hi"}, now)
    other = await store_inbound(sessions, "zalo", "update-1", "5", "5", {"text": "hi"}, now)
    assert first is not None and again is None and other is not None
    async with sessions() as session:
        assert len((await session.scalars(select(InboxEvent))).all()) == 2


async def test_corrupt_database_file_gives_one_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "bot.db"
    path.write_bytes(os.urandom(8192))
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        with pytest.raises(DatabaseUnavailable) as info:
            await migrate_to_head(engine)
    finally:
        await engine.dispose()
    message = str(info.value)
    assert "\n" not in message and "corrupt" in message


async def test_data_folder_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    with pytest.raises(DatabaseUnavailable) as info:
        create_engine(f"sqlite+aiosqlite:///{blocker / 'sub' / 'bot.db'}")
    assert "\n" not in str(info.value) and "not-a-folder" in str(info.value)


async def test_database_errors_do_not_carry_personal_data(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    error = await orphan_insert_error(sessions, "Nguyễn Văn Bí Mật")
    assert "Bí Mật" not in str(error)


async def test_customer_lookup_is_one_several_or_none(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    """The lookup of staff commands: a phone in a profile or on an order names a customer;
    a phone two customers used names nobody in particular; an erased order names nobody."""
    now = datetime.now(UTC)
    async with UnitOfWork(sessions) as uow:
        first = await uow.customers.create("console", "1", "1", now)
        second = await uow.customers.create("console", "2", "2", now)
        first.phone = "+84903111222"
        for code, owner, phone in (
            ("VAV-AAAAA", second, "+84903111222"),
            ("VAV-BBBBB", second, "+84912000111"),
            ("VAV-CCCCC", None, "+84988000999"),  # erased: the stub has no customer
        ):
            await uow.orders.add(
                Order(
                    code=code,
                    customer_id=owner.id if owner else None,
                    status="new",
                    channel="console",
                    language="vi",
                    phone=phone,
                    created_at=now,
                    updated_at=now,
                )
            )
        await uow.commit()

    async with UnitOfWork(sessions) as uow:
        assert await uow.customers.lookup_phone("+84903111222") == SeveralCustomers(2)
        found = await uow.customers.lookup_phone("+84912000111")
        assert isinstance(found, OneCustomer) and found.customer.id == second.id
        assert await uow.customers.lookup_phone("+84988000999") == NoCustomer()
        assert await uow.customers.lookup_phone("+84977000000") == NoCustomer()
        found = await uow.customers.lookup_code("VAV-AAAAA")
        assert isinstance(found, OneCustomer) and found.customer.id == second.id
        assert await uow.customers.lookup_code("VAV-CCCCC") == NoCustomer()
        assert await uow.customers.lookup_code("KN-AAAAA") == NoCustomer()

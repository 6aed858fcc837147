"""Secrets generated once and kept in the database (see `StoredSecret`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.models import StoredSecret


async def stored_secret(
    sessions: async_sessionmaker[AsyncSession], name: str, generate: Callable[[], str]
) -> str:
    """The secret called `name`; generated with `generate()` and stored on first use."""
    async with sessions() as session:
        row = await session.get(StoredSecret, name)
        if row is not None:
            return row.value
        value = generate()
        session.add(StoredSecret(name=name, value=value, created_at=datetime.now(UTC)))
        try:
            await session.commit()
        except IntegrityError:  # stored meanwhile by another process: theirs wins
            await session.rollback()
            row = await session.get(StoredSecret, name)
            assert row is not None
            return row.value
        return value

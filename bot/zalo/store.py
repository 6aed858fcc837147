"""The Zalo OA token pair kept in the database (one row), committed on every rotation."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.zalo.tokens import TokenPair
from storage.models import ZaloTokenPair

ROW_ID = 1


class DatabaseTokenStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def load(self) -> TokenPair | None:
        async with self.sessions() as session:
            row = await session.get(ZaloTokenPair, ROW_ID)
            if row is None:
                return None
            return TokenPair(row.access_token, row.refresh_token, row.access_expires_at)

    async def save(self, pair: TokenPair) -> None:
        async with self.sessions() as session:
            row = await session.get(ZaloTokenPair, ROW_ID)
            if row is None:
                row = ZaloTokenPair(id=ROW_ID)
                session.add(row)
            row.access_token = pair.access_token
            row.refresh_token = pair.refresh_token
            row.access_expires_at = pair.access_expires_at
            row.updated_at = datetime.now(UTC)
            await session.commit()

    async def seed(self, access_token: str, refresh_token: str, *, force: bool = False) -> bool:
        """Store tokens from the settings only when none are stored (or when forced by
        `python -m bot zalo-token`); an empty access token makes the first use refresh."""
        if not force and await self.load() is not None:
            return False
        await self.save(TokenPair(access_token, refresh_token, datetime.now(UTC)))
        return True

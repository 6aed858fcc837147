"""The Zalo OA token pair kept in the database (one row), committed on every rotation."""

from __future__ import annotations

from datetime import UTC, datetime

from bot.zalo.tokens import TokenPair
from storage.db import Sessions
from storage.repositories import UnitOfWork


class DatabaseTokenStore:
    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions

    async def load(self) -> TokenPair | None:
        async with UnitOfWork(self.sessions) as uow:
            row = await uow.zalo_tokens.get()
            if row is None:
                return None
            return TokenPair(row.access_token, row.refresh_token, row.access_expires_at)

    async def save(self, pair: TokenPair) -> None:
        async with UnitOfWork(self.sessions) as uow:
            await uow.zalo_tokens.put(
                pair.access_token, pair.refresh_token, pair.access_expires_at, datetime.now(UTC)
            )
            await uow.commit()

    async def seed(self, access_token: str, refresh_token: str, *, force: bool = False) -> bool:
        """Store tokens from the settings only when none are stored (or when forced by
        `python -m bot zalo-token`); an empty access token makes the first use refresh."""
        if not force and await self.load() is not None:
            return False
        await self.save(TokenPair(access_token, refresh_token, datetime.now(UTC)))
        return True

"""Zalo OA tokens are encrypted in the database: the file (and its WAL) never holds their
bytes; the key comes from TOKEN_ENCRYPTION_KEY or is derived from ZALO_APP_SECRET; a wrong
key is one clear line; rows from earlier versions are sealed on first read."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.config import ConfigError, load_settings
from bot.zalo.store import DatabaseTokenStore, TokenCipher, TokenKeyError, token_cipher
from bot.zalo.tokens import TokenPair
from storage.db import session_factory, sqlite_path
from storage.models import ZaloTokenPair

ACCESS = "AccessToken-9f8e7d6c5b4a-VERY-SECRET"
REFRESH = "RefreshToken-0a1b2c3d4e5f-VERY-SECRET"
PAIR = TokenPair(ACCESS, REFRESH, datetime(2026, 1, 1, tzinfo=UTC))


def database_bytes(db_url: str) -> bytes:
    path = sqlite_path(db_url)
    assert path is not None
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


@pytest.mark.sqlite_only  # scans SQLite's files
async def test_the_database_file_never_holds_the_tokens(engine: AsyncEngine, db_url: str) -> None:
    store = DatabaseTokenStore(session_factory(engine), TokenCipher.derived_from("app-secret"))
    await store.save(PAIR)
    assert await store.load() == PAIR
    raw = database_bytes(db_url)  # WAL included: the engine is still open
    assert ACCESS.encode() not in raw and REFRESH.encode() not in raw

    # Restarted with the same secret: readable. With another secret: one clear line.
    again = DatabaseTokenStore(session_factory(engine), TokenCipher.derived_from("app-secret"))
    assert await again.load() == PAIR
    other = DatabaseTokenStore(session_factory(engine), TokenCipher.derived_from("new-secret"))
    with pytest.raises(TokenKeyError, match=r"^Configuration error: TOKEN_ENCRYPTION_KEY: "):
        await other.load()


@pytest.mark.sqlite_only  # scans SQLite's files
async def test_plain_rows_of_earlier_versions_are_sealed_on_first_read(
    engine: AsyncEngine, db_url: str
) -> None:
    sessions = session_factory(engine)
    store = DatabaseTokenStore(sessions, TokenCipher(Fernet.generate_key()))
    await store.save(PAIR)
    async with sessions() as session:  # what an earlier version wrote
        await session.execute(
            update(ZaloTokenPair).values(access_token=ACCESS, refresh_token=REFRESH)
        )
        await session.commit()
    assert await store.load() == PAIR
    await engine.dispose()  # checkpoint: the WAL folds into the file (secure_delete=ON)
    raw = database_bytes(db_url)
    assert ACCESS.encode() not in raw and REFRESH.encode() not in raw


def test_the_key_comes_from_the_settings(tmp_path: Path) -> None:
    base = {"_env_file": None, "data_dir": tmp_path}
    key = Fernet.generate_key().decode()
    sealed = token_cipher(load_settings(**base, token_encryption_key=key)).seal("x")
    assert TokenCipher(key.encode()).open(sealed) == "x"
    derived = token_cipher(
        load_settings(**base, zalo_app_id="1", zalo_app_secret="s", zalo_oa_secret_key="k")
    )
    assert TokenCipher.derived_from("s").open(derived.seal("y")) == "y"
    with pytest.raises(ConfigError, match=r"^Configuration error: TOKEN_ENCRYPTION_KEY: "):
        load_settings(**base, token_encryption_key="not-a-key")

"""The Zalo OA token pair kept in the database (one row), committed on every rotation and
encrypted at rest.

The tokens let anyone write to every follower of the shop's OA, so a copied database file
(a backup, a disk image) must not reveal them. They are sealed with Fernet (AES-128-CBC +
HMAC-SHA256, from `cryptography`) under `TOKEN_ENCRYPTION_KEY` when it is set; otherwise
under a key derived (HKDF-SHA256) from `ZALO_APP_SECRET`, which lives in the settings, not in
the database — so the default needs no extra setting and still keeps the file alone useless.
Rows written in plain text by earlier versions are read once and sealed.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bot.config import Settings
from bot.zalo.tokens import TokenPair
from storage.db import Sessions
from storage.repositories import UnitOfWork

SEALED = "fernet:"


class TokenKeyError(Exception):
    """The stored tokens were sealed under another key (one line for the operator)."""


class TokenCipher:
    def __init__(self, key: bytes) -> None:
        self._fernet = Fernet(key)

    @classmethod
    def derived_from(cls, app_secret: str) -> TokenCipher:
        raw = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"vietartview zalo tokens"
        ).derive(app_secret.encode())
        return cls(base64.urlsafe_b64encode(raw))

    def seal(self, value: str) -> str:
        return SEALED + self._fernet.encrypt(value.encode()).decode("ascii")

    def open(self, stored: str) -> str:
        if not stored.startswith(SEALED):
            return stored  # written by an earlier version; sealed on the next save
        try:
            return self._fernet.decrypt(stored[len(SEALED) :].encode("ascii")).decode()
        except InvalidToken:
            raise TokenKeyError(
                "Configuration error: TOKEN_ENCRYPTION_KEY: the stored Zalo OA tokens were "
                "encrypted under another key (TOKEN_ENCRYPTION_KEY or ZALO_APP_SECRET changed): "
                "set the old one again, or store a new refresh token with "
                "`python -m bot zalo-token`"
            ) from None


def token_cipher(settings: Settings) -> TokenCipher:
    if settings.token_encryption_key is not None:
        return TokenCipher(settings.token_encryption_key.get_secret_value().encode("ascii"))
    if settings.zalo_app_secret is None:
        raise TokenKeyError(
            "Configuration error: TOKEN_ENCRYPTION_KEY or ZALO_APP_SECRET is needed to keep "
            "Zalo OA tokens"
        )
    return TokenCipher.derived_from(settings.zalo_app_secret.get_secret_value())


class DatabaseTokenStore:
    def __init__(self, sessions: Sessions, cipher: TokenCipher) -> None:
        self.sessions = sessions
        self.cipher = cipher

    async def load(self) -> TokenPair | None:
        async with UnitOfWork(self.sessions) as uow:
            row = await uow.zalo_tokens.get()
            if row is None:
                return None
            pair = TokenPair(
                self.cipher.open(row.access_token),
                self.cipher.open(row.refresh_token),
                row.access_expires_at,
            )
            plain = not row.refresh_token.startswith(SEALED)
        if plain:
            await self.save(pair)
        return pair

    async def save(self, pair: TokenPair) -> None:
        async with UnitOfWork(self.sessions) as uow:
            await uow.zalo_tokens.put(
                self.cipher.seal(pair.access_token),
                self.cipher.seal(pair.refresh_token),
                pair.access_expires_at,
                datetime.now(UTC),
            )
            await uow.commit()

    async def seed(self, access_token: str, refresh_token: str, *, force: bool = False) -> bool:
        """Store tokens from the settings only when none are stored (or when forced by
        `python -m bot zalo-token`); an empty access token makes the first use refresh."""
        if not force and await self.load() is not None:
            return False
        await self.save(TokenPair(access_token, refresh_token, datetime.now(UTC)))
        return True

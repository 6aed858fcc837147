"""Zalo integration: Official Account (OA) Open API and the Zalo Bot Platform.

Modules:
    tokens      OA access/refresh token rotation (single-flight, saved before use)
    oa_client   httpx client for the OA Open API (send text/buttons/image/file, user detail)
    webhook     OA webhook: signature check, event -> `Inbound`, Starlette routes
    bot_client  Zalo Bot Platform (Telegram-like) client, poller and webhook route

This package file holds only the primitives the modules share, so the modules can import
from it without import cycles. See docs/zalo-api-notes.md for the API facts and sources.
"""

from __future__ import annotations

# Button payloads travel as the text of a hidden user message (`oa.query.hide`); this marker
# lets the webhook tell a pressed button from typed text. Typed text can carry it too, which
# is harmless: payloads are data and every action is authorized on the server.
PAYLOAD_MARKER = "#vav "

# Zalo's text limit (OA consultation messages and Bot Platform sendMessage alike).
ZALO_TEXT_LIMIT = 2000


class ZaloError(Exception):
    """Base class of Zalo failures. Messages carry codes, never tokens or personal data."""


class ZaloAuthError(ZaloError):
    """The OA token could not be obtained or refreshed, or Zalo keeps rejecting it.

    `retryable` is False when Zalo refused the refresh token itself: the OA admin must
    re-authorize the app; retrying cannot help until then.
    """

    def __init__(self, message: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


def split_text(text: str, limit: int = ZALO_TEXT_LIMIT) -> list[str]:
    """Split text into chunks of at most `limit` characters, preferring line breaks.

    Returns at least one chunk (possibly empty) so callers can always send something.
    """
    if len(text) <= limit:
        return [text]
    chunks: list[str] = []
    rest = text
    while len(rest) > limit:
        cut = rest.rfind("\n", 0, limit + 1)
        if cut <= 0:
            cut = rest.rfind(" ", 0, limit + 1)
        if cut <= 0:
            cut = limit
        chunks.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip("\n ")
    if rest:
        chunks.append(rest)
    return chunks

"""Zalo OA access-token lifecycle.

The OA access token lives 25 hours; the refresh token is valid for 3 months but is
**single-use**: every refresh returns a new pair and kills the old refresh token. Losing the
new pair means an OA admin has to re-authorize the app in a browser. Hence:

- refreshes are single-flight (one `asyncio.Lock`; late arrivals reuse the new token),
- the new pair is saved to the `TokenStore` before anyone uses it,
- the refresh + save runs shielded from the caller's cancellation,
- tokens never appear in logs, reprs or exception messages.

The lock is per process. Running two bot processes against one OA needs a store whose
`save` is a compare-and-set (or a database lock); see docs/zalo-api-notes.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import httpx

from bot.zalo import ZaloAuthError

log = logging.getLogger(__name__)

REFRESH_PATH = "/v4/oa/access_token"
DEFAULT_ACCESS_TTL = timedelta(seconds=90000)  # Zalo's documented 25 h, if expires_in is absent

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class TokenPair:
    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    access_expires_at: datetime


class TokenStore(Protocol):
    async def load(self) -> TokenPair | None: ...

    async def save(self, pair: TokenPair) -> None: ...


class MemoryTokenStore:
    """Keeps the pair in memory (tests, or seeding from settings for a single run)."""

    def __init__(self, initial: TokenPair | None = None) -> None:
        self._pair = initial

    async def load(self) -> TokenPair | None:
        return self._pair

    async def save(self, pair: TokenPair) -> None:
        self._pair = pair


async def _shielded(coro: Awaitable[T]) -> T:
    """Await `coro` in its own task so a cancelled caller cannot abort it half-way."""
    task = asyncio.ensure_future(coro)
    # If our caller is cancelled, nobody awaits the task: consume its outcome so asyncio
    # does not warn about an unretrieved exception.
    task.add_done_callback(lambda t: t.cancelled() or t.exception())
    return await asyncio.shield(task)


class ZaloTokenManager:
    """Hands out a valid OA access token; refreshes it ahead of expiry or on demand."""

    def __init__(
        self,
        store: TokenStore,
        http: httpx.AsyncClient,
        oauth_base_url: str,
        app_id: str,
        secret_key: str,
        refresh_margin: timedelta = timedelta(hours=1),
        clock: Callable[[], datetime] = utc_now,
        timeout: httpx.Timeout | None = None,
        on_failure: Callable[[str], Awaitable[None]] | None = None,
        failure_alert_every: timedelta = timedelta(hours=1),
    ) -> None:
        self._store = store
        self._on_failure = on_failure
        self._alert_every = failure_alert_every
        self._last_alert: datetime | None = None
        self._http = http
        self._url = oauth_base_url.rstrip("/") + REFRESH_PATH
        self._app_id = app_id
        self._secret_key = secret_key
        self._margin = refresh_margin
        self._clock = clock
        self._timeout = timeout or httpx.Timeout(15.0, connect=5.0)
        self._lock = asyncio.Lock()
        self._pair: TokenPair | None = None
        self.refresh_count = 0  # successful refreshes by this process (metrics, tests)
        # Told each refresh's outcome ("ok" / "failed"): the runtime's metrics count them.
        self.on_refresh: Callable[[str], None] = lambda _outcome: None

    def __repr__(self) -> str:
        return f"ZaloTokenManager(app_id={self._app_id!r})"

    async def access_token(self) -> str:
        """A token that is valid for at least `refresh_margin`, refreshing if needed."""
        pair = self._pair or await self._load()
        if self._is_fresh(pair):
            return pair.access_token
        return await self.refresh(pair.access_token)

    async def refresh(self, stale_token: str | None) -> str:
        """Replace `stale_token` (None: unconditionally) and return the new access token.

        Callers that saw Zalo reject `stale_token` call this; if another task has already
        replaced it, the newer token is returned without a second refresh call.
        """
        return await _shielded(self._refresh_locked(stale_token))

    def _is_fresh(self, pair: TokenPair) -> bool:
        return self._clock() < pair.access_expires_at - self._margin

    async def _load(self) -> TokenPair:
        pair = await self._store.load()
        if pair is None:
            raise ZaloAuthError("no Zalo OA token pair in the token store", retryable=False)
        self._pair = pair
        return pair

    async def _refresh_locked(self, stale_token: str | None) -> str:
        async with self._lock:
            # Re-read the store: another process may have rotated the pair meanwhile.
            current = await self._load()
            if (
                stale_token is not None
                and current.access_token != stale_token
                and self._is_fresh(current)
            ):
                return current.access_token
            try:
                new_pair = await self._request_new_pair(current.refresh_token)
            except ZaloAuthError as exc:
                log.error("zalo oa token refresh failed: %s", exc)  # the one line for the operator
                self.on_refresh("failed")
                await self._alert(str(exc))
                raise
            # Save before use: the old refresh token is already dead at Zalo.
            await self._store.save(new_pair)
            self._pair = new_pair
            self.refresh_count += 1
            self.on_refresh("ok")
            log.info(
                "zalo oa token refreshed; access token valid until %s",
                new_pair.access_expires_at.isoformat(timespec="seconds"),
            )
            return new_pair.access_token

    async def _alert(self, reason: str) -> None:
        """Tell the shop (e.g. the staff chat) once an hour while refreshing keeps failing."""
        now = self._clock()
        if self._on_failure is None or (
            self._last_alert is not None and now - self._last_alert < self._alert_every
        ):
            return
        self._last_alert = now
        await self._on_failure(reason)

    async def _request_new_pair(self, refresh_token: str) -> TokenPair:
        try:
            response = await self._http.post(
                self._url,
                headers={"secret_key": self._secret_key},
                data={
                    "refresh_token": refresh_token,
                    "app_id": self._app_id,
                    "grant_type": "refresh_token",
                },
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            # str(exc) may contain the URL; the type name is enough and safe.
            raise ZaloAuthError(f"token refresh failed: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise ZaloAuthError(f"token refresh failed: HTTP {response.status_code}")
        try:
            body: Any = response.json()
        except ValueError:
            raise ZaloAuthError("token refresh failed: response is not JSON") from None
        if not isinstance(body, dict):
            raise ZaloAuthError("token refresh failed: unexpected response")
        access = body.get("access_token")
        refresh = body.get("refresh_token")
        if not isinstance(access, str) or not access or not isinstance(refresh, str) or not refresh:
            # Zalo answers {"error": -14xxx, "error_name": ...}; error_name is a fixed phrase.
            code = body.get("error")
            name = str(body.get("error_name") or body.get("message") or "")[:80]
            raise ZaloAuthError(
                f"token refresh refused: code={code} {name}".rstrip(), retryable=False
            )
        return TokenPair(
            access_token=access,
            refresh_token=refresh,
            access_expires_at=self._clock() + _expires_in(body.get("expires_in")),
        )


def _expires_in(value: object) -> timedelta:
    """Zalo sends expires_in as a string of seconds ("90000"); accept numbers too."""
    try:
        seconds = int(str(value))
    except ValueError:
        return DEFAULT_ACCESS_TTL
    return timedelta(seconds=seconds) if seconds > 0 else DEFAULT_ACCESS_TTL

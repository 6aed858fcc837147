"""Zalo Bot Platform (bot.zaloplatforms.com): a Telegram-like bot API for personal chats.

Calls are `POST {base_url}/bot{TOKEN}/{method}` with a JSON body; answers are
`{"ok": true, "result": ...}` or `{"ok": false, "error_code": n, "description": ...}`.
Differences from Telegram that shape this module:

- `getUpdates` takes only `timeout` and returns ONE update (not a list, no offset): an
  update is consumed when it is returned, so the poller retries storing it until it sticks;
  `error_code` 408 means "no update within the timeout".
- webhook deliveries carry the secret chosen in `setWebhook` in `X-Bot-Api-Secret-Token`.
- no buttons, no message editing or deletion (the adapter degrades; see zalo_bot adapter).

The token is part of every URL: this module never logs URLs and masks the token in the
`httpx` logger's request lines; keep it out of any other log too.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.web import read_json
from bot.zalo import ZaloError
from handlers.messages import MAX_TEXT_CHARS, Attachment, Inbound, normalize_text

log = logging.getLogger(__name__)

CHANNEL = "zalobot"
DEFAULT_BASE_URL = "https://bot-api.zaloplatforms.com"
SECRET_HEADER = "X-Bot-Api-Secret-Token"
WEBHOOK_PATH = "/zalobot/webhook"
MAX_BODY_BYTES = 64 * 1024
NO_UPDATES = 408  # getUpdates timed out without an update
BOT_HTTP_TIMEOUT = httpx.Timeout(15.0, connect=5.0)

Receive = Callable[[Inbound], Awaitable[bool]]


class _TokenRedactor(logging.Filter):
    """Masks bot tokens in the `httpx` logger's records ("HTTP Request: POST <url>")."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(token in message for token in self.tokens):
            for token in self.tokens:
                message = message.replace(token, "<token>")
            record.msg, record.args = message, None
        return True


_REDACTOR = _TokenRedactor()
logging.getLogger("httpx").addFilter(_REDACTOR)


class ZaloBotError(ZaloError):
    """`code` is the HTTP status or the API's error_code; None for network failures."""

    def __init__(self, code: int | None, description: str) -> None:
        self.code = code
        self.description = description[:200]
        super().__init__(f"zalobot:{code} {self.description}".rstrip())


class ZaloBotClient:
    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str = DEFAULT_BASE_URL,
        token: str = "",
        timeout: httpx.Timeout = BOT_HTTP_TIMEOUT,
    ) -> None:
        if not token:
            raise ValueError("a Zalo bot token is required")
        self._http = http
        self._prefix = f"{base_url.rstrip('/')}/bot{token}/"
        _REDACTOR.tokens.add(token)
        self._timeout = timeout

    def __repr__(self) -> str:
        return "ZaloBotClient(<token hidden>)"

    async def get_me(self) -> dict[str, Any]:
        result = await self._call("getMe")
        return result if isinstance(result, dict) else {}

    async def get_updates(self, poll_timeout: int = 30) -> list[dict[str, Any]]:
        """Long-poll for up to `poll_timeout` seconds; [] when nothing arrived."""
        read_timeout = httpx.Timeout(poll_timeout + 10.0, connect=5.0)
        try:
            result = await self._call("getUpdates", {"timeout": str(poll_timeout)}, read_timeout)
        except ZaloBotError as exc:
            if exc.code == NO_UPDATES:
                return []
            raise
        # Documented as a single update; accept a list too, in case it starts batching.
        items = result if isinstance(result, list) else [result]
        return [item for item in items if isinstance(item, dict) and item.get("event_name")]

    async def send_message(self, chat_id: str, text: str) -> str:
        result = await self._call("sendMessage", {"chat_id": chat_id, "text": text})
        return _message_id(result)

    async def send_photo(self, chat_id: str, photo_url: str, caption: str = "") -> str:
        body: dict[str, Any] = {"chat_id": chat_id, "photo": photo_url}
        if caption:
            body["caption"] = caption
        return _message_id(await self._call("sendPhoto", body))

    async def set_webhook(self, url: str, secret_token: str) -> None:
        if not 8 <= len(secret_token) <= 256:
            raise ValueError("secret_token must be 8..256 characters")
        await self._call("setWebhook", {"url": url, "secret_token": secret_token})

    async def delete_webhook(self) -> None:
        await self._call("deleteWebhook")

    async def _call(
        self,
        method: str,
        body: dict[str, Any] | None = None,
        http_timeout: httpx.Timeout | None = None,
    ) -> Any:
        try:
            response = await self._http.post(
                self._prefix + method, json=body or {}, timeout=http_timeout or self._timeout
            )
        except httpx.HTTPError as exc:
            # Never str(exc): it may contain the URL, and the URL contains the token.
            raise ZaloBotError(None, f"network error {type(exc).__name__}") from None
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise ZaloBotError(response.status_code, f"HTTP {response.status_code}")
        if data.get("ok") is True:
            return data.get("result")
        code = data.get("error_code")
        return_code = code if isinstance(code, int) else response.status_code
        raise ZaloBotError(return_code, str(data.get("description") or ""))


def _message_id(result: Any) -> str:
    if isinstance(result, dict) and result.get("message_id") is not None:
        return str(result["message_id"])
    return ""


def update_to_inbound(update: dict[str, Any]) -> Inbound | None:
    """Text, photo and sticker messages; anything else is ignored (None)."""
    name = str(update.get("event_name") or "")
    message = update.get("message")
    if not isinstance(message, dict):
        return None
    chat, sender = message.get("chat"), message.get("from")
    user_id = _text(sender.get("id")) if isinstance(sender, dict) else ""
    chat_id = (_text(chat.get("id")) if isinstance(chat, dict) else "") or user_id
    if not user_id:
        return None
    message_id = _text(message.get("message_id"))
    dedupe_key = (
        message_id
        or hashlib.sha256(
            json.dumps(update, sort_keys=True, ensure_ascii=False).encode()
        ).hexdigest()
    )
    base = Inbound(channel=CHANNEL, chat_id=chat_id, user_id=user_id, dedupe_key=dedupe_key)
    if name == "message.text.received":
        text = normalize_text(_text(message.get("text")))[:MAX_TEXT_CHARS]
        if not text:
            return None
        command, args = Inbound.parse_command(text)
        return replace(base, text=text, command=command, args=args if command else "")
    if name == "message.image.received":
        url = _text(message.get("photo_url")) or _text(message.get("photo"))
        caption = normalize_text(_text(message.get("caption")))[:MAX_TEXT_CHARS]
        attachments = (Attachment(kind="photo", ref=url),) if url else ()
        return replace(base, text=caption, attachments=attachments)
    if name == "message.sticker.received":
        ref = _text(message.get("sticker")) or _text(message.get("url"))
        return replace(base, attachments=(Attachment(kind="sticker", ref=ref),) if ref else ())
    return None


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return ""


class ZaloBotPoller:
    """Long-polls `getUpdates` and stores each update through `receive`.

    Errors back off exponentially (reset after a success). Because Zalo hands an update out
    only once, a failing `receive` is retried (with the same backoff) before polling again,
    so nothing fetched is dropped while the database is briefly unavailable.
    Call `start()` and later `await stop()`; cancellation ends the loop cleanly.
    """

    def __init__(
        self,
        client: ZaloBotClient,
        receive: Receive,
        *,
        poll_timeout: int = 30,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
    ) -> None:
        self._client = client
        self._receive = receive
        self._poll_timeout = poll_timeout
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._task: asyncio.Task[None] | None = None

    def start(self) -> asyncio.Task[None]:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name="zalobot-poller")
        return self._task

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self) -> None:
        backoff = self._initial_backoff
        while True:
            try:
                updates = await self._client.get_updates(self._poll_timeout)
            except Exception as exc:  # network, HTTP, API errors: back off and poll again
                code = exc.code if isinstance(exc, ZaloBotError) else type(exc).__name__
                log.warning("zalobot getUpdates failed (%s); retrying in %.1fs", code, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)
                continue
            backoff = self._initial_backoff
            for update in updates:
                inbound = update_to_inbound(update)
                if inbound is not None:
                    await self._store(inbound)

    async def _store(self, inbound: Inbound) -> None:
        backoff = self._initial_backoff
        while True:
            try:
                await self._receive(inbound)
                return
            except Exception as exc:
                # Type only: database errors can quote the row's (personal) values.
                log.error(
                    "zalobot: storing an update failed (%s); retrying in %.1fs",
                    type(exc).__name__,
                    backoff,
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)


def make_zalo_bot_webhook_route(
    receive: Receive, secret_token: str, path: str = WEBHOOK_PATH
) -> Route:
    """`POST` route for Zalo Bot webhook deliveries, authenticated by the secret header."""
    if not secret_token:
        raise ValueError("a webhook secret token is required")

    async def webhook(request: Request) -> Response:
        body = await read_json(request, MAX_BODY_BYTES, SECRET_HEADER, secret_token)
        if isinstance(body, Response):
            return body
        # Deliveries are the bare update; tolerate the {"ok", "result"} envelope too.
        update = body.get("result") if body.get("ok") is True else body
        inbound = update_to_inbound(update) if isinstance(update, dict) else None
        if inbound is not None:
            try:
                await receive(inbound)
            except Exception as exc:
                log.error("zalobot webhook: storing the update failed (%s)", type(exc).__name__)
                return PlainTextResponse("retry", status_code=500)
        return JSONResponse({"ok": True})

    return Route(path, webhook, methods=["POST"])

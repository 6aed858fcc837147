"""An in-process fake of the Zalo Bot Platform API (bot-api.zaloplatforms.com).

    async with FakeZaloBotAPI(token="12345:abc") as api:
        client = ZaloBotClient(http, api.base_url, "12345:abc")
        api.push_update(api.text_update("u1", "xin chào"))
        call = await api.wait_for("sendMessage")

Shapes follow the platform: `POST /bot<TOKEN>/<method>` with JSON; answers
`{"ok": true, "result": ...}` or `{"ok": false, "error_code", "description"}`.
`getUpdates` long-polls and returns ONE update, or error_code 408 after `timeout` seconds.
Failure injection: `fail_http(status, times)` (next requests of any method),
`fail_chat(chat_id, code, description)`. Every request is recorded in `calls`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import ServedApp

JSON = dict[str, Any]


@dataclass
class BotCall:
    method: str
    token: str
    body: JSON
    headers: dict[str, str]


class FakeZaloBotAPI:
    def __init__(self, token: str = "12345:fake-bot-token") -> None:
        self.token = token
        self.calls: list[BotCall] = []
        self.webhook: JSON | None = None
        self.chat_errors: dict[str, tuple[int, str]] = {}
        self._updates: asyncio.Queue[JSON] = asyncio.Queue()
        self._http_failures: list[int] = []
        self._ids = itertools.count(1)
        self._recorded = asyncio.Condition()
        self._closing = asyncio.Event()
        self._server = ServedApp(
            Starlette(routes=[Route("/bot{token}/{method}", self._dispatch, methods=["POST"])]),
            "FakeZaloBotAPI",
        )

    async def __aenter__(self) -> FakeZaloBotAPI:
        await self._server.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._closing.set()  # release long polls so shutdown does not wait for them
        await self._server.stop()

    @property
    def base_url(self) -> str:
        """The client appends /bot<TOKEN>/<method>."""
        return self._server.origin

    # --- test helpers ---------------------------------------------------------------------

    def push_update(self, update: JSON) -> None:
        self._updates.put_nowait(update)

    def text_update(self, user_id: str, text: str, *, chat_id: str | None = None) -> JSON:
        return {
            "event_name": "message.text.received",
            "message": self._message(user_id, chat_id) | {"text": text},
        }

    def photo_update(
        self, user_id: str, photo_url: str, caption: str = "", *, chat_id: str | None = None
    ) -> JSON:
        message = self._message(user_id, chat_id) | {"photo_url": photo_url}
        if caption:
            message["caption"] = caption
        return {"event_name": "message.image.received", "message": message}

    def sticker_update(self, user_id: str, sticker: str) -> JSON:
        message = self._message(user_id, None) | {"sticker": sticker}
        return {"event_name": "message.sticker.received", "message": message}

    def fail_http(self, status: int = 500, times: int = 1) -> None:
        self._http_failures += [status] * times

    def fail_chat(self, chat_id: str, code: int, description: str) -> None:
        self.chat_errors[chat_id] = (code, description)

    def calls_of(self, method: str) -> list[BotCall]:
        return [call for call in self.calls if call.method == method]

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[BotCall], bool] = lambda call: True,
        count: int = 1,
        within: float = 5.0,
    ) -> list[BotCall]:
        """Wait until `count` recorded calls of `method` match `predicate`."""

        def matching() -> list[BotCall]:
            return [c for c in self.calls if c.method == method and predicate(c)]

        async with asyncio.timeout(within), self._recorded:
            await self._recorded.wait_for(lambda: len(matching()) >= count)
        return matching()

    def _message(self, user_id: str, chat_id: str | None) -> JSON:
        return {
            "message_id": f"m{next(self._ids)}",
            "from": {"id": user_id, "display_name": "Khách", "is_bot": False},
            "chat": {"id": chat_id or user_id, "chat_type": "PRIVATE"},
            "date": int(time.time() * 1000),
            "message_type": "CHAT_MESSAGE",
        }

    # --- dispatch -------------------------------------------------------------------------

    async def _dispatch(self, request: Request) -> Response:
        token = request.path_params["token"]
        method = request.path_params["method"]
        raw = await request.body()
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = {}
        async with self._recorded:
            self.calls.append(
                BotCall(method, token, body, {k.lower(): v for k, v in request.headers.items()})
            )
            self._recorded.notify_all()
        if self._http_failures:
            return Response("injected failure", status_code=self._http_failures.pop(0))
        if token != self.token:
            return _error(401, "Unauthorized")
        handler = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
        }.get(method)
        if handler is None:
            return _error(404, "Not Found")
        return await handler(body)

    async def _get_me(self, body: JSON) -> Response:
        return _ok({"id": "bot1", "account_name": "bot.vietartview", "account_type": "BASIC"})

    async def _get_updates(self, body: JSON) -> Response:
        if self.webhook is not None:
            return _error(409, "Conflict: webhook is active")
        timeout = float(body.get("timeout", "30"))
        get = asyncio.ensure_future(self._updates.get())
        closing = asyncio.ensure_future(self._closing.wait())
        done, _ = await asyncio.wait({get, closing}, timeout=timeout, return_when="FIRST_COMPLETED")
        closing.cancel()
        if get in done:
            return _ok(get.result())
        get.cancel()
        return _error(408, "Request timeout")

    async def _send_message(self, body: JSON) -> Response:
        chat_id = str(body.get("chat_id", ""))
        text = body.get("text")
        if not chat_id or not isinstance(text, str) or not text:
            return _error(400, "Bad Request: chat_id and text are required")
        if len(text) > 2000:
            return _error(400, "Bad Request: text is too long")
        if chat_id in self.chat_errors:
            return _error(*self.chat_errors[chat_id])
        return _ok({"message_id": f"sent{next(self._ids)}", "date": int(time.time() * 1000)})

    async def _send_photo(self, body: JSON) -> Response:
        chat_id = str(body.get("chat_id", ""))
        if not chat_id or not body.get("photo"):
            return _error(400, "Bad Request: chat_id and photo are required")
        if chat_id in self.chat_errors:
            return _error(*self.chat_errors[chat_id])
        return _ok({"message_id": f"sent{next(self._ids)}", "date": int(time.time() * 1000)})

    async def _set_webhook(self, body: JSON) -> Response:
        url, secret = body.get("url"), body.get("secret_token")
        if not isinstance(url, str) or not url.startswith("https://"):
            return _error(400, "Bad Request: url must be https")
        if not isinstance(secret, str) or not 8 <= len(secret) <= 256:
            return _error(400, "Bad Request: secret_token must be 8-256 characters")
        self.webhook = {"url": url, "secret_token": secret}
        return _ok({"url": url, "updated_at": int(time.time() * 1000)})

    async def _delete_webhook(self, body: JSON) -> Response:
        self.webhook = None
        return _ok({"url": "", "updated_at": int(time.time() * 1000)})


def _ok(result: Any) -> JSONResponse:
    return JSONResponse({"ok": True, "result": result})


def _error(code: int, description: str) -> JSONResponse:
    # The platform answers errors with a JSON body; HTTP status mirrors the code.
    status = code if 400 <= code < 600 else 400
    return JSONResponse({"ok": False, "error_code": code, "description": description}, status)

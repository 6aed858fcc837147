"""Helpers for the Zalo integration tests (`tests/test_zalo_integration.py`).

They run the REAL bot (`bot.app.run_channels`) against the fake Zalo servers of
`tests/fakes/`: the OA webhook is reached over HTTP on 127.0.0.1, sends go through the real
httpx clients, tokens live in the bot's database. Staff work on the console (no Telegram
configured): staff output is read from the captured stdout, staff taps go in through
`runtime.receive` from the staff chat.

    async with running_bot(settings) as bot:
        await bot.post_event(events.follow(USER))
        await bot.settle()
        assert greeting in texts_to(fake, USER)
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from bot.app import run_channels
from bot.config import Settings, load_settings
from bot.runtime import Runtime
from bot.zalo import PAYLOAD_MARKER
from bot.zalo.webhook import SIGNATURE_HEADER, WEBHOOK_PATH
from handlers.i18n import t
from handlers.messages import STAFF, Inbound
from storage.models import InboxEvent, OutboxMessage
from tests.fakes.zalo_api import FakeZaloAPI

JSON = dict[str, Any]

OA_SECRET_KEY = "oa-secret-key-for-tests"  # signs webhook events (not the app secret)
OA_ID = "579745863508352884"
STAFF_ADMIN = "900"
WAIT = 10.0  # upper bound of every wait below (a hang fails instead of blocking the suite)


def tr(key: str, **params: object) -> str:
    """The Vietnamese catalog text of `key` (customers without a setting get Vietnamese)."""
    return t("vi", key, **params)


def first_line(key: str, **params: object) -> str:
    return tr(key, **params).splitlines()[0]


# ---- settings -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def base_settings(data_dir: Path, **overrides: object) -> Settings:
    """Settings isolated from the environment and any `.env`: console staff, no channel."""
    values: dict[str, object] = {
        "_env_file": None,
        "data_dir": data_dir,
        "database_url": "",
        "telegram_bot_token": None,
        "staff_chat_id": "",
        "staff_admin_ids": STAFF_ADMIN,
        "default_locale": "vi",
        "catalog_path": None,
        "zalo_app_id": "",
        "zalo_app_secret": None,
        "zalo_oa_secret_key": None,
        "zalo_access_token": None,
        "zalo_refresh_token": None,
        "zalo_bot_token": None,
        "zalo_bot_webhook_secret": None,
        "webhook_host": "127.0.0.1",
        "webhook_port": free_port(),
        "webhook_public_url": "",
    }
    values.update(overrides)
    return load_settings(**values)


def oa_settings(
    data_dir: Path, fake: FakeZaloAPI, access: str, refresh: str, **overrides: object
) -> Settings:
    """A shop with a Zalo OA (pointing at `fake`) and the first token pair in the settings."""
    return base_settings(
        data_dir,
        zalo_app_id=fake.app_id,
        zalo_app_secret=fake.secret_key,
        zalo_oa_secret_key=OA_SECRET_KEY,
        zalo_access_token=access,
        zalo_refresh_token=refresh,
        zalo_api_base_url=fake.base_url,
        zalo_oauth_base_url=fake.oauth_base_url,
        **overrides,
    )


# ---- signed OA webhook events -------------------------------------------------------------


def now_ms() -> str:
    return str(time.time_ns() // 1_000_000)


def sign(raw: bytes, timestamp: str, app_id: str, key: str = OA_SECRET_KEY) -> str:
    """X-ZEvent-Signature: "mac=" + sha256(app_id + raw body + timestamp + OA secret key)."""
    digest = hashlib.sha256(app_id.encode() + raw + timestamp.encode() + key.encode())
    return "mac=" + digest.hexdigest()


class ZaloEvents:
    """Builds OA webhook events as Zalo sends them (fresh msg ids, current timestamps)."""

    def __init__(self, app_id: str) -> None:
        self.app_id = app_id
        self._ids = itertools.count(1)

    def _base(self, name: str, timestamp: str | None) -> JSON:
        return {
            "app_id": self.app_id,
            "event_name": name,
            "timestamp": timestamp or now_ms(),
        }

    def follow(self, user_id: str, timestamp: str | None = None) -> JSON:
        return self._base("follow", timestamp) | {
            "oa_id": OA_ID,
            "source": "testing_webhook",
            "user_id_by_app": f"app-{user_id}",
            "follower": {"id": user_id},
        }

    def text(self, user_id: str, text: str, timestamp: str | None = None) -> JSON:
        return self._base("user_send_text", timestamp) | {
            "sender": {"id": user_id},
            "recipient": {"id": OA_ID},
            "user_id_by_app": f"app-{user_id}",
            "message": {"msg_id": f"msg-{user_id}-{next(self._ids)}", "text": text},
        }

    def submit_info(self, user_id: str, *, name: str, phone: str, address: str) -> JSON:
        return self._base("user_submit_info", None) | {
            "sender": {"id": user_id},
            "recipient": {"id": OA_ID},
            "user_id_by_app": f"app-{user_id}",
            "info": {
                "name": name,
                "phone": phone,
                "address": address,
                "ward": "Hàng Trống",
                "district": "Hoàn Kiếm",
                "city": "Hà Nội",
            },
        }


def encode(event: JSON) -> bytes:
    return json.dumps(event, ensure_ascii=False).encode()


# ---- what the fake Zalo OA received -------------------------------------------------------


def messages_to(fake: FakeZaloAPI, user_id: str, since: int = 0) -> list[JSON]:
    """The `message` objects Zalo accepted for `user_id` (after position `since` of
    `fake.sent`)."""
    return [
        body["message"] for body in fake.sent[since:] if body["recipient"]["user_id"] == user_id
    ]


def texts_to(fake: FakeZaloAPI, user_id: str, since: int = 0) -> list[str]:
    return [m["text"] for m in messages_to(fake, user_id, since) if m.get("text")]


def buttons_of(message: JSON) -> list[JSON]:
    payload = (message.get("attachment") or {}).get("payload") or {}
    return list(payload.get("buttons") or [])


def template_type(message: JSON) -> str | None:
    payload = (message.get("attachment") or {}).get("payload") or {}
    return payload.get("template_type")


def button_payload(fake: FakeZaloAPI, user_id: str, label_key: str, since: int = 0) -> str:
    """The hidden-message text of the newest button titled `tr(label_key)` sent to the user:
    what Zalo sends back when the customer presses it."""
    label = tr(label_key)
    for message in reversed(messages_to(fake, user_id, since)):
        for button in buttons_of(message):
            if button["title"] == label:
                assert button["type"] == "oa.query.hide"
                assert button["payload"].startswith(PAYLOAD_MARKER)
                return str(button["payload"])
    raise AssertionError(f"no button {label!r} sent to {user_id}")


# ---- the running bot ----------------------------------------------------------------------


class StaffConsole:
    """The staff chat on the console: `[staff] ` lines of the captured stdout, accumulated."""

    def __init__(self, read: Callable[[], str]) -> None:
        self._read = read
        self._seen = ""

    @property
    def text(self) -> str:
        self._seen += self._read()
        return "\n".join(
            line.removeprefix("[staff] ")
            for line in self._seen.splitlines()
            if line.startswith("[staff] ")
        )


@dataclass
class RunningBot:
    settings: Settings
    runtime: Runtime
    http: httpx.AsyncClient
    _stop: asyncio.Event
    _task: asyncio.Task[None]
    _staff_keys: itertools.count[int]

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.webhook_port}{WEBHOOK_PATH}"

    async def post_raw(self, raw: bytes, headers: dict[str, str]) -> httpx.Response:
        return await self.http.post(
            self.webhook_url, content=raw, headers={"content-type": "application/json", **headers}
        )

    async def post_event(
        self, event: JSON, *, signature: str | None = None, app_id: str | None = None
    ) -> httpx.Response:
        """POST `event` signed as Zalo would (or with `signature`); asserts nothing."""
        raw = encode(event)
        header = signature or sign(raw, str(event["timestamp"]), app_id or str(event["app_id"]))
        return await self.post_raw(raw, {SIGNATURE_HEADER: header})

    async def deliver(self, event: JSON) -> None:
        """A Zalo delivery that must be accepted; returns when its replies are sent."""
        response = await self.post_event(event)
        assert response.status_code == 200, (response.status_code, response.text)
        await self.settle()

    async def staff_press(self, payload: str) -> None:
        """A staff admin taps a button in the staff chat (the console here)."""
        await self.runtime.receive(
            Inbound(
                channel="console",
                chat_id=STAFF,
                user_id=STAFF_ADMIN,
                dedupe_key=f"staff-tap-{next(self._staff_keys)}",
                payload=payload,
                from_staff_chat=True,
                user_display_name="Chị Hạnh",
            )
        )
        await self.settle()

    async def settle(self) -> None:
        """Until every stored inbound is handled and every due outbox row was tried.

        `Runtime.idle()` repeated until no row is due, so rows that a delivery pass itself
        creates (a staff notice about a failed send) are delivered too."""
        for _ in range(50):
            await self.runtime.idle(limit=WAIT)
            if not await due_outbox_rows(self.runtime):
                return
        raise AssertionError("outbox rows stay due")


async def due_outbox_rows(runtime: Runtime) -> list[OutboxMessage]:
    """Pending rows the delivery worker would send now: the oldest pending row of each chat,
    if its retry time has come (later rows of a chat wait behind it, to keep the order)."""
    now = datetime.now(UTC)
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .order_by(OutboxMessage.id)
        )
        heads: dict[tuple[str, str], OutboxMessage] = {}
        for row in rows:
            heads.setdefault((row.channel, row.chat_id), row)
        return [row for row in heads.values() if row.next_attempt_at <= now]


async def inbox_count(runtime: Runtime, channel: str | None = None) -> int:
    query = select(func.count()).select_from(InboxEvent)
    if channel is not None:
        query = query.where(InboxEvent.channel == channel)
    async with runtime.sessions() as session:
        return int(await session.scalar(query) or 0)


async def outbox_rows(runtime: Runtime, chat_id: str | None = None) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if chat_id is not None:
        query = query.where(OutboxMessage.chat_id == chat_id)
    async with runtime.sessions() as session:
        return list(await session.scalars(query))


async def wait_until(
    condition: Callable[[], Any], what: str, within: float = WAIT, every: float = 0.01
) -> None:
    """Poll `condition` (sync or async) until it is truthy; fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def running_bot(settings: Settings) -> AsyncIterator[RunningBot]:
    """`run_channels(settings)` as a task until the block ends; then a clean stop.

    Waits for `started` and, when a webhook server is configured, until it answers."""
    stop = asyncio.Event()
    ready: asyncio.Future[Runtime] = asyncio.get_running_loop().create_future()

    def started(runtime: Runtime) -> None:
        if not ready.done():
            ready.set_result(runtime)

    task = asyncio.create_task(run_channels(settings, stop=stop, started=started))
    try:
        waiters: set[asyncio.Future[Any]] = {task, ready}
        done, _ = await asyncio.wait(waiters, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            await task  # raises the start-up error
            raise AssertionError("run_channels returned before `started`")
        if ready not in done:
            raise AssertionError("run_channels did not start")
        async with httpx.AsyncClient(timeout=WAIT) as http:
            bot = RunningBot(settings, ready.result(), http, stop, task, itertools.count(1))
            if settings.has_zalo_oa:
                await _wait_for_server(http, settings.webhook_port)
            yield bot
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


async def _wait_for_server(http: httpx.AsyncClient, port: int) -> None:
    async def answers() -> bool:
        try:
            response = await http.get(f"http://127.0.0.1:{port}/healthz")
        except httpx.TransportError:
            return False
        return response.status_code == 200

    await wait_until(answers, "the webhook server to listen")

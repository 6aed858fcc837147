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

import contextlib
import hashlib
import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bot.config import Settings, load_settings
from bot.runtime import Runtime
from bot.zalo import PAYLOAD_MARKER
from bot.zalo.webhook import SIGNATURE_HEADER, WEBHOOK_PATH
from handlers.messages import STAFF, Inbound
from tests.fakes.zalo_api import FakeZaloAPI
from tests.helpers import tr
from tests.live_bot import free_port, running, settle

JSON = dict[str, Any]

OA_SECRET_KEY = "oa-secret-key-for-tests"  # signs webhook events (not the app secret)
OA_ID = "579745863508352884"
STAFF_ADMIN = "900"


# ---- settings -----------------------------------------------------------------------------


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
    _staff_keys: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

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
        """Until every stored inbound is handled and every due outbox row was tried."""
        await settle(self.runtime, rounds=50)


@contextlib.asynccontextmanager
async def running_bot(settings: Settings) -> AsyncIterator[RunningBot]:
    """`run_channels(settings)` as a task until the block ends; then a clean stop.

    Waits for `started` and, when a webhook server is configured, until it answers."""
    async with running(settings, webhook=settings.has_zalo_oa) as live:
        yield RunningBot(settings, live.runtime, live.http)

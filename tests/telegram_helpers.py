"""Helpers for the Telegram end-to-end tests (`tests/test_telegram.py`).

They run the REAL bot (`bot.app.run_channels`) with the real python-telegram-bot stack against
`tests.fakes.telegram_api.FakeTelegramAPI` on 127.0.0.1 — polling by default, webhook mode
when the settings say so::

    async with FakeTelegramAPI(token=TOKEN) as api, running_bot(api, settings) as bot:
        calls = await bot.send(api.text_update(CUSTOMER, "/start"))
        assert texts_to(calls, CUSTOMER)[0].startswith(tr("core.greeting"))

`bot.send(update)` pushes the update (or POSTs it to the webhook), waits until it is stored
and everything it caused has been delivered, and returns the Bot API calls made meanwhile.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from bot.config import Settings, load_settings
from bot.runtime import Runtime
from bot.web import TELEGRAM_PATH
from storage.models import Order
from tests.fakes.telegram_api import Call, FakeTelegramAPI
from tests.helpers import first_line, tr
from tests.live_bot import WAIT, free_port, running, settle, wait_until

JSON = dict[str, Any]

TOKEN = "123:ABC"
STAFF_CHAT = -100123  # the staff supergroup
STAFF_ADMIN = 900  # in STAFF_ADMIN_IDS
STAFF_MEMBER = 555  # a member of the staff group, not an admin
STAFF_NAME = "Hạnh"
CUSTOMER = 4242
WEBHOOK_SECRET = "s3cret-Token_for-tests"
PUBLIC_URL = "https://bot.example.test"


def telegram_settings(data_dir: Path, api: FakeTelegramAPI, **overrides: object) -> Settings:
    """A shop on Telegram (pointing at `api`), isolated from the environment and `.env`."""
    values: dict[str, object] = {
        "_env_file": None,
        "data_dir": data_dir,
        "database_url": "",
        "default_locale": "vi",
        "catalog_path": None,
        "telegram_bot_token": TOKEN,
        "telegram_api_base_url": api.base_url,
        "staff_chat_id": str(STAFF_CHAT),
        "staff_admin_ids": str(STAFF_ADMIN),
        "zalo_app_id": "",
        "zalo_app_secret": None,
        "zalo_oa_secret_key": None,
        "zalo_bot_token": None,
        "webhook_host": "127.0.0.1",
        "webhook_port": free_port(),
        "webhook_public_url": "",
        "telegram_webhook_secret": None,
    }
    values.update(overrides)
    return load_settings(**values)


def webhook_settings(data_dir: Path, api: FakeTelegramAPI, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "webhook_public_url": PUBLIC_URL,
        "telegram_webhook_secret": WEBHOOK_SECRET,
    }
    return telegram_settings(data_dir, api, **(values | overrides))


# ---- reading what the fake Bot API received ------------------------------------------------


def sends_to(calls: list[Call], chat_id: int, method: str = "sendMessage") -> list[Call]:
    """Successful `method` calls to `chat_id`, in order."""
    return [
        c for c in calls if c.method == method and c.failed is None and c.get("chat_id") == chat_id
    ]


def texts_to(calls: list[Call], chat_id: int) -> list[str]:
    """The raw `text` parameters of the messages sent to `chat_id`."""
    return [c["text"] for c in sends_to(calls, chat_id)]


def inline_buttons(call: Call) -> list[JSON]:
    markup = call.get("reply_markup") or {}
    return [button for row in markup.get("inline_keyboard", []) for button in row]


def button_data(calls: list[Call], chat_id: int, label: str) -> tuple[str, int]:
    """(callback_data, message_id) of the newest inline button titled `label` in `chat_id`."""
    for call in reversed(sends_to(calls, chat_id)):
        for button in inline_buttons(call):
            if button["text"] == label:
                return button["callback_data"], call.result["message_id"]
    raise AssertionError(f"no inline button {label!r} sent to {chat_id}")


# ---- the running bot ------------------------------------------------------------------------


@dataclass
class TelegramBot:
    api: FakeTelegramAPI
    settings: Settings
    runtime: Runtime
    http: httpx.AsyncClient
    callbacks: list[str] = field(default_factory=list)  # ids of every callback query sent

    @property
    def webhook_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.webhook_port}{TELEGRAM_PATH}"

    @property
    def webhook_mode(self) -> bool:
        return bool(self.settings.webhook_public_url)

    async def post(self, update: JSON, secret: str | None = WEBHOOK_SECRET) -> httpx.Response:
        """POST `update` to the bot's webhook as Telegram would (with `secret`, if any)."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": secret} if secret is not None else {}
        return await self.http.post(self.webhook_url, json=update, headers=headers)

    async def send(self, update: JSON) -> list[Call]:
        """Deliver one update the way the bot's mode receives it; wait until it is stored and
        its effects are delivered; return the Bot API calls recorded meanwhile."""
        mark = len(self.api.requests)
        if "callback_query" in update:
            self.callbacks.append(update["callback_query"]["id"])
        if self.webhook_mode:
            response = await self.post(update)
            assert response.status_code == 200, (response.status_code, response.text)
        else:
            self.api.push_update(update)
            await self.acknowledged(update["update_id"])
        await self.settle()
        return self.api.requests[mark:]

    async def acknowledged(self, update_id: int) -> None:
        """Until the poller confirmed `update_id` (getUpdates offset past it): it is stored."""
        await wait_until(
            lambda: all(u["update_id"] != update_id for u in self.api.pending_updates),
            f"update {update_id} to be confirmed",
        )

    async def settle(self) -> None:
        """Until every stored inbound is handled and every due outbox row was tried."""
        await settle(self.runtime, rounds=100)

    async def wait_sent(
        self, chat_id: int, contains: str, *, count: int = 1, method: str = "sendMessage"
    ) -> Call:
        """The `count`-th successful `method` call to `chat_id` whose text contains `contains`."""
        return await self.api.wait_for(
            method,
            lambda c: (
                c.failed is None
                and c.get("chat_id") == chat_id
                and contains in str(c.get("text", ""))
            ),
            timeout=WAIT,
            count=count,
        )


async def order_by_code(runtime: Runtime, code: str) -> Order:
    async with runtime.sessions() as session:
        order = await session.scalar(select(Order).where(Order.code == code))
        assert order is not None, code
        return order


@contextlib.asynccontextmanager
async def running_bot(api: FakeTelegramAPI, settings: Settings) -> AsyncIterator[TelegramBot]:
    """`run_channels(settings)` as a task until the block ends; then a clean stop (the task
    must return without an error). Waits for `started` and, in webhook mode, until the
    webhook server answers."""
    async with running(settings, webhook=bool(settings.webhook_public_url)) as live:
        yield TelegramBot(api, settings, live.runtime, live.http)


async def release_long_poll(api: FakeTelegramAPI) -> None:
    """End a long poll the stopped bot left behind on the fake (its handler would otherwise
    wait for its whole timeout and delay the fake's shutdown by two seconds): a newer
    getUpdates terminates it, as on Telegram."""
    async with httpx.AsyncClient(timeout=WAIT) as http:
        await http.post(f"{api.base_url}{api.token}/getUpdates", data={"timeout": "0"})


# ---- a customer ordering ------------------------------------------------------------------


ORDER_NAME = "Nguyễn Thị Lan"
ORDER_PHONE = "+84912345678"
ORDER_ADDRESS = "12 Hàng Bông, phường Hoàn Kiếm, Hà Nội"
ORDER_REQUEST = "SD-001"


async def consent(bot: TelegramBot, user: int) -> list[Call]:
    """/start and "I agree"."""
    api = bot.api
    calls = await bot.send(api.text_update(user, "/start"))
    data, message_id = button_data(calls, user, tr("consent.btn.agree"))
    calls += await bot.send(api.callback_update(user, data, message_id))
    return calls


async def order_until_photos(bot: TelegramBot, user: int, request: str = ORDER_REQUEST) -> None:
    """A consenting customer answers every question up to the photos step."""
    api = bot.api
    calls = await bot.send(api.text_update(user, "/order"))
    assert first_line("order.ask.full_name") in texts_to(calls, user)[-1]
    await bot.send(api.text_update(user, ORDER_NAME))
    await bot.send(api.contact_update(user, ORDER_PHONE, "Lan", contact_user_id=user))
    calls = await bot.send(api.text_update(user, ORDER_ADDRESS))
    data, message_id = button_data(calls, user, tr("flow.btn.skip"))
    await bot.send(api.callback_update(user, data, message_id))
    calls = await bot.send(api.text_update(user, request))
    assert first_line("order.ask.photos") in texts_to(calls, user)[-1]


async def finish_order(bot: TelegramBot, user: int, skip_label: str = "flow.btn.skip") -> str:
    """From the photos step: skip (or "done"), then confirm; returns the order code."""
    api = bot.api
    data, message_id = button_data(api.requests, user, tr(skip_label))
    calls = await bot.send(api.callback_update(user, data, message_id))
    data, message_id = button_data(calls, user, tr("flow.btn.confirm"))
    assert data == "f:ok"
    await bot.send(api.callback_update(user, data, message_id))
    async with bot.runtime.sessions() as session:
        order = await session.scalar(select(Order).order_by(Order.id.desc()).limit(1))
    assert order is not None
    return order.code


async def place_order(bot: TelegramBot, user: int) -> str:
    await consent(bot, user)
    await order_until_photos(bot, user)
    return await finish_order(bot, user)

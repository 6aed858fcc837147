"""Zalo Bot Platform: the real httpx client, poller and adapter against the fake Bot API."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bot.channels.base import ChannelAdapter
from bot.channels.zalo_bot import ZaloBotAdapter
from bot.zalo.bot_client import (
    ZaloBotClient,
    ZaloBotError,
    ZaloBotPoller,
    make_zalo_bot_webhook_route,
    update_to_inbound,
)
from handlers.messages import (
    Attachment,
    Button,
    Document,
    Inbound,
    Outbound,
    PermanentSendError,
    TemporarySendError,
)
from tests.fakes.zalo_bot_api import FakeZaloBotAPI

TOKEN = "12345:fake-bot-token"


@pytest.fixture
async def api() -> AsyncIterator[FakeZaloBotAPI]:
    async with FakeZaloBotAPI(token=TOKEN) as server:
        yield server


@pytest.fixture
async def client(api: FakeZaloBotAPI) -> AsyncIterator[ZaloBotClient]:
    async with httpx.AsyncClient() as http:
        yield ZaloBotClient(http, api.base_url, TOKEN)


def out(chat_id: str, text: str, **kwargs: Any) -> Outbound:
    return Outbound(channel="zalobot", chat_id=chat_id, text=text, **kwargs)


async def test_poller_delivers_text_and_photo_and_replies_go_out(
    api: FakeZaloBotAPI, client: ZaloBotClient
) -> None:
    adapter = ZaloBotAdapter(client)
    contract: ChannelAdapter = adapter  # the runtime's contract, checked by mypy
    assert contract.name == "zalobot"
    received: list[Inbound] = []

    async def receive(inbound: Inbound) -> bool:
        received.append(inbound)
        await adapter.send(out(inbound.chat_id, f"Đã nhận: {inbound.text or 'ảnh'}"))
        return True

    poller = ZaloBotPoller(client, adapter.wrap_receive(receive), poll_timeout=1)
    poller.start()
    text_update = api.text_update("u1", "Xin chào shop")
    photo_update = api.photo_update("u1", "https://zalo.example/p/1.jpg", "tranh này còn không?")
    api.push_update(text_update)
    api.push_update(photo_update)

    replies = await api.wait_for("sendMessage", count=2)
    await poller.stop()

    assert received == [
        Inbound(
            channel="zalobot",
            chat_id="u1",
            user_id="u1",
            dedupe_key=text_update["message"]["message_id"],
            text="Xin chào shop",
        ),
        Inbound(
            channel="zalobot",
            chat_id="u1",
            user_id="u1",
            dedupe_key=photo_update["message"]["message_id"],
            text="tranh này còn không?",
            attachments=(Attachment("photo", "https://zalo.example/p/1.jpg"),),
        ),
    ]
    assert [call.body for call in replies] == [
        {"chat_id": "u1", "text": "Đã nhận: Xin chào shop"},
        {"chat_id": "u1", "text": "Đã nhận: tranh này còn không?"},
    ]
    assert api.calls_of("getUpdates")[0].body == {"timeout": "1"}


async def test_poller_backs_off_on_errors_and_recovers(
    api: FakeZaloBotAPI, client: ZaloBotClient
) -> None:
    received: list[Inbound] = []

    async def receive(inbound: Inbound) -> bool:
        received.append(inbound)
        return True

    api.fail_http(500, times=2)
    poller = ZaloBotPoller(client, receive, poll_timeout=1, initial_backoff=0.01)
    poller.start()
    api.push_update(api.text_update("u2", "/start"))
    for _ in range(200):
        if received:
            break
        await asyncio.sleep(0.01)
    await poller.stop()

    assert [(i.command, i.user_id) for i in received] == [("start", "u2")]
    assert len(api.calls_of("getUpdates")) >= 3


async def test_poller_retries_storing_an_update_it_already_consumed(
    api: FakeZaloBotAPI, client: ZaloBotClient
) -> None:
    attempts: list[str] = []

    async def flaky_receive(inbound: Inbound) -> bool:
        attempts.append(inbound.dedupe_key)
        if len(attempts) < 3:
            raise RuntimeError("database is locked")
        return True

    poller = ZaloBotPoller(client, flaky_receive, poll_timeout=1, initial_backoff=0.01)
    poller.start()
    api.push_update(api.text_update("u3", "đặt tranh"))
    for _ in range(200):
        if len(attempts) >= 3:
            break
        await asyncio.sleep(0.01)
    await poller.stop()

    assert len(attempts) == 3 and len(set(attempts)) == 1


async def test_poller_stops_cleanly_during_a_long_poll(
    api: FakeZaloBotAPI, client: ZaloBotClient
) -> None:
    async def receive(inbound: Inbound) -> bool:
        return True

    poller = ZaloBotPoller(client, receive, poll_timeout=30)
    task = poller.start()
    await api.wait_for("getUpdates")

    await asyncio.wait_for(poller.stop(), timeout=2)
    assert task.cancelled()


async def test_buttons_become_numbered_options_and_numbers_map_back(
    api: FakeZaloBotAPI, client: ZaloBotClient
) -> None:
    adapter = ZaloBotAdapter(client)
    seen: list[Inbound] = []

    async def receive(inbound: Inbound) -> bool:
        seen.append(inbound)
        return True

    receive_numbered = adapter.wrap_receive(receive)
    await adapter.send(
        out(
            "u4",
            "Bạn muốn làm gì?",
            buttons=((Button("Đặt tranh", "order:start"), Button("Khiếu nại", "complaint:new")),),
        )
    )
    assert api.calls_of("sendMessage")[0].body == {
        "chat_id": "u4",
        "text": "Bạn muốn làm gì?\n\n1. Đặt tranh\n2. Khiếu nại",
    }

    def typed(text: str, chat: str = "u4") -> Inbound:
        return Inbound(channel="zalobot", chat_id=chat, user_id=chat, dedupe_key=text, text=text)

    await receive_numbered(typed(" 2 "))
    await receive_numbered(typed("3"))  # out of range: stays text
    await receive_numbered(typed("1", chat="u5"))  # another chat has no options
    assert [(i.payload, i.text) for i in seen] == [
        ("complaint:new", ""),
        (None, "3"),
        (None, "1"),
    ]

    # A later message without buttons forgets the options: "1" is now just text.
    await adapter.send(out("u4", "Bạn muốn đặt mấy bức?"))
    await receive_numbered(typed("1"))
    assert seen[-1].payload is None and seen[-1].text == "1"


async def test_ask_contact_and_documents_degrade_to_text(
    api: FakeZaloBotAPI, client: ZaloBotClient
) -> None:
    adapter = ZaloBotAdapter(client)
    await adapter.send(out("u6", "Số điện thoại của bạn là gì?", ask_contact=True))
    content = ("Đơn VAV-12: đã giao\n" * 150).encode()  # > 2000 characters
    await adapter.send(out("u6", "Dữ liệu của bạn:", document=Document("mydata.txt", content)))

    texts = [call.body["text"] for call in api.calls_of("sendMessage")]
    assert texts[0] == "Số điện thoại của bạn là gì?"
    assert texts[1] == "Dữ liệu của bạn:"
    assert texts[2].startswith("mydata.txt\n\nĐơn VAV-12: đã giao")
    assert len(texts) >= 4 and all(len(t) <= 2000 for t in texts)


async def test_send_errors_are_classified(api: FakeZaloBotAPI, client: ZaloBotClient) -> None:
    adapter = ZaloBotAdapter(client)
    api.fail_chat("blocked", 403, "Forbidden: the user blocked the bot")
    with pytest.raises(PermanentSendError) as blocked:
        await adapter.send(out("blocked", "chào"))
    assert blocked.value.unreachable
    assert blocked.value.reason == "zalobot:403 Forbidden: the user blocked the bot"

    api.fail_http(502)
    with pytest.raises(TemporarySendError):
        await adapter.send(out("u7", "chào"))

    # A text the HTTP client cannot encode (a lone surrogate) never heals.
    with pytest.raises(PermanentSendError) as unsendable:
        await adapter.send(out("u7", "chào \ud800"))
    assert unsendable.value.reason == "zalobot unsendable (UnicodeEncodeError)"


async def test_send_photo_and_webhook_management(
    api: FakeZaloBotAPI, client: ZaloBotClient
) -> None:
    message_id = await client.send_photo("u8", "https://vav.vn/t/1.jpg", "Tranh sơn mài")
    await client.set_webhook("https://bot.vav.vn/zalobot/webhook", "s3cret-token")
    assert api.webhook == {
        "url": "https://bot.vav.vn/zalobot/webhook",
        "secret_token": "s3cret-token",
    }
    await client.delete_webhook()

    assert message_id.startswith("sent")
    assert api.calls_of("sendPhoto")[0].body == {
        "chat_id": "u8",
        "photo": "https://vav.vn/t/1.jpg",
        "caption": "Tranh sơn mài",
    }
    assert api.webhook is None
    with pytest.raises(ValueError):
        await client.set_webhook("https://bot.vav.vn/x", "short")


async def test_wrong_token_is_an_api_error(api: FakeZaloBotAPI) -> None:
    async with httpx.AsyncClient() as http:
        client = ZaloBotClient(http, api.base_url, "999:wrong")
        with pytest.raises(ZaloBotError) as caught:
            await client.send_message("u9", "chào")
    assert caught.value.code == 401
    assert "999:wrong" not in str(caught.value)
    assert "999:wrong" not in repr(client)


def test_unsupported_updates_are_ignored() -> None:
    assert update_to_inbound({"event_name": "message.unsupported.received", "message": {}}) is None
    assert update_to_inbound({"event_name": "message.text.received"}) is None
    sticker = update_to_inbound(
        {
            "event_name": "message.sticker.received",
            "message": {
                "message_id": "s1",
                "from": {"id": "u1"},
                "chat": {"id": "u1"},
                "sticker": "st-9",
            },
        }
    )
    assert sticker is not None and sticker.attachments == (Attachment("sticker", "st-9"),)


async def test_webhook_route_checks_the_secret_header() -> None:
    received: list[Inbound] = []

    async def receive(inbound: Inbound) -> bool:
        received.append(inbound)
        return True

    route = make_zalo_bot_webhook_route(receive, "s3cret-token")
    update = {
        "event_name": "message.text.received",
        "message": {
            "message_id": "w1",
            "from": {"id": "u10"},
            "chat": {"id": "u10", "chat_type": "PRIVATE"},
            "text": "chào",
        },
    }
    transport = httpx.ASGITransport(app=Starlette(routes=[route]))
    async with httpx.AsyncClient(transport=transport, base_url="https://bot.vav.vn") as http:
        forged = await http.post(
            "/zalobot/webhook", json=update, headers={"X-Bot-Api-Secret-Token": "guess"}
        )
        missing = await http.post("/zalobot/webhook", json=update)
        bad_json = await http.post(
            "/zalobot/webhook",
            content=b"{",
            headers={"X-Bot-Api-Secret-Token": "s3cret-token"},
        )
        good = await http.post(
            "/zalobot/webhook",
            content=json.dumps(update).encode(),
            headers={"X-Bot-Api-Secret-Token": "s3cret-token", "Content-Type": "application/json"},
        )

    assert (forged.status_code, missing.status_code, bad_json.status_code) == (403, 403, 400)
    assert good.status_code == 200
    assert [(i.channel, i.user_id, i.text, i.dedupe_key) for i in received] == [
        ("zalobot", "u10", "chào", "w1")
    ]


async def test_bot_token_is_masked_in_httpx_request_logs(
    api: FakeZaloBotAPI, client: ZaloBotClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="httpx")

    await client.send_message("u11", "chào")

    assert "sendMessage" in caplog.text
    assert TOKEN not in caplog.text

"""ZNS (issue 15): an order-status update to a Zalo customer whose messaging window has
closed goes, where the shop configured a template for that status, as a ZNS template message
to their phone — through the real ZNS client over HTTP against the fake Zalo API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.zalo_zns import ZNS_CHANNEL, ZaloZNSAdapter
from bot.config import ConfigError
from bot.zalo.tokens import MemoryTokenStore, TokenPair, ZaloTokenManager
from bot.zalo.zns_client import ZaloZNSClient
from handlers.messages import STAFF
from storage.models import OutboxMessage
from tests.fakes.zalo_api import ZNS_PATH, FakeZaloAPI
from tests.helpers import (
    CONSOLE_CAPABILITIES,
    START_TIME,
    FakeClock,
    Harness,
    RecordingAdapter,
    shop_config,
    to_chat,
)

WINDOWED = replace(
    CONSOLE_CAPABILITIES, messaging_window=timedelta(days=7), notification_channel=ZNS_CHANNEL
)


@pytest.fixture
async def fake() -> AsyncIterator[FakeZaloAPI]:
    async with FakeZaloAPI() as server:
        server.zns_templates.add("301234")
        yield server


@pytest.fixture
async def zns_harness(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock, fake: FakeZaloAPI
) -> AsyncIterator[Harness]:
    config = shop_config(zns_templates={"shipping": "301234", "done": "999999"})
    harness = Harness(
        sessions, clock=clock, config=config, adapter=RecordingAdapter("console", WINDOWED)
    )
    async with httpx.AsyncClient() as http:
        access, refresh = fake.issue_pair()
        tokens = ZaloTokenManager(
            MemoryTokenStore(TokenPair(access, refresh, START_TIME + timedelta(days=400))),
            http,
            fake.oauth_base_url,
            app_id=fake.app_id,
            secret_key=fake.secret_key,
            clock=clock,
        )
        harness.runtime.add_adapter(ZaloZNSAdapter(ZaloZNSClient(http, fake.base_url, tokens)))
        try:
            yield harness
        finally:
            await harness.close()


async def test_status_update_outside_the_window_is_a_zns_message(
    zns_harness: Harness, fake: FakeZaloAPI
) -> None:
    code = await zns_harness.place_order("1", phone="0912 345 678")
    order = await zns_harness.order(code)
    zns_harness.advance(days=8)

    replies = await zns_harness.hand_to_carrier(order.id)

    assert to_chat(replies, "1") == []  # no blind consultation message
    (call,) = fake.calls_to(ZNS_PATH)
    assert call.headers["access_token"]  # the OA's token
    assert call.json["phone"] == "84912345678"
    assert call.json["template_id"] == "301234"
    assert call.json["template_data"] == {"order_code": code, "status": "Đang giao hàng"}
    assert fake.zns_sent == [call.json]
    row = next(r for r in await zns_harness.outbox_rows() if r.channel == ZNS_CHANNEL)
    assert (row.status, row.payload) == ("sent", {})  # the phone is not kept after sending


async def test_a_refused_template_fails_once_and_staff_are_told(
    zns_harness: Harness, fake: FakeZaloAPI
) -> None:
    code = await zns_harness.place_order("1", phone="0912 345 678")
    order = await zns_harness.order(code)
    await zns_harness.hand_to_carrier(order.id)
    zns_harness.advance(days=8)

    replies = await zns_harness.staff(payload=f"os:{order.id}:done")  # template 999999: -124

    assert len(fake.calls_to(ZNS_PATH)) == 1  # permanent: not retried
    rows = [r for r in await zns_harness.rows(OutboxMessage) if r.channel == ZNS_CHANNEL]
    assert [r.status for r in rows] == ["failed"]
    assert "zalo:-124" in (rows[0].last_error or "")
    assert any("📨" in m.text for m in to_chat(replies, STAFF))


def test_zns_templates_setting_is_parsed_and_checked(tmp_path: Path) -> None:
    from tests.zalo_helpers import base_settings

    settings = base_settings(tmp_path, zalo_zns_templates="shipping:301234, done:301235")
    assert settings.zalo_zns_templates == {"shipping": "301234", "done": "301235"}
    with pytest.raises(ConfigError, match="ZALO_ZNS_TEMPLATES"):
        base_settings(tmp_path, zalo_zns_templates="dang giao:301234")

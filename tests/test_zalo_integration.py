"""Zalo end to end: the real bot (`run_channels`) with its webhook server on 127.0.0.1, the
real httpx clients and the database token store, against the fake Zalo OA / OAuth server and
the fake Zalo Bot API. Staff work on the console (no Telegram configured).

Each test asserts what a customer, the staff or the shop owner would notice.
"""

from __future__ import annotations

import asyncio
import io
import logging
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.zalo.store import DatabaseTokenStore, token_cipher
from handlers.messages import Outbound
from storage.db import create_engine, session_factory
from storage.models import ChannelIdentity, Order
from tests.fakes.zalo_api import FakeZaloAPI
from tests.fakes.zalo_bot_api import FakeZaloBotAPI
from tests.helpers import first_line, tr
from tests.live_bot import inbox_count, outbox_rows, wait_until
from tests.zalo_helpers import (
    OA_SECRET_KEY,
    StaffConsole,
    ZaloEvents,
    base_settings,
    button_payload,
    buttons_of,
    encode,
    messages_to,
    oa_settings,
    running_bot,
    sign,
    template_type,
    texts_to,
)

CUSTOMER = "2468458835296117922"
ORDER_CODE = re.compile(r"VAV-[0-9A-Z]+")


@pytest.fixture
async def fake() -> AsyncIterator[FakeZaloAPI]:
    async with FakeZaloAPI() as server:
        yield server


@pytest.fixture
def events(fake: FakeZaloAPI) -> ZaloEvents:
    return ZaloEvents(fake.app_id)


@pytest.fixture
def staff(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> StaffConsole:
    """The console staff chat: nobody types (stdin at EOF); output read from stdout."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    return StaffConsole(lambda: capsys.readouterr().out)


# ---- 1. a whole order by a Zalo OA customer ------------------------------------------------


async def test_zalo_oa_customer_orders_end_to_end(
    tmp_path: Path, fake: FakeZaloAPI, events: ZaloEvents, staff: StaffConsole
) -> None:
    access, refresh = fake.issue_pair()
    settings = oa_settings(tmp_path / "data", fake, access, refresh)
    async with running_bot(settings) as bot:

        async def press(label_key: str) -> None:
            await bot.deliver(events.text(CUSTOMER, button_payload(fake, CUSTOMER, label_key)))

        # Following the OA greets and asks for consent with buttons.
        await bot.deliver(events.follow(CUSTOMER))
        assert texts_to(fake, CUSTOMER)[0] == tr("core.greeting")
        consent = messages_to(fake, CUSTOMER)[1]
        assert consent["text"] == tr("consent.notice")
        assert [b["title"] for b in buttons_of(consent)] == [
            tr("consent.btn.agree"),
            tr("consent.btn.read_policy"),
            tr("consent.btn.decline"),
        ]
        assert all(b["payload"].startswith("#vav ") for b in buttons_of(consent))

        await press("consent.btn.agree")
        assert tr("consent.thanks") in texts_to(fake, CUSTOMER)
        await press("menu.order")
        assert texts_to(fake, CUSTOMER)[-1] == tr("order.ask.full_name")

        await bot.deliver(events.text(CUSTOMER, "Nguyễn Thị Lan"))
        # The phone question offers Zalo's "share your info" template.
        asked_phone = messages_to(fake, CUSTOMER)[-2:]
        assert asked_phone[0]["text"] == tr("order.ask.phone")
        assert template_type(asked_phone[1]) == "request_user_info"

        mark = len(fake.sent)
        await bot.deliver(
            events.submit_info(
                CUSTOMER, name="Nguyen Thi Lan", phone="84912345678", address="12 Hàng Bông"
            )
        )
        assert texts_to(fake, CUSTOMER, since=mark) == [
            tr("flow.contact_saved"),
            tr("order.ask.address"),
        ]

        await bot.deliver(events.text(CUSTOMER, "12 Hàng Bông, phường Hoàn Kiếm, Hà Nội"))
        assert texts_to(fake, CUSTOMER)[-1] == tr("order.ask.email")
        await press("flow.btn.skip")
        assert texts_to(fake, CUSTOMER)[-1] == tr("order.ask.request")
        await bot.deliver(events.text(CUSTOMER, "SD-001"))
        assert texts_to(fake, CUSTOMER)[-1] == tr("order.ask.photos")
        mark = len(fake.sent)
        await press("flow.btn.skip")
        # The review (8 buttons: Zalo takes 5 per message, the rest follow under "…").
        review = texts_to(fake, CUSTOMER, since=mark)
        assert review[0].startswith(tr("order.review_title")), review
        assert "0912 345 678" in review[0]  # the phone shared through Zalo
        titles = [b["title"] for m in messages_to(fake, CUSTOMER, mark) for b in buttons_of(m)]
        assert tr("flow.btn.confirm") in titles and tr("flow.btn.cancel") in titles

        mark = len(fake.sent)
        await press("flow.btn.confirm")

        # The staff chat gets the alert; the customer gets the confirmation with the same code.
        alert = staff.text
        match = ORDER_CODE.search(alert)
        assert match is not None, alert
        code = match.group(0)
        assert tr("order.alert.title", code=code) in alert
        assert "Nguyễn Thị Lan" in alert and "0912 345 678" in alert
        # The confirmation, then how to pay (no bank settings here: staff send the details).
        confirmation = texts_to(fake, CUSTOMER, since=mark)
        assert len(confirmation) == 2 and code in confirmation[0]
        assert confirmation[1] == tr("catalog.payment.no_qr", code=code, amount="4.500.000 ₫")
        assert confirmation[0].startswith(
            first_line("order.confirmed", code=code, product="", hours=settings.shop_hours)
        )

        # A staff tap on "claimed" notifies the customer on Zalo.
        async with bot.runtime.sessions() as session:
            order = await session.scalar(select(Order).where(Order.code == code))
        assert order is not None and order.channel == "zalo"
        mark, before = len(fake.sent), staff.text
        assert tr("order.status.claimed") not in before
        await bot.staff_press(f"os:{order.id}:claimed")
        assert texts_to(fake, CUSTOMER, since=mark) == [tr("order.notify.claimed", code=code)]
        assert tr("order.status.claimed") in staff.text[len(before) :]  # the alert, updated


# ---- 2. the webhook refuses what Zalo did not send -----------------------------------------


async def test_webhook_refuses_forged_and_malformed_deliveries(
    tmp_path: Path, fake: FakeZaloAPI, events: ZaloEvents, staff: StaffConsole
) -> None:
    access, refresh = fake.issue_pair()
    settings = oa_settings(
        tmp_path / "data",
        fake,
        access,
        refresh,
        zalo_verification_file_name="zalo_verifierAbC123.html",
        zalo_verification_file_content="<meta name='zalo-platform-site-verification' />",
    )
    minutes = 60 * 1000

    def signed(event: dict[str, object], app_id: str = fake.app_id) -> tuple[bytes, str]:
        raw = encode(event)
        return raw, sign(raw, str(event["timestamp"]), app_id)

    async with running_bot(settings) as bot:
        event = events.text(CUSTOMER, "xin chào")
        raw, good_signature = signed(event)
        at = int(str(event["timestamp"]))
        cases: dict[str, tuple[bytes, str, int]] = {
            "forged signature": (raw, sign(raw, str(at), fake.app_id, key="guessed"), 403),
            "no signature": (raw, "", 403),
            "signature of another body": (encode(event | {"x": 1}), good_signature, 403),
            "another OA's app id": (
                *signed(events.text(CUSTOMER, "xin chào") | {"app_id": "999"}, "999"),
                403,
            ),
            "replayed old event": (
                *signed(events.text(CUSTOMER, "xin chào", timestamp=str(at - 10 * minutes))),
                403,
            ),
            "timestamp in the future": (
                *signed(events.text(CUSTOMER, "xin chào", timestamp=str(at + 10 * minutes))),
                403,
            ),
            "oversized body": (*signed(events.text(CUSTOMER, "x" * (70 * 1024))), 413),
            "malformed body": (b'{"app_id": "1', good_signature, 400),
        }
        for name, (body, signature, status) in cases.items():
            headers = {"X-ZEvent-Signature": signature} if signature else {}
            response = await bot.post_raw(body, headers)
            assert response.status_code == status, name
        await bot.settle()
        assert await inbox_count(bot.runtime) == 0
        assert fake.sent == []

        # The genuine event is accepted: the refusals were about the forgeries.
        response = await bot.post_raw(raw, {"X-ZEvent-Signature": good_signature})
        assert response.status_code == 200
        await bot.settle()
        assert await inbox_count(bot.runtime) == 1
        assert texts_to(fake, CUSTOMER) != []

        # Zalo's domain check finds its file on the same server.
        page = await bot.http.get(
            bot.webhook_url.replace("/zalo/webhook", "/zalo_verifierAbC123.html")
        )
        assert page.status_code == 200
        assert page.text == "<meta name='zalo-platform-site-verification' />"


# ---- 3. Zalo redelivers: processed once ----------------------------------------------------


@pytest.mark.parametrize("kind", ["text with msg_id", "follow without msg_id"])
async def test_the_same_event_twice_is_processed_once(
    tmp_path: Path, fake: FakeZaloAPI, events: ZaloEvents, staff: StaffConsole, kind: str
) -> None:
    access, refresh = fake.issue_pair()
    settings = oa_settings(tmp_path / "data", fake, access, refresh)
    event = events.text(CUSTOMER, "/start") if kind.startswith("text") else events.follow(CUSTOMER)
    async with running_bot(settings) as bot:
        first, second = await asyncio.gather(bot.post_event(event), bot.post_event(event))
        assert (first.status_code, second.status_code) == (200, 200)  # Zalo stops retrying
        third = await bot.post_event(event)  # a later retry
        assert third.status_code == 200
        await bot.settle()

        assert await inbox_count(bot.runtime) == 1
        assert texts_to(fake, CUSTOMER) == [tr("core.greeting"), tr("consent.notice")]


# ---- 4. expired token: one refresh for many sends; rotated token survives a restart ----------


async def test_expired_token_is_refreshed_once_and_the_rotated_pair_survives_a_restart(
    tmp_path: Path,
    fake: FakeZaloAPI,
    events: ZaloEvents,
    staff: StaffConsole,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.app")
    access, refresh = fake.issue_pair()
    fake.refresh_delay = 0.05  # widens the window in which concurrent sends need a token
    settings = oa_settings(tmp_path / "data", fake, access, refresh)
    users = [f"30000000000000000{i:02d}" for i in range(20)]

    async with running_bot(settings) as bot:
        # Tokens seeded from the settings count as expired; 20 customers follow at once.
        responses = await asyncio.gather(*(bot.post_event(events.follow(u)) for u in users))
        assert [r.status_code for r in responses] == [200] * 20
        await bot.settle()
        assert len(fake.refresh_calls) == 1
        assert all(texts_to(fake, u)[:1] == [tr("core.greeting")] for u in users)

        # Zalo invalidates the access token; 20 sends run at once on the bot's Zalo channel,
        # all rejected with -216: one refresh between them, and every message arrives once.
        fake.expire_access_tokens()
        adapter = bot.runtime.adapters["zalo"]
        mark = len(fake.sent)
        await asyncio.gather(*(adapter.send(Outbound("zalo", u, f"Tin cho {u}")) for u in users))
        assert len(fake.refresh_calls) == 2
        undelivered = [u for u in users if texts_to(fake, u, since=mark) != [f"Tin cho {u}"]]
        assert undelivered == []

    rotated = fake.refresh_calls[-1].answer["refresh_token"]
    spent = [refresh, fake.refresh_calls[0].answer["refresh_token"]]
    assert rotated in fake.live_refresh_tokens and not set(spent) & fake.live_refresh_tokens
    engine = create_engine(settings.resolved_database_url)
    try:
        stored = await DatabaseTokenStore(session_factory(engine), token_cipher(settings)).load()
    finally:
        await engine.dispose()
    assert stored is not None
    assert stored.refresh_token == rotated and stored.refresh_token not in spent

    # Restart on the same data folder; the settings still hold the first (spent) pair.
    async with running_bot(settings) as bot:
        seeded = [r for r in caplog.records if "seeded from the settings" in r.getMessage()]
        assert len(seeded) == 1  # the first start only
        await bot.deliver(events.follow("3100000000000000001"))
        assert texts_to(fake, "3100000000000000001")[:1] == [tr("core.greeting")]
        assert len(fake.refresh_calls) == 2  # the stored access token is still good
        assert fake.message_calls[-1].headers["access_token"] == stored.access_token

        # When it expires, the stored (rotated) refresh token is the one that works.
        fake.expire_access_tokens()
        await bot.deliver(events.follow("3100000000000000002"))
        assert texts_to(fake, "3100000000000000002")[:1] == [tr("core.greeting")]
        assert len(fake.refresh_calls) == 3
        assert fake.refresh_calls[-1].form["refresh_token"] == rotated
        assert "error" not in fake.refresh_calls[-1].answer


# ---- 5. a customer Zalo will not let us reach ----------------------------------------------


async def test_permanent_zalo_error_fails_the_message_and_tells_staff(
    tmp_path: Path, fake: FakeZaloAPI, events: ZaloEvents, staff: StaffConsole
) -> None:
    access, refresh = fake.issue_pair()
    settings = oa_settings(tmp_path / "data", fake, access, refresh)
    fake.fail_user(CUSTOMER, -213, "User has not followed OA")
    async with running_bot(settings) as bot:
        await bot.deliver(events.text(CUSTOMER, "/start"))

        rows = await outbox_rows(bot.runtime, CUSTOMER)
        assert rows and all(row.status == "failed" for row in rows)
        assert {row.last_error for row in rows} == {"zalo:-213 User has not followed OA"}
        assert fake.sent == []
        async with bot.runtime.sessions() as session:
            identity = await session.scalar(
                select(ChannelIdentity).where(ChannelIdentity.platform_user_id == CUSTOMER)
            )
        assert identity is not None and identity.unreachable_since is not None
        notice = tr(
            "core.staff.delivery_failed",
            customer=identity.customer_id,
            channel="zalo",
            reason="zalo:-213 User has not followed OA",
        )
        assert notice in staff.text


# ---- 6. Zalo Bot Platform by long polling ---------------------------------------------------


async def test_zalo_bot_customer_orders_by_polling(tmp_path: Path, staff: StaffConsole) -> None:
    token = "12345:fake-bot-token"
    user = "7f3c2a1b9d8e"
    async with FakeZaloBotAPI(token=token) as api:
        settings = base_settings(
            tmp_path / "data", zalo_bot_token=token, zalo_bot_api_base_url=api.base_url
        )
        async with running_bot(settings) as bot:
            received = 0

            def replies() -> list[str]:
                return [c.body["text"] for c in api.calls_of("sendMessage")]

            async def say(text: str) -> list[str]:
                """The customer writes; returns the bot's replies to it."""
                nonlocal received
                mark = len(replies())
                api.push_update(api.text_update(user, text))
                received += 1

                async def stored() -> bool:
                    return await inbox_count(bot.runtime, "zalobot") >= received

                await wait_until(stored, "the poller to store the update")
                await bot.settle()
                return replies()[mark:]

            def option(message: str, label_key: str) -> str:
                """The number the customer types to choose `label_key`."""
                for line in message.splitlines():
                    number, _, label = line.partition(". ")
                    if number.isdigit() and label == tr(label_key):
                        return number
                raise AssertionError(f"no option {tr(label_key)!r} in {message!r}")

            greeting = await say("/start")
            assert greeting[0] == tr("core.greeting")
            assert greeting[1].startswith(tr("consent.notice"))
            after = await say(option(greeting[1], "consent.btn.agree"))
            assert after[0] == tr("consent.thanks")
            asked = await say(option(after[-1], "menu.order"))
            assert asked[-1].startswith(tr("order.ask.full_name"))
            assert (await say("Trần Văn Minh"))[-1].startswith(tr("order.ask.phone"))
            assert (await say("0987 654 321"))[-1].startswith(tr("order.ask.address"))
            email = await say("45 Lý Thường Kiệt, Hoàn Kiếm, Hà Nội")
            assert email[-1].startswith(tr("order.ask.email"))
            request = await say(option(email[-1], "flow.btn.skip"))
            assert request[-1].startswith(tr("order.ask.request"))
            photos = await say("SD-001")
            assert photos[-1].startswith(tr("order.ask.photos"))
            review = await say(option(photos[-1], "flow.btn.skip"))
            assert review[-1].startswith(tr("order.review_title"))
            confirmed = await say(option(review[-1], "flow.btn.confirm"))

            match = ORDER_CODE.search(staff.text)
            assert match is not None, staff.text
            code = match.group(0)
            assert tr("order.alert.title", code=code) in staff.text
            assert "Trần Văn Minh" in staff.text and "0987 654 321" in staff.text
            assert "zalobot" in staff.text
            assert any(code in text for text in confirmed)


# ---- 7. the token refresh fails --------------------------------------------------------------


@pytest.mark.parametrize(
    ("failure", "cause", "reason"),
    [
        ("refused", "-14014", "token refresh refused: code=-14014 Invalid refresh token"),
        ("oauth down", "HTTP 502", "token refresh failed: HTTP 502"),
    ],
)
async def test_failed_token_refresh_is_logged_and_staff_alerted(
    tmp_path: Path,
    fake: FakeZaloAPI,
    events: ZaloEvents,
    staff: StaffConsole,
    caplog: pytest.LogCaptureFixture,
    failure: str,
    cause: str,
    reason: str,
) -> None:
    caplog.set_level(logging.INFO)
    access, refresh = fake.issue_pair()
    if failure == "refused":
        refresh = "refresh-revoked-by-the-oa-admin"  # Zalo no longer knows it
    else:
        fake.fail_http(502)  # the first request is the refresh (seeded tokens count as expired)
    settings = oa_settings(tmp_path / "data", fake, access, refresh)
    async with running_bot(settings) as bot:
        await bot.deliver(events.follow(CUSTOMER))

        assert len(fake.refresh_calls) == 1
        assert fake.sent == []
        # The shop owner's log names the cause at ERROR level, and never a secret.
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert errors and all(cause in m and "refresh" in m for m in errors), errors
        for secret in (access, refresh, fake.secret_key, OA_SECRET_KEY):
            assert secret not in caplog.text
        # The staff chat is told what to do.
        assert tr("core.staff.zalo_token_failed", reason=reason) in staff.text
        # Nothing is lost: the greeting waits (retried later) for the shop to re-authorize.
        rows = await outbox_rows(bot.runtime, CUSTOMER)
        assert rows and all(row.status == "pending" for row in rows)

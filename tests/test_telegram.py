"""Telegram end to end: the real bot (`run_channels`) with the real python-telegram-bot stack
over HTTP against the fake Bot API server (`tests/fakes/telegram_api.py`) on 127.0.0.1.

Each test asserts what a customer or the staff would notice: the exact Bot API calls and
their parameters, and what ends up in the database. No timed asserts: a step is over when its
update was confirmed (polling offset) or answered (webhook) and the runtime is idle with no
outbox row due (`TelegramBot.send`); retries are awaited, never raced.

`run_channels` takes no delivery policy or timeouts, so failures use small `retry_after`
values and the real 1 s backoff, and the timeout test shortens the client's read timeout by
patching `bot.channels.telegram.build_application` (the only seam).
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bot.channels import telegram as telegram_channel
from handlers.composition import build
from storage.models import AuditEntry, ChannelIdentity, ConversationState
from storage.repositories import UnitOfWork
from tests.fakes.telegram_api import Call, FakeTelegramAPI, UploadedFile
from tests.live_bot import due_outbox_rows, inbox_count, outbox_rows
from tests.telegram_helpers import (
    CUSTOMER,
    ORDER_ADDRESS,
    ORDER_NAME,
    ORDER_PHONE,
    PUBLIC_URL,
    STAFF_ADMIN,
    STAFF_CHAT,
    STAFF_MEMBER,
    STAFF_NAME,
    TOKEN,
    WAIT,
    WEBHOOK_SECRET,
    button_data,
    consent,
    finish_order,
    inline_buttons,
    order_by_code,
    order_until_photos,
    place_order,
    release_long_poll,
    running_bot,
    sends_to,
    telegram_settings,
    texts_to,
    tr,
    webhook_settings,
)

ORDER_CODE = re.compile(r"VAV-[0-9A-Z]+")


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token=TOKEN) as fake:
        yield fake
        await release_long_poll(fake)


def bot_calls_since(api: FakeTelegramAPI, mark: int) -> list[Call]:
    """Bot API calls after position `mark`, without typing indicators (timing-dependent)."""
    return [c for c in api.requests[mark:] if c.method != "sendChatAction"]


# ---- 1. a full order, the staff alert, a staff tap, the customer's notification ------------


async def test_full_order_staff_alert_claim_and_customer_notification(
    api: FakeTelegramAPI, tmp_path: Path
) -> None:
    request = "Tranh sen <60x90> & khung gỗ"
    async with running_bot(api, telegram_settings(tmp_path, api)) as bot:
        # /start: greeting, then the consent notice with inline buttons.
        calls = await bot.send(api.text_update(CUSTOMER, "/start"))
        greeting, notice = sends_to(calls, CUSTOMER)
        assert greeting["text"] == html.escape(tr("core.greeting"))
        assert greeting["parse_mode"] == "HTML"
        assert notice["text"] == html.escape(tr("consent.notice"))
        assert [b["callback_data"] for b in inline_buttons(notice)] == [
            "consent:yes",
            "consent:policy",
            "consent:no",
        ]

        calls = await bot.send(
            api.callback_update(CUSTOMER, "consent:yes", notice.result["message_id"])
        )
        assert texts_to(calls, CUSTOMER)[0] == html.escape(tr("consent.thanks"))
        data, message_id = button_data(calls, CUSTOMER, tr("menu.order"))

        calls = await bot.send(api.callback_update(CUSTOMER, data, message_id))
        assert texts_to(calls, CUSTOMER) == [html.escape(tr("order.ask.full_name"))]

        # The phone question comes with a reply keyboard holding the share-contact button.
        calls = await bot.send(api.text_update(CUSTOMER, ORDER_NAME))
        (phone_prompt,) = sends_to(calls, CUSTOMER)
        assert phone_prompt["text"] == html.escape(tr("order.ask.phone"))
        assert phone_prompt["reply_markup"] == {
            "keyboard": [
                [{"text": tr("flow.btn.share_contact"), "request_contact": True}],
                [{"text": tr("flow.btn.back")}, {"text": tr("flow.btn.cancel")}],
            ],
            "resize_keyboard": True,
            "one_time_keyboard": True,
        }

        # Sharing the contact: acknowledged by a message that removes the keyboard.
        calls = await bot.send(
            api.contact_update(CUSTOMER, ORDER_PHONE, "Lan", contact_user_id=CUSTOMER)
        )
        ack, address_prompt = sends_to(calls, CUSTOMER)
        assert ack["text"] == html.escape(tr("flow.contact_saved"))
        assert ack["reply_markup"] == {"remove_keyboard": True}
        assert address_prompt["text"] == html.escape(tr("order.ask.address"))

        calls = await bot.send(api.text_update(CUSTOMER, ORDER_ADDRESS))
        assert texts_to(calls, CUSTOMER) == [html.escape(tr("order.ask.email"))]
        data, message_id = button_data(calls, CUSTOMER, tr("flow.btn.skip"))
        assert data == "f:skip"
        calls = await bot.send(api.callback_update(CUSTOMER, data, message_id))
        assert texts_to(calls, CUSTOMER) == [html.escape(tr("order.ask.request"))]

        calls = await bot.send(api.text_update(CUSTOMER, request))
        assert texts_to(calls, CUSTOMER) == [html.escape(tr("order.ask.photos"))]
        data, message_id = button_data(calls, CUSTOMER, tr("flow.btn.skip"))
        calls = await bot.send(api.callback_update(CUSTOMER, data, message_id))
        (review,) = sends_to(calls, CUSTOMER)
        assert review["text"].startswith(html.escape(tr("order.review_title")))
        assert html.escape(request) in review["text"]
        assert request in review.result["text"]  # what the customer sees, unescaped

        data, message_id = button_data(calls, CUSTOMER, tr("flow.btn.confirm"))
        calls = await bot.send(api.callback_update(CUSTOMER, data, message_id))

        # The staff alert: HTML, customer values escaped, one-tap status buttons.
        (alert,) = sends_to(calls, STAFF_CHAT)
        code = ORDER_CODE.search(alert["text"])
        assert code is not None
        order = await order_by_code(bot.runtime, code.group())
        assert set(alert.params) == {"chat_id", "text", "parse_mode", "reply_markup"}
        assert alert["parse_mode"] == "HTML"
        lines = alert["text"].split("\n")
        assert lines[0] == f"🆕 <b>{html.escape(tr('order.alert.title', code=order.code))}</b>"
        assert f"<b>{tr('order.field.full_name')}:</b> {ORDER_NAME}" in lines
        assert f"<b>{tr('order.field.phone')}:</b> 0912 345 678" in lines
        assert f"<b>{tr('order.field.address')}:</b> {ORDER_ADDRESS}" in lines
        assert f"<b>{tr('order.field.email')}:</b> —" in lines
        assert f"<b>{tr('order.field.request')}:</b> {html.escape(request)}" in lines
        assert f"<b>{tr('order.field.photos')}:</b> —" in lines
        assert f"<b>{tr('order.alert.status')}:</b> {tr('order.status.new')}" in lines
        assert request in alert.result["text"]  # staff read the request as typed
        assert alert["reply_markup"] == {
            "inline_keyboard": [
                [
                    {
                        "text": tr("order.action.claimed"),
                        "callback_data": f"os:{order.id}:claimed",
                    },
                    {
                        "text": tr("order.action.contacted"),
                        "callback_data": f"os:{order.id}:contacted",
                    },
                ],
                [
                    {
                        "text": tr("order.action.shipping"),
                        "callback_data": f"os:{order.id}:shipping",
                    },
                    {
                        "text": tr("order.action.done"),
                        "callback_data": f"os:{order.id}:done",
                    },
                ],
                [
                    {
                        "text": tr("order.action.cancelled"),
                        "callback_data": f"os:{order.id}:cancelled",
                    },
                ],
            ]
        }
        assert all(len(b["callback_data"].encode()) <= 64 for b in inline_buttons(alert))
        (confirmation,) = sends_to(calls, CUSTOMER)
        assert confirmation["text"] == html.escape(
            tr("order.confirmed", code=order.code, product="", hours=bot.settings.shop_hours)
        )
        assert [b["callback_data"] for b in inline_buttons(confirmation)] == ["myorders"]

        # A staff member taps "claim" in the staff group.
        alert_id = alert.result["message_id"]
        calls = await bot.send(
            api.callback_update(
                STAFF_MEMBER,
                f"os:{order.id}:claimed",
                alert_id,
                chat_id=STAFF_CHAT,
                first_name=STAFF_NAME,
            )
        )
        (edit,) = [c for c in calls if c.method == "editMessageText"]
        assert edit.failed is None
        assert (edit["chat_id"], edit["message_id"]) == (STAFF_CHAT, alert_id)
        assert edit["parse_mode"] == "HTML"
        assert f"<b>{tr('order.alert.status')}:</b> {tr('order.status.claimed')}" in edit["text"]
        assert f"{tr('order.status.claimed')} — {STAFF_NAME}" in edit["text"]
        assert [b["callback_data"] for b in inline_buttons(edit)] == [  # the same places
            f"os:{order.id}:{status}"
            for status in ("claimed", "contacted", "shipping", "done", "cancelled")
        ]
        assert sends_to(calls, STAFF_CHAT) == []  # edited in place, no new staff message
        (notification,) = sends_to(calls, CUSTOMER)
        assert notification["text"] == html.escape(tr("order.notify.claimed", code=order.code))

        # Every button press was answered, so no client kept spinning.
        answered = [c["callback_query_id"] for c in api.calls("answerCallbackQuery")]
        assert sorted(answered) == sorted(bot.callbacks)
        assert len(bot.callbacks) == 6

        claimed = await order_by_code(bot.runtime, order.code)
        assert claimed.status == "claimed" and claimed.claimed_by == str(STAFF_MEMBER)


# ---- 1b. rendering: reply-keyboard buttons, documents ----------------------------------------


async def test_reply_keyboard_buttons_map_back_to_their_payloads(
    api: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(api, telegram_settings(tmp_path, api)) as bot:
        await consent(bot, CUSTOMER)
        await bot.send(api.text_update(CUSTOMER, "/order"))
        await bot.send(api.text_update(CUSTOMER, ORDER_NAME))

        # "Back" on the reply keyboard arrives as its label and acts as the button.
        calls = await bot.send(api.text_update(CUSTOMER, tr("flow.btn.back")))
        assert texts_to(calls, CUSTOMER) == [html.escape(tr("order.ask.full_name"))]
        calls = await bot.send(api.text_update(CUSTOMER, ORDER_NAME))
        (phone_prompt,) = sends_to(calls, CUSTOMER)
        assert phone_prompt["reply_markup"]["keyboard"][0][0]["request_contact"] is True

        # A typed number works as well as the contact button, and takes the keyboard away.
        calls = await bot.send(api.text_update(CUSTOMER, "0912 345 678"))
        ack, address_prompt = sends_to(calls, CUSTOMER)
        assert ack["reply_markup"] == {"remove_keyboard": True}
        assert address_prompt["text"] == html.escape(tr("order.ask.address"))


async def test_documents_are_sent_as_files(api: FakeTelegramAPI, tmp_path: Path) -> None:
    async with running_bot(api, telegram_settings(tmp_path, api)) as bot:
        code = await place_order(bot, CUSTOMER)

        calls = await bot.send(api.text_update(CUSTOMER, "/export"))
        (export,) = [c for c in calls if c.method == "sendDocument"]
        assert export.failed is None and export["chat_id"] == CUSTOMER
        assert export["caption"] == html.escape(tr("rights.export.ready"))
        upload = export["document"]
        assert isinstance(upload, UploadedFile)
        assert re.fullmatch(r"vietartview-data-\d{8}\.json", upload.filename)
        data = json.loads(upload.content)
        assert data["profile"]["full_name"] == ORDER_NAME
        assert [o["code"] for o in data["orders"]] == [code]

        calls = await bot.send(
            api.text_update(STAFF_ADMIN, "/export", chat_id=STAFF_CHAT, chat_type="supergroup")
        )
        (csv_file,) = [c for c in calls if c.method == "sendDocument"]
        assert csv_file.failed is None and csv_file["chat_id"] == STAFF_CHAT
        assert csv_file["parse_mode"] == "HTML"
        content = csv_file["document"].content.decode("utf-8-sig")
        assert content.splitlines()[0].startswith("Mã đơn,Trạng thái,Ngày đặt,Họ tên")
        assert code in content and ORDER_NAME in content


# ---- 2. command menus -----------------------------------------------------------------------


async def test_command_menus_are_set_at_start(api: FakeTelegramAPI, tmp_path: Path) -> None:
    async with running_bot(api, telegram_settings(tmp_path, api)) as bot:
        calls = api.calls("setMyCommands", include_failed=False)
        await bot.send(api.text_update(CUSTOMER, "/help"))  # a long poll returns
        first_poll = api.calls("getUpdates")[0]

    def menu(lang: str, staff: bool = False) -> list[dict[str, str]]:
        return [
            {"command": name, "description": tr(key, lang)}
            for name, key in build().help_entries(staff=staff)
        ]

    assert calls == [
        {"commands": menu("vi"), "scope": {"type": "default"}},
        {"commands": menu("en"), "scope": {"type": "default"}, "language_code": "en"},
        {"commands": menu("vi", staff=True), "scope": {"type": "chat", "chat_id": STAFF_CHAT}},
    ]
    customer_commands = [c["command"] for c in menu("vi")]
    assert {"start", "order", "orders", "mydata", "delete", "privacy"} <= set(customer_commands)
    assert menu("vi") != menu("en")  # really two languages
    assert {"orders", "find", "export"} <= {c["command"] for c in menu("vi", staff=True)}
    # Polling mode: no webhook left behind, and only the update kinds the bot handles.
    assert len(api.calls("deleteWebhook")) == 1 and api.webhook is None
    assert first_poll["allowed_updates"] == [
        "message",
        "edited_message",
        "callback_query",
        "my_chat_member",
    ]


# ---- 3. webhook mode ------------------------------------------------------------------------


async def test_webhook_mode_checks_the_secret_and_stores_before_answering(
    api: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(api, webhook_settings(tmp_path, api)) as bot:
        (hook,) = api.calls("setWebhook")
        assert hook["url"] == f"{PUBLIC_URL}/telegram/webhook"
        assert hook["secret_token"] == WEBHOOK_SECRET
        assert hook["allowed_updates"] == [
            "message",
            "edited_message",
            "callback_query",
            "my_chat_member",
        ]
        assert api.calls("getUpdates") == [] and api.calls("deleteWebhook") == []
        health = await bot.http.get(f"http://127.0.0.1:{bot.settings.webhook_port}/healthz")
        assert health.status_code == 200 and health.json()["status"] == "ok"  # it read the db

        # The right secret: stored, processed, answered.
        calls = await bot.send(api.text_update(CUSTOMER, "/start"))
        assert texts_to(calls, CUSTOMER)[0] == html.escape(tr("core.greeting"))
        assert await inbox_count(bot.runtime) == 1

        # A wrong, empty or missing secret: 403, nothing stored, nothing sent.
        mark = len(api.requests)
        for secret in ("wrong-secret", "", None):
            response = await bot.post(api.text_update(CUSTOMER, "/help"), secret=secret)
            assert response.status_code == 403
        forged = await bot.post(api.text_update(CUSTOMER, "/help"), secret=WEBHOOK_SECRET[:-1])
        assert forged.status_code == 403
        await bot.settle()
        assert await inbox_count(bot.runtime) == 1
        assert bot_calls_since(api, mark) == []

        # The same update POSTed twice (Telegram retrying after a lost 200): processed once.
        update = api.text_update(CUSTOMER, "/privacy")
        first, second = await bot.post(update), await bot.post(update)
        assert (first.status_code, second.status_code) == (200, 200)
        await bot.settle()
        policy = html.escape(tr("policy.full_text"))
        assert texts_to(api.requests, CUSTOMER).count(policy) == 1
        assert await inbox_count(bot.runtime) == 2

        # A channel post (not subscribed, but say it arrives): accepted and ignored.
        mark = len(api.requests)
        post = await bot.post(api.channel_post_update(-1009, "Bộ sưu tập mới"))
        assert post.status_code == 200
        await bot.settle()
        assert await inbox_count(bot.runtime) == 2
        assert bot_calls_since(api, mark) == []


async def test_webhook_secret_is_generated_when_not_configured(
    api: FakeTelegramAPI, tmp_path: Path
) -> None:
    settings = webhook_settings(tmp_path, api, telegram_webhook_secret=None)
    async with running_bot(api, settings) as bot:
        secret = api.calls("setWebhook")[0]["secret_token"]
        assert isinstance(secret, str) and len(secret) >= 32
        assert re.fullmatch(r"[A-Za-z0-9_-]+", secret)  # Telegram's allowed characters
        refused = await bot.post(api.text_update(CUSTOMER, "/start"), secret=WEBHOOK_SECRET)
        assert refused.status_code == 403
        accepted = await bot.post(api.text_update(CUSTOMER, "/start"), secret=secret)
        assert accepted.status_code == 200
        await bot.settle()
        assert texts_to(api.requests, CUSTOMER)[0] == html.escape(tr("core.greeting"))


# ---- 4. failures on the staff alert ----------------------------------------------------------


def alert_attempts(api: FakeTelegramAPI, code: str) -> list[Call]:
    return [
        c
        for c in api.requests
        if c.method == "sendMessage" and c.get("chat_id") == STAFF_CHAT and code in c["text"]
    ]


@pytest.mark.parametrize("kind", ["500", "429"])
async def test_staff_alert_failure_is_retried_and_delivered_exactly_once(
    api: FakeTelegramAPI, tmp_path: Path, kind: str
) -> None:
    async with running_bot(api, telegram_settings(tmp_path, api)) as bot:
        await consent(bot, CUSTOMER)
        await order_until_photos(bot, CUSTOMER)
        # retry_after=2 is above the first backoff (1 s ± 20 %): the wait proves it is honoured.
        api.fail_next("sendMessage", kind, chat_id=STAFF_CHAT, retry_after=2)
        code = await finish_order(bot, CUSTOMER)  # returns once the retry was delivered

        attempts = alert_attempts(api, code)
        assert [c.failed for c in attempts] == [kind, None]
        delivered = attempts[-1]
        assert delivered["parse_mode"] == "HTML" and inline_buttons(delivered)
        order = await order_by_code(bot.runtime, code)
        (row,) = [r for r in await outbox_rows(bot.runtime, STAFF_CHAT) if r.tag]
        assert row.tag == f"order:{order.id}"
        assert (row.status, row.attempts) == ("sent", 2)
        assert row.platform_message_id == str(delivered.result["message_id"])
        assert row.sent_at is not None and row.sent_at >= row.next_attempt_at
        if kind == "429":
            assert row.last_error == "telegram 429"
            assert row.next_attempt_at - row.created_at >= timedelta(seconds=2)
        # The customer's confirmation did not wait for the staff chat.
        confirmation = await bot.wait_sent(CUSTOMER, code)
        assert api.requests.index(confirmation) < api.requests.index(delivered)

        # Staff act on the delivered alert as usual.
        calls = await bot.send(
            api.callback_update(
                STAFF_MEMBER,
                f"os:{order.id}:claimed",
                delivered.result["message_id"],
                chat_id=STAFF_CHAT,
                first_name=STAFF_NAME,
            )
        )
        (edit,) = [c for c in calls if c.method == "editMessageText"]
        assert edit.failed is None and edit["message_id"] == delivered.result["message_id"]
        assert alert_attempts(api, code) == attempts  # still exactly one alert


async def test_staff_alert_timeout_is_retried_and_never_lost(
    api: FakeTelegramAPI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timeout after Telegram accepted the alert: the bot cannot know it arrived, so it sends
    it again. Delivery is at-least-once: the staff chat shows the alert twice (documented in
    docs/architecture.md), and the bot works on with the copy it knows about."""
    build = telegram_channel.build_application
    monkeypatch.setattr(
        telegram_channel,
        "build_application",
        lambda token, base_url: build(token, base_url, read_timeout=1.0),
    )
    api.timeout_delay = 3.0  # longer than the client's read timeout: the answer is "lost"
    async with running_bot(api, telegram_settings(tmp_path, api)) as bot:
        await consent(bot, CUSTOMER)
        await order_until_photos(bot, CUSTOMER)
        api.fail_next("sendMessage", "timeout", chat_id=STAFF_CHAT)
        code = await finish_order(bot, CUSTOMER)

        lost, delivered = alert_attempts(api, code)
        assert (lost.failed, delivered.failed) == ("timeout", None)
        # Both copies are in the staff chat: the message was never lost, but duplicated.
        assert (STAFF_CHAT, lost.result["message_id"]) in api.messages
        assert (STAFF_CHAT, delivered.result["message_id"]) in api.messages
        assert lost["text"] == delivered["text"]
        (row,) = [r for r in await outbox_rows(bot.runtime, STAFF_CHAT) if r.tag]
        assert (row.status, row.attempts) == ("sent", 2)
        assert row.last_error == "telegram network TimedOut"
        assert row.platform_message_id == str(delivered.result["message_id"])


# ---- 5. the same update twice ----------------------------------------------------------------


async def test_same_update_delivered_twice_is_processed_once(
    api: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(api, telegram_settings(tmp_path, api)) as bot:
        update = api.text_update(CUSTOMER, "/start")
        api.push_update(update)
        api.push_update(update)  # Telegram delivering it again
        await bot.acknowledged(update["update_id"])
        await bot.settle()
        # Whatever came in before the next message was handled in order before it.
        await bot.send(api.text_update(CUSTOMER, "/help"))

        fetched = [
            u["update_id"] for c in api.requests if c.method == "getUpdates" for u in c.result
        ]
        assert fetched.count(update["update_id"]) == 2  # the bot really got it twice
        greeting = html.escape(tr("core.greeting"))
        assert texts_to(api.requests, CUSTOMER).count(greeting) == 1
        assert await inbox_count(bot.runtime) == 2


# ---- 6. a forged staff callback ------------------------------------------------------------


async def test_forged_staff_callback_from_a_customer_is_refused(
    api: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(api, telegram_settings(tmp_path, api)) as bot:
        code = await place_order(bot, CUSTOMER)
        order = await order_by_code(bot.runtime, code)
        (alert,) = sends_to(api.requests, STAFF_CHAT)
        mark = len(api.requests)

        # The customer crafts staff buttons in their private chat (any message of theirs).
        refusal = html.escape(tr("staff.not_allowed"))
        for payload in ("os:1:done", f"os:{order.id}:shipping", f"os:{order.id}:cancelled"):
            calls = await bot.send(api.callback_update(CUSTOMER, payload, message_id=1))
            assert texts_to(calls, CUSTOMER) == [refusal]
        # ... and a staff command.
        calls = await bot.send(api.text_update(CUSTOMER, "/find 0912"))
        assert texts_to(calls, CUSTOMER) == [refusal]

        later = api.requests[mark:]
        assert sends_to(later, STAFF_CHAT) == []
        assert [c for c in later if c.method == "editMessageText"] == []
        assert len(api.calls("answerCallbackQuery")) == len(bot.callbacks)
        unchanged = await order_by_code(bot.runtime, code)
        assert (unchanged.status, unchanged.claimed_by, unchanged.handed_to_carrier_at) == (
            "new",
            None,
            None,
        )
        assert alert.result["message_id"] and (STAFF_CHAT, alert.result["message_id"]) in (
            api.messages
        )
        async with bot.runtime.sessions() as session:
            refused = list(
                await session.scalars(
                    select(AuditEntry).where(AuditEntry.action == "refused").order_by(AuditEntry.id)
                )
            )
        assert [(r.actor, r.detail) for r in refused] == [
            (f"customer:{order.customer_id}", "staff-only:os"),
            (f"customer:{order.customer_id}", "staff-only:os"),
            (f"customer:{order.customer_id}", "staff-only:os"),
            (f"customer:{order.customer_id}", "staff-only:/find"),
        ]


# ---- 7. inbound mapping ----------------------------------------------------------------------


async def test_photo_at_the_photos_step_is_kept_as_a_file_reference(
    api: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(api, telegram_settings(tmp_path, api)) as bot:
        await consent(bot, CUSTOMER)
        await order_until_photos(bot, CUSTOMER)
        calls = await bot.send(api.photo_update(CUSTOMER, "AgACphoto-1", caption="mẫu này"))
        (collected,) = sends_to(calls, CUSTOMER)
        assert collected["text"] == html.escape(tr("flow.collected", count=1, limit=5))
        assert tr("flow.btn.done") in [b["text"] for b in inline_buttons(collected)]
        code = await finish_order(bot, CUSTOMER, skip_label="flow.btn.done")

        order = await order_by_code(bot.runtime, code)
        assert order.photos == ["AgACphoto-1"]  # the largest size's file_id, never downloaded
        (alert,) = sends_to(api.requests, STAFF_CHAT)
        assert f"<b>{tr('order.field.photos')}:</b> AgACphoto-1" in alert["text"].split("\n")
        assert api.calls("getFile") == []


async def test_urgent_complaint_mentions_the_staff_admins_with_links(
    api: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(api, telegram_settings(tmp_path, api)) as bot:
        await consent(bot, CUSTOMER)
        calls = await bot.send(api.text_update(CUSTOMER, "/complaint"))
        data, message_id = button_data(calls, CUSTOMER, tr("complaint.choice.leak"))
        await bot.send(api.callback_update(CUSTOMER, data, message_id))
        calls = await bot.send(api.text_update(CUSTOMER, "Người lạ gọi, biết cả địa chỉ của em"))
        data, message_id = button_data(calls, CUSTOMER, tr("flow.btn.skip"))
        calls = await bot.send(api.callback_update(CUSTOMER, data, message_id))
        data, message_id = button_data(calls, CUSTOMER, tr("flow.btn.confirm"))
        calls = await bot.send(api.callback_update(CUSTOMER, data, message_id))

        (alert,) = sends_to(calls, STAFF_CHAT)
        assert alert.failed is None
        # The handlers wrote a neutral mention; Telegram gets a link that notifies the admin.
        assert f'<a href="tg://user?id={STAFF_ADMIN}">@{STAFF_ADMIN}</a>' in alert["text"]
        assert "mention" not in alert["text"]
        assert f"@{STAFF_ADMIN}" in alert.result["text"]


async def test_edited_message_is_not_reprocessed(api: FakeTelegramAPI, tmp_path: Path) -> None:
    async with running_bot(api, telegram_settings(tmp_path, api)) as bot:
        await consent(bot, CUSTOMER)
        calls = await bot.send(api.text_update(CUSTOMER, "/order"))
        name = api.text_update(CUSTOMER, ORDER_NAME)
        calls = await bot.send(name)
        assert texts_to(calls, CUSTOMER) == [html.escape(tr("order.ask.phone"))]

        edited = api.edited_text_update(
            CUSTOMER, "Trần Văn Bình", message_id=name["message"]["message_id"]
        )
        calls = await bot.send(edited)
        assert texts_to(calls, CUSTOMER) == [
            html.escape(tr("core.edited_ignored")),
            html.escape(tr("flow.reminder")),
            html.escape(tr("order.ask.phone")),  # still at the phone step
        ]
        calls = await bot.send(api.text_update(CUSTOMER, "0912 345 678"))
        calls = await bot.send(api.text_update(CUSTOMER, ORDER_ADDRESS))
        async with bot.runtime.sessions() as session:
            state = await session.scalar(select(ConversationState))
        assert state is not None and state.data["values"]["full_name"] == ORDER_NAME


async def test_other_groups_and_channels_are_ignored_and_left(
    api: FakeTelegramAPI, tmp_path: Path
) -> None:
    other_group = -5001
    async with running_bot(api, telegram_settings(tmp_path, api)) as bot:
        # Added to someone else's group: the bot leaves at once.
        calls = await bot.send(api.my_chat_member_update(other_group, new_status="member"))
        assert [c["chat_id"] for c in calls if c.method == "leaveChat"] == [other_group]
        # Added (as admin) to the staff group: it stays.
        calls = await bot.send(
            api.my_chat_member_update(STAFF_CHAT, "supergroup", new_status="administrator")
        )
        assert [c for c in calls if c.method == "leaveChat"] == []
        # Removed from a group: nothing to do.
        calls = await bot.send(
            api.my_chat_member_update(-5002, new_status="left", old_status="member")
        )
        assert [c for c in calls if c.method == "leaveChat"] == []

        # A message in a group that is not the staff chat, and a channel post.
        group_text = api.text_update(CUSTOMER, "/start", chat_id=other_group, chat_type="group")
        calls = await bot.send(group_text)
        api.push_update(api.channel_post_update(-1009, "Bộ sưu tập mới"))
        calls += await bot.send(api.text_update(CUSTOMER, "/help"))  # the private chat works
        assert [c.get("chat_id") for c in calls if c.method == "sendMessage"] == [CUSTOMER]
        assert await inbox_count(bot.runtime) == 1
        # Ordinary chatter in the staff group: stored for the staff handlers, no answer.
        calls = await bot.send(
            api.text_update(
                STAFF_MEMBER, "ai rảnh không?", chat_id=STAFF_CHAT, chat_type="supergroup"
            )
        )
        assert [c for c in calls if c.method == "sendMessage"] == []
        assert await inbox_count(bot.runtime) == 2


async def test_customer_who_blocked_the_bot_is_marked_unreachable_and_staff_told(
    api: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(api, telegram_settings(tmp_path, api)) as bot:
        api.fail_next("sendMessage", "403", chat_id=CUSTOMER)
        calls = await bot.send(api.text_update(CUSTOMER, "/help"))

        to_customer = [
            c for c in api.requests if c.method == "sendMessage" and c["chat_id"] == CUSTOMER
        ]
        assert [c.failed for c in to_customer] == ["403"]  # tried once, never again
        (row,) = await outbox_rows(bot.runtime, CUSTOMER)
        assert (row.status, row.attempts) == ("failed", 1)
        assert row.last_error == "telegram 403 forbidden (blocked or removed)"
        assert row.payload == {}  # the undeliverable text is not kept
        async with bot.runtime.sessions() as session:
            identity = await session.scalar(select(ChannelIdentity))
        assert identity is not None and identity.unreachable_since is not None
        (notice,) = sends_to(calls, STAFF_CHAT)
        assert notice["text"] == html.escape(
            tr(
                "core.staff.delivery_failed",
                customer=identity.customer_id,
                channel="telegram",
                reason="telegram 403 forbidden (blocked or removed)",
            )
        )
        assert await due_outbox_rows(bot.runtime) == []


# ---- 8. restart -------------------------------------------------------------------------------


async def test_restart_neither_reprocesses_nor_loses_updates(
    api: FakeTelegramAPI, tmp_path: Path
) -> None:
    settings = telegram_settings(tmp_path, api)
    start = api.text_update(CUSTOMER, "/start")
    async with running_bot(api, settings) as bot:
        await bot.send(start)
        # A reply that fails once and is still waiting for its retry when the bot stops.
        api.fail_next("sendMessage", "500", chat_id=CUSTOMER)
        lang = api.push_update(api.text_update(CUSTOMER, "/lang"))
        await bot.acknowledged(lang["update_id"])
        await api.wait_for("sendMessage", lambda c: c.failed == "500", timeout=WAIT)
    assert api.pending_updates == []  # the handled updates were confirmed by the offset

    # While the bot is down: Telegram re-sends a handled update (as after a crash before the
    # offset was confirmed), and the customer writes again.
    api.push_update(start)
    help_update = api.push_update(api.text_update(CUSTOMER, "/help"))

    async with running_bot(api, settings) as bot:
        await bot.acknowledged(help_update["update_id"])
        await bot.settle()
        texts = texts_to(api.requests, CUSTOMER)
        assert texts.count(html.escape(tr("core.greeting"))) == 1
        assert texts.count(html.escape(tr("lang.choose"))) == 1  # retried after the restart
        assert sum(t.startswith(html.escape(tr("help.intro"))) for t in texts) == 1
        assert await inbox_count(bot.runtime) == 3
        assert await due_outbox_rows(bot.runtime) == []
    assert api.pending_updates == []


# ---- 9. long texts ------------------------------------------------------------------------------


async def test_long_text_is_split_into_messages_within_the_limit(
    api: FakeTelegramAPI, tmp_path: Path
) -> None:
    async with running_bot(api, telegram_settings(tmp_path, api)) as bot:
        code = await place_order(bot, CUSTOMER)
        order = await order_by_code(bot.runtime, code)
        # A long exchange with the shop about this order (as staff replies would leave it).
        relayed = [
            f"Tin nhắn {n:02d}: " + "tranh sen <60×90> & khung gỗ, giao trước Tết; " * 5
            for n in range(30)
        ]
        async with UnitOfWork(bot.runtime.sessions) as uow:
            for text in relayed:
                await uow.relayed.add(
                    order.customer_id, f"order:{order.id}", "out", text, order.created_at
                )
            await uow.commit()

        calls = await bot.send(api.text_update(CUSTOMER, "/mydata"))
        parts = sends_to(calls, CUSTOMER)
        assert len(parts) >= 2
        for part in parts:
            assert part.failed is None and part["parse_mode"] == "HTML"
            assert len(part["text"]) <= 4096 and len(part.result["text"]) <= 4096
        assert all("reply_markup" not in part.params for part in parts[:-1])
        assert inline_buttons(parts[-1])  # the buttons come with the last part
        shown = "\n".join(part.result["text"] for part in parts)
        assert shown.startswith(tr("rights.mydata.title"))
        for text in relayed:
            assert f"   ← {text[:200]}" in shown.split("\n")  # no line cut in two
        assert shown.endswith(tr("rights.mydata.self_delete", minutes=5))
        assert len(shown) > 4096

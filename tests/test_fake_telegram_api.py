"""Proves FakeTelegramAPI against the real python-telegram-bot stack (Bot, Application, httpx)."""

from __future__ import annotations

import asyncio
import datetime as dtm
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from telegram import (
    Bot,
    BotCommand,
    ChatMemberAdministrator,
    ChatMemberLeft,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    Message,
    Update,
)
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    Conflict,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TimedOut,
)
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CommandHandler,
    ContextTypes,
)
from telegram.warnings import PTBDeprecationWarning

from tests.fakes.telegram_api import FakeTelegramAPI, UploadedFile

TOKEN = "123:ABC"
USER = 42


@pytest.fixture
async def api() -> AsyncIterator[FakeTelegramAPI]:
    async with FakeTelegramAPI(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def bot(api: FakeTelegramAPI) -> AsyncIterator[Bot]:
    async with Bot(TOKEN, base_url=api.base_url, base_file_url=api.file_base_url) as client:
        yield client


async def test_get_me_and_initialize(api: FakeTelegramAPI, bot: Bot) -> None:
    me = await bot.get_me()

    assert (me.id, me.is_bot, me.username) == (123, True, "vietartview_test_bot")
    # Bot.initialize() (via `async with`) already called getMe once.
    assert len(api.calls("getMe")) == 2
    assert api.base_url.startswith("http://127.0.0.1:") and api.base_url.endswith("/bot")


async def test_wrong_token_is_rejected(api: FakeTelegramAPI) -> None:
    intruder = Bot("999:WRONG", base_url=api.base_url)

    with pytest.raises(InvalidToken):
        await intruder.initialize()

    assert api.requests[-1].failed == "401"
    await intruder.shutdown()


async def test_send_message_records_html_and_inline_keyboard(
    api: FakeTelegramAPI, bot: Bot
) -> None:
    keyboard = InlineKeyboardMarkup(
        [
            [InlineKeyboardButton("Mua", callback_data="buy:7")],
            [InlineKeyboardButton("Hủy", callback_data="x")],
        ]
    )

    sent = await bot.send_message(
        USER, "<b>Tranh sơn dầu</b> &amp; khung", parse_mode=ParseMode.HTML, reply_markup=keyboard
    )

    params = api.calls("sendMessage")[0]
    assert params["chat_id"] == USER  # decoded from the form's JSON string
    assert params["text"] == "<b>Tranh sơn dầu</b> &amp; khung"
    assert params["parse_mode"] == "HTML"
    assert params["reply_markup"] == {
        "inline_keyboard": [
            [{"text": "Mua", "callback_data": "buy:7"}],
            [{"text": "Hủy", "callback_data": "x"}],
        ]
    }
    # The returned Message is what Telegram stores: tags parsed away, keyboard echoed.
    assert sent.text == "Tranh sơn dầu & khung"
    assert sent.from_user is not None and sent.from_user.id == 123
    assert sent.chat.id == USER and sent.reply_markup == keyboard
    second = await bot.send_message(USER, "tiếp")
    assert second.message_id == sent.message_id + 1


async def test_server_side_rules_raise_bad_request(api: FakeTelegramAPI, bot: Bot) -> None:
    with pytest.raises(BadRequest, match="(?i)unsupported start tag"):
        await bot.send_message(USER, "Giá <Tranh>", parse_mode=ParseMode.HTML)
    with pytest.raises(BadRequest, match="(?i)button_data_invalid"):
        button = InlineKeyboardButton("x", callback_data="x" * 65)
        await bot.send_message(USER, "hi", reply_markup=InlineKeyboardMarkup([[button]]))

    sent = await bot.send_message(USER, "Đơn #1")
    with pytest.raises(BadRequest, match="(?i)message is not modified"):
        await bot.edit_message_text("Đơn #1", chat_id=USER, message_id=sent.message_id)

    assert [c.failed for c in api.requests if c.method != "getMe"] == ["400", "400", None, "400"]


async def test_send_document_uploads_bytes_and_file_round_trips(
    api: FakeTelegramAPI, bot: Bot
) -> None:
    pdf = b"%PDF-1.4\r\n\x00\xff binary\r\n--not-a-boundary\r\n"

    sent = await bot.send_document(
        USER, InputFile(pdf, filename="hoá đơn.pdf"), caption="Hoá đơn của bạn"
    )

    upload = api.calls("sendDocument")[0]["document"]
    assert isinstance(upload, UploadedFile)
    assert (upload.filename, upload.content) == ("hoá đơn.pdf", pdf)
    assert api.calls("sendDocument")[0]["caption"] == "Hoá đơn của bạn"
    assert sent.document is not None and sent.document.file_name == "hoá đơn.pdf"
    # getFile + download prove file_base_url is wired like Telegram's.
    tg_file = await bot.get_file(sent.document.file_id)
    assert tg_file.file_path is not None and tg_file.file_path.startswith(api.file_base_url)
    assert bytes(await tg_file.download_as_bytearray()) == pdf


async def test_get_updates_honours_offset_and_drops_confirmed(
    api: FakeTelegramAPI, bot: Bot
) -> None:
    first = api.push_update(api.text_update(USER, "/start ref42"))
    api.push_update(api.text_update(USER, "xin chào", first_name="Mai"))

    updates = await bot.get_updates()

    assert [u.update_id for u in updates] == [first["update_id"], first["update_id"] + 1]
    assert updates[0].message is not None and updates[0].message.text == "/start ref42"
    assert updates[0].message.entities[0].type == "bot_command"
    assert updates[0].message.entities[0].length == len("/start")
    assert updates[1].effective_user is not None and updates[1].effective_user.first_name == "Mai"
    # Not confirmed yet: a repeat call returns them again.
    assert len(await bot.get_updates()) == 2

    assert await bot.get_updates(offset=updates[1].update_id + 1) == ()
    assert api.pending_updates == []


async def test_long_poll_returns_early_when_update_pushed(api: FakeTelegramAPI, bot: Bot) -> None:
    started = time.monotonic()
    poll = asyncio.create_task(bot.get_updates(timeout=5))
    await asyncio.sleep(0.1)
    api.push_update(api.callback_update(USER, "buy:7", message_id=99))

    updates = await poll

    assert time.monotonic() - started < 2
    query = updates[0].callback_query
    assert query is not None and query.data == "buy:7"
    assert query.message is not None and query.message.message_id == 99
    assert api.calls("getUpdates")[0]["timeout"] == 5


async def test_second_poller_conflicts_and_webhook_blocks_polling(
    api: FakeTelegramAPI, bot: Bot
) -> None:
    # A second bot process with the same token (PTB's own getUpdates pool holds 1 connection).
    async with Bot(TOKEN, base_url=api.base_url) as twin:
        older = asyncio.create_task(bot.get_updates(timeout=5))
        await asyncio.sleep(0.1)
        newer = await twin.get_updates(timeout=0)

        with pytest.raises(Conflict, match="terminated by other getUpdates"):
            await older
    assert newer == ()

    assert await bot.set_webhook("https://shop.example/tg", secret_token="s3cret")
    with pytest.raises(Conflict, match="webhook is active"):
        await bot.get_updates()
    info = await bot.get_webhook_info()
    assert info.url == "https://shop.example/tg"
    assert api.calls("setWebhook")[0]["secret_token"] == "s3cret"


async def test_429_raises_retry_after(api: FakeTelegramAPI, bot: Bot) -> None:
    api.fail_next("sendMessage", "429", retry_after=7)

    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "hi")

    # PTB 22 stores a timedelta; the int accessor is deprecated unless PTB_TIMEDELTA=1.
    with pytest.warns(PTBDeprecationWarning):
        assert caught.value.retry_after == 7
    assert api.requests[-1].failed == "429"
    assert (await bot.send_message(USER, "again")).text == "again"  # times=1 is used up


async def test_429_retry_after_is_timedelta_when_opted_in(
    api: FakeTelegramAPI, bot: Bot, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "1")
    api.fail_next("sendMessage", "429", retry_after=2)

    with pytest.raises(RetryAfter) as caught:
        await bot.send_message(USER, "hi")

    assert caught.value.retry_after == dtm.timedelta(seconds=2)


async def test_403_raises_forbidden_only_for_target_chat(api: FakeTelegramAPI, bot: Bot) -> None:
    api.fail_next("sendMessage", "403", chat_id=USER)

    other = await bot.send_message(7, "to someone else")
    with pytest.raises(Forbidden, match="bot was blocked by the user"):
        await bot.send_message(USER, "hi")

    assert other.chat.id == 7
    assert [c.failed for c in api.requests if c.method == "sendMessage"] == [None, "403"]


async def test_500_raises_network_error_for_each_injected_attempt(
    api: FakeTelegramAPI, bot: Bot
) -> None:
    api.fail_next("sendMessage", "500", times=2)

    for _ in range(2):
        with pytest.raises(NetworkError) as caught:
            await bot.send_message(USER, "hi")
        assert not isinstance(caught.value, BadRequest | TimedOut)
    await bot.send_message(USER, "hi")

    assert [c.failed for c in api.requests if c.method == "sendMessage"] == ["500", "500", None]


async def test_timeout_raises_timed_out_but_message_was_sent(
    api: FakeTelegramAPI, bot: Bot
) -> None:
    api.timeout_delay = 1.0
    api.fail_next("sendMessage", "timeout")

    started = time.monotonic()
    with pytest.raises(TimedOut):
        await bot.send_message(USER, "Đã nhận đơn", read_timeout=0.3)

    assert time.monotonic() - started < 0.9
    call = await api.wait_for("sendMessage", lambda c: c.failed == "timeout")
    # Telegram did deliver it: a naive retry would now duplicate the message.
    assert call.result["text"] == "Đã nhận đơn"
    assert (USER, call.result["message_id"]) in api.messages


async def test_other_methods_deserialize_in_ptb(api: FakeTelegramAPI, bot: Bot) -> None:
    api.chat_members[(-1001, USER)] = "administrator"
    api.chat_members[(-1001, 5)] = "left"
    photo = await bot.send_photo(USER, b"\x89PNG fake", caption="<i>Mẫu</i>", parse_mode="HTML")
    keyboard = InlineKeyboardMarkup([[InlineKeyboardButton("OK", callback_data="ok")]])

    edited = await bot.edit_message_reply_markup(USER, photo.message_id, reply_markup=keyboard)
    assert await bot.set_my_commands([BotCommand("start", "Bắt đầu")], language_code="vi")
    commands = await bot.get_my_commands(language_code="vi")
    assert await bot.delete_my_commands(language_code="vi")
    admin = await bot.get_chat_member(-1001, USER)
    gone = await bot.get_chat_member(-1001, 5)
    chat = await bot.get_chat(-1001)
    results = [
        await bot.send_chat_action(USER, "typing"),
        await bot.answer_callback_query("1", text="Đã chọn"),
        await bot.delete_message(USER, photo.message_id),
        await bot.leave_chat(-1001),
        await bot.delete_webhook(drop_pending_updates=True),
        await bot.close(),
        await bot.log_out(),
    ]

    assert photo.photo[-1].width == 1280 and photo.caption == "Mẫu"
    assert isinstance(edited, Message) and edited.reply_markup == keyboard
    assert [c.command for c in commands] == ["start"]
    assert await bot.get_my_commands(language_code="vi") == ()
    assert isinstance(admin, ChatMemberAdministrator) and isinstance(gone, ChatMemberLeft)
    assert chat.id == -1001 and chat.type == "supergroup"
    assert results == [True] * 7
    assert (USER, photo.message_id) not in api.messages
    assert api.calls("answerCallbackQuery")[0] == {"callback_query_id": "1", "text": "Đã chọn"}


async def test_builders_produce_updates_ptb_understands(api: FakeTelegramAPI, bot: Bot) -> None:
    raw = [
        api.contact_update(USER, "+84901234567", "Lan", contact_user_id=USER),
        api.photo_update(USER, "ph1", caption="tranh này"),
        api.document_update(USER, "doc1", file_name="brief.pdf"),
        api.edited_text_update(USER, "sửa lại", message_id=5),
        api.my_chat_member_update(-5001, new_status="administrator"),
        api.channel_post_update(-1002, "Bộ sưu tập mới"),
        api.text_update(USER, "trả lời", chat_id=-5001, chat_type="group", reply_to_message_id=5),
    ]

    updates = [Update.de_json(api.push_update(u), bot) for u in raw]

    contact, photo, document, edited, member, post, group_text = updates
    assert contact.message is not None and contact.message.contact is not None
    assert contact.message.contact.user_id == USER
    assert photo.message is not None and photo.message.photo[-1].file_id == "ph1"
    assert photo.message.caption == "tranh này"
    assert document.message is not None and document.message.document is not None
    assert document.message.document.file_name == "brief.pdf"
    assert edited.edited_message is not None and edited.edited_message.edit_date is not None
    assert member.my_chat_member is not None
    assert member.my_chat_member.new_chat_member.status == "administrator"
    assert post.channel_post is not None and post.effective_chat is not None
    assert post.effective_chat.type == "channel"
    assert group_text.message is not None and group_text.message.chat.type == "group"
    assert group_text.message.reply_to_message is not None
    assert [u.update_id for u in await bot.get_updates()] == [u.update_id for u in updates]


async def test_application_without_updater_processes_webhook_json(api: FakeTelegramAPI) -> None:
    async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.effective_chat is not None
        await context.bot.send_message(update.effective_chat.id, f"args={context.args}")

    app: Application = (
        ApplicationBuilder()
        .token(TOKEN)
        .base_url(api.base_url)
        .base_file_url(api.file_base_url)
        .rate_limiter(AIORateLimiter(max_retries=1))
        .updater(None)
        .build()
    )
    app.add_handler(CommandHandler("start", start))
    api.fail_next("sendMessage", "429", retry_after=1)

    async with app:  # initialize() -> bot.get_me(); shutdown() on exit
        await app.process_update(Update.de_json(api.text_update(USER, "/start ref9"), app.bot))

    # AIORateLimiter slept retry_after and retried once.
    sends = [c for c in api.requests if c.method == "sendMessage"]
    assert [c.failed for c in sends] == ["429", None]
    assert sends[-1]["text"] == "args=['ref9']"
    assert app.updater is None


async def test_application_polling_end_to_end(api: FakeTelegramAPI) -> None:
    async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text("pong")

    app = ApplicationBuilder().token(TOKEN).base_url(api.base_url).build()
    app.add_handler(CommandHandler("ping", echo))

    async with app:
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(timeout=1)
        api.push_update(api.text_update(USER, "/ping"))
        reply = await api.wait_for("sendMessage", timeout=3)
        await app.updater.stop()
        await app.stop()

    assert reply["text"] == "pong" and reply["chat_id"] == USER
    assert api.pending_updates == []  # the Updater confirmed it on stop


async def test_raw_http_json_and_errors(api: FakeTelegramAPI) -> None:
    async with httpx.AsyncClient() as client:
        sent = await client.post(
            f"{api.base_url}{TOKEN}/sendMessage",
            json={"chat_id": USER, "text": "123", "reply_markup": '{"inline_keyboard": []}'},
        )
        unknown = await client.get(f"{api.base_url}{TOKEN}/noSuchMethod")
        unauthorized = await client.get(f"{api.base_url}1:bad/getMe")

    assert sent.json()["result"]["text"] == "123"
    assert api.calls("sendMessage")[0] == {
        "chat_id": USER,
        "text": "123",  # text stays a string even though it looks like JSON
        "reply_markup": {"inline_keyboard": []},
    }
    assert unknown.status_code == 404
    assert unauthorized.status_code == 401
    assert unauthorized.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}


async def test_wait_for_times_out_with_context(api: FakeTelegramAPI) -> None:
    with pytest.raises(TimeoutError, match="sendMessage"):
        await api.wait_for("sendMessage", timeout=0.05)
    with pytest.raises(ValueError, match="kind"):
        api.fail_next("sendMessage", "418")

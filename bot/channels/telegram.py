"""Telegram channel on python-telegram-bot 22: polling or webhook in, outbox deliveries out.

Inbound: every update goes through the PTB `Application` (a TypeHandler) and is mapped to an
`Inbound`, stored in the inbox, and only then acknowledged — by the next `getUpdates` offset
when polling, by the HTTP 200 in webhook mode. Private chats are customers; the staff chat
(`STAFF_CHAT_ID`) goes to the staff handlers; other groups are left, channel posts ignored.
Edited messages are not re-processed (the earlier answer already counted): they become an
"edited" event and the customer is asked to send a new message instead.

Outbound: HTML parse mode (plain texts are escaped here; staff alerts arrive escaped), inline
keyboards for buttons, a reply keyboard with `request_contact` for the phone step (its text
buttons map back to their payloads), `sendDocument` for files, edits for staff alerts.
PTB's AIORateLimiter keeps within Telegram's overall limit (30 messages a second); the
per-group limit (20 a minute) is declared by `send_quota` and kept by the runtime's delivery,
which pauses only that chat's queue and merges its waiting lines (see bot/runtime.py).
Errors are translated by cause for the outbox worker: a refusal that will not heal (bad
request, blocked, a text the HTTP client cannot encode, too large) is permanent; network
trouble, 5xx and 429 (with its retry_after) are temporary.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
import warnings
from dataclasses import replace
from datetime import timedelta
from typing import Any

from telegram import (
    BotCommand,
    BotCommandScopeChat,
    BotCommandScopeDefault,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputFile,
    KeyboardButton,
    Message,
    ReplyKeyboardMarkup,
    ReplyKeyboardRemove,
    ReplyParameters,
    Update,
)
from telegram.constants import ChatAction, ChatType, ParseMode
from telegram.error import (
    BadRequest,
    Forbidden,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.ext import AIORateLimiter, Application, ApplicationBuilder

from handlers.i18n import t
from handlers.messages import (
    Attachment,
    ChannelCapabilities,
    Contact,
    Inbound,
    Outbound,
    PermanentSendError,
    SendResult,
    TemporarySendError,
    render_mentions,
    strip_html,
)
from handlers.router import Composition

log = logging.getLogger(__name__)

# A 429 is the outbox's business (it waits retry_after); the limiter's traceback is noise.
logging.getLogger("telegram.ext.AIORateLimiter").setLevel(logging.CRITICAL)

CHANNEL = "telegram"
MAX_TEXT = 4096
MAX_CAPTION = 1024
MAX_BUTTONS = 100  # inline keyboard buttons per message
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
TYPING_AFTER_SECONDS = 0.7  # a reply faster than this needs no typing indicator
TYPING_REPEAT_SECONDS = 4.5  # Telegram shows "typing…" for about 5 seconds
GROUP_QUOTA = (20, 60.0)  # Telegram: at most 20 messages a minute in one group


def build_application(token: str, base_url: str, read_timeout: float = 15.0) -> Application:
    """The PTB Application: bot with rate limiter, no built-in Updater (we poll ourselves)."""
    return (
        ApplicationBuilder()
        .token(token)
        .base_url(base_url)
        .base_file_url(
            base_url.replace("/bot", "/file/bot") if base_url.endswith("/bot") else base_url
        )
        # Retries are the outbox's job, and so is the per-group limit (see `send_quota`): a
        # send waiting inside the limiter would hold a delivery slot and hide the wait.
        .rate_limiter(AIORateLimiter(max_retries=0, group_max_rate=0))
        .updater(None)
        .connect_timeout(5.0)
        .read_timeout(read_timeout)
        .write_timeout(15.0)
        .get_updates_read_timeout(35.0)
        .build()
    )


class TelegramAdapter:
    """Renders outbox messages with the Bot API."""

    name = CHANNEL
    capabilities = ChannelCapabilities(
        can_delete_messages=True,
        can_edit_messages=True,
        max_buttons_per_message=MAX_BUTTONS,
        html_formatting=True,
        user_mentions=True,
        contact_request=True,
        documents=True,
        photos=True,
        inline_buttons=True,
    )

    def __init__(self, application: Application) -> None:
        self.application = application
        self.bot = application.bot
        # Labels of the reply-keyboard buttons last shown per chat → their payloads.
        self.reply_keyboards: dict[str, dict[str, str]] = {}

    async def send(
        self,
        message: Outbound,
        edit_message_id: str | None = None,
        reply_to_message_id: str | None = None,
    ) -> SendResult:
        try:
            return await self._send(message, edit_message_id, reply_to_message_id)
        except TelegramError as exc:
            raise send_error(exc) from None

    def send_quota(self, chat_id: str) -> tuple[int, float] | None:
        """(messages, seconds) allowed in this chat: groups have ids below zero."""
        return GROUP_QUOTA if chat_id.startswith("-") else None

    async def _send(
        self, message: Outbound, edit_id: str | None, reply_id: str | None
    ) -> SendResult:
        chat_id = message.chat_id
        text_html = (
            render_mentions(message.text, _mention) if message.html else html.escape(message.text)
        )
        chunks = html_chunks(text_html)
        text = chunks[0]
        markup = self._markup(message)
        if edit_id is not None and message.document is None:
            try:
                edited = await self.bot.edit_message_text(
                    text,  # an edit holds one message: the first part if it ever grew longer
                    chat_id=chat_id,
                    message_id=_first_id(edit_id),
                    parse_mode=ParseMode.HTML,
                    reply_markup=markup if isinstance(markup, InlineKeyboardMarkup) else None,
                )
                return SendResult(_message_id(edited) or edit_id)
            except BadRequest as exc:
                if "not modified" in exc.message.lower():
                    return SendResult(edit_id)
                if "not found" not in exc.message.lower():
                    raise
                # The original is gone (deleted in the chat): post the current version anew.
        reply = (
            ReplyParameters(_first_id(reply_id), allow_sending_without_reply=True)
            if reply_id
            else None
        )
        if message.photo is not None or _is_image(message):
            return await self._send_photo(message, text_html, markup, reply)
        if message.document is not None:
            sent = await self.bot.send_document(
                chat_id,
                InputFile(message.document.content, filename=message.document.filename),
                caption=text if len(text) <= MAX_CAPTION else None,
                parse_mode=ParseMode.HTML,
                reply_markup=markup,
                reply_parameters=reply,
            )
            return SendResult(str(sent.message_id))
        ids: list[str] = []
        for index, chunk in enumerate(chunks):
            last = index == len(chunks) - 1
            sent_message = await self.bot.send_message(
                chat_id,
                chunk,
                parse_mode=ParseMode.HTML,
                reply_markup=markup if last else None,
                reply_parameters=reply if index == 0 else None,
            )
            ids.append(str(sent_message.message_id))
        # Every part's id, so that a self-deleting message (/mydata) disappears entirely.
        return SendResult(",".join(ids))

    async def _send_photo(
        self, message: Outbound, text_html: str, markup: Any, reply: ReplyParameters | None
    ) -> SendResult:
        """A picture (an address, a Telegram file id, or an image file such as the VietQR)
        with the text as its caption; a caption over Telegram's limit follows as a message
        that carries the buttons."""
        if message.photo is not None:
            photo: Any = message.photo
        else:
            assert message.document is not None
            photo = InputFile(message.document.content, filename=message.document.filename)
        fits = len(text_html) <= MAX_CAPTION
        try:
            sent = await self.bot.send_photo(
                message.chat_id,
                photo,
                caption=text_html if fits else None,
                parse_mode=ParseMode.HTML,
                reply_markup=markup if fits else None,
                reply_parameters=reply,
            )
        except BadRequest as exc:
            if not isinstance(photo, str):
                raise
            # Telegram could not fetch the photo address: the words still go out.
            log.info("photo not accepted by telegram (%s); sending the text", exc.message[:80])
            return await self._send(replace(message, photo=None), None, None)
        ids = [str(sent.message_id)]
        if not fits:
            chunks = html_chunks(text_html)
            for index, chunk in enumerate(chunks):
                last = index == len(chunks) - 1
                follow = await self.bot.send_message(
                    message.chat_id,
                    chunk,
                    parse_mode=ParseMode.HTML,
                    reply_markup=markup if last else None,
                )
                ids.append(str(follow.message_id))
        return SendResult(",".join(ids))

    def _markup(self, message: Outbound) -> Any:
        if message.ask_contact:
            rows = [[KeyboardButton(message.contact_label or "📱", request_contact=True)]]
            rows += [[KeyboardButton(b.label) for b in row] for row in message.buttons]
            self.reply_keyboards[message.chat_id] = {
                b.label: b.payload for row in message.buttons for b in row
            }
            return ReplyKeyboardMarkup(rows, resize_keyboard=True, one_time_keyboard=True)
        if message.buttons:
            for row in message.buttons:
                for button in row:
                    if len(button.payload.encode("utf-8")) > 64:
                        raise PermanentSendError("callback data over 64 bytes")
            return InlineKeyboardMarkup(
                [
                    [InlineKeyboardButton(b.label, callback_data=b.payload) for b in row]
                    for row in message.buttons
                ]
            )
        if message.remove_keyboard:
            self.reply_keyboards.pop(message.chat_id, None)
            return ReplyKeyboardRemove()
        return None

    async def delete(self, chat_id: str, message_id: str) -> None:
        for part in message_id.split(","):
            with contextlib.suppress(BadRequest):  # already deleted, or too old to delete
                await self.bot.delete_message(chat_id, int(part))


def _is_image(message: Outbound) -> bool:
    """A PNG/JPEG file is shown as a photo (the VietQR must be scannable in the chat)."""
    document = message.document
    return document is not None and document.mime_type in ("image/png", "image/jpeg")


def _mention(user_id: str, label: str) -> str:
    """A link that notifies the user; only numeric ids are Telegram users."""
    return f'<a href="tg://user?id={user_id}">{label}</a>' if user_id.isdigit() else label


def send_error(exc: TelegramError) -> PermanentSendError | TemporarySendError:
    """A Bot API failure classified by its cause (reasons carry no message text)."""
    if isinstance(exc, RetryAfter):
        return TemporarySendError("telegram 429", retry_after=retry_seconds(exc))
    if isinstance(exc, Forbidden):
        return PermanentSendError("telegram 403 forbidden (blocked or removed)", unreachable=True)
    if isinstance(exc, BadRequest):
        unreachable = "chat not found" in exc.message.lower()
        return PermanentSendError(f"telegram 400 {exc.message[:120]}", unreachable=unreachable)
    if isinstance(exc, TimedOut):  # the request may have arrived: retried, at-least-once
        return TemporarySendError("telegram network TimedOut")
    if isinstance(exc, NetworkError):
        cause = exc.__cause__
        if isinstance(cause, (UnicodeError, ValueError, TypeError)):
            # The request could not even be encoded (e.g. a lone surrogate): never heals.
            return PermanentSendError(f"telegram unsendable ({type(cause).__name__})")
        if exc.message.endswith("(413)"):
            return PermanentSendError("telegram 413 request too large")
        return TemporarySendError(f"telegram network {type(exc).__name__}")
    return TemporarySendError(f"telegram {type(exc).__name__}")


def _message_id(result: object) -> str | None:
    return str(result.message_id) if isinstance(result, Message) else None


def retry_seconds(exc: RetryAfter) -> float:
    """`retry_after` is an int or a timedelta depending on PTB_TIMEDELTA; read it quietly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wait = exc.retry_after
    return wait.total_seconds() if isinstance(wait, timedelta) else float(wait)


def _first_id(message_ids: str) -> int:
    """A message sent in several parts is stored as "id1,id2"; edits and replies use the first."""
    return int(message_ids.split(",")[0])


def html_chunks(html_text: str, limit: int = MAX_TEXT) -> list[str]:
    """Split HTML into messages within Telegram's limit, only at line breaks (our HTML never
    spans lines). Lengths are counted on the raw HTML, which is never shorter than what
    Telegram counts; a single over-long line is sent as escaped plain text in pieces."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for line in html_text.split("\n"):
        for piece in [line] if len(line) <= limit else _plain_pieces(line, limit):
            if current and size + 1 + len(piece) > limit:
                chunks.append("\n".join(current))
                current, size = [], 0
            size += len(piece) + (1 if current else 0)
            current.append(piece)
    chunks.append("\n".join(current))
    return [chunk for chunk in chunks if chunk.strip()] or [html_text[:limit]]


def _plain_pieces(html_line: str, limit: int) -> list[str]:
    pieces: list[str] = []
    current = ""
    for char in strip_html(html_line):
        escaped = html.escape(char)
        if len(current) + len(escaped) > limit:
            pieces.append(current)
            current = ""
        current += escaped
    return [*pieces, current] if current else pieces


class TelegramReceiver:
    """Maps updates to inbounds and hands them to the runtime (inbox first, then ack)."""

    def __init__(
        self,
        application: Application,
        adapter: TelegramAdapter,
        receive: Any,
        staff_chat_id: str,
        wants_typing: Any = None,
    ) -> None:
        self.application = application
        self.adapter = adapter
        self.receive = receive
        self.staff_chat_id = staff_chat_id
        # (channel, chat id, user id) → whether a reply is being worked on (and the sender is
        # not flood-limited): only then is "typing…" shown.
        self.wants_typing = wants_typing
        self._typing: dict[str, asyncio.Task[None]] = {}  # at most one per chat

    async def handle(self, update: Update) -> None:
        """Store one update; raises if it could not be stored (so it is not acknowledged)."""
        bot = self.application.bot
        if update.callback_query is not None:
            # Always answer, so the client's spinner stops, whatever happens next.
            with contextlib.suppress(TelegramError):
                await update.callback_query.answer()
        if update.my_chat_member is not None:
            chat = update.my_chat_member.chat
            joined = update.my_chat_member.new_chat_member.status in ("member", "administrator")
            if chat.type != ChatType.PRIVATE and str(chat.id) != self.staff_chat_id and joined:
                log.info("leaving non-staff group %s", chat.id)
                with contextlib.suppress(TelegramError):
                    await bot.leave_chat(chat.id)
            return
        inbound = self.to_inbound(update)
        if inbound is None:
            return
        await self.receive(inbound)
        if not inbound.from_staff_chat and self.wants_typing is not None:
            self._start_typing(inbound.chat_id, inbound.user_id)

    def _start_typing(self, chat_id: str, user_id: str) -> None:
        if chat_id in self._typing:
            return  # this chat's indicator is already taken care of
        task = asyncio.get_running_loop().create_task(self._typing_while_busy(chat_id, user_id))
        self._typing[chat_id] = task
        task.add_done_callback(lambda _: self._typing.pop(chat_id, None))

    async def _typing_while_busy(self, chat_id: str, user_id: str) -> None:
        """Show "typing…" while a slow reply is being worked on, renewed every few seconds."""
        await asyncio.sleep(TYPING_AFTER_SECONDS)
        while self.wants_typing(CHANNEL, chat_id, user_id):
            with contextlib.suppress(TelegramError):
                await self.application.bot.send_chat_action(chat_id, ChatAction.TYPING)
            await asyncio.sleep(TYPING_REPEAT_SECONDS)

    def to_inbound(self, update: Update) -> Inbound | None:
        key = str(update.update_id)
        query = update.callback_query
        if query is not None:
            message = query.message
            if message is None or query.data is None:
                return None
            chat_id = str(message.chat.id)
            staff = chat_id == self.staff_chat_id
            if not staff and message.chat.type != ChatType.PRIVATE:
                return None
            return Inbound(
                channel=CHANNEL,
                chat_id=chat_id,
                user_id=str(query.from_user.id),
                dedupe_key=key,
                text="",
                payload=query.data,
                language_hint=query.from_user.language_code,
                from_staff_chat=staff,
                user_display_name=query.from_user.full_name if staff else "",
            )
        message = update.message or update.edited_message
        if message is None or message.from_user is None:
            return None  # channel posts and service updates
        chat_id = str(message.chat.id)
        staff = chat_id == self.staff_chat_id
        if not staff and message.chat.type != ChatType.PRIVATE:
            return None
        user = message.from_user
        base = Inbound(
            channel=CHANNEL,
            chat_id=chat_id,
            user_id=str(user.id),
            dedupe_key=key,
            language_hint=user.language_code,
            from_staff_chat=staff,
            user_display_name=user.full_name if staff else "",
            reply_to_message_id=(
                str(message.reply_to_message.message_id) if message.reply_to_message else None
            ),
        )
        if update.edited_message is not None:
            return replace(base, payload="edited")
        text = message.text or message.caption or ""
        if message.contact is not None:
            contact = message.contact
            name = " ".join(p for p in (contact.first_name, contact.last_name) if p)
            return replace(
                base,
                text=text,
                contact=Contact(
                    phone=contact.phone_number,
                    name=name,
                    user_id=str(contact.user_id) if contact.user_id else None,
                ),
            )
        attachments: list[Attachment] = []
        if message.photo:
            attachments.append(Attachment("photo", message.photo[-1].file_id))
        if message.document is not None:
            attachments.append(
                Attachment("document", message.document.file_id, message.document.file_name or "")
            )
        if message.sticker is not None:
            attachments.append(Attachment("sticker", message.sticker.file_id))
        pressed = self.adapter.reply_keyboards.get(chat_id, {}).get(text)
        if pressed is not None:
            return replace(base, text=text, payload=pressed)
        command, args = Inbound.parse_command(text) if message.text else (None, text)
        return replace(base, text=text, command=command, args=args, attachments=tuple(attachments))


async def set_command_menus(application: Application, app: Composition, staff_chat_id: str) -> None:
    """Customer commands in Vietnamese (default) and English; staff commands in the staff chat."""
    bot = application.bot
    for lang, language_code in (("vi", None), ("en", "en")):
        commands = [BotCommand(name, t(lang, key)[:256]) for name, key in app.help_entries()]
        await bot.set_my_commands(
            commands, scope=BotCommandScopeDefault(), language_code=language_code
        )
    staff = [BotCommand(name, t("vi", key)[:256]) for name, key in app.help_entries(staff=True)]
    if staff_chat_id:
        await bot.set_my_commands(staff, scope=BotCommandScopeChat(int(staff_chat_id)))


async def poll(
    application: Application,
    receiver: TelegramReceiver,
    stop: asyncio.Event,
    long_poll_seconds: int = 25,
) -> None:
    """Long polling; the offset (= acknowledgement) advances only after the inbox stored it."""
    bot = application.bot
    offset: int | None = None
    failures = 0
    while not stop.is_set():
        try:
            updates = await bot.get_updates(
                offset=offset, timeout=long_poll_seconds, allowed_updates=ALLOWED_UPDATES
            )
            failures = 0
        except RetryAfter as exc:
            await _sleep_or_stop(stop, retry_seconds(exc))
            continue
        except TelegramError as exc:
            failures += 1
            delay = min(60.0, 2.0**failures)
            log.warning("getUpdates failed (%s); retrying in %.0fs", type(exc).__name__, delay)
            await _sleep_or_stop(stop, delay)
            continue
        except Exception as exc:  # an update python-telegram-bot cannot parse
            log.error("getUpdates returned an unreadable update (%s)", type(exc).__name__)
            updates = await _parse_one_by_one(application, offset)
        for update in updates:
            try:
                await receiver.handle(update)
            except Exception as exc:  # not stored → not acknowledged: fetched again later
                log.error("storing update failed (%s); will fetch it again", type(exc).__name__)
                await _sleep_or_stop(stop, 2.0)
                break
            offset = update.update_id + 1


async def _parse_one_by_one(application: Application, offset: int | None) -> list[Update]:
    """Fetch the raw updates and parse them one by one; an unreadable one is skipped (by
    confirming it with a later offset) instead of blocking polling for good."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PTB prefers get_updates, which is what failed
        raw = await application.bot.do_api_request(
            "getUpdates", api_kwargs={"offset": offset, "timeout": 0, "limit": 100}
        )
    parsed: list[Update] = []
    for item in raw if isinstance(raw, list) else []:
        try:
            update = Update.de_json(item, application.bot)
        except Exception as exc:
            log.error(
                "skipping unreadable update %s (%s)", item.get("update_id"), type(exc).__name__
            )
            update = None
        if update is None:
            # An empty placeholder still advances the offset past the unreadable update.
            update = Update(update_id=int(item.get("update_id", 0)))
        parsed.append(update)
    return parsed


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)

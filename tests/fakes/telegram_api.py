"""An in-process fake of the Telegram Bot API for tests.

``FakeTelegramAPI`` is a real HTTP server (Starlette on uvicorn, bound to 127.0.0.1 on a free
port) running in the test's own event loop, so the real python-telegram-bot stack (httpx,
request encoding, error mapping, rate limiter) is exercised end to end::

    async with FakeTelegramAPI(token="123:ABC") as api:
        bot = Bot("123:ABC", base_url=api.base_url, base_file_url=api.file_base_url)
        async with bot:
            api.push_update(api.text_update(42, "/start"))
            ...
            call = await api.wait_for("sendMessage", lambda c: c["chat_id"] == 42)

Responses follow the Bot API shapes closely enough for python-telegram-bot to de-serialize them,
and a few server-side rules that bots commonly trip over are enforced on purpose (message length,
callback_data size, "message is not modified", unsupported HTML tags, https-only webhooks,
getUpdates conflicts). Create a new instance per test; there is no reset.

``group_rate_limit=(20, 60.0)`` makes the fake refuse, like Telegram, more than 20 messages per
60 seconds in one group chat with ``429 Too Many Requests`` and the seconds to wait.
``poison_marker`` makes every call whose text contains it fail with HTTP 500: a message the
server keeps refusing with an error that looks temporary.
"""

from __future__ import annotations

import asyncio
import bisect
import collections
import contextlib
import copy
import itertools
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.fakes.server import ServedApp, UploadedFile, parse_multipart

JSON = dict[str, Any]

FAILURE_KINDS = frozenset({"500", "429", "timeout", "403"})

# Parameters that are free text or file references: python-telegram-bot sends string values
# unencoded, so JSON-decoding these would turn a text of "123" or "[1]" into a number or list.
_TEXT_PARAMS = frozenset(
    {
        "text",
        "caption",
        "parse_mode",
        "callback_query_id",
        "inline_message_id",
        "url",
        "secret_token",
        "ip_address",
        "action",
        "language_code",
        "business_connection_id",
        "message_effect_id",
        "emoji",
        "title",
        "name",
        "description",
        "short_description",
        "query",
        "file_id",
        "document",
        "photo",
        "video",
        "audio",
        "voice",
        "animation",
        "sticker",
        "thumbnail",
    }
)

# Tags Telegram accepts with parse_mode=HTML (https://core.telegram.org/bots/api#html-style).
_HTML_TAGS = frozenset(
    {
        "b",
        "strong",
        "i",
        "em",
        "u",
        "ins",
        "s",
        "strike",
        "del",
        "a",
        "code",
        "pre",
        "span",
        "tg-spoiler",
        "tg-emoji",
        "blockquote",
    }
)

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)

# Methods that post a new message (what Telegram's per-group limit counts).
_POSTING_METHODS = frozenset({"sendMessage", "sendDocument", "sendPhoto"})

_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")
_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
# Telegram's default when allowed_updates was never set: everything except these.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})


@dataclass
class StoredFile:
    """A file the fake 'hosts': reachable via getFile and the file download URL."""

    file_id: str
    file_unique_id: str
    file_path: str
    file_name: str | None = None
    mime_type: str | None = None
    content: bytes | None = None

    @property
    def file_size(self) -> int:
        return len(self.content or b"")


@dataclass
class Call:
    """One recorded API request.

    ``params`` holds the decoded parameters (nested JSON such as ``reply_markup`` is decoded,
    uploaded files are :class:`UploadedFile`). ``failed`` is ``None`` for a normal answer, the
    injected kind (``"500"``, ``"429"``, ``"403"``, ``"timeout"``) or the HTTP status of a
    genuine error (``"400"``, ``"401"``, ``"404"``, ``"409"``). ``result`` is the ``result``
    field that was (or, for ``"timeout"``, would have been) returned.
    """

    method: str
    params: dict[str, Any]
    failed: str | None = None
    files: dict[str, UploadedFile] = field(default_factory=dict)
    result: Any = None
    at: float = field(default_factory=time.monotonic)  # when the fake received it

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)


@dataclass
class _Fault:
    method: str
    kind: str
    remaining: int
    retry_after: int
    chat_id: int | str | None


class _ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


class _HTMLChecker(HTMLParser):
    """Validates Telegram HTML and yields the plain text Telegram would store."""

    def __init__(self, source: str) -> None:
        super().__init__(convert_charrefs=True)
        self._source = source
        self._stack: list[str] = []
        self.plain: list[str] = []

    def _offset(self) -> int:
        # Telegram reports UTF-8 byte offsets; HTMLParser gives (line, column) in characters.
        line, col = self.getpos()
        index = sum(len(x) for x in self._source.splitlines(keepends=True)[: line - 1]) + col
        return len(self._source[:index].encode())

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _HTML_TAGS:
            raise _ApiError(
                400,
                f'Bad Request: can\'t parse entities: Unsupported start tag "{tag}" '
                f"at byte offset {self._offset()}",
            )
        self._stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self._stack or self._stack[-1] != tag:
            expected = f'expected "</{self._stack[-1]}>", ' if self._stack else ""
            raise _ApiError(
                400,
                f"Bad Request: can't parse entities: Unmatched end tag at byte offset "
                f'{self._offset()}, {expected}found "</{tag}>"',
            )
        self._stack.pop()

    def handle_data(self, data: str) -> None:
        self.plain.append(data)

    def finish(self) -> str:
        self.close()
        if self._stack:
            raise _ApiError(
                400,
                "Bad Request: can't parse entities: Can't find end tag corresponding to start "
                f'tag "{self._stack[-1]}"',
            )
        return "".join(self.plain)


def _render(text: str, parse_mode: str | None) -> str:
    """Returns the text Telegram would store; raises like Telegram on malformed HTML."""
    if parse_mode and parse_mode.lower() == "html":
        checker = _HTMLChecker(text)
        checker.feed(text)
        return checker.finish()
    return text


def _decode_param(key: str, value: Any) -> Any:
    if key in _TEXT_PARAMS or not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value  # e.g. chat_id="@channel"


def _json_response(payload: JSON, status_code: int = 200) -> Response:
    """JSON with non-ASCII characters escaped: valid JSON that carries any Python string,
    even one a real client could not encode (a lone surrogate in a test update)."""
    return Response(
        json.dumps(payload, separators=(",", ":")),
        status_code=status_code,
        media_type="application/json",
    )


def _utf16_len(text: str) -> int:
    # Telegram entity offsets/lengths are in UTF-16 code units.
    return len(text.encode("utf-16-le")) // 2


class FakeTelegramAPI:
    """Fake Bot API server; use as ``async with FakeTelegramAPI(token=...) as api``."""

    def __init__(
        self,
        token: str = "123:ABC",
        *,
        bot_username: str = "vietartview_test_bot",
        bot_first_name: str = "Viet Art View",
        timeout_delay: float = 3.0,
        group_rate_limit: tuple[int, float] | None = None,
    ) -> None:
        self.token = token
        self.bot_id = int(token.split(":", 1)[0])
        self.bot_user: JSON = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": bot_first_name,
            "username": bot_username,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }
        # Seconds an injected "timeout" holds the response; must exceed the client's read timeout.
        self.timeout_delay = timeout_delay
        # (messages, seconds) allowed per group chat; None: no limit.
        self.group_rate_limit = group_rate_limit
        self._group_sends: dict[int, collections.deque[float]] = {}
        self.poison_marker: str | None = None
        self.requests: list[Call] = []
        # Called with every recorded call (e.g. a soak script indexing replies as they come).
        self.listeners: list[Callable[[Call], None]] = []
        # (chat_id, user_id) -> status for getChatMember; unknown pairs get default_member_status.
        self.chat_members: dict[tuple[int, int], str] = {}
        self.default_member_status = "member"
        self.chats: dict[int, JSON] = {}
        self.users: dict[int, JSON] = {self.bot_id: self.bot_user}
        # Every message the fake knows, keyed by (chat_id, message_id); builders register theirs.
        self.messages: dict[tuple[int, int], JSON] = {}
        # (raw text, parse_mode) of bot messages, for Telegram's "message is not modified" rule.
        self._sources: dict[tuple[int, int], tuple[str, str | None]] = {}
        self.files: dict[str, StoredFile] = {}
        self.commands: dict[tuple[str, str], list[JSON]] = {}
        self.webhook: JSON | None = None

        self._updates: list[JSON] = []
        self._allowed_updates: list[str] | None = None
        self._update_ids = itertools.count(1000)
        self._message_ids = itertools.count(1)
        self._file_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._faults: list[_Fault] = []
        self._recorded = asyncio.Condition()
        self._update_pushed = asyncio.Event()
        self._closing = asyncio.Event()
        self._poll_generation = 0
        self._handlers: dict[str, Callable[[JSON], Awaitable[Any]]] = {
            "getMe": self._get_me,
            "getUpdates": self._get_updates,
            "sendMessage": self._send_message,
            "editMessageText": self._edit_message_text,
            "editMessageReplyMarkup": self._edit_message_reply_markup,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._true,
            "sendDocument": self._send_document,
            "sendPhoto": self._send_photo,
            "sendChatAction": self._send_chat_action,
            "setMyCommands": self._set_my_commands,
            "deleteMyCommands": self._delete_my_commands,
            "getMyCommands": self._get_my_commands,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._get_webhook_info,
            "leaveChat": self._true,
            "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
            "getFile": self._get_file,
            "close": self._true,
            "logOut": self._true,
        }
        # Telegram matches method names case-insensitively.
        self._method_names = {name.lower(): name for name in self._handlers}
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self._dispatch, methods=["GET", "POST"]),
                Route("/file/bot{token}/{file_path:path}", self._download, methods=["GET"]),
            ]
        )
        self._server = ServedApp(self.app, "FakeTelegramAPI")

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> FakeTelegramAPI:
        await self._server.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # Wake long polls and injected timeouts so shutdown doesn't wait for them.
        self._closing.set()
        self._update_pushed.set()  # release a waiting long poll at once
        await self._server.stop()

    @property
    def base_url(self) -> str:
        """python-telegram-bot ``base_url``: it appends the token, then ``/method``."""
        return f"{self._origin}/bot"

    @property
    def file_base_url(self) -> str:
        """python-telegram-bot ``base_file_url``: it appends the token, then ``/file_path``."""
        return f"{self._origin}/file/bot"

    @property
    def _origin(self) -> str:
        return self._server.origin

    # ------------------------------------------------------------------ inspection

    def calls(self, method: str, *, include_failed: bool = True) -> list[dict[str, Any]]:
        """Params of every recorded call to ``method`` (in completion order)."""
        method = self._canonical(method)
        return [
            c.params
            for c in self.requests
            if c.method == method and (include_failed or c.failed is None)
        ]

    async def wait_for(
        self,
        method: str,
        predicate: Callable[[Call], bool] | None = None,
        timeout: float = 5.0,  # noqa: ASYNC109 - plain seconds read best in tests
        *,
        count: int = 1,
    ) -> Call:
        """Waits until ``count`` matching calls are recorded; returns the ``count``-th.

        Calls recorded before this was awaited count too, so there is no race between
        triggering an action and waiting for its effect. ``predicate`` receives the
        :class:`Call` (which supports ``call["param"]``).
        """

        method = self._canonical(method)

        def matching() -> list[Call]:
            return [
                c
                for c in self.requests
                if c.method == method and (predicate is None or predicate(c))
            ]

        try:
            async with asyncio.timeout(timeout), self._recorded:
                await self._recorded.wait_for(lambda: len(matching()) >= count)
        except TimeoutError:
            seen = [(c.method, c.failed) for c in self.requests]
            raise TimeoutError(
                f"no {count} matching {method!r} call(s) within {timeout}s; recorded: {seen}"
            ) from None
        return matching()[count - 1]

    def _canonical(self, method: str) -> str:
        return self._method_names.get(method.lower(), method)

    @property
    def pending_updates(self) -> list[JSON]:
        """Updates not yet confirmed by a getUpdates offset."""
        return list(self._updates)

    # ------------------------------------------------------------------ injection

    def fail_next(
        self,
        method: str,
        kind: str,
        times: int = 1,
        retry_after: int = 3,
        chat_id: int | str | None = None,
    ) -> None:
        """Makes the next ``times`` calls to ``method`` (optionally only for ``chat_id``) fail.

        ``"timeout"`` still performs the call (the message *is* sent) but answers only after
        :attr:`timeout_delay` seconds, like a response lost on the way back to the client.
        """
        if kind not in FAILURE_KINDS:
            raise ValueError(f"kind must be one of {sorted(FAILURE_KINDS)}, got {kind!r}")
        self._faults.append(_Fault(method, kind, times, retry_after, chat_id))

    def push_update(self, update: JSON) -> JSON:
        """Queues an update for getUpdates; assigns ``update_id`` if missing.

        Builders already assign ids (a webhook POST needs one), so the queue is kept sorted by
        id, as Telegram delivers it, even if built updates are pushed out of order.
        """
        if "update_id" in update:
            # Keep later auto ids above explicit ones so offsets never skip a pushed update.
            nxt = next(self._update_ids)
            self._update_ids = itertools.count(max(nxt, update["update_id"] + 1))
        else:
            update = {"update_id": next(self._update_ids), **update}
        bisect.insort(self._updates, update, key=lambda u: u["update_id"])
        self._update_pushed.set()
        return update

    def add_file(
        self,
        file_id: str,
        content: bytes,
        file_name: str | None = None,
        mime_type: str | None = None,
    ) -> StoredFile:
        """Hosts ``content`` under ``file_id`` so getFile + download work for it."""
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=f"u{file_id}",
            file_path=f"files/{file_id}" + (f"_{file_name}" if file_name else ""),
            file_name=file_name,
            mime_type=mime_type,
            content=content,
        )
        self.files[file_id] = stored
        return stored

    # ------------------------------------------------------------------ update builders
    # Each returns a complete Update dict (with a fresh update_id) and registers its users, chats
    # and messages so later API calls (edits, getChat...) see a consistent world.

    def text_update(
        self,
        user_id: int,
        text: str,
        chat_id: int | None = None,
        chat_type: str = "private",
        first_name: str = "Lan",
        language_code: str = "vi",
        reply_to_message_id: int | None = None,
        *,
        username: str | None = None,
        chat_title: str = "Test group",
    ) -> JSON:
        message = self._user_message(
            user_id, chat_id, chat_type, first_name, language_code, username, chat_title
        )
        message["text"] = text
        if text.startswith("/"):
            command = text.split(maxsplit=1)[0]
            message["entities"] = [
                {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
            ]
        if reply_to_message_id is not None:
            key = (message["chat"]["id"], reply_to_message_id)
            message["reply_to_message"] = copy.deepcopy(self.messages.get(key)) or {
                "message_id": reply_to_message_id,
                "date": message["date"],
                "chat": message["chat"],
            }
        return self._new_update(message=message)

    def edited_text_update(
        self,
        user_id: int,
        text: str,
        message_id: int,
        chat_id: int | None = None,
        chat_type: str = "private",
        first_name: str = "Lan",
        language_code: str = "vi",
    ) -> JSON:
        message = self._user_message(
            user_id, chat_id, chat_type, first_name, language_code, None, "Test group"
        )
        message.update(message_id=message_id, text=text, edit_date=int(time.time()))
        self.messages[(message["chat"]["id"], message_id)] = message
        return self._new_update(edited_message=copy.deepcopy(message))

    def callback_update(
        self,
        user_id: int,
        data: str,
        message_id: int,
        chat_id: int | None = None,
        *,
        first_name: str = "Lan",
        language_code: str = "vi",
    ) -> JSON:
        """A button press on ``message_id``; registers a stub bot message if it is unknown."""
        user = self._user(user_id, first_name, language_code, None)
        chat_id = user_id if chat_id is None else chat_id
        message = self.messages.get((chat_id, message_id))
        if message is None:
            message = {
                "message_id": message_id,
                "from": self.bot_user,
                "chat": self._chat(chat_id),
                "date": int(time.time()),
                "text": "…",
            }
            self.messages[(chat_id, message_id)] = message
        query = {
            "id": str(next(self._callback_ids)),
            "from": user,
            "message": copy.deepcopy(message),
            "chat_instance": f"ci{chat_id}",
            "data": data,
        }
        return self._new_update(callback_query=query)

    def contact_update(
        self,
        user_id: int,
        phone: str,
        first_name: str,
        contact_user_id: int | None = None,
        *,
        language_code: str = "vi",
    ) -> JSON:
        """A shared contact. Pass ``contact_user_id=user_id`` for "share my own number"."""
        message = self._user_message(
            user_id, None, "private", first_name, language_code, None, "Test group"
        )
        contact: JSON = {"phone_number": phone, "first_name": first_name}
        if contact_user_id is not None:
            contact["user_id"] = contact_user_id
        message["contact"] = contact
        return self._new_update(message=message)

    def photo_update(
        self,
        user_id: int,
        file_id: str,
        caption: str = "",
        *,
        chat_id: int | None = None,
        content: bytes | None = None,
        first_name: str = "Lan",
        language_code: str = "vi",
    ) -> JSON:
        """A photo; pass ``content`` to make it downloadable through getFile."""
        message = self._user_message(
            user_id, chat_id, "private", first_name, language_code, None, "Test group"
        )
        if content is not None:
            self.add_file(file_id, content, mime_type="image/jpeg")
        message["photo"] = self._photo_sizes(file_id, len(content or b""))
        if caption:
            message["caption"] = caption
        return self._new_update(message=message)

    def document_update(
        self,
        user_id: int,
        file_id: str,
        file_name: str = "document.pdf",
        mime_type: str = "application/pdf",
        caption: str = "",
        *,
        chat_id: int | None = None,
        content: bytes | None = None,
        first_name: str = "Lan",
        language_code: str = "vi",
    ) -> JSON:
        """A document; pass ``content`` to make it downloadable through getFile."""
        message = self._user_message(
            user_id, chat_id, "private", first_name, language_code, None, "Test group"
        )
        if content is not None:
            self.add_file(file_id, content, file_name=file_name, mime_type=mime_type)
        message["document"] = {
            "file_id": file_id,
            "file_unique_id": f"u{file_id}",
            "file_name": file_name,
            "mime_type": mime_type,
            "file_size": len(content or b""),
        }
        if caption:
            message["caption"] = caption
        return self._new_update(message=message)

    def my_chat_member_update(
        self,
        chat_id: int,
        chat_type: str = "group",
        new_status: str = "member",
        *,
        old_status: str = "left",
        from_user_id: int = 1,
        chat_title: str = "Test group",
    ) -> JSON:
        """The bot's own membership changed (added to / removed from a chat)."""
        chat = self._register_chat(chat_id, chat_type, title=chat_title)
        return self._new_update(
            my_chat_member={
                "chat": chat,
                "from": self._user(from_user_id, "Admin", "vi", None),
                "date": int(time.time()),
                "old_chat_member": self._member_json(self.bot_user, old_status),
                "new_chat_member": self._member_json(self.bot_user, new_status),
            }
        )

    def channel_post_update(
        self, chat_id: int, text: str, *, chat_title: str = "Test channel"
    ) -> JSON:
        chat = self._register_chat(chat_id, "channel", title=chat_title)
        message_id = next(self._message_ids)
        post = {
            "message_id": message_id,
            "sender_chat": chat,
            "chat": chat,
            "date": int(time.time()),
            "text": text,
        }
        self.messages[(chat_id, message_id)] = post
        return self._new_update(channel_post=copy.deepcopy(post))

    # ------------------------------------------------------------------ builder helpers

    def _new_update(self, **payload: JSON) -> JSON:
        return {"update_id": next(self._update_ids), **payload}

    def _user(
        self, user_id: int, first_name: str, language_code: str, username: str | None
    ) -> JSON:
        user: JSON = {"id": user_id, "is_bot": False, "first_name": first_name}
        if username:
            user["username"] = username
        if language_code:
            user["language_code"] = language_code
        self.users[user_id] = user
        return user

    def _register_chat(self, chat_id: int, chat_type: str, **fields: Any) -> JSON:
        chat = {"id": chat_id, "type": chat_type, **{k: v for k, v in fields.items() if v}}
        self.chats[chat_id] = chat
        return chat

    def _chat(self, chat_id: int | str) -> JSON:
        if isinstance(chat_id, int) and chat_id in self.chats:
            return self.chats[chat_id]
        if isinstance(chat_id, str):  # @channelusername
            return {"id": -1000000000001, "type": "channel", "title": chat_id.lstrip("@")}
        if chat_id > 0:
            name = self.users.get(chat_id, {}).get("first_name", "User")
            return {"id": chat_id, "type": "private", "first_name": name}
        kind = "supergroup" if str(chat_id).startswith("-100") else "group"
        return {"id": chat_id, "type": kind, "title": "Test group"}

    def _user_message(
        self,
        user_id: int,
        chat_id: int | None,
        chat_type: str,
        first_name: str,
        language_code: str,
        username: str | None,
        chat_title: str,
    ) -> JSON:
        user = self._user(user_id, first_name, language_code, username)
        if chat_type == "private":
            chat = self._register_chat(
                user_id if chat_id is None else chat_id,
                "private",
                first_name=first_name,
                username=username,
            )
        else:
            if chat_id is None:
                raise ValueError(f"chat_id is required for chat_type={chat_type!r}")
            chat = self._register_chat(chat_id, chat_type, title=chat_title)
        message: JSON = {
            "message_id": next(self._message_ids),
            "from": user,
            "chat": chat,
            "date": int(time.time()),
        }
        self.messages[(chat["id"], message["message_id"])] = message
        # Updates get a snapshot: later edits must not rewrite an already-built update.
        return copy.deepcopy(message)

    def _photo_sizes(self, file_id: str, size: int) -> list[JSON]:
        # Telegram sends several sizes, smallest first; bots normally take photo[-1].
        return [
            {
                "file_id": f"{file_id}_thumb",
                "file_unique_id": f"u{file_id}_thumb",
                "width": 90,
                "height": 90,
                "file_size": max(size // 10, 1),
            },
            {
                "file_id": file_id,
                "file_unique_id": f"u{file_id}",
                "width": 1280,
                "height": 960,
                "file_size": size,
            },
        ]

    def _member_json(self, user: JSON, status: str) -> JSON:
        member: JSON = {"user": user, "status": status}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member.update(
                dict.fromkeys(
                    (
                        "can_be_edited",
                        "is_anonymous",
                        "can_manage_chat",
                        "can_delete_messages",
                        "can_manage_video_chats",
                        "can_restrict_members",
                        "can_promote_members",
                        "can_change_info",
                        "can_invite_users",
                        "can_post_stories",
                        "can_edit_stories",
                        "can_delete_stories",
                    ),
                    False,
                ),
                can_manage_chat=True,
                can_delete_messages=True,
                can_invite_users=True,
            )
        elif status == "restricted":
            member.update(
                dict.fromkeys(
                    (
                        "can_change_info",
                        "can_invite_users",
                        "can_pin_messages",
                        "can_send_messages",
                        "can_send_polls",
                        "can_send_other_messages",
                        "can_add_web_page_previews",
                        "can_manage_topics",
                        "can_send_audios",
                        "can_send_documents",
                        "can_send_photos",
                        "can_send_videos",
                        "can_send_video_notes",
                        "can_send_voice_notes",
                        "can_edit_tag",
                    ),
                    False,
                ),
                is_member=True,
                until_date=0,
            )
        elif status == "kicked":
            member["until_date"] = 0
        return member

    # ------------------------------------------------------------------ HTTP layer

    async def _dispatch(self, request: Request) -> Response:
        params, files = await self._read_params(request)
        method = self._method_names.get(request.path_params["method"].lower())
        call = Call(method or request.path_params["method"], params, files=files)
        if request.path_params["token"] != self.token:
            return await self._fail(call, "401", _ApiError(401, "Unauthorized"))
        if method is None:
            return await self._fail(call, "404", _ApiError(404, "Not Found"))

        fault = self._take_fault(method, params)
        if fault is not None and fault.kind != "timeout":
            return await self._fail(call, fault.kind, self._fault_error(fault))
        if self.poison_marker and self.poison_marker in str(params.get("text", "")):
            error = _ApiError(500, "Internal Server Error: the message cannot be encoded")
            return await self._fail(call, "500", error)
        throttled = self._group_throttle(method, params)
        if throttled is not None:
            return await self._fail(call, "429", throttled)
        try:
            call.result = await self._handlers[method](params)
        except _ApiError as err:
            return await self._fail(call, str(err.code), err)
        if fault is not None:
            # The action happened; only the answer gets "lost" (the client times out first).
            call.failed = "timeout"
            await self._record(call)
            await self._sleep(self.timeout_delay)
        else:
            await self._record(call)
        return _json_response({"ok": True, "result": call.result})

    async def _read_params(self, request: Request) -> tuple[JSON, dict[str, UploadedFile]]:
        raw: JSON = dict(request.query_params)
        files: dict[str, UploadedFile] = {}
        content_type = request.headers.get("content-type", "")
        body = await request.body()
        if body:
            if content_type.startswith("application/json"):
                raw.update(json.loads(body))
            elif content_type.startswith("multipart/form-data"):
                parsed = parse_multipart(body, content_type)
                if parsed is None:
                    raise _ApiError(400, "Bad Request: malformed multipart body")
                fields, files = parsed
                raw.update(fields)
            else:  # application/x-www-form-urlencoded, PTB's default for non-upload calls
                raw.update(parse_qsl(body.decode(), keep_blank_values=True))
        params = {key: _decode_param(key, value) for key, value in raw.items()}
        params.update(files)
        return params, files

    async def _fail(self, call: Call, kind: str, err: _ApiError) -> Response:
        call.failed = kind
        await self._record(call)
        payload: JSON = {"ok": False, "error_code": err.code, "description": err.description}
        if err.parameters:
            payload["parameters"] = err.parameters
        return _json_response(payload, status_code=err.code)

    async def _record(self, call: Call) -> None:
        self.requests.append(call)
        for listener in self.listeners:
            listener(call)
        async with self._recorded:
            self._recorded.notify_all()

    def _group_throttle(self, method: str, params: JSON) -> _ApiError | None:
        """Telegram's per-group limit: a 429 with retry_after once a group had its quota of
        messages within the window (only messages that got through count)."""
        if self.group_rate_limit is None or method not in _POSTING_METHODS:
            return None
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int) or chat_id >= 0:
            return None
        quota, window = self.group_rate_limit
        now = time.monotonic()
        sent = self._group_sends.setdefault(chat_id, collections.deque())
        while sent and sent[0] <= now - window:
            sent.popleft()
        if len(sent) >= quota:
            wait = max(1, math.ceil(sent[0] + window - now))
            return _ApiError(429, f"Too Many Requests: retry after {wait}", {"retry_after": wait})
        sent.append(now)
        return None

    def _take_fault(self, method: str, params: JSON) -> _Fault | None:
        for fault in self._faults:
            if fault.method.lower() != method.lower():
                continue
            if fault.chat_id is not None and str(params.get("chat_id")) != str(fault.chat_id):
                continue
            fault.remaining -= 1
            if fault.remaining <= 0:
                self._faults.remove(fault)
            return fault
        return None

    @staticmethod
    def _fault_error(fault: _Fault) -> _ApiError:
        if fault.kind == "429":
            return _ApiError(
                429,
                f"Too Many Requests: retry after {fault.retry_after}",
                {"retry_after": fault.retry_after},
            )
        if fault.kind == "403":
            return _ApiError(403, "Forbidden: bot was blocked by the user")
        return _ApiError(500, "Internal Server Error")

    async def _sleep(self, delay: float) -> bool:
        """Sleeps up to ``delay``; returns early (True) when the fake is shutting down."""
        try:
            await asyncio.wait_for(self._closing.wait(), timeout=delay)
        except TimeoutError:
            return False
        return True

    async def _download(self, request: Request) -> Response:
        if request.path_params["token"] != self.token:
            return Response(status_code=401)
        path = request.path_params["file_path"]
        for stored in self.files.values():
            if stored.file_path == path and stored.content is not None:
                return Response(stored.content, media_type=stored.mime_type)
        return Response(status_code=404)

    # ------------------------------------------------------------------ methods

    async def _true(self, params: JSON) -> bool:
        return True

    async def _get_me(self, params: JSON) -> JSON:
        return self.bot_user

    async def _get_updates(self, params: JSON) -> list[JSON]:
        if self.webhook:
            raise _ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        # A newer getUpdates terminates an older long poll with 409, as Telegram does.
        self._poll_generation += 1
        generation = self._poll_generation
        self._update_pushed.set()
        if params.get("allowed_updates") is not None:
            # Like Telegram, the setting persists for later calls that omit it.
            self._allowed_updates = list(params["allowed_updates"])
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        deadline = time.monotonic() + float(params.get("timeout") or 0)
        while True:
            self._confirm(offset)
            batch = [u for u in self._updates if self._is_allowed(u)][:limit]
            remaining = deadline - time.monotonic()
            if batch or remaining <= 0 or self._closing.is_set():
                return batch
            self._update_pushed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._update_pushed.wait(), timeout=remaining)
            if generation != self._poll_generation:
                raise _ApiError(
                    409,
                    "Conflict: terminated by other getUpdates request; make sure that only one "
                    "bot instance is running",
                )

    def _confirm(self, offset: int) -> None:
        if offset > 0:
            # Telegram forgets every update below the offset for good.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]

    def _is_allowed(self, update: JSON) -> bool:
        kinds = set(update) - {"update_id"}
        if self._allowed_updates:
            return bool(kinds & set(self._allowed_updates))
        return not kinds & _OPT_IN_UPDATES

    def _target_chat(self, params: JSON) -> JSON:
        if params.get("chat_id") in (None, ""):
            raise _ApiError(400, "Bad Request: chat_id is empty")
        return self._chat(params["chat_id"])

    def _check_markup(self, markup: Any) -> JSON | None:
        if not isinstance(markup, dict):
            return None
        for row in markup.get("inline_keyboard", []):
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= 64:
                    raise _ApiError(400, "Bad Request: BUTTON_DATA_INVALID")
        # Only inline keyboards are echoed back in the Message object.
        return markup if "inline_keyboard" in markup else None

    def _new_message(self, params: JSON, **content: Any) -> JSON:
        chat = self._target_chat(params)
        message: JSON = {
            "message_id": next(self._message_ids),
            "from": self.bot_user,
            "chat": chat,
            "date": int(time.time()),
            **content,
        }
        markup = self._check_markup(params.get("reply_markup"))
        if markup:
            message["reply_markup"] = markup
        reply_to = params.get("reply_to_message_id") or (
            (params.get("reply_parameters") or {}).get("message_id")
        )
        if reply_to and (chat["id"], reply_to) in self.messages:
            message["reply_to_message"] = copy.deepcopy(self.messages[(chat["id"], reply_to)])
        self.messages[(chat["id"], message["message_id"])] = message
        return copy.deepcopy(message)

    def _caption(self, params: JSON) -> JSON:
        caption = params.get("caption")
        if not caption:
            return {}
        rendered = _render(caption, params.get("parse_mode"))
        if len(rendered) > 1024:
            raise _ApiError(400, "Bad Request: message caption is too long")
        return {"caption": rendered}

    async def _send_message(self, params: JSON) -> JSON:
        text = params.get("text") or ""
        self._target_chat(params)
        rendered = _render(text, params.get("parse_mode"))
        if not rendered.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(rendered) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        message = self._new_message(params, text=rendered)
        self._sources[(message["chat"]["id"], message["message_id"])] = (
            text,
            params.get("parse_mode"),
        )
        return message

    @staticmethod
    def _message_key(params: JSON) -> tuple[int, int]:
        chat_id, message_id = params.get("chat_id"), params.get("message_id")
        if not isinstance(chat_id, int) or not isinstance(message_id, int):
            raise _ApiError(400, "Bad Request: message identifier is not specified")
        return chat_id, message_id

    def _editable(self, params: JSON) -> tuple[tuple[int, int], JSON]:
        key = self._message_key(params)
        message = self.messages.get(key)
        if message is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        if message.get("from", {}).get("id") != self.bot_id:
            raise _ApiError(400, "Bad Request: message can't be edited")
        return key, message

    async def _edit_message_text(self, params: JSON) -> JSON | bool:
        if params.get("inline_message_id"):
            return True
        key, message = self._editable(params)
        text = params.get("text") or ""
        rendered = _render(text, params.get("parse_mode"))
        if not rendered.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        # Like Telegram, omitting reply_markup removes the inline keyboard.
        markup = self._check_markup(params.get("reply_markup"))
        source = (text, params.get("parse_mode"))
        old_source = self._sources.get(key, (message.get("text", ""), None))
        if old_source == source and message.get("reply_markup") == markup:
            raise _ApiError(400, _NOT_MODIFIED)
        self._sources[key] = source
        message.update(text=rendered, edit_date=int(time.time()))
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        return copy.deepcopy(message)

    async def _edit_message_reply_markup(self, params: JSON) -> JSON | bool:
        if params.get("inline_message_id"):
            return True
        _, message = self._editable(params)
        markup = self._check_markup(params.get("reply_markup"))
        if message.get("reply_markup") == markup:
            raise _ApiError(400, _NOT_MODIFIED)
        message.pop("reply_markup", None)
        if markup:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        return copy.deepcopy(message)

    async def _delete_message(self, params: JSON) -> bool:
        key = self._message_key(params)
        if self.messages.pop(key, None) is None:
            raise _ApiError(400, "Bad Request: message to delete not found")
        self._sources.pop(key, None)
        return True

    def _resolve_file(self, value: Any, kind: str) -> StoredFile:
        if isinstance(value, UploadedFile):
            n = next(self._file_ids)
            stored = StoredFile(
                file_id=f"{kind}{n}",
                file_unique_id=f"u{kind}{n}",
                file_path=f"{kind}s/file_{n}_{value.filename}",
                file_name=value.filename,
                mime_type=value.content_type,
                content=value.content,
            )
            self.files[stored.file_id] = stored
            return stored
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            n = next(self._file_ids)
            name = value.rsplit("/", 1)[-1] or None
            stored = StoredFile(f"{kind}{n}", f"u{kind}{n}", f"{kind}s/file_{n}", name)
            self.files[stored.file_id] = stored
            return stored
        if isinstance(value, str) and value in self.files:
            return self.files[value]
        raise _ApiError(400, "Bad Request: wrong file identifier/HTTP URL specified")

    async def _send_document(self, params: JSON) -> JSON:
        self._target_chat(params)
        stored = self._resolve_file(params.get("document"), "document")
        document = {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
        }
        if stored.file_name:
            document["file_name"] = stored.file_name
        if stored.mime_type:
            document["mime_type"] = stored.mime_type
        caption = self._caption(params)
        return self._new_message(params, document=document, **caption)

    async def _send_photo(self, params: JSON) -> JSON:
        self._target_chat(params)
        stored = self._resolve_file(params.get("photo"), "photo")
        caption = self._caption(params)
        photo = self._photo_sizes(stored.file_id, stored.file_size)
        return self._new_message(params, photo=photo, **caption)

    async def _send_chat_action(self, params: JSON) -> bool:
        self._target_chat(params)
        if params.get("action") not in _CHAT_ACTIONS:
            raise _ApiError(400, "Bad Request: wrong parameter action in request")
        return True

    @staticmethod
    def _commands_key(params: JSON) -> tuple[str, str]:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps(scope, sort_keys=True), params.get("language_code") or ""

    async def _set_my_commands(self, params: JSON) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list) or len(commands) > 100:
            raise _ApiError(400, "Bad Request: commands must be a list of at most 100 items")
        for command in commands:
            name, description = command.get("command", ""), command.get("description", "")
            if not _COMMAND_RE.match(name.lstrip("/").lower()) or name != name.lower():
                raise _ApiError(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise _ApiError(400, "Bad Request: command description is empty or too long")
        self.commands[self._commands_key(params)] = commands
        return True

    async def _delete_my_commands(self, params: JSON) -> bool:
        self.commands.pop(self._commands_key(params), None)
        return True

    async def _get_my_commands(self, params: JSON) -> list[JSON]:
        return self.commands.get(self._commands_key(params), [])

    async def _set_webhook(self, params: JSON) -> bool:
        url = params.get("url") or ""
        if not url:
            self.webhook = None
            return True
        if not url.startswith("https://"):
            raise _ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self.webhook = dict(params)
        return True

    async def _delete_webhook(self, params: JSON) -> bool:
        self.webhook = None
        if params.get("drop_pending_updates"):
            self._updates.clear()
        return True

    async def _get_webhook_info(self, params: JSON) -> JSON:
        info: JSON = {
            "url": (self.webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self.webhook:
            info["max_connections"] = self.webhook.get("max_connections", 40)
            if self.webhook.get("allowed_updates"):
                info["allowed_updates"] = self.webhook["allowed_updates"]
        return info

    async def _get_chat(self, params: JSON) -> JSON:
        return {
            **self._target_chat(params),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    async def _get_chat_member(self, params: JSON) -> JSON:
        chat = self._target_chat(params)
        user_id = params.get("user_id")
        if not isinstance(user_id, int):
            raise _ApiError(400, "Bad Request: invalid user_id specified")
        user = self.users.get(user_id) or {"id": user_id, "is_bot": False, "first_name": "User"}
        status = self.chat_members.get((chat["id"], user_id), self.default_member_status)
        return self._member_json(user, status)

    async def _get_file(self, params: JSON) -> JSON:
        stored = self.files.get(params.get("file_id") or "")
        if stored is None:
            raise _ApiError(400, "Bad Request: invalid file_id")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.file_size,
            "file_path": stored.file_path,
        }

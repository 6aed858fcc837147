"""Channel-neutral message model: what adapters produce (`Inbound`) and consume (`Outbound`).

Adapters in `bot/` translate platform events into `Inbound` and render `Outbound` as well as
their platform allows (see the channel contract in DESIGN.md). Nothing here knows a platform.
"""

from __future__ import annotations

import base64
import html
import re
import unicodedata
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, Literal

# The staff chat's id on a channel that has no chat id of its own for it (staff writing in
# the terminal); otherwise the runtime configures the platform's chat id (`ShopConfig`).
STAFF = "staff"

MAX_TEXT_CHARS = 4000  # longer input is cut; no step accepts more than 2000 characters


def normalize_text(text: str) -> str:
    """NFC-normalize and drop control characters (keeping newlines and tabs)."""
    text = unicodedata.normalize("NFC", text)
    return "".join(ch for ch in text if ch in "\n\t" or unicodedata.category(ch)[0] != "C")


@dataclass(frozen=True)
class Contact:
    """A contact the user shared (a platform's share-contact button or form, or typed)."""

    phone: str
    name: str = ""
    address: str = ""
    user_id: str | None = None  # platform id of the contact's owner, when the platform says


@dataclass(frozen=True)
class Attachment:
    """A platform file reference; the bot never downloads customer files."""

    kind: Literal["photo", "document", "sticker", "location", "link"]
    ref: str
    name: str = ""


@dataclass(frozen=True)
class Inbound:
    """One incoming event, after the adapter has understood it."""

    channel: str  # the adapter's name (bot/channels/)
    chat_id: str  # where replies go; for staff messages, the staff chat id
    user_id: str  # the platform user who sent it
    dedupe_key: str  # stable per platform event (an update id, a message id, ...)
    text: str = ""
    command: str | None = None  # lower-case, without "/" or "@botname"
    args: str = ""  # text after the command
    payload: str | None = None  # a pressed button's payload
    contact: Contact | None = None
    attachments: tuple[Attachment, ...] = ()
    language_hint: str | None = None
    from_staff_chat: bool = False
    user_display_name: str = ""  # used only for staff members' signatures, never stored
    reply_to_message_id: str | None = None  # platform id of the message replied to (staff)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Inbound:
        data = dict(data)
        if data.get("contact"):
            data["contact"] = Contact(**data["contact"])
        data["attachments"] = tuple(Attachment(**a) for a in data.get("attachments") or ())
        return cls(**data)

    @staticmethod
    def parse_command(text: str) -> tuple[str | None, str]:
        """Split "/cmd@bot args" into ("cmd", "args"); plain text gives (None, text)."""
        stripped = text.strip()
        if not stripped.startswith("/") or len(stripped) < 2:
            return None, text
        head, _, rest = stripped[1:].partition(" ")
        name = head.split("@", 1)[0].lower()
        if not name or not all(ch.isalnum() or ch == "_" for ch in name):
            return None, text
        return name, rest.strip()


@dataclass(frozen=True)
class Button:
    label: str
    payload: str  # ≤ 64 bytes (the smallest platform limit); never trusted on the way back


@dataclass(frozen=True)
class Document:
    filename: str
    content: bytes
    mime_type: str = "application/octet-stream"


@dataclass(frozen=True)
class Outbound:
    """One message to send. `chat_id == STAFF` addresses the staff group chat."""

    channel: str
    chat_id: str
    text: str
    buttons: tuple[tuple[Button, ...], ...] = ()
    ask_contact: bool = False
    contact_label: str = ""  # label of the platform's share-contact button
    remove_keyboard: bool = False
    document: Document | None = None
    # A picture shown with the text as its caption: an http(s) address, or a file reference
    # of the platform the message goes to (a photo staff sent there). Adapters that cannot
    # show pictures give its address as text.
    photo: str | None = None
    edit_of: int | None = None  # outbox id of an earlier message to edit instead of sending
    reply_to: int | None = None  # outbox id of an earlier message to thread under
    delete_after_seconds: int | None = None
    html: bool = False  # text is already-escaped HTML (staff alerts); else plain text
    tag: str | None = None  # staff-message reference, e.g. "order:12" (redaction, threading)
    # A template notification (Zalo ZNS) instead of a chat message: {"id": template id,
    # "phone": E.164, "data": {param: value}}; `text` is then only the staff-side summary.
    template: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["buttons"] = [[asdict(b) for b in row] for row in self.buttons]
        if self.document is not None:
            data["document"] = {
                "filename": self.document.filename,
                "mime_type": self.document.mime_type,
                "content_b64": base64.b64encode(self.document.content).decode("ascii"),
            }
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Outbound:
        data = dict(data)
        data["buttons"] = tuple(tuple(Button(**b) for b in row) for row in data["buttons"])
        doc = data.get("document")
        if doc:
            data["document"] = Document(
                filename=doc["filename"],
                mime_type=doc["mime_type"],
                content=base64.b64decode(doc["content_b64"]),
            )
        return cls(**data)

    def plain_text(self) -> str:
        """The text for a platform without formatting: HTML tags dropped, entities unescaped."""
        return strip_html(self.text) if self.html else self.text


_TAG = re.compile(r"<[^>]+>")
_MENTION = re.compile(r'<mention id="([^"]*)">(.*?)</mention>')


def strip_html(text: str) -> str:
    """Plain text of our HTML (a mention keeps its "@label")."""
    return html.unescape(_TAG.sub("", text))


def mention(user_id: str) -> str:
    """A user mentioned in HTML text. An adapter with `user_mentions` renders it as a mention
    that notifies (see `render_mentions`); elsewhere only the "@id" label is shown."""
    escaped = html.escape(user_id)
    return f'<mention id="{escaped}">@{escaped}</mention>'


def render_mentions(text: str, render: Callable[[str, str], str]) -> str:
    """Replace every `mention()` in HTML text by `render(unescaped user id, label HTML)`."""
    return _MENTION.sub(lambda m: render(html.unescape(m.group(1)), m.group(2)), text)


@dataclass(frozen=True)
class ChannelCapabilities:
    """What a channel adapter can do; handlers ask this, never a channel's name.

    The defaults describe the least capable channel (plain text, nothing else), which is
    also what a handler sees for a channel no adapter declared.
    """

    can_delete_messages: bool = False  # sent messages can be removed (self-deleting /mydata)
    can_edit_messages: bool = False  # sent messages can be changed in place (else resent)
    # Every adapter shows buttons (at least as numbered options); more than this many in one
    # message are split over several messages. None: no limit.
    max_buttons_per_message: int | None = None
    html_formatting: bool = False  # bold/links shown; else tags are stripped
    user_mentions: bool = False  # `mention()` notifies the user mentioned
    contact_request: bool = False  # a share-contact button or form (else the user types it)
    documents: bool = False  # files arrive as files (else their text is sent)
    photos: bool = False  # users can send photos
    # Buttons stay attached to their own message and pressable (Telegram inline keyboards,
    # Zalo OA templates); else only the latest message's buttons count (numbered options), so
    # a list of products goes out as one message.
    inline_buttons: bool = False
    # How long after the user's last message the bot may still write to them (None: always).
    messaging_window: timedelta | None = None
    # The adapter that delivers template notifications (by phone number) to this channel's
    # users once the window has closed, when the shop configured templates; "" for none.
    notification_channel: str = ""


@dataclass
class SendResult:
    """What an adapter reports back to the delivery worker."""

    platform_message_id: str | None = None


class PermanentSendError(Exception):
    """The platform refuses for good (user blocked the bot, window closed); do not retry.

    `reason` must be a short code or platform message, never personal data.
    """

    def __init__(self, reason: str, unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unreachable = unreachable


class TemporarySendError(Exception):
    """Retry later; `retry_after` seconds if the platform said how long to wait."""

    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after

"""Zalo Bot Platform adapter: renders `Outbound` as plain text messages.

The Bot Platform has no buttons, contact request, documents, edits or deletes, so:
- buttons: numbered options ("1. label") appended to the text. The adapter remembers the
  last option list per chat (in memory, bounded) and `wrap_receive` turns a reply of just
  "1", "2", ... into that option's `Inbound.payload`. Any later message without buttons
  forgets the list, so a number typed at another step stays text. After a restart the list
  is gone and the number arrives as text (the flow re-asks).
- ask_contact: the text alone (the user types the phone number).
- document: the file's text in chunks of 2000 characters; an image file (the VietQR) is left
  out (its message carries the bank details in words).
- photo: its address on a line above the text.
- html: tags stripped; edits sent as new messages; `delete` is a no-op.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import replace

from bot.zalo import ZALO_TEXT_LIMIT, split_text
from bot.zalo.bot_client import CHANNEL, Receive, ZaloBotClient, ZaloBotError
from handlers.messages import (
    ChannelCapabilities,
    Inbound,
    Outbound,
    PermanentSendError,
    SendResult,
    TemporarySendError,
)

log = logging.getLogger(__name__)

# Assumed from Telegram-like semantics (Zalo publishes no table): 403 = the user blocked or
# cannot receive from the bot; 400/404 = a request that will never succeed.
UNREACHABLE_CODES = frozenset({403})
BAD_REQUEST_CODES = frozenset({400, 404})


class ZaloBotAdapter:
    name = CHANNEL
    capabilities = ChannelCapabilities(photos=True)  # buttons: numbered options, no limit

    def __init__(self, client: ZaloBotClient, *, max_remembered_chats: int = 10_000) -> None:
        self._client = client
        self._menus: OrderedDict[str, tuple[str, ...]] = OrderedDict()
        self._max_menus = max_remembered_chats

    async def send(
        self,
        message: Outbound,
        edit_message_id: str | None = None,
        reply_to_message_id: str | None = None,
    ) -> SendResult:
        text = message.plain_text()
        buttons = [button for row in message.buttons for button in row]
        if buttons:
            options = "\n".join(f"{i}. {b.label}" for i, b in enumerate(buttons, start=1))
            text = f"{text}\n\n{options}" if text else options
        if message.photo and message.photo.startswith(("http://", "https://")):
            text = f"🖼 {message.photo}\n{text}"
        chunks = split_text(text, ZALO_TEXT_LIMIT) if text else []
        document = message.document
        if document is not None and not document.mime_type.startswith("image/"):
            # Text files only: an image (the VietQR) cannot be sent; its message gives the
            # same details in words.
            body = document.content.decode("utf-8", errors="replace")
            chunks += split_text(f"{document.filename}\n\n{body}", ZALO_TEXT_LIMIT)
        # Remember (or forget) the options before sending: the reply may arrive quickly.
        self._remember(message.chat_id, tuple(b.payload for b in buttons))
        first = ""
        try:
            for chunk in chunks:
                message_id = await self._client.send_message(message.chat_id, chunk)
                first = first or message_id
        except ZaloBotError as exc:
            if exc.code in UNREACHABLE_CODES:
                raise PermanentSendError(str(exc), unreachable=True) from None
            if exc.code in BAD_REQUEST_CODES:
                raise PermanentSendError(str(exc)) from None
            raise TemporarySendError(str(exc)) from None
        except ValueError as exc:  # e.g. a text the JSON encoder cannot encode: never heals
            raise PermanentSendError(f"zalobot unsendable ({type(exc).__name__})") from None
        return SendResult(platform_message_id=first or None)

    async def delete(self, chat_id: str, message_id: str) -> None:
        """No-op: the Bot Platform cannot delete messages."""
        log.debug("zalobot cannot delete messages; ignoring")

    def wrap_receive(self, receive: Receive) -> Receive:
        """A `receive` that maps numbered replies to the remembered button payloads."""

        async def wrapped(inbound: Inbound) -> bool:
            return await receive(self.resolve_numbered_reply(inbound))

        return wrapped

    def resolve_numbered_reply(self, inbound: Inbound) -> Inbound:
        answer = inbound.text.strip().rstrip(".")
        options = self._menus.get(inbound.chat_id)
        if inbound.payload is not None or not options or not answer.isdigit():
            return inbound
        index = int(answer) - 1
        if not 0 <= index < len(options):
            return inbound
        return replace(inbound, text="", command=None, args="", payload=options[index])

    def _remember(self, chat_id: str, payloads: tuple[str, ...]) -> None:
        self._menus.pop(chat_id, None)
        if payloads:
            self._menus[chat_id] = payloads
            while len(self._menus) > self._max_menus:
                self._menus.popitem(last=False)

"""Zalo Official Account adapter: renders `Outbound` with the OA Open API.

Degradations (the OA API has no edit, delete or reply keyboard):
- buttons: `oa.query.hide` template buttons, at most 5 per message; more buttons go in
  follow-up messages of 5. The payload comes back as a hidden text message (see webhook).
- ask_contact: a `request_user_info` template (name, phone, address come back as a
  `user_submit_info` event). A short prompt (<= 500 chars, no buttons) becomes the template's
  subtitle; otherwise the text is sent first and the template follows with `contact_subtitle`.
- document: upload + file message for PDF/DOC/DOCX/CSV up to 5 MB, else text messages; a
  PNG/JPEG (the VietQR) is uploaded as an image (≤ 1 MB) and sent in a media template.
- photo (an http(s) address): a media template with the picture, then the text and buttons
  (at most 5 per message, titles ≤ 100 characters) under it.
- html: tags are stripped and entities unescaped (Zalo shows plain text).
- edits are sent as new messages; `delete` and `delete_after_seconds` are no-ops;
  `reply_to` threading is not rendered.
- text over 2000 characters is split; a failure after the first part makes the delivery
  worker resend the earlier parts too (the platform has no idempotency key).
"""

from __future__ import annotations

import logging

from bot.zalo import ZALO_TEXT_LIMIT, ZaloAuthError, split_text
from bot.zalo.oa_client import (
    CONSULTATION_WINDOW,
    MAX_BUTTONS,
    MAX_INFO_SUBTITLE,
    ZaloOAClient,
    ZaloPermanentError,
    ZaloTemporaryError,
)
from handlers.messages import (
    Button,
    ChannelCapabilities,
    Outbound,
    PermanentSendError,
    SendResult,
    TemporarySendError,
)

log = logging.getLogger(__name__)

AUTH_RETRY_AFTER = 300.0  # an admin may need to re-authorize the OA; retry slowly
MORE_BUTTONS_TEXT = "…"  # text of follow-up messages that carry buttons 6..n


class ZaloOAAdapter:
    name = "zalo"
    capabilities = ChannelCapabilities(
        max_buttons_per_message=MAX_BUTTONS,
        contact_request=True,
        documents=True,
        photos=True,
        inline_buttons=True,
        messaging_window=CONSULTATION_WINDOW,
        notification_channel="zns",  # bot/channels/zalo_zns.py, when templates are configured
    )

    def __init__(
        self,
        client: ZaloOAClient,
        *,
        contact_title: str = "Viet Art View",
        contact_subtitle: str = "",
        contact_image_url: str | None = None,
    ) -> None:
        self._client = client
        self._contact_title = contact_title
        self._contact_subtitle = contact_subtitle
        self._contact_image_url = contact_image_url

    async def send(
        self,
        message: Outbound,
        edit_message_id: str | None = None,
        reply_to_message_id: str | None = None,
    ) -> SendResult:
        if edit_message_id is not None:
            log.debug("zalo cannot edit messages; sending a new one")
        try:
            message_id = await self._render(message)
        except ZaloPermanentError as exc:
            raise PermanentSendError(exc.reason, unreachable=exc.unreachable) from None
        except ZaloTemporaryError as exc:
            raise TemporarySendError(exc.reason, retry_after=exc.retry_after) from None
        except ZaloAuthError as exc:
            log.info("zalo oa send postponed: %s", exc)  # the token manager logged the cause
            raise TemporarySendError(f"zalo_auth {exc}", retry_after=AUTH_RETRY_AFTER) from None
        except ValueError:
            # A message Zalo's limits can never accept (e.g. an oversized button payload).
            raise PermanentSendError("zalo_invalid_message") from None
        return SendResult(platform_message_id=message_id or None)

    async def delete(self, chat_id: str, message_id: str) -> None:
        """No-op: the OA API cannot delete sent messages."""
        log.debug("zalo cannot delete messages; ignoring")

    async def _render(self, message: Outbound) -> str:
        user_id = message.chat_id
        text = message.plain_text()
        buttons = [button for row in message.buttons for button in row]
        ids: list[str] = []

        if message.ask_contact and not buttons and len(text) <= MAX_INFO_SUBTITLE and text:
            # The prompt fits the template: one message instead of two.
            ids.append(await self._ask_contact(user_id, text))
            return _first(ids)

        if message.photo and message.photo.startswith(("http://", "https://")):
            # A media template shows the picture; the caption and buttons follow under it.
            ids.append(await self._client.send_image(user_id, message.photo))
        chunks = split_text(text, ZALO_TEXT_LIMIT) if text else []
        if buttons:
            # Buttons ride on the last chunk so they sit under the whole text.
            for chunk in chunks[:-1]:
                ids.append(await self._client.send_text(user_id, chunk))
            groups = [buttons[i : i + MAX_BUTTONS] for i in range(0, len(buttons), MAX_BUTTONS)]
            first_text = chunks[-1] if chunks else MORE_BUTTONS_TEXT
            for index, group in enumerate(groups):
                ids.append(
                    await self._client.send_buttons(
                        user_id, first_text if index == 0 else MORE_BUTTONS_TEXT, _pairs(group)
                    )
                )
        else:
            for chunk in chunks:
                ids.append(await self._client.send_text(user_id, chunk))

        if message.ask_contact:
            # The question itself was just sent: the template carries the button's label.
            subtitle = message.contact_label or self._contact_subtitle or text
            ids.append(await self._ask_contact(user_id, subtitle))
        if message.document is not None:
            doc = message.document
            if doc.mime_type in ("image/png", "image/jpeg"):  # the VietQR: an image message
                ids.append(
                    await self._client.send_image_file(
                        user_id, doc.filename, doc.content, doc.mime_type
                    )
                )
            else:
                ids.append(
                    await self._client.send_file(user_id, doc.filename, doc.content, doc.mime_type)
                )
        return _first(ids)

    async def _ask_contact(self, user_id: str, subtitle: str) -> str:
        return await self._client.request_user_info(
            user_id, self._contact_title, subtitle, self._contact_image_url
        )


def _pairs(buttons: list[Button]) -> list[tuple[str, str]]:
    return [(button.label, button.payload) for button in buttons]


def _first(ids: list[str]) -> str:
    return next((message_id for message_id in ids if message_id), "")

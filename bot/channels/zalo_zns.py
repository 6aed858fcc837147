"""Zalo Notification Service adapter (channel "zns"): delivers template notifications
(`Outbound.template`) to a Zalo user's phone number once the OA's messaging window has
closed. The Zalo OA adapter names it in its capabilities (`notification_channel`), so
handlers never name it; it is registered only when the shop configured ZNS templates.
"""

from __future__ import annotations

import logging

from bot.zalo import ZaloAuthError
from bot.zalo.oa_client import ZaloPermanentError, ZaloTemporaryError
from bot.zalo.zns_client import ZaloZNSClient
from handlers.messages import (
    ChannelCapabilities,
    Outbound,
    PermanentSendError,
    SendResult,
    TemporarySendError,
)

log = logging.getLogger(__name__)

ZNS_CHANNEL = "zns"
AUTH_RETRY_AFTER = 300.0


class ZaloZNSAdapter:
    name = ZNS_CHANNEL
    capabilities = ChannelCapabilities()

    def __init__(self, client: ZaloZNSClient) -> None:
        self._client = client

    async def send(
        self,
        message: Outbound,
        edit_message_id: str | None = None,
        reply_to_message_id: str | None = None,
    ) -> SendResult:
        template = message.template or {}
        template_id, phone = str(template.get("id") or ""), str(template.get("phone") or "")
        data = template.get("data")
        if not template_id or not phone or not isinstance(data, dict):
            raise PermanentSendError("zns_not_a_template")
        try:
            msg_id = await self._client.send_template(
                phone, template_id, {str(k): str(v) for k, v in data.items()}, message.chat_id
            )
        except ZaloPermanentError as exc:
            raise PermanentSendError(exc.reason) from None
        except ZaloTemporaryError as exc:
            raise TemporarySendError(exc.reason, retry_after=exc.retry_after) from None
        except ZaloAuthError as exc:
            log.info("zns send postponed: %s", exc)
            raise TemporarySendError(f"zalo_auth {exc}", retry_after=AUTH_RETRY_AFTER) from None
        return SendResult(platform_message_id=msg_id or None)

    async def delete(self, chat_id: str, message_id: str) -> None:
        """Template notifications cannot be removed."""

"""httpx client for the Zalo Notification Service (ZNS): template messages sent to a phone
number, the one way to reach a Zalo user after the OA's consultation window has closed.

`POST {ZALO_ZNS_API_BASE_URL}/message/template` with the OA's access token (header
`access_token`, the same token manager as the OA client) and the body
`{"phone": "84912345678", "template_id": "…", "template_data": {…}, "tracking_id": "…"}`;
the answer has Zalo's usual envelope, `data.msg_id` on success. Templates are registered
and approved in the ZNS console beforehand; the shop configures their ids per order status
(`ZALO_ZNS_TEMPLATES`). Sources: docs/zalo-api-notes.md.
"""

from __future__ import annotations

from typing import Any

from bot.zalo.oa_client import ZaloOAClient, ZaloPermanentError, ZaloTemporaryError, _Request

ZNS_PATH = "/message/template"
# The phone has no Zalo account / cannot receive ZNS / is not a valid number, or the
# template data does not fit the template: sending the same again cannot succeed.
ZNS_PERMANENT_CODES = frozenset({-108, -118, -119, -124, -131})


class ZaloZNSClient(ZaloOAClient):
    """The OA client's token handling and error classes, on the ZNS host."""

    async def send_template(
        self, phone_e164: str, template_id: str, data: dict[str, Any], tracking_id: str
    ) -> str:
        body = {
            "phone": phone_e164.lstrip("+"),
            "template_id": template_id,
            "template_data": data,
            "tracking_id": tracking_id[:48],
        }
        try:
            answer = await self._call(_Request("POST", ZNS_PATH, json=body))
        except ZaloTemporaryError as exc:
            if exc.code in ZNS_PERMANENT_CODES:
                raise ZaloPermanentError(exc.code, exc.zalo_message) from None
            raise
        msg_id = answer.get("msg_id") if isinstance(answer, dict) else None
        return str(msg_id) if msg_id else ""

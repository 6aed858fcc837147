"""httpx client for the Zalo Official Account Open API (v3 consultation messages).

Every OA call answers HTTP 200 with `{"error": code, "message": ..., "data": ...}`; code 0 is
success. This client turns the codes into three outcomes:

- success: the `data` dict (sends return `data.message_id`),
- `ZaloPermanentError`: the request will never succeed as is (user unreachable, invalid
  payload, content refused) - do not retry,
- `ZaloTemporaryError`: network/HTTP failures, rate limits, quotas, Zalo-side failures and
  operator-fixable configuration errors - retry later.

An invalid/expired access token (-216, -220) triggers one `tokens.refresh(stale)` and one
retry; if Zalo rejects the fresh token too, `ZaloAuthError` is raised (no loop).
Sources and code tables: docs/zalo-api-notes.md.
"""

from __future__ import annotations

import json
import logging
import mimetypes
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from bot.zalo import PAYLOAD_MARKER, ZALO_TEXT_LIMIT, ZaloAuthError, ZaloError, split_text
from bot.zalo.tokens import ZaloTokenManager

log = logging.getLogger(__name__)

MESSAGE_PATH = "/v3.0/oa/message/cs"
UPLOAD_FILE_PATH = "/v2.0/oa/upload/file"
UPLOAD_IMAGE_PATH = "/v2.0/oa/upload/image"
MAX_IMAGE_BYTES = 1024 * 1024  # jpg/png for image messages
USER_DETAIL_PATH = "/v3.0/oa/user/detail"

# Applied per request so it holds whatever AsyncClient the runtime passes in.
ZALO_HTTP_TIMEOUT = httpx.Timeout(15.0, connect=5.0)

MAX_BUTTONS = 5  # buttons per consultation message
# Consultation messages reach a user only this long after their last interaction (-230).
CONSULTATION_WINDOW = timedelta(days=7)
MAX_BUTTON_TITLE = 100  # characters
MAX_QUERY_PAYLOAD = 1000  # characters, oa.query.* payload
MAX_INFO_TITLE = 100  # request_user_info element title
MAX_INFO_SUBTITLE = 500  # request_user_info element subtitle
MAX_UPLOAD_BYTES = 5 * 1024 * 1024
UPLOAD_EXTENSIONS = frozenset({".pdf", ".doc", ".docx", ".csv"})

TOKEN_CODES = frozenset({-216, -220})  # access token invalid / expired or removed
# The recipient cannot be reached with a consultation message until they act again.
UNREACHABLE_CODES = frozenset({-213, -217, -227, -230, -232, -244})
# The request itself is wrong or refused; retrying the same payload cannot help.
BAD_REQUEST_CODES = frozenset({-201, -210, -233, -248})
RATE_LIMIT_CODES = frozenset({-32})
RATE_LIMIT_RETRY_AFTER = 60.0  # Zalo's app limit is per minute
# Everything else (Zalo failures, quotas, night window, operator-fixable configuration such
# as an unlinked app or a lapsed OA package) is temporary: a confirmed order must not be
# dropped while an admin fixes the OA.


class ZaloPermanentError(ZaloError):
    def __init__(self, code: int | None, message: str, unreachable: bool = False) -> None:
        self.code = code
        self.zalo_message = message
        self.unreachable = unreachable
        super().__init__(_describe(code, message))

    @property
    def reason(self) -> str:
        return str(self)


class ZaloTemporaryError(ZaloError):
    def __init__(self, code: int | None, message: str, retry_after: float | None = None) -> None:
        self.code = code
        self.zalo_message = message
        self.retry_after = retry_after
        super().__init__(_describe(code, message))

    @property
    def reason(self) -> str:
        return str(self)


def _describe(code: int | None, message: str) -> str:
    # Zalo messages are fixed phrases ("User has not followed OA"); cap them anyway.
    prefix = f"zalo:{code}" if code is not None else "zalo"
    return f"{prefix} {message[:120]}".rstrip()


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    json: dict[str, Any] | None = None
    params: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None


def classify(code: int, message: str) -> ZaloError:
    """Map a non-zero, non-token Zalo error code to the exception to raise."""
    if code in UNREACHABLE_CODES:
        return ZaloPermanentError(code, message, unreachable=True)
    if code in BAD_REQUEST_CODES:
        return ZaloPermanentError(code, message)
    if code in RATE_LIMIT_CODES:
        return ZaloTemporaryError(code, message, retry_after=RATE_LIMIT_RETRY_AFTER)
    return ZaloTemporaryError(code, message)


class ZaloOAClient:
    """One OA, one token manager. Methods return Zalo's message id for sends."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        api_base_url: str,
        tokens: ZaloTokenManager,
        timeout: httpx.Timeout = ZALO_HTTP_TIMEOUT,
    ) -> None:
        self._http = http
        self._base = api_base_url.rstrip("/")
        self._tokens = tokens
        self._timeout = timeout

    # --- messages ---------------------------------------------------------------------

    async def send_text(self, user_id: str, text: str) -> str:
        if not text or len(text) > ZALO_TEXT_LIMIT:
            raise ValueError(f"text must be 1..{ZALO_TEXT_LIMIT} characters; use split_text")
        return await self._send(user_id, {"text": text})

    async def send_buttons(self, user_id: str, text: str, buttons: list[tuple[str, str]]) -> str:
        """Text with up to 5 `oa.query.hide` buttons.

        Pressing one makes Zalo deliver `PAYLOAD_MARKER + payload` as a hidden
        `user_send_text` event, which the webhook maps back to `Inbound.payload`.
        Titles longer than 100 characters are cut with an ellipsis.
        """
        if not 1 <= len(buttons) <= MAX_BUTTONS:
            raise ValueError(f"Zalo allows 1..{MAX_BUTTONS} buttons per message")
        if len(text) > ZALO_TEXT_LIMIT:
            raise ValueError(f"text must be at most {ZALO_TEXT_LIMIT} characters")
        rendered = []
        for label, payload in buttons:
            query = PAYLOAD_MARKER + payload
            if len(query) > MAX_QUERY_PAYLOAD:
                raise ValueError("button payload too long for Zalo")
            rendered.append(
                {"title": _cut(label, MAX_BUTTON_TITLE), "type": "oa.query.hide", "payload": query}
            )
        message: dict[str, Any] = {
            "attachment": {"type": "template", "payload": {"buttons": rendered}}
        }
        if text:
            message["text"] = text
        return await self._send(user_id, message)

    async def request_user_info(
        self, user_id: str, title: str, subtitle: str, image_url: str | None = None
    ) -> str:
        """Ask the user to share name/phone/address; the answer comes as `user_submit_info`."""
        element = {
            "title": _cut(title, MAX_INFO_TITLE),
            "subtitle": _cut(subtitle, MAX_INFO_SUBTITLE),
        }
        if image_url:
            element["image_url"] = image_url
        payload = {"template_type": "request_user_info", "elements": [element]}
        return await self._send(user_id, {"attachment": {"type": "template", "payload": payload}})

    async def send_image(self, user_id: str, url: str, text: str = "") -> str:
        payload = {"template_type": "media", "elements": [{"media_type": "image", "url": url}]}
        message: dict[str, Any] = {"attachment": {"type": "template", "payload": payload}}
        if text:
            message["text"] = _cut(text, ZALO_TEXT_LIMIT)
        return await self._send(user_id, message)

    async def send_image_file(
        self, user_id: str, filename: str, content: bytes, mime_type: str, text: str = ""
    ) -> str:
        """Upload a JPG/PNG of at most 1 MB and send it as an image message."""
        if len(content) > MAX_IMAGE_BYTES:
            raise ZaloPermanentError(None, "image over 1 MB")
        data = await self._call(
            _Request("POST", UPLOAD_IMAGE_PATH, files={"file": (filename, content, mime_type)})
        )
        attachment = data.get("attachment_id") if isinstance(data, dict) else None
        if not isinstance(attachment, str) or not attachment:
            raise ZaloTemporaryError(None, "upload answer has no attachment id")
        element = {"media_type": "image", "attachment_id": attachment}
        payload = {"template_type": "media", "elements": [element]}
        message: dict[str, Any] = {"attachment": {"type": "template", "payload": payload}}
        if text:
            message["text"] = _cut(text, ZALO_TEXT_LIMIT)
        return await self._send(user_id, message)

    async def upload_file(self, filename: str, content: bytes, mime_type: str = "") -> str:
        """Upload a PDF/DOC/DOCX/CSV of at most 5 MB; returns the file token (valid 7 days)."""
        mime = mime_type or mimetypes.guess_type(filename)[0] or "application/octet-stream"
        data = await self._call(
            _Request("POST", UPLOAD_FILE_PATH, files={"file": (filename, content, mime)})
        )
        token = data.get("token") if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise ZaloTemporaryError(None, "upload answer has no file token")
        return token

    async def send_file(
        self, user_id: str, filename: str, content: bytes, mime_type: str = ""
    ) -> str:
        """Upload then send a file message; fall back to the content as text messages.

        The fallback is used when Zalo would refuse the file (type other than
        PDF/DOC/DOCX/CSV, more than 5 MB) or the upload fails with a non-auth error (quota
        of 5,000 uploads a month, upload service failure). Token failures propagate: a text
        fallback would fail the same way. Non-UTF-8 content cannot fall back.
        """
        if _uploadable(filename, content):
            try:
                token = await self.upload_file(filename, content, mime_type)
            except (ZaloPermanentError, ZaloTemporaryError) as exc:
                log.warning("zalo file upload failed (%s); sending as text", exc.reason)
            else:
                return await self._send(
                    user_id, {"attachment": {"type": "file", "payload": {"token": token}}}
                )
        return await self._send_as_text(user_id, filename, content)

    async def get_display_name(self, user_id: str) -> str | None:
        """The follower's Zalo display name; None if Zalo does not know the user."""
        try:
            data = await self._call(
                _Request("GET", USER_DETAIL_PATH, params={"data": json.dumps({"user_id": user_id})})
            )
        except ZaloPermanentError:
            return None
        name = data.get("display_name") if isinstance(data, dict) else None
        return name if isinstance(name, str) and name else None

    # --- plumbing ---------------------------------------------------------------------

    async def _send_as_text(self, user_id: str, filename: str, content: bytes) -> str:
        try:
            text = content.decode("utf-8")
        except UnicodeDecodeError:
            raise ZaloPermanentError(None, "document is not text and cannot be uploaded") from None
        first: str | None = None
        for chunk in split_text(f"{filename}\n\n{text}".strip()):
            message_id = await self.send_text(user_id, chunk)
            first = first or message_id
        assert first is not None  # split_text returns at least one chunk
        return first

    async def _send(self, user_id: str, message: dict[str, Any]) -> str:
        data = await self._call(
            _Request(
                "POST", MESSAGE_PATH, json={"recipient": {"user_id": user_id}, "message": message}
            )
        )
        message_id = data.get("message_id") if isinstance(data, dict) else None
        return str(message_id) if message_id else ""

    async def _call(self, request: _Request) -> Any:
        token = await self._tokens.access_token()
        code, message, data = await self._request(request, token)
        if code in TOKEN_CODES:
            log.info("zalo oa token rejected (code %s); refreshing", code)
            token = await self._tokens.refresh(token)
            code, message, data = await self._request(request, token)
            if code in TOKEN_CODES:
                raise ZaloAuthError(f"zalo:{code} access token rejected after refresh")
        if code != 0:
            raise classify(code, message)
        return data

    async def _request(self, request: _Request, token: str) -> tuple[int, str, Any]:
        try:
            response = await self._http.request(
                request.method,
                self._base + request.path,
                headers={"access_token": token},
                json=request.json,
                params=request.params,
                files=request.files,
                timeout=self._timeout,
            )
        except httpx.HTTPError as exc:
            raise ZaloTemporaryError(None, f"network error {type(exc).__name__}") from None
        if response.status_code != 200:
            retry_after = _retry_after(response) if response.status_code == 429 else None
            raise ZaloTemporaryError(None, f"HTTP {response.status_code}", retry_after)
        try:
            body = response.json()
        except ValueError:
            raise ZaloTemporaryError(None, "response is not JSON") from None
        if not isinstance(body, dict):
            raise ZaloTemporaryError(None, "unexpected response shape")
        try:
            code = int(body.get("error", 0))
        except (TypeError, ValueError):
            raise ZaloTemporaryError(None, "unexpected error field") from None
        return code, str(body.get("message") or ""), body.get("data")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _uploadable(filename: str, content: bytes) -> bool:
    dot = filename.rfind(".")
    extension = filename[dot:].lower() if dot >= 0 else ""
    return extension in UPLOAD_EXTENSIONS and 0 < len(content) <= MAX_UPLOAD_BYTES


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None

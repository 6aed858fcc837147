"""Zalo OA webhook: verify, translate to `Inbound`, hand to the runtime.

Zalo POSTs one JSON event per request and retries (30 s, 5 min, 15 min, 30 min, 1 h) until
it gets HTTP 200 within about 2 seconds. The route answers 200 only after
`await receive(inbound)` returned, i.e. after the inbox row is stored; a failure there answers
500 so Zalo delivers again, and the inbox dedupes on the stable key.

Signature (header `X-ZEvent-Signature: mac=<hex>`):
    sha256(app_id + raw_body + timestamp + oa_secret_key), hex, plain SHA-256 (not HMAC),
over the raw body bytes as received, with `timestamp` taken from the body.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Literal

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.web import parse_json_object, read_body
from bot.zalo import PAYLOAD_MARKER
from handlers.messages import MAX_TEXT_CHARS, Attachment, Contact, Inbound, normalize_text

log = logging.getLogger(__name__)

CHANNEL = "zalo"
WEBHOOK_PATH = "/zalo/webhook"
MAX_BODY_BYTES = 64 * 1024
SIGNATURE_HEADER = "X-ZEvent-Signature"

Receive = Callable[[Inbound], Awaitable[bool]]


@dataclass(frozen=True)
class WebhookVerdict:
    """`ok`, or the reason an event was refused; `event` is the parsed body when ok."""

    ok: bool
    reason: str | None = None  # bad_json | wrong_app | missing_signature | bad_signature | stale
    event: dict[str, Any] | None = None


@dataclass(frozen=True)
class Unfollow:
    """The user stopped following the OA; the runtime may note it (no reply is possible)."""

    user_id: str
    dedupe_key: str


def signature_for(raw_body: bytes, app_id: str, timestamp: str, oa_secret_key: str) -> str:
    """Hex digest Zalo puts (after `mac=`) in X-ZEvent-Signature."""
    digest = hashlib.sha256()
    digest.update(app_id.encode())
    digest.update(raw_body)
    digest.update(timestamp.encode())
    digest.update(oa_secret_key.encode())
    return digest.hexdigest()


def verify_signature(
    raw_body: bytes,
    header: str | None,
    app_id: str,
    oa_secret_key: str,
    now_ms: int,
    window_s: int = 300,
) -> WebhookVerdict:
    """Check a webhook delivery; only `ok` verdicts may reach the runtime."""
    event = parse_json_object(raw_body)
    if event is None:
        return WebhookVerdict(False, "bad_json")
    if str(event.get("app_id", "")) != app_id:
        return WebhookVerdict(False, "wrong_app")
    if not header or not header.strip():
        return WebhookVerdict(False, "missing_signature")
    supplied = header.strip()
    if supplied[:4].lower() == "mac=":
        supplied = supplied[4:].strip()
    timestamp = _timestamp_text(event.get("timestamp"))
    expected = signature_for(raw_body, app_id, timestamp, oa_secret_key)
    if not hmac.compare_digest(supplied.lower().encode(), expected.encode()):
        return WebhookVerdict(False, "bad_signature")
    # Checked after the signature, so "stale" means authentic but replayed or skewed.
    if not timestamp.isdigit() or abs(now_ms - int(timestamp)) > window_s * 1000:
        return WebhookVerdict(False, "stale")
    return WebhookVerdict(True, event=event)


def _timestamp_text(value: object) -> str:
    # Zalo sends a string of milliseconds; a JSON number is signed as its digits.
    if isinstance(value, bool):
        return ""
    if isinstance(value, int):
        return str(value)
    return value if isinstance(value, str) else ""


# --- event -> Inbound ---------------------------------------------------------------------

_USER_MESSAGE_EVENTS = frozenset(
    {
        "user_send_text",
        "user_send_image",
        "user_send_gif",
        "user_send_file",
        "user_send_sticker",
        "user_send_location",
        "user_send_link",
        "user_send_audio",
        "user_send_video",
    }
)
# Echoes of what the OA sent and delivery/read receipts: nothing for the bot to do.
_IGNORED_EVENTS = frozenset({"user_received_message", "user_seen_message"})
AttachmentKind = Literal["photo", "document", "sticker", "location", "link"]
_ATTACHMENT_KINDS: dict[str, AttachmentKind] = {
    "image": "photo",
    "gif": "photo",
    "file": "document",
    "audio": "document",
    "video": "document",
    "sticker": "sticker",
    "location": "location",
    "link": "link",
}
_SAFE_EVENT_NAME = re.compile(r"[^a-z0-9_.]")


def event_to_inbound(event: dict[str, Any]) -> Inbound | Unfollow | None:
    """Translate a verified OA event; None for events the bot ignores."""
    name = str(event.get("event_name") or "")
    if name.startswith("oa_send_") or name in _IGNORED_EVENTS:
        return None
    if name in ("follow", "unfollow"):
        user_id = _id_of(event.get("follower")) or _id_of(event.get("sender"))
        if not user_id:
            return None
        key = _dedupe_key(event, name, user_id)
        if name == "unfollow":
            return Unfollow(user_id=user_id, dedupe_key=key)
        # Following the OA is Zalo's "start": the same as typing /start.
        return Inbound(
            channel=CHANNEL,
            chat_id=user_id,
            user_id=user_id,
            dedupe_key=key,
            text="/start",
            command="start",
        )
    user_id = _id_of(event.get("sender"))
    if name == "user_submit_info" and user_id:
        return Inbound(
            channel=CHANNEL,
            chat_id=user_id,
            user_id=user_id,
            dedupe_key=_dedupe_key(event, name, user_id),
            contact=_contact(event.get("info"), user_id),
        )
    if name in _USER_MESSAGE_EVENTS and user_id:
        return _message_inbound(event, name, user_id)
    # Log the (sanitized) event name only: the body may hold personal data.
    log.info("zalo webhook: ignoring event %s", _SAFE_EVENT_NAME.sub("?", name.lower())[:64])
    return None


def _message_inbound(event: dict[str, Any], name: str, user_id: str) -> Inbound:
    raw_message = event.get("message")
    message: dict[str, Any] = raw_message if isinstance(raw_message, dict) else {}
    text = message.get("text")
    text = normalize_text(text)[:MAX_TEXT_CHARS] if isinstance(text, str) else ""
    key = _dedupe_key(event, name, user_id)
    base = Inbound(channel=CHANNEL, chat_id=user_id, user_id=user_id, dedupe_key=key)
    if name == "user_send_text" and text.startswith(PAYLOAD_MARKER):
        payload = text[len(PAYLOAD_MARKER) :].strip()
        if payload:
            return replace(base, payload=payload)
    attachments = tuple(_attachments(message.get("attachments")))
    command, args = Inbound.parse_command(text) if text else (None, "")
    return replace(
        base,
        text=text,
        command=command,
        args=args if command else "",
        attachments=attachments,
    )


def _attachments(raw: object) -> Iterable[Attachment]:
    if not isinstance(raw, list):
        return
    for item in raw:
        if not isinstance(item, dict):
            continue
        kind = _ATTACHMENT_KINDS.get(str(item.get("type", "")))
        payload = item.get("payload")
        if kind is None or not isinstance(payload, dict):
            continue
        if kind == "location":
            ref = _coordinates(payload.get("coordinates"))
        elif kind == "sticker":
            ref = _text(payload.get("url")) or _text(payload.get("id"))
        else:
            ref = _text(payload.get("url"))
        if ref:
            name = _text(payload.get("name")) or _text(payload.get("title"))
            yield Attachment(kind=kind, ref=ref, name=name[:200])


def _coordinates(raw: object) -> str:
    # Documented as latitude/longitude; some SDKs read lat/long. Accept both.
    if not isinstance(raw, dict):
        return ""
    lat = raw.get("latitude", raw.get("lat"))
    lon = raw.get("longitude", raw.get("long"))
    if lat is None or lon is None:
        return ""
    return f"{lat},{lon}"


def _contact(raw: object, user_id: str) -> Contact:
    info = raw if isinstance(raw, dict) else {}
    address = _text(info.get("address"))
    parts = [address] if address else []
    # Two documented shapes: flat (address, ward, district, city) and nested full_address.
    full = info.get("full_address")
    if isinstance(full, dict):
        parts += [
            _text(full.get(k)) for k in ("user_address", "user_ward", "user_district", "user_city")
        ]
    else:
        parts += [_text(info.get(k)) for k in ("ward", "district", "city")]
    return Contact(
        phone=normalize_text(_text(info.get("phone"))),
        name=normalize_text(_text(info.get("name"))),
        address=normalize_text(", ".join(p for p in parts if p)),
        user_id=user_id,
    )


def _id_of(raw: object) -> str:
    return _text(raw.get("id")) if isinstance(raw, dict) else ""


def _text(value: object) -> str:
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _dedupe_key(event: dict[str, Any], name: str, user_id: str) -> str:
    message = event.get("message")
    msg_id = _text(message.get("msg_id")) if isinstance(message, dict) else ""
    if msg_id:
        return msg_id
    stamp = _timestamp_text(event.get("timestamp"))
    return hashlib.sha256(f"{name}|{user_id}|{stamp}".encode()).hexdigest()


# --- routes -------------------------------------------------------------------------------


def make_zalo_routes(
    receive: Receive,
    *,
    app_id: str,
    oa_secret_key: str,
    on_unfollow: Callable[[Unfollow], Awaitable[None]] | None = None,
    verification_file_name: str | None = None,
    verification_file_content: str | None = None,
    window_s: int = 300,
    clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
    path: str = WEBHOOK_PATH,
    overloaded: Callable[[], bool] = lambda: False,
) -> list[Route]:
    """`POST /zalo/webhook`, plus `GET /<verification file>` for Zalo domain verification.

    While the bot is `overloaded()` (too many messages stored and not yet processed), an
    event is answered 503 before anything is stored: Zalo delivers it again later."""

    async def webhook(request: Request) -> Response:
        if overloaded():
            return PlainTextResponse("busy, retry later", status_code=503)
        raw = await read_body(request, MAX_BODY_BYTES)
        if isinstance(raw, Response):
            return raw
        verdict = verify_signature(
            raw, request.headers.get(SIGNATURE_HEADER), app_id, oa_secret_key, clock_ms(), window_s
        )
        if not verdict.ok or verdict.event is None:
            log.warning("zalo webhook refused: %s", verdict.reason)
            status = 400 if verdict.reason == "bad_json" else 403
            return PlainTextResponse(verdict.reason or "refused", status_code=status)
        result = event_to_inbound(verdict.event)
        try:
            if isinstance(result, Inbound):
                await receive(result)
            elif isinstance(result, Unfollow) and on_unfollow is not None:
                await on_unfollow(result)
        except Exception as exc:
            # Not stored: answer 500 so Zalo delivers the event again. Log the type only:
            # database errors can quote the row's (personal) values.
            log.error("zalo webhook: storing the event failed (%s)", type(exc).__name__)
            return PlainTextResponse("retry", status_code=500)
        return JSONResponse({"ok": True})

    routes = [Route(path, webhook, methods=["POST"])]
    if verification_file_name and verification_file_content is not None:
        name = verification_file_name.strip("/")
        if not name or "/" in name or ".." in name:
            raise ValueError("verification_file_name must be a plain file name")
        content = verification_file_content
        media_type = "text/html" if name.endswith((".html", ".htm")) else "text/plain"

        async def verification(_: Request) -> Response:
            return Response(content, media_type=media_type)

        routes.append(Route("/" + name, verification, methods=["GET"]))
    return routes

"""Zalo OA: the real httpx client and token manager against the fake OpenAPI/OAuth server,
and the webhook routes through Starlette's ASGI transport."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bot.channels.base import ChannelAdapter
from bot.channels.zalo_oa import ZaloOAAdapter
from bot.zalo import PAYLOAD_MARKER, ZaloAuthError, split_text
from bot.zalo.oa_client import ZaloOAClient, ZaloPermanentError, ZaloTemporaryError
from bot.zalo.tokens import MemoryTokenStore, TokenPair, ZaloTokenManager
from bot.zalo.webhook import (
    Unfollow,
    event_to_inbound,
    make_zalo_routes,
    verify_signature,
)
from handlers.messages import (
    Attachment,
    Button,
    Contact,
    Document,
    Inbound,
    Outbound,
    PermanentSendError,
    TemporarySendError,
    mention,
)
from tests.fakes.zalo_api import MESSAGE_PATH, FakeZaloAPI

NOW = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
USER = "2468458835296117922"


class RecordingStore(MemoryTokenStore):
    """Notes, at each save, how many API calls had already used the new access token."""

    def __init__(self, initial: TokenPair, fake: FakeZaloAPI) -> None:
        super().__init__(initial)
        self.fake = fake
        self.saves: list[tuple[TokenPair, int]] = []

    async def save(self, pair: TokenPair) -> None:
        used = [c for c in self.fake.calls if c.headers.get("access_token") == pair.access_token]
        self.saves.append((pair, len(used)))
        await super().save(pair)


class Stack:
    def __init__(
        self,
        fake: FakeZaloAPI,
        http: httpx.AsyncClient,
        *,
        expires_in: timedelta = timedelta(hours=20),
        now: datetime = NOW,
        pair: TokenPair | None = None,
    ) -> None:
        access, refresh = fake.issue_pair()
        self.initial = pair or TokenPair(access, refresh, now + expires_in)
        self.store = RecordingStore(self.initial, fake)
        self.tokens = ZaloTokenManager(
            self.store,
            http,
            fake.oauth_base_url,
            app_id=fake.app_id,
            secret_key=fake.secret_key,
            clock=lambda: now,
        )
        self.client = ZaloOAClient(http, fake.base_url, self.tokens)
        self.adapter = ZaloOAAdapter(
            self.client, contact_title="Viet Art View", contact_image_url="https://vav.vn/logo.png"
        )


@pytest.fixture
async def fake() -> AsyncIterator[FakeZaloAPI]:
    async with FakeZaloAPI() as server:
        yield server


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def stack(fake: FakeZaloAPI, http: httpx.AsyncClient) -> Stack:
    return Stack(fake, http)


def out(text: str, **kwargs: Any) -> Outbound:
    return Outbound(channel="zalo", chat_id=USER, text=text, **kwargs)


# --- sending each message kind -----------------------------------------------------------


async def test_text_is_sent_with_access_token_header(stack: Stack, fake: FakeZaloAPI) -> None:
    adapter: ChannelAdapter = stack.adapter  # the runtime's contract, checked by mypy
    result = await adapter.send(out("Xin chào, Viet Art View đây!"))

    assert fake.sent == [
        {"recipient": {"user_id": USER}, "message": {"text": "Xin chào, Viet Art View đây!"}}
    ]
    call = fake.message_calls[0]
    assert call.headers["access_token"] == stack.initial.access_token
    assert result.platform_message_id == call.answer["data"]["message_id"]


async def test_long_text_is_split_at_2000_characters(stack: Stack, fake: FakeZaloAPI) -> None:
    text = "\n".join(f"dòng {i:04d} " + "x" * 40 for i in range(100))  # ~5000 chars
    await stack.adapter.send(out(text))

    parts = [body["message"]["text"] for body in fake.sent]
    assert len(parts) == 3
    assert all(len(part) <= 2000 for part in parts)
    assert "\n".join(parts) == text


async def test_buttons_use_query_hide_with_payload_marker(stack: Stack, fake: FakeZaloAPI) -> None:
    long_label = "Đ" * 120
    await stack.adapter.send(
        out(
            "Bạn muốn làm gì?",
            buttons=(
                (Button("Đặt tranh", "order:start"), Button("Hỏi về dữ liệu", "faq:menu")),
                (Button(long_label, "staff:talk"),),
            ),
        )
    )

    assert fake.sent == [
        {
            "recipient": {"user_id": USER},
            "message": {
                "text": "Bạn muốn làm gì?",
                "attachment": {
                    "type": "template",
                    "payload": {
                        "buttons": [
                            {
                                "title": "Đặt tranh",
                                "type": "oa.query.hide",
                                "payload": "#vav order:start",
                            },
                            {
                                "title": "Hỏi về dữ liệu",
                                "type": "oa.query.hide",
                                "payload": "#vav faq:menu",
                            },
                            {
                                "title": "Đ" * 99 + "…",
                                "type": "oa.query.hide",
                                "payload": "#vav staff:talk",
                            },
                        ]
                    },
                },
            },
        }
    ]


async def test_more_than_five_buttons_go_in_follow_up_messages(
    stack: Stack, fake: FakeZaloAPI
) -> None:
    buttons = tuple((Button(f"Mục {i}", f"edit:{i}"),) for i in range(1, 8))
    await stack.adapter.send(out("Sửa mục nào?", buttons=buttons))

    assert [body["message"]["text"] for body in fake.sent] == ["Sửa mục nào?", "…"]
    counts = [len(body["message"]["attachment"]["payload"]["buttons"]) for body in fake.sent]
    assert counts == [5, 2]
    assert fake.sent[1]["message"]["attachment"]["payload"]["buttons"][1]["payload"] == (
        "#vav edit:7"
    )


async def test_ask_contact_sends_request_user_info(stack: Stack, fake: FakeZaloAPI) -> None:
    await stack.adapter.send(out("Vui lòng chia sẻ số điện thoại để giao tranh.", ask_contact=True))

    assert fake.sent == [
        {
            "recipient": {"user_id": USER},
            "message": {
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "request_user_info",
                        "elements": [
                            {
                                "title": "Viet Art View",
                                "subtitle": "Vui lòng chia sẻ số điện thoại để giao tranh.",
                                "image_url": "https://vav.vn/logo.png",
                            }
                        ],
                    },
                },
            },
        }
    ]


async def test_ask_contact_with_buttons_sends_buttons_then_template(
    stack: Stack, fake: FakeZaloAPI
) -> None:
    await stack.adapter.send(
        out("Số điện thoại của bạn?", ask_contact=True, buttons=((Button("Bỏ qua", "skip"),),))
    )

    assert "buttons" in fake.sent[0]["message"]["attachment"]["payload"]
    template = fake.sent[1]["message"]["attachment"]["payload"]
    assert template["template_type"] == "request_user_info"
    assert template["elements"][0]["subtitle"] == "Số điện thoại của bạn?"


async def test_send_image_uses_media_template(stack: Stack, fake: FakeZaloAPI) -> None:
    await stack.client.send_image(USER, "https://vav.vn/tranh/ha-long.jpg", "Tranh Hạ Long")

    assert fake.sent == [
        {
            "recipient": {"user_id": USER},
            "message": {
                "text": "Tranh Hạ Long",
                "attachment": {
                    "type": "template",
                    "payload": {
                        "template_type": "media",
                        "elements": [
                            {"media_type": "image", "url": "https://vav.vn/tranh/ha-long.jpg"}
                        ],
                    },
                },
            },
        }
    ]


async def test_document_is_uploaded_then_sent_as_file(stack: Stack, fake: FakeZaloAPI) -> None:
    content = b"ma_don,trang_thai\nVAV-12,da_giao\n"
    await stack.adapter.send(
        out("Dữ liệu của bạn:", document=Document("du-lieu.csv", content, "text/csv"))
    )

    assert fake.uploads[0].filename == "du-lieu.csv"
    assert fake.uploads[0].content == content
    assert fake.uploads[0].content_type == "text/csv"
    upload_call = fake.calls_to("/v2.0/oa/upload/file")[0]
    assert upload_call.headers["access_token"] == stack.initial.access_token
    token = upload_call.answer["data"]["token"]
    assert fake.sent == [
        {"recipient": {"user_id": USER}, "message": {"text": "Dữ liệu của bạn:"}},
        {
            "recipient": {"user_id": USER},
            "message": {"attachment": {"type": "file", "payload": {"token": token}}},
        },
    ]


async def test_document_falls_back_to_text_when_upload_fails(
    stack: Stack, fake: FakeZaloAPI
) -> None:
    fake.upload_error = (-211, "Out of quota")
    await stack.adapter.send(out("", document=Document("du-lieu.csv", b"a,b\n1,2\n", "text/csv")))

    assert fake.sent == [
        {"recipient": {"user_id": USER}, "message": {"text": "du-lieu.csv\n\na,b\n1,2"}}
    ]


async def test_unsupported_document_type_is_sent_as_text_without_upload(
    stack: Stack, fake: FakeZaloAPI
) -> None:
    body = json.dumps({"name": "Nguyễn Văn A"}, ensure_ascii=False).encode()
    await stack.adapter.send(out("", document=Document("mydata.json", body, "application/json")))

    assert fake.calls_to("/v2.0/oa/upload/file") == []
    assert fake.sent[0]["message"]["text"] == 'mydata.json\n\n{"name": "Nguyễn Văn A"}'


async def test_get_display_name(stack: Stack, fake: FakeZaloAPI) -> None:
    fake.users[USER] = "Lan Anh"

    assert await stack.client.get_display_name(USER) == "Lan Anh"
    assert await stack.client.get_display_name("999") is None
    assert json.loads(fake.calls_to("/v3.0/oa/user/detail")[0].query["data"]) == {"user_id": USER}


async def test_html_is_rendered_as_plain_text(stack: Stack, fake: FakeZaloAPI) -> None:
    await stack.adapter.send(out(f"<b>Đơn #12</b> &amp; quà 📣 {mention('900')}", html=True))

    assert fake.sent[0]["message"] == {"text": "Đơn #12 & quà 📣 @900"}  # a mention: its label


async def test_edit_is_sent_as_new_message_and_delete_is_noop(
    stack: Stack, fake: FakeZaloAPI
) -> None:
    result = await stack.adapter.send(out("Đơn đã xác nhận"), edit_message_id="msg000001")
    await stack.adapter.delete(USER, result.platform_message_id or "")

    assert [body["message"]["text"] for body in fake.sent] == ["Đơn đã xác nhận"]
    assert len(fake.calls) == 1


# --- tokens ------------------------------------------------------------------------------


async def test_twenty_concurrent_sends_with_expired_token_refresh_once(
    stack: Stack, fake: FakeZaloAPI
) -> None:
    fake.expire_access_tokens()
    fake.refresh_delay = 0.05  # every sender sees -216 before the refresh answers

    results = await asyncio.gather(*(stack.adapter.send(out(f"tin {i}")) for i in range(20)))

    assert len(fake.refresh_calls) == 1
    # Every sender really raced: 20 answers of -216, then 20 deliveries.
    assert sorted(c.answer["error"] for c in fake.message_calls) == [-216] * 20 + [0] * 20
    assert sorted(body["message"]["text"] for body in fake.sent) == sorted(
        f"tin {i}" for i in range(20)
    )
    assert all(result.platform_message_id for result in results)
    # The rotated pair was saved before any request used it ...
    assert len(stack.store.saves) == 1
    saved, uses_before_save = stack.store.saves[0]
    assert uses_before_save == 0
    assert saved.refresh_token != stack.initial.refresh_token
    assert saved.access_expires_at == NOW + timedelta(seconds=90000)
    # ... and is what the store holds and what the retries used.
    assert await stack.store.load() == saved
    accepted = [c for c in fake.message_calls if c.answer and c.answer["error"] == 0]
    assert {c.headers["access_token"] for c in accepted} == {saved.access_token}
    # The old refresh token is spent: it cannot be used again.
    assert stack.initial.refresh_token not in fake.live_refresh_tokens


async def test_token_is_refreshed_ahead_of_expiry(
    fake: FakeZaloAPI, http: httpx.AsyncClient
) -> None:
    stack = Stack(fake, http, expires_in=timedelta(minutes=30))  # inside the 1 h margin

    await stack.adapter.send(out("chào"))

    assert len(fake.refresh_calls) == 1
    assert fake.refresh_calls[0].form == {
        "refresh_token": stack.initial.refresh_token,
        "app_id": fake.app_id,
        "grant_type": "refresh_token",
    }
    assert fake.refresh_calls[0].headers["secret_key"] == fake.secret_key
    assert [c.answer["error"] for c in fake.message_calls] == [0]  # no -216 round trip


async def test_rejected_fresh_token_is_an_error_not_a_loop(stack: Stack, fake: FakeZaloAPI) -> None:
    fake.reject_all_tokens = True

    with pytest.raises(ZaloAuthError):
        await stack.client.send_text(USER, "chào")
    assert len(fake.refresh_calls) == 1
    assert len(fake.message_calls) == 2

    with pytest.raises(TemporarySendError) as caught:
        await stack.adapter.send(out("chào"))
    assert caught.value.reason.startswith("zalo_auth")


async def test_refused_refresh_names_no_secret(fake: FakeZaloAPI, http: httpx.AsyncClient) -> None:
    spent = TokenPair("access-old", "refresh-spent", NOW - timedelta(minutes=1))
    stack = Stack(fake, http, pair=spent)

    with pytest.raises(ZaloAuthError) as caught:
        await stack.tokens.access_token()

    message = str(caught.value)
    assert "-14014" in message
    assert caught.value.retryable is False
    for secret in ("refresh-spent", "access-old", fake.secret_key):
        assert secret not in message
        assert secret not in repr(spent)
    assert stack.store.saves == []  # nothing overwritten on failure


async def test_refresh_survives_cancellation_of_the_caller(stack: Stack, fake: FakeZaloAPI) -> None:
    fake.refresh_delay = 0.1
    task = asyncio.create_task(stack.tokens.refresh(stack.initial.access_token))
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.2)

    # Zalo rotated the pair, so it had to be saved even though nobody awaited the result.
    assert len(stack.store.saves) == 1
    assert (await stack.store.load()) == stack.store.saves[0][0]


# --- error classification ----------------------------------------------------------------


async def test_not_a_follower_is_permanent_and_unreachable(stack: Stack, fake: FakeZaloAPI) -> None:
    fake.fail_user(USER, -213, "User has not followed OA")

    with pytest.raises(PermanentSendError) as caught:
        await stack.adapter.send(out("chào"))

    assert caught.value.reason == "zalo:-213 User has not followed OA"
    assert caught.value.unreachable is True


async def test_invalid_parameter_is_permanent_but_user_reachable(
    stack: Stack, fake: FakeZaloAPI
) -> None:
    fake.fail_user(USER, -201, "message is invalid!")

    with pytest.raises(PermanentSendError) as caught:
        await stack.adapter.send(out("chào"))

    assert caught.value.reason == "zalo:-201 message is invalid!"
    assert caught.value.unreachable is False


async def test_rate_limit_is_temporary_with_retry_after(stack: Stack, fake: FakeZaloAPI) -> None:
    fake.fail_user(USER, -32, "Your application reached limit call api")

    with pytest.raises(TemporarySendError) as caught:
        await stack.adapter.send(out("chào"))

    assert caught.value.retry_after == 60.0


async def test_http_500_is_temporary(stack: Stack, fake: FakeZaloAPI) -> None:
    fake.fail_http(500)

    with pytest.raises(TemporarySendError) as caught:
        await stack.adapter.send(out("chào"))

    assert caught.value.reason == "zalo HTTP 500"
    await stack.adapter.send(out("chào lại"))
    assert [body["message"]["text"] for body in fake.sent] == ["chào lại"]


async def test_network_error_is_temporary(fake: FakeZaloAPI, http: httpx.AsyncClient) -> None:
    stack = Stack(fake, http)
    stack.client = ZaloOAClient(http, "http://127.0.0.1:9", stack.tokens)  # nothing listens

    with pytest.raises(ZaloTemporaryError) as caught:
        await stack.client.send_text(USER, "chào")
    assert caught.value.reason == "zalo network error ConnectError"


async def test_permanent_error_classes_are_exposed(stack: Stack, fake: FakeZaloAPI) -> None:
    fake.fail_user(USER, -230, "User has not interacted with the OA in the past 7 days")
    with pytest.raises(ZaloPermanentError) as caught:
        await stack.client.send_text(USER, "chào")
    assert caught.value.code == -230 and caught.value.unreachable


def test_split_text_prefers_line_breaks() -> None:
    assert split_text("ngắn") == ["ngắn"]
    parts = split_text("a" * 10 + "\n" + "b" * 10, limit=12)
    assert parts == ["a" * 10, "b" * 10]
    assert split_text("x" * 25, limit=10) == ["x" * 10, "x" * 10, "x" * 5]


# --- webhook -----------------------------------------------------------------------------

APP_ID = "3608465248940903967"
OA_SECRET = "oa-secret-key-for-tests"
NOW_MS = 1_777_885_200_000
VERIFICATION_HTML = '<meta property="zalo-platform-site-verification" content="ABC123" />'


def event(name: str = "user_send_text", **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "app_id": APP_ID,
        "user_id_by_app": "552177279717587730",
        "event_name": name,
        "sender": {"id": USER},
        "recipient": {"id": "388613280878808645"},
        "timestamp": str(NOW_MS - 1000),
    }
    base.update(fields)
    return base


def signed(
    body: dict[str, Any], *, app_id: str = APP_ID, secret: str = OA_SECRET
) -> tuple[bytes, dict[str, str]]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    mac = hashlib.sha256(
        app_id.encode() + raw + str(body["timestamp"]).encode() + secret.encode()
    ).hexdigest()
    return raw, {"X-ZEvent-Signature": f"mac={mac}", "Content-Type": "application/json"}


class Receiver:
    def __init__(self) -> None:
        self.inbounds: list[Inbound] = []
        self.unfollows: list[Unfollow] = []
        self.fail = False

    async def receive(self, inbound: Inbound) -> bool:
        if self.fail:
            raise RuntimeError("database is down")
        self.inbounds.append(inbound)
        return True

    async def on_unfollow(self, unfollow: Unfollow) -> None:
        self.unfollows.append(unfollow)


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def webhook(receiver: Receiver) -> AsyncIterator[httpx.AsyncClient]:
    routes = make_zalo_routes(
        receiver.receive,
        app_id=APP_ID,
        oa_secret_key=OA_SECRET,
        on_unfollow=receiver.on_unfollow,
        verification_file_name="zalo_verifierABC123.html",
        verification_file_content=VERIFICATION_HTML,
        clock_ms=lambda: NOW_MS,
    )
    transport = httpx.ASGITransport(app=Starlette(routes=routes))
    async with httpx.AsyncClient(transport=transport, base_url="https://bot.vav.vn") as client:
        yield client


async def post(client: httpx.AsyncClient, raw: bytes, headers: dict[str, str]) -> httpx.Response:
    return await client.post("/zalo/webhook", content=raw, headers=headers)


async def test_valid_text_event_reaches_receive(
    webhook: httpx.AsyncClient, receiver: Receiver
) -> None:
    body = event(message={"msg_id": "96d3cdf3af150460909", "text": "Cho mình hỏi giá tranh"})
    response = await post(webhook, *signed(body))

    assert response.status_code == 200
    assert receiver.inbounds == [
        Inbound(
            channel="zalo",
            chat_id=USER,
            user_id=USER,
            dedupe_key="96d3cdf3af150460909",
            text="Cho mình hỏi giá tranh",
        )
    ]


async def test_command_text_is_parsed(webhook: httpx.AsyncClient, receiver: Receiver) -> None:
    body = event(message={"msg_id": "m2", "text": "/mydata xuất"})
    await post(webhook, *signed(body))

    assert receiver.inbounds[0].command == "mydata"
    assert receiver.inbounds[0].args == "xuất"


async def test_payload_marker_text_becomes_payload(
    webhook: httpx.AsyncClient, receiver: Receiver
) -> None:
    body = event(message={"msg_id": "m3", "text": PAYLOAD_MARKER + "order:start"})
    await post(webhook, *signed(body))

    inbound = receiver.inbounds[0]
    assert inbound.payload == "order:start"
    assert inbound.text == ""
    assert inbound.command is None


@pytest.mark.parametrize(
    ("mutate", "status"),
    [
        pytest.param(
            lambda raw, h: (raw, {**h, "X-ZEvent-Signature": "mac=" + "0" * 64}),
            403,
            id="forged-signature",
        ),
        pytest.param(
            lambda raw, h: (raw.replace(b"gi\xc3\xa1", b"gia"), h), 403, id="tampered-body"
        ),
        pytest.param(
            lambda raw, h: (raw, {"Content-Type": "application/json"}), 403, id="missing-signature"
        ),
        pytest.param(lambda raw, h: (b'{"app_id": ', h), 400, id="malformed-json"),
    ],
)
async def test_refused_deliveries_do_not_reach_receive(
    webhook: httpx.AsyncClient, receiver: Receiver, mutate: Any, status: int
) -> None:
    raw, headers = signed(event(message={"msg_id": "m4", "text": "giá bao nhiêu"}))
    raw, headers = mutate(raw, headers)

    response = await post(webhook, raw, headers)

    assert response.status_code == status
    assert receiver.inbounds == []


async def test_wrong_app_id_is_refused(webhook: httpx.AsyncClient, receiver: Receiver) -> None:
    other = "1111111111111111111"
    body = event(app_id=other, message={"msg_id": "m5", "text": "x"})
    response = await post(webhook, *signed(body, app_id=other))

    assert response.status_code == 403
    assert response.text == "wrong_app"
    assert receiver.inbounds == []


@pytest.mark.parametrize("offset_ms", [-301_000, 301_000], ids=["old", "future"])
async def test_timestamp_outside_window_is_refused(
    webhook: httpx.AsyncClient, receiver: Receiver, offset_ms: int
) -> None:
    body = event(timestamp=str(NOW_MS + offset_ms), message={"msg_id": "m6", "text": "x"})
    response = await post(webhook, *signed(body))

    assert response.status_code == 403
    assert response.text == "stale"
    assert receiver.inbounds == []


async def test_oversized_body_is_refused(webhook: httpx.AsyncClient, receiver: Receiver) -> None:
    body = event(message={"msg_id": "m7", "text": "x" * (65 * 1024)})
    response = await post(webhook, *signed(body))

    assert response.status_code == 413
    assert receiver.inbounds == []


async def test_same_event_twice_keeps_its_dedupe_key(
    webhook: httpx.AsyncClient, receiver: Receiver
) -> None:
    raw, headers = signed(event(message={"msg_id": "m8", "text": "đặt tranh"}))
    await post(webhook, raw, headers)
    await post(webhook, raw, headers)

    assert [i.dedupe_key for i in receiver.inbounds] == ["m8", "m8"]


async def test_events_without_msg_id_get_a_stable_hash_key(
    webhook: httpx.AsyncClient, receiver: Receiver
) -> None:
    body = event("follow", follower={"id": USER}, oa_id="388613280878808645", source="oa_profile")
    del body["sender"]
    raw, headers = signed(body)
    await post(webhook, raw, headers)
    await post(webhook, raw, headers)

    first, second = receiver.inbounds
    assert first.command == "start"
    assert first.user_id == USER
    assert first.dedupe_key == second.dedupe_key
    assert len(first.dedupe_key) == 64


async def test_submit_info_becomes_contact(webhook: httpx.AsyncClient, receiver: Receiver) -> None:
    body = event(
        "user_submit_info",
        info={
            "name": "Nguyễn Thị Lan",
            "phone": "84912345678",
            "address": "12 Hàng Gai",
            "ward": "Hàng Trống",
            "district": "Hoàn Kiếm",
            "city": "Hà Nội",
        },
    )
    await post(webhook, *signed(body))

    assert receiver.inbounds[0].contact == Contact(
        phone="84912345678",
        name="Nguyễn Thị Lan",
        address="12 Hàng Gai, Hàng Trống, Hoàn Kiếm, Hà Nội",
        user_id=USER,
    )


def test_submit_info_with_nested_full_address() -> None:
    inbound = event_to_inbound(
        event(
            "user_submit_info",
            info={
                "name": "Trần Minh",
                "phone": "84987654321",
                "full_address": {
                    "user_address": "5 Lý Thái Tổ",
                    "user_ward": "Tràng Tiền",
                    "user_city": "Hà Nội",
                },
            },
        )
    )
    assert isinstance(inbound, Inbound) and inbound.contact is not None
    assert inbound.contact.address == "5 Lý Thái Tổ, Tràng Tiền, Hà Nội"


@pytest.mark.parametrize(
    ("name", "attachment", "expected"),
    [
        (
            "user_send_image",
            {"type": "image", "payload": {"thumbnail": "t", "url": "https://z/img.jpg"}},
            Attachment("photo", "https://z/img.jpg"),
        ),
        (
            "user_send_file",
            {"type": "file", "payload": {"url": "https://z/f.pdf", "name": "hoadon.pdf"}},
            Attachment("document", "https://z/f.pdf", "hoadon.pdf"),
        ),
        (
            "user_send_sticker",
            {"type": "sticker", "payload": {"id": "bfe4", "url": "https://z/s.png"}},
            Attachment("sticker", "https://z/s.png"),
        ),
        (
            "user_send_location",
            {
                "type": "location",
                "payload": {"coordinates": {"latitude": 21.03, "longitude": 105.85}},
            },
            Attachment("location", "21.03,105.85"),
        ),
        (
            "user_send_link",
            {"type": "link", "payload": {"url": "https://vav.vn/t/1", "title": "Tranh sơn mài"}},
            Attachment("link", "https://vav.vn/t/1", "Tranh sơn mài"),
        ),
    ],
)
def test_media_events_become_attachments(
    name: str, attachment: dict[str, Any], expected: Attachment
) -> None:
    inbound = event_to_inbound(
        event(name, message={"msg_id": "m9", "text": "xem này", "attachments": [attachment]})
    )
    assert isinstance(inbound, Inbound)
    assert inbound.attachments == (expected,)
    assert inbound.text == "xem này"


@pytest.mark.parametrize(
    "name", ["oa_send_text", "oa_send_image", "user_received_message", "user_seen_message"]
)
async def test_echoes_and_receipts_are_acknowledged_but_ignored(
    webhook: httpx.AsyncClient, receiver: Receiver, name: str
) -> None:
    response = await post(webhook, *signed(event(name, message={"msg_id": "m10", "text": "x"})))

    assert response.status_code == 200
    assert receiver.inbounds == []


async def test_unknown_event_is_logged_by_name_only(
    webhook: httpx.AsyncClient, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="bot.zalo.webhook")
    body = event("add_user_to_tag", tag={"user_ids": [USER], "name": "VIP 0912345678"})

    response = await post(webhook, *signed(body))

    assert response.status_code == 200
    assert receiver.inbounds == []
    assert "add_user_to_tag" in caplog.text
    assert "0912345678" not in caplog.text and USER not in caplog.text


async def test_unfollow_goes_to_on_unfollow(webhook: httpx.AsyncClient, receiver: Receiver) -> None:
    body = event("unfollow", follower={"id": USER})
    await post(webhook, *signed(body))

    assert receiver.inbounds == []
    assert [u.user_id for u in receiver.unfollows] == [USER]


async def test_storage_failure_answers_500_so_zalo_retries(
    webhook: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.fail = True
    response = await post(webhook, *signed(event(message={"msg_id": "m11", "text": "x"})))

    assert response.status_code == 500


async def test_domain_verification_file_is_served(webhook: httpx.AsyncClient) -> None:
    response = await webhook.get("/zalo_verifierABC123.html")

    assert response.status_code == 200
    assert "ABC123" in response.text
    assert response.headers["content-type"].startswith("text/html")


def test_verify_signature_accepts_bare_hex_and_reports_reasons() -> None:
    raw, headers = signed(event(message={"msg_id": "m12", "text": "x"}))
    bare = headers["X-ZEvent-Signature"].removeprefix("mac=")

    ok = verify_signature(raw, bare.upper(), APP_ID, OA_SECRET, NOW_MS)
    assert ok.ok and ok.event is not None
    assert verify_signature(raw, bare, APP_ID, "other-secret", NOW_MS).reason == "bad_signature"
    assert verify_signature(raw, None, APP_ID, OA_SECRET, NOW_MS).reason == "missing_signature"
    assert verify_signature(b"[]", bare, APP_ID, OA_SECRET, NOW_MS).reason == "bad_json"
    assert verify_signature(raw, bare, APP_ID, OA_SECRET, NOW_MS + 10 * 60_000).reason == "stale"


def test_message_path_matches_documented_endpoint() -> None:
    assert MESSAGE_PATH == "/v3.0/oa/message/cs"

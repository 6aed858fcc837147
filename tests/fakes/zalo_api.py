"""An in-process fake of the Zalo OA Open API and the OA OAuth token endpoint.

A real HTTP server (Starlette on uvicorn, 127.0.0.1, free port) in the test's event loop, so
the real httpx client is exercised end to end::

    async with FakeZaloAPI() as zalo:
        access, refresh = zalo.issue_pair()
        client = ZaloOAClient(http, zalo.base_url, tokens)   # OAuth: zalo.oauth_base_url
        ...
        assert zalo.sent[0]["message"] == {"text": "Xin chào"}

Rules enforced on purpose, as Zalo does: answers are HTTP 200 with `{"error", "message"}`;
the `access_token` header must hold a live token (-216 otherwise); refresh tokens are
single-use (reuse -> -14014); text <= 2000 chars, <= 5 buttons with titles <= 100 chars.
Failure injection: `expire_access_tokens()`, `reject_all_tokens`, `fail_user()`,
`fail_http()`, `upload_error`, `refresh_delay`. Every request is recorded in `calls`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import ServedApp, UploadedFile, parse_multipart

JSON = dict[str, Any]

MESSAGE_PATH = "/v3.0/oa/message/cs"
UPLOAD_FILE_PATH = "/v2.0/oa/upload/file"
UPLOAD_IMAGE_PATH = "/v2.0/oa/upload/image"
USER_DETAIL_PATH = "/v3.0/oa/user/detail"
TOKEN_PATH = "/v4/oa/access_token"
ZNS_PATH = "/message/template"


@dataclass
class Call:
    method: str
    path: str
    headers: dict[str, str]
    json: Any = None
    form: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)
    files: dict[str, UploadedFile] = field(default_factory=dict)
    answer: Any = None  # the JSON the fake answered (or None for injected HTTP failures)


class FakeZaloAPI:
    def __init__(
        self,
        app_id: str = "1000000000000000001",
        secret_key: str = "fake-app-secret",
        *,
        access_ttl: int = 90000,
    ) -> None:
        self.app_id = app_id
        self.secret_key = secret_key
        self.access_ttl = access_ttl
        self.calls: list[Call] = []
        self.sent: list[JSON] = []  # bodies of accepted /message/cs calls
        self.zns_sent: list[JSON] = []  # bodies of accepted ZNS /message/template calls
        self.zns_templates: set[str] = set()  # approved template ids (others: -124)
        self.uploads: list[UploadedFile] = []
        self.users: dict[str, str] = {}  # user_id -> display_name for /user/detail
        self.live_access_tokens: set[str] = set()
        self.live_refresh_tokens: set[str] = set()
        self.user_errors: dict[str, tuple[int, str]] = {}
        self.upload_error: tuple[int, str] | None = None
        self.reject_all_tokens = False  # every OpenAPI call answers -216
        self.refresh_delay = 0.0  # seconds the token endpoint waits (widens races)
        self._http_failures: list[int] = []
        self._ids = itertools.count(1)
        self._server = ServedApp(
            Starlette(
                routes=[
                    Route(MESSAGE_PATH, self._message, methods=["POST"]),
                    Route(UPLOAD_FILE_PATH, self._upload_file, methods=["POST"]),
                    Route(UPLOAD_IMAGE_PATH, self._upload_image, methods=["POST"]),
                    Route(USER_DETAIL_PATH, self._user_detail, methods=["GET"]),
                    Route(TOKEN_PATH, self._token, methods=["POST"]),
                    Route(ZNS_PATH, self._zns, methods=["POST"]),
                ]
            ),
            "FakeZaloAPI",
        )

    async def __aenter__(self) -> FakeZaloAPI:
        await self._server.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self._server.stop()

    @property
    def base_url(self) -> str:
        """ZALO_API_BASE_URL: the client appends /v3.0/oa/..."""
        return self._server.origin

    @property
    def oauth_base_url(self) -> str:
        """ZALO_OAUTH_BASE_URL: the token manager appends /v4/oa/access_token."""
        return self._server.origin

    # --- state and failure injection --------------------------------------------------

    def issue_pair(self) -> tuple[str, str]:
        """A fresh live (access_token, refresh_token) pair, as the OAuth flow would give."""
        n = next(self._ids)
        access, refresh = f"access-{n}", f"refresh-{n}"
        self.live_access_tokens.add(access)
        self.live_refresh_tokens.add(refresh)
        return access, refresh

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is now expired: the next call gets -216."""
        self.live_access_tokens.clear()

    def fail_user(self, user_id: str, code: int, message: str) -> None:
        """Messages to `user_id` are refused with `code` (e.g. -213 not a follower)."""
        self.user_errors[user_id] = (code, message)

    def fail_http(self, status: int = 500, times: int = 1) -> None:
        """The next `times` OpenAPI/OAuth requests answer HTTP `status`."""
        self._http_failures += [status] * times

    def calls_to(self, path: str) -> list[Call]:
        return [call for call in self.calls if call.path == path]

    @property
    def refresh_calls(self) -> list[Call]:
        return self.calls_to(TOKEN_PATH)

    @property
    def message_calls(self) -> list[Call]:
        return self.calls_to(MESSAGE_PATH)

    # --- endpoints ----------------------------------------------------------------------

    async def _record(
        self, request: Request, *, needs_token: bool = True
    ) -> tuple[Call, Response | None]:
        """Record the request. Returns the call and, when the fake refuses it (an injected HTTP
        failure, or an access token that is not live where one `needs_token`), the answer."""
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        call = Call(
            method=request.method,
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            query=dict(request.query_params),
        )
        if content_type.startswith("application/json"):
            call.json = json.loads(body)
        elif content_type.startswith("application/x-www-form-urlencoded"):
            call.form = dict(parse_qsl(body.decode()))
        elif content_type.startswith("multipart/form-data"):
            call.form, call.files = parse_multipart(body, content_type) or ({}, {})
        self.calls.append(call)
        if self._http_failures:
            status = self._http_failures.pop(0)
            return call, Response("injected failure", status_code=status)
        return call, self._token_error(call) if needs_token else None

    def _answer(self, call: Call, answer: JSON) -> JSONResponse:
        call.answer = answer
        return JSONResponse(answer)

    def _token_error(self, call: Call) -> JSONResponse | None:
        token = call.headers.get("access_token", "")
        if self.reject_all_tokens or token not in self.live_access_tokens:
            return self._answer(call, {"error": -216, "message": "Access token is invalid"})
        return None

    async def _message(self, request: Request) -> Response:
        call, refused = await self._record(request)
        if refused is not None:
            return refused
        body = call.json if isinstance(call.json, dict) else {}
        user_id = str((body.get("recipient") or {}).get("user_id") or "")
        message = body.get("message")
        if not user_id:
            return self._answer(call, {"error": -201, "message": "user_id is invalid!"})
        if not isinstance(message, dict) or not (message.get("text") or message.get("attachment")):
            return self._answer(call, {"error": -201, "message": "message is invalid!"})
        if len(message.get("text") or "") > 2000:
            return self._answer(call, {"error": -201, "message": "text is invalid!"})
        attachment = message.get("attachment") or {}
        buttons = (attachment.get("payload") or {}).get("buttons") or []
        if len(buttons) > 5 or any(len(b.get("title", "")) > 100 for b in buttons):
            return self._answer(call, {"error": -201, "message": "buttons is invalid!"})
        if user_id in self.user_errors:
            code, text = self.user_errors[user_id]
            return self._answer(call, {"error": code, "message": text})
        message_id = f"msg{next(self._ids):06d}"
        self.sent.append(body)
        return self._answer(
            call,
            {
                "error": 0,
                "message": "Success",
                "data": {"message_id": message_id, "user_id": user_id},
            },
        )

    async def _zns(self, request: Request) -> Response:
        """ZNS: a template message to a phone number (84…), with the OA's access token."""
        call, refused = await self._record(request)
        if refused is not None:
            return refused
        body = call.json if isinstance(call.json, dict) else {}
        phone = str(body.get("phone") or "")
        if not (phone.isdigit() and phone.startswith("84") and len(phone) in (11, 12)):
            return self._answer(call, {"error": -108, "message": "Phone number is invalid"})
        if str(body.get("template_id")) not in self.zns_templates:
            return self._answer(call, {"error": -124, "message": "Template is invalid"})
        if not isinstance(body.get("template_data"), dict):
            return self._answer(call, {"error": -124, "message": "Template data is invalid"})
        self.zns_sent.append(body)
        msg_id = f"zns{next(self._ids):06d}"
        return self._answer(
            call, {"error": 0, "message": "Success", "data": {"msg_id": msg_id, "quota": {}}}
        )

    async def _upload_file(self, request: Request) -> Response:
        call, refused = await self._record(request)
        if refused is not None:
            return refused
        if self.upload_error is not None:
            code, text = self.upload_error
            return self._answer(call, {"error": code, "message": text})
        upload = call.files.get("file")
        if upload is None:
            return self._answer(call, {"error": -201, "message": "file is invalid!"})
        self.uploads.append(upload)
        token = f"filetoken{next(self._ids)}"
        return self._answer(call, {"error": 0, "message": "Success", "data": {"token": token}})

    async def _upload_image(self, request: Request) -> Response:
        call, refused = await self._record(request)
        if refused is not None:
            return refused
        upload = call.files.get("file")
        if upload is None:
            return self._answer(call, {"error": -201, "message": "file is invalid!"})
        self.uploads.append(upload)
        attachment = f"image{next(self._ids)}"
        return self._answer(
            call, {"error": 0, "message": "Success", "data": {"attachment_id": attachment}}
        )

    async def _user_detail(self, request: Request) -> Response:
        call, refused = await self._record(request)
        if refused is not None:
            return refused
        try:
            user_id = str(json.loads(call.query.get("data", "{}")).get("user_id", ""))
        except ValueError:
            return self._answer(call, {"error": -201, "message": "data is invalid!"})
        if user_id not in self.users:
            return self._answer(call, {"error": -213, "message": "User has not followed OA"})
        data = {"user_id": user_id, "display_name": self.users[user_id], "user_is_follower": True}
        return self._answer(call, {"error": 0, "message": "Success", "data": data})

    async def _token(self, request: Request) -> Response:
        call, refused = await self._record(request, needs_token=False)
        if refused is not None:
            return refused
        if self.refresh_delay:
            await asyncio.sleep(self.refresh_delay)
        form = call.form
        if call.headers.get("secret_key") != self.secret_key:
            return self._answer(call, _oauth_error(-14001, "Invalid secret key"))
        if form.get("app_id") != self.app_id:
            return self._answer(call, _oauth_error(-14002, "Invalid appId"))
        if form.get("grant_type") != "refresh_token":
            return self._answer(call, _oauth_error(-14004, "Invalid grant type"))
        old = form.get("refresh_token", "")
        if old not in self.live_refresh_tokens:
            return self._answer(call, _oauth_error(-14014, "Invalid refresh token"))
        self.live_refresh_tokens.discard(old)  # single use
        access, refresh = self.issue_pair()
        return self._answer(
            call,
            {"access_token": access, "refresh_token": refresh, "expires_in": str(self.access_ttl)},
        )


def _oauth_error(code: int, name: str) -> JSON:
    return {
        "error": code,
        "error_name": name,
        "error_reason": "",
        "ref_doc": "https://developers.zalo.me/",
        "error_description": name,
    }

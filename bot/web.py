"""The webhook server: one Starlette app on uvicorn for every channel's endpoint, hardened
against slow, huge, deep and numerous requests.

What uvicorn offers is used: `timeout_keep_alive` (idle keep-alive connections),
`h11_max_incomplete_event_size` (request line + headers), `backlog`. Its `limit_concurrency`
is not: it answers 503 only once a request is complete, while the sockets themselves pile up
(idle connections exhausted the file descriptors in a probe). What it lacks is added here:

- `LimitedH11Protocol`: a connection cap — when full, the oldest connection that is not in
  the middle of a request (idle, or still sending its headers) makes room, so a flood of
  idle sockets cannot lock out Telegram, Zalo or `/healthz`; and a header timeout — a
  request's headers must be complete within `header_timeout` seconds of the connection (or of
  the previous response), which ends slowloris connections.
- `RequestLimits` (ASGI middleware): the body must arrive within `body_timeout` (else 408)
  and stay under `max_body_bytes` (else 413); it is read once, up front, and replayed to
  the app, so no route ever waits on a slow client.
- `read_json` / `parse_json_object`: the one guard every webhook uses — secret header,
  size, JSON that is an object and at most `MAX_JSON_DEPTH` deep (deeper → 400, never a
  RecursionError).

Logging is rate-limited in `bot.logs`, so a flood of bad requests cannot fill the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import resource
import secrets
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

TELEGRAM_PATH = "/telegram/webhook"
TELEGRAM_SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_TELEGRAM_BODY = 1024 * 1024
MAX_JSON_DEPTH = 32  # platform events nest about 5 levels
FILES_KEPT_FREE = 64  # descriptors the connection cap leaves for everything else


@dataclass(frozen=True)
class WebLimits:
    max_connections: int = 256
    header_timeout: float = 10.0
    body_timeout: float = 10.0
    keep_alive_timeout: float = 5.0
    max_body_bytes: int = 1024 * 1024
    max_header_bytes: int = 16 * 1024


# ---- the one request guard of every webhook ------------------------------------------------

_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in `raw` (strings ignored), without parsing."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    depth = deepest = 0
    for byte in brackets:
        depth += 1 if byte in b"[{" else -1
        deepest = max(deepest, depth)
    return deepest


def parse_json_object(raw: bytes, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any] | None:
    """A JSON object from a request body; None for anything else: not JSON, not an object,
    or nested deeper than `max_depth` (which would exhaust the parser's recursion)."""
    if json_depth(raw) > max_depth:
        return None
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    return data if isinstance(data, dict) else None


def secret_matches(request: Request, header: str, secret: str) -> bool:
    return secrets.compare_digest(request.headers.get(header, "").encode(), secret.encode())


async def read_body(request: Request, max_bytes: int) -> bytes | Response:
    """The body (already bounded in time and size by `RequestLimits`), or the refusal."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        return PlainTextResponse("payload too large", status_code=413)
    try:
        raw = await request.body()
    except ClientDisconnect:
        return PlainTextResponse("incomplete", status_code=400)
    if len(raw) > max_bytes:
        return PlainTextResponse("payload too large", status_code=413)
    return raw


async def read_json(
    request: Request, max_bytes: int, secret_header: str, secret: str
) -> dict[str, Any] | Response:
    """Secret header (403), size (413), then a JSON object (400): the parsed body or the
    refusal to return."""
    if not secret_matches(request, secret_header, secret):
        return PlainTextResponse("forbidden", status_code=403)
    raw = await read_body(request, max_bytes)
    if isinstance(raw, Response):
        return raw
    data = parse_json_object(raw)
    if data is None:
        return PlainTextResponse("bad json", status_code=400)
    return data


# ---- routes --------------------------------------------------------------------------------


async def healthz(_request: Request) -> Response:
    return PlainTextResponse("ok")


def telegram_route(
    secret: str,
    handle: Callable[[dict[str, object]], Awaitable[None]],
    overloaded: Callable[[], bool] = lambda: False,
) -> Route:
    """POST /telegram/webhook: the secret header must match, else 403 and nothing stored.

    The update is stored in the inbox before the 200 answer; a failure to store answers 500,
    so Telegram delivers it again — and so does 503, answered before storing anything while
    the bot is `overloaded()` (backpressure).
    """

    async def endpoint(request: Request) -> Response:
        if overloaded():
            return PlainTextResponse("busy, retry later", status_code=503)
        data = await read_json(request, MAX_TELEGRAM_BODY, TELEGRAM_SECRET_HEADER, secret)
        if isinstance(data, Response):
            return data
        await handle(data)
        return JSONResponse({"ok": True})

    return Route(TELEGRAM_PATH, endpoint, methods=["POST"])


def build_app(routes: list[BaseRoute], limits: WebLimits | None = None) -> ASGIApp:
    """The server's app: `routes`, and a bare `/healthz` unless they bring their own (the
    running bot's, `bot.observability`, looks at the database)."""
    limits = limits or WebLimits()
    paths = {getattr(route, "path", None) for route in routes}
    defaults = [] if "/healthz" in paths else [Route("/healthz", healthz)]
    app = Starlette(routes=[*defaults, *routes])
    return RequestLimits(app, limits.max_body_bytes, limits.body_timeout)


# ---- body limits (ASGI middleware) ---------------------------------------------------------


class RequestLimits:
    """Reads each request body before the app sees it: within `body_timeout` seconds (408)
    and `max_body_bytes` (413); both answers close the connection."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, body_timeout: float) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout = body_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await _refuse(send, 413, "payload too large")
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.body_timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client left: nobody to answer
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_body_bytes:
                        await _refuse(send, 413, "payload too large")
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _refuse(send, 408, "request timeout")
            return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return dict(await receive())  # after the body: only http.disconnect

        await self.app(scope, replay, send)


async def _refuse(send: Send, status: int, text: str) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


# ---- connection cap and header timeout (uvicorn protocol) ----------------------------------


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a connection cap and a header timeout (see module doc)."""

    limits = WebLimits()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.connected_at = self.loop.time()
        self._header_timer: asyncio.TimerHandle | None = None
        if len(self.connections) > self.limits.max_connections and not self._make_room():
            self.transport.close()  # every slot is serving a request: refuse this one
            return
        self._await_headers()

    def _make_room(self) -> bool:
        """Close the oldest connection that is not serving a request; False if none is."""
        idle = [
            conn
            for conn in self.connections
            if conn is not self
            and isinstance(conn, LimitedH11Protocol)
            and not conn.transport.is_closing()
            and conn.between_requests
        ]
        if not idle:
            return False
        oldest = min(idle, key=lambda conn: conn.connected_at)
        oldest.transport.close()
        self.connections.discard(oldest)  # its connection_lost follows; the slot is free now
        return True

    @property
    def between_requests(self) -> bool:
        return self.cycle is None or self.cycle.response_complete

    def _await_headers(self) -> None:
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_late)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.between_requests and not self.transport.is_closing():
            self.transport.close()

    def handle_events(self) -> None:
        super().handle_events()
        if not self.between_requests:  # the headers of a request are complete
            self._cancel_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and self.between_requests:
            self._await_headers()  # the next request's headers get the same time

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)


def _within_file_limit(limits: WebLimits) -> WebLimits:
    """Raise the soft open-files limit to the hard one, and keep the connection cap below
    it (with room for the database, the platform clients and logs): running out of file
    descriptors is what made accept() fail in a loop and flood the log."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            target = hard if hard != resource.RLIM_INFINITY else max(soft, 65536)
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    room = soft - FILES_KEPT_FREE
    if limits.max_connections > room:
        log.warning(
            "WEBHOOK_MAX_CONNECTIONS lowered from %s to %s (open-files limit %s)",
            limits.max_connections,
            max(4, room),
            soft,
        )
        limits = replace(limits, max_connections=max(4, room))
    return limits


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the bot's own shutdown handles SIGINT/SIGTERM for every component


async def serve(
    app: ASGIApp, host: str, port: int, stop: asyncio.Event, limits: WebLimits | None = None
) -> None:
    """Serve until `stop` is set; in-flight requests finish before it returns."""
    limits = _within_file_limit(limits or WebLimits())
    protocol = type("Protocol", (LimitedH11Protocol,), {"limits": limits})
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="warning",
        lifespan="off",
        http=protocol,
        timeout_keep_alive=max(1, round(limits.keep_alive_timeout)),
        h11_max_incomplete_event_size=limits.max_header_bytes,
        backlog=min(2048, limits.max_connections * 2),
        timeout_graceful_shutdown=10,
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task

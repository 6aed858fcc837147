"""The webhook server's limits, over real HTTP on 127.0.0.1 (uvicorn + Starlette as in
production, with small limits so the test is quick): deep JSON → 400, big bodies → 413, slow
bodies → 408 and closed, slow headers → closed, a connection cap that idle sockets cannot
exhaust, and a rate limit on repeated log lines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.logs import RateLimit
from bot.web import (
    TELEGRAM_PATH,
    TELEGRAM_SECRET_HEADER,
    WebLimits,
    build_app,
    parse_json_object,
    serve,
    telegram_route,
)
from tests.live_bot import WAIT, free_port, wait_until

SECRET = "test-secret"
LIMITS = WebLimits(
    max_connections=8, header_timeout=0.5, body_timeout=0.5, max_body_bytes=64 * 1024
)


class Server:
    def __init__(self, port: int) -> None:
        self.port = port
        self.handled: list[dict[str, object]] = []
        self.release = asyncio.Event()  # requests to /hold wait for it
        self.holding = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    running = Server(free_port())

    async def handle(update: dict[str, object]) -> None:
        running.handled.append(update)

    async def hold(_request: Request) -> Response:
        running.holding += 1
        await running.release.wait()
        return PlainTextResponse("released")

    app = build_app([telegram_route(SECRET, handle), Route("/hold", hold)], LIMITS)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(app, "127.0.0.1", running.port, stop, LIMITS))

    async def up() -> bool:
        try:
            async with httpx.AsyncClient() as http:
                return (await http.get(running.url + "/healthz")).status_code == 200
        except httpx.TransportError:
            return False

    await wait_until(up, "the server to listen")
    try:
        yield running
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


async def post(server: Server, content: bytes, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=WAIT) as http:
        return await http.post(
            server.url + TELEGRAM_PATH,
            content=content,
            headers={TELEGRAM_SECRET_HEADER: SECRET, **headers},
        )


async def closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection (bounded by WAIT)."""
    return await asyncio.wait_for(reader.read(), WAIT)


async def test_deeply_nested_json_is_refused_with_400(server: Server) -> None:
    nested = b'{"update_id": 1, "x": ' + b"[" * 30_000 + b"]" * 30_000 + b"}"  # 60 KB
    response = await post(server, nested)
    assert (response.status_code, response.text) == (400, "bad json")
    assert server.handled == []
    # An ordinary update still works, and brackets inside strings do not count as depth.
    update = {"update_id": 2, "message": {"text": "[[[[" * 100}}
    ok = await post(server, json.dumps(update).encode())
    assert ok.status_code == 200 and server.handled == [update]
    assert parse_json_object(b'{"a": ' + b"[" * 33 + b"]" * 33 + b"}") is None


async def test_oversized_body_is_refused_with_413(server: Server) -> None:
    big = json.dumps({"update_id": 1, "x": "a" * (LIMITS.max_body_bytes + 1)}).encode()
    declared = await post(server, big)
    assert declared.status_code == 413

    # No Content-Length (chunked): counted while reading, refused once over the limit.
    reader, writer = await server.connect()
    writer.write(
        f"POST {TELEGRAM_PATH} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        f"{TELEGRAM_SECRET_HEADER}: {SECRET}\r\n\r\n".encode()
    )
    writer.write((b"2000\r\n" + b" " * 8192 + b"\r\n") * 9 + b"0\r\n\r\n")  # 72 KB
    await writer.drain()
    assert (await closed(reader)).startswith(b"HTTP/1.1 413")
    writer.close()
    assert server.handled == []


async def test_a_slow_body_gets_408_and_the_connection_is_closed(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(
        f"POST {TELEGRAM_PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
        f'{TELEGRAM_SECRET_HEADER}: {SECRET}\r\n\r\n{{"update_id":'.encode()
    )
    await writer.drain()
    answer = await closed(reader)  # returns only once the server closed the connection
    assert answer.startswith(b"HTTP/1.1 408")
    writer.close()
    assert server.handled == []


async def test_slow_headers_are_cut_off(server: Server) -> None:
    reader, writer = await server.connect()
    writer.write(b"POST /telegram/webhook HTTP/1.1\r\nHost: x\r\n")  # and never the rest
    await writer.drain()
    assert await closed(reader) == b""
    writer.close()


async def test_idle_connections_cannot_lock_out_healthz(server: Server) -> None:
    idle = [await server.connect() for _ in range(3 * LIMITS.max_connections)]
    async with httpx.AsyncClient(timeout=WAIT) as http:
        assert (await http.get(server.url + "/healthz")).text == "ok"
    # The server made room by closing the oldest idle sockets: never more than the cap open.
    for reader, _ in idle[: 2 * LIMITS.max_connections]:
        assert await closed(reader) == b""
    for _, writer in idle:
        writer.close()


async def test_connections_over_the_cap_are_refused_while_all_are_busy(server: Server) -> None:
    busy = []
    for _ in range(LIMITS.max_connections):  # each in the middle of a request
        reader, writer = await server.connect()
        writer.write(b"GET /hold HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        busy.append((reader, writer))
    await wait_until(lambda: server.holding == LIMITS.max_connections, "requests to hold")
    reader, writer = await server.connect()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    with contextlib.suppress(ConnectionError):
        assert await closed(reader) == b""  # refused: closed without an answer
    writer.close()
    # Once those requests are answered, /healthz answers again.
    server.release.set()
    for busy_reader, busy_writer in busy:
        assert (await busy_reader.readuntil(b"released")).startswith(b"HTTP/1.1 200")
        busy_writer.close()
    async with httpx.AsyncClient(timeout=WAIT) as http:
        assert (await http.get(server.url + "/healthz")).text == "ok"


def test_repeated_log_lines_are_rate_limited() -> None:
    now = [0.0]
    limit = RateLimit(burst=10, per=60.0, clock=lambda: now[0])
    logger = logging.getLogger("test.flood")

    def record(msg: str) -> logging.LogRecord:
        return logger.makeRecord(logger.name, logging.ERROR, __file__, 1, msg, (), None)

    passed = [limit.filter(record("socket.accept() out of system resource")) for _ in range(1000)]
    assert passed.count(True) == 10
    assert limit.filter(record("another message"))  # other kinds are not held back
    now[0] = 61.0
    summary = record("socket.accept() out of system resource")
    assert limit.filter(summary)
    assert summary.getMessage().endswith("(… 990 similar lines suppressed)")

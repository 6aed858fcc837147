"""Running the REAL bot (`bot.app.run_channels`) inside a test's event loop: the start/stop
plumbing, waits and database reads that `telegram_helpers.py` and `zalo_helpers.py` share.

    async with running(settings, webhook=True) as live:
        await live.runtime.receive(...)
        await settle(live.runtime)
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from sqlalchemy import func, select

from bot.app import run_channels
from bot.config import Settings
from bot.runtime import Runtime
from storage.models import InboxEvent, OutboxMessage

WAIT = 10.0  # upper bound of every wait: a hang fails the test instead of blocking the suite


# The bot's webhook server binds the port its settings name, so a test must pick a number
# (the fakes bind port 0 instead). The numbers come from below the kernel's ephemeral range
# (32768+), where neither port-0 binds nor outgoing connections land, and each pytest-xdist
# worker has its own block: a port found free stays free until the bot binds it.
_PORT_BLOCK = 1000
_WORKER = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
_ports = itertools.cycle(range(_PORT_BLOCK))


def free_port() -> int:
    """A port on 127.0.0.1 that is free now and that no other test process will take."""
    first = 20_000 + (_WORKER % 12) * _PORT_BLOCK
    for _ in range(_PORT_BLOCK):
        port = first + next(_ports)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {first}..{first + _PORT_BLOCK - 1}")


async def wait_until(
    condition: Callable[[], Any], what: str, within: float = WAIT, every: float = 0.005
) -> None:
    """Poll `condition` (sync or async) until it is truthy; fail naming `what`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


# ---- the bot's database -------------------------------------------------------------------


async def due_outbox_rows(runtime: Runtime) -> list[OutboxMessage]:
    """Pending rows the delivery worker would send now: the oldest pending row of each chat,
    if its retry time has come (later rows of a chat wait behind it, to keep the order)."""
    now = datetime.now(UTC)
    async with runtime.sessions() as session:
        rows = await session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == "pending")
            .order_by(OutboxMessage.id)
        )
        heads: dict[tuple[str, str], OutboxMessage] = {}
        for row in rows:
            heads.setdefault((row.channel, row.chat_id), row)
        return [row for row in heads.values() if row.next_attempt_at <= now]


async def settle(runtime: Runtime, rounds: int) -> None:
    """Until every stored inbound is handled and every due outbox row was tried.

    `Runtime.idle()` repeated (at most `rounds` times) until no row is due, so rows that a
    delivery pass itself creates (a staff notice about a failed send) are delivered too."""
    for _ in range(rounds):
        await runtime.idle(limit=WAIT)
        if not await due_outbox_rows(runtime):
            return
    raise AssertionError("outbox rows stay due")


async def inbox_count(runtime: Runtime, channel: str | None = None) -> int:
    query = select(func.count()).select_from(InboxEvent)
    if channel is not None:
        query = query.where(InboxEvent.channel == channel)
    async with runtime.sessions() as session:
        return int(await session.scalar(query) or 0)


async def outbox_rows(runtime: Runtime, chat_id: int | str | None = None) -> list[OutboxMessage]:
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if chat_id is not None:
        query = query.where(OutboxMessage.chat_id == str(chat_id))
    async with runtime.sessions() as session:
        return list(await session.scalars(query))


# ---- start and stop -----------------------------------------------------------------------


@dataclass
class Live:
    """A started `run_channels`: its runtime, and an HTTP client for its webhook server."""

    runtime: Runtime
    http: httpx.AsyncClient


@contextlib.asynccontextmanager
async def running(settings: Settings, *, webhook: bool) -> AsyncIterator[Live]:
    """`run_channels(settings)` as a task until the block ends; then a clean stop (the task
    must return without an error). Waits for `started` and, with `webhook`, until the webhook
    server answers."""
    stop = asyncio.Event()
    ready: asyncio.Future[Runtime] = asyncio.get_running_loop().create_future()

    def started(runtime: Runtime) -> None:
        if not ready.done():
            ready.set_result(runtime)

    task = asyncio.create_task(run_channels(settings, stop=stop, started=started))
    try:
        waiting: set[asyncio.Future[Any]] = {task, ready}
        done, _ = await asyncio.wait(waiting, timeout=WAIT, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            await task  # raises the start-up error
            raise AssertionError("run_channels returned before `started`")
        if ready not in done:
            raise AssertionError("run_channels did not start")
        async with httpx.AsyncClient(timeout=WAIT) as http:
            if webhook:
                await _wait_for_server(http, settings.webhook_port)
            yield Live(ready.result(), http)
    finally:
        stop.set()
        await asyncio.wait_for(task, WAIT)


async def _wait_for_server(http: httpx.AsyncClient, port: int) -> None:
    async def answers() -> bool:
        try:
            response = await http.get(f"http://127.0.0.1:{port}/healthz")
        except httpx.TransportError:
            return False
        return response.status_code == 200

    await wait_until(answers, "the webhook server to listen")

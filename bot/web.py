"""The webhook server: one Starlette app on uvicorn for every channel's endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Route

log = logging.getLogger(__name__)

TELEGRAM_PATH = "/telegram/webhook"
MAX_BODY = 1024 * 1024


async def healthz(_request: Request) -> Response:
    return PlainTextResponse("ok")


def telegram_route(secret: str, handle: Callable[[dict[str, object]], Awaitable[None]]) -> Route:
    """POST /telegram/webhook: the secret header must match, else 403 and nothing stored.

    The update is stored in the inbox before the 200 answer; a failure to store answers 500,
    so Telegram delivers it again.
    """

    async def endpoint(request: Request) -> Response:
        given = request.headers.get("X-Telegram-Bot-Api-Secret-Token", "")
        if not secrets.compare_digest(given.encode(), secret.encode()):
            return PlainTextResponse("forbidden", status_code=403)
        body = await request.body()
        if len(body) > MAX_BODY:
            return PlainTextResponse("too large", status_code=413)
        try:
            data = json.loads(body)
        except ValueError:
            return PlainTextResponse("bad json", status_code=400)
        if not isinstance(data, dict):
            return PlainTextResponse("bad json", status_code=400)
        await handle(data)
        return JSONResponse({"ok": True})

    return Route(TELEGRAM_PATH, endpoint, methods=["POST"])


def build_app(routes: list[BaseRoute]) -> Starlette:
    return Starlette(routes=[Route("/healthz", healthz), *routes])


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the bot's own shutdown handles SIGINT/SIGTERM for every component


async def serve(app: Starlette, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve until `stop` is set; in-flight requests finish before it returns."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
    server = _Server(config)
    task = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await task

"""The HTTP plumbing the in-process fakes share (`telegram_api`, `zalo_api`, `zalo_bot_api`).

`ServedApp` serves a Starlette app on 127.0.0.1 (a free port) in the test's own event loop, so
real HTTP clients talk to the fake over a real socket::

    async with ServedApp(Starlette(routes=[...])) as served:
        client = SomeClient(base_url=served.origin)

`parse_multipart` decodes the multipart/form-data bodies the real clients upload files with.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass

import uvicorn
from starlette.applications import Starlette


class InProcessServer(uvicorn.Server):
    """uvicorn server tuned for running inside a test's event loop.

    Overrides three uvicorn.Server hooks (checked against uvicorn 0.54):
    * ``capture_signals``: uvicorn has no ``install_signal_handlers`` switch any more and would
      otherwise take over SIGINT/SIGTERM, so Ctrl+C would stop the fake instead of pytest.
    * ``main_loop`` / ``shutdown``: stock uvicorn polls ``should_exit`` every 0.1 s and sleeps
      0.1 s on shutdown; an event-driven stop keeps per-test teardown at ~1 ms.
    """

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self.should_exit = True
        self._stop.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        await self.on_tick(0)  # sets the default response headers
        await self._stop.wait()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()  # closes idle keep-alive connections at once
        deadline = time.monotonic() + 2.0
        while self.server_state.connections or self.server_state.tasks:
            if time.monotonic() > deadline:
                for task in self.server_state.tasks:
                    task.cancel()
                break
            await asyncio.sleep(0.001)
        for server in self.servers:
            await server.wait_closed()


class ServedApp:
    """Serves `app` on 127.0.0.1:<free port> inside the running event loop, from `start()`
    (or entering `async with`) until `stop()`; `name` is the fake's name in errors."""

    def __init__(self, app: Starlette, name: str = "fake server") -> None:
        self.app = app
        self.name = name
        self.port: int | None = None
        self._server: InProcessServer | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def origin(self) -> str:
        """``http://127.0.0.1:<port>``, once started."""
        if self.port is None:
            raise RuntimeError(f"{self.name} is not started; use `async with`")
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on sockets that say so, and
        # without it Nagle + delayed ACK add ~40 ms to every keep-alive request.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_level="warning",
            log_config=None,  # don't reconfigure the test runner's logging
            access_log=False,
        )
        self._server = InProcessServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                await self._task  # surface the startup error
                raise RuntimeError(f"{self.name} server exited during startup")
            await asyncio.sleep(0.005)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.stop()
            await self._task

    async def __aenter__(self) -> ServedApp:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


# ---- multipart/form-data ------------------------------------------------------------------


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request (how the real clients upload bytes)."""

    filename: str
    content: bytes
    content_type: str


def _form_param(header: str, name: str) -> str | None:
    # httpx writes HTML5-style quoted params: only ", CR and LF are %-escaped.
    match = re.search(rf'(?:^|;)\s*{name}="([^"]*)"', header)
    if match is None:
        return None
    return match.group(1).replace("%22", '"').replace("%0D", "\r").replace("%0A", "\n")


def parse_multipart(
    body: bytes, content_type: str
) -> tuple[dict[str, str], dict[str, UploadedFile]] | None:
    """(fields, files) of a multipart/form-data body; None when `content_type` names no
    boundary. Minimal: python-multipart is not a project dependency."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if match is None:
        return None
    delimiter = b"--" + match.group(1).encode()
    fields: dict[str, str] = {}
    files: dict[str, UploadedFile] = {}
    for raw_part in body.split(delimiter)[1:]:
        if raw_part.startswith(b"--"):
            break  # closing delimiter
        head, _, content = raw_part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        content = content.removesuffix(b"\r\n")
        headers: dict[str, str] = {}
        for line in head.decode().split("\r\n"):
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        disposition = headers.get("content-disposition", "")
        name = _form_param(disposition, "name")
        if name is None:
            continue
        filename = _form_param(disposition, "filename")
        if filename is None:
            fields[name] = content.decode()
        else:
            files[name] = UploadedFile(
                filename, content, headers.get("content-type", "application/octet-stream")
            )
    return fields, files

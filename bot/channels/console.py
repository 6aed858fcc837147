"""The console channel: a scriptable chat on standard input/output.

Each input line is one message. A line that is only a number presses that button of the
most recent message with buttons; `/contact +84912345678 Full Name` shares a contact; a line
starting with `@staff ` is written in the staff chat by a staff admin. Replies to the staff
chat are printed with `[staff] `, replies to another simulated customer with `[user ID] `.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import itertools
import os
import re
import secrets
import shutil
import sys
import threading
import time
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from bot.runtime import Runtime
from handlers.messages import (
    STAFF,
    Button,
    ChannelCapabilities,
    Contact,
    Document,
    Inbound,
    Outbound,
    SendResult,
)

CHANNEL = "console"
_CONTACT = re.compile(r"^/contact\s+(\+?[\d .\-()]{6,20})\s*(.*)$")


class ConsoleAdapter:
    name = CHANNEL
    # Deletions and edits are shown as such ("🗑 #3", "✎ #3"); documents are written locally.
    capabilities = ChannelCapabilities(
        can_delete_messages=True, can_edit_messages=True, contact_request=True, documents=True
    )

    def __init__(
        self,
        user_id: str,
        files_dir: Path,
        out: TextIO | None = None,
        files_keep: timedelta = timedelta(minutes=15),
    ) -> None:
        self.user_id = user_id
        self.files_dir = files_dir
        self.files_keep = files_keep
        self.out = out or sys.stdout
        self.buttons: dict[str, tuple[Button, ...]] = {}  # chat → buttons of its latest message
        self._ids = itertools.count(1)

    async def send(
        self,
        message: Outbound,
        edit_message_id: str | None = None,
        reply_to_message_id: str | None = None,
    ) -> SendResult:
        lines = message.plain_text().splitlines() or [""]
        if edit_message_id:
            lines[0] = f"✎ #{edit_message_id} {lines[0]}"
        flat = tuple(button for row in message.buttons for button in row)
        if flat:
            self.buttons[message.chat_id] = flat
            lines += [f"[{number}] {button.label}" for number, button in enumerate(flat, 1)]
        if message.photo:
            lines.insert(0, f"🖼 {message.photo}")
        if message.ask_contact:
            lines.append("[📱 /contact +84…]")
        if message.document is not None:
            path = self._write_file(message.chat_id, message.document)
            lines.append(f"📎 {path}")
        prefix = self._prefix(message.chat_id)
        self.out.write("".join(f"{prefix}{line}\n" for line in lines))
        self.out.write("\n" if not prefix else "")
        self.out.flush()
        return SendResult(platform_message_id=edit_message_id or str(next(self._ids)))

    # ---- files: the one place the bot writes personal data outside the database ----------

    def _write_file(self, chat_id: str, document: Document) -> Path:
        """`files/<chat folder>/<random>-<name>`, 0600 in 0700 folders: one folder per chat
        (erasure removes it), an unguessable name per file (no two exports collide), and
        gone after `files_keep` — the bytes were delivered, the reader had time to open them.
        """
        folder = self._folder(chat_id)
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / f"{secrets.token_urlsafe(12)}-{Path(document.filename).name}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(document.content)
        asyncio.get_running_loop().call_later(
            self.files_keep.total_seconds(), functools.partial(_remove, path)
        )
        return path

    def _folder(self, chat_id: str) -> Path:
        return self.files_dir / hashlib.sha256(chat_id.encode()).hexdigest()[:16]

    def remove_expired_files(self) -> int:
        """Files left by an earlier run (stopped before their removal was due)."""
        if not self.files_dir.is_dir():
            return 0
        cutoff = time.time() - self.files_keep.total_seconds()
        old = [p for p in self.files_dir.glob("*/*") if p.stat().st_mtime < cutoff]
        for path in old:
            _remove(path)
        return len(old)

    def chat_erased(self, chat_id: str) -> None:
        """The customer of `chat_id` was erased: their files go, and so do the staff chat's
        files (bulk exports hold everyone's data)."""
        self.buttons.pop(chat_id, None)
        for folder in (self._folder(chat_id), self._folder(STAFF)):
            shutil.rmtree(folder, ignore_errors=True)

    async def delete(self, chat_id: str, message_id: str) -> None:
        self.out.write(f"{self._prefix(chat_id)}🗑 #{message_id}\n")
        self.out.flush()

    def _prefix(self, chat_id: str) -> str:
        if chat_id == STAFF:
            return "[staff] "
        return "" if chat_id == self.user_id else f"[user {chat_id}] "


def _remove(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


class ConsoleChat:
    """Reads lines, turns them into inbounds, and waits for each to be answered."""

    def __init__(
        self,
        runtime: Runtime,
        adapter: ConsoleAdapter,
        staff_user_id: str,
        language: str | None,
        staff_only: bool = False,
    ) -> None:
        self.staff_only = staff_only  # every line is from the staff chat (platform mode)
        self.runtime = runtime
        self.adapter = adapter
        self.staff_user_id = staff_user_id
        self.language = language
        self._session = uuid.uuid4().hex[:12]
        self._counter = itertools.count(1)

    def to_inbound(self, line: str) -> Inbound:
        prefixed = line.startswith("@staff ") or line.strip() == "@staff"
        staff = self.staff_only or prefixed
        body = line[len("@staff") :].strip() if prefixed else line.strip()
        chat_id = STAFF if staff else self.adapter.user_id
        base = Inbound(
            channel=CHANNEL,
            chat_id=chat_id,
            user_id=self.staff_user_id if staff else self.adapter.user_id,
            dedupe_key=f"{self._session}:{next(self._counter)}",
            text=body,
            language_hint=self.language,
            from_staff_chat=staff,
            user_display_name=f"#{self.staff_user_id}" if staff else "",
        )
        if body.isdigit() and len(body) <= 3:
            buttons = self.adapter.buttons.get(chat_id, ())
            number = int(body)
            if 1 <= number <= len(buttons):
                pressed = buttons[number - 1]
                return replace(base, text=pressed.label, payload=pressed.payload)
            return replace(base, payload=f"badchoice:{number}")
        contact = _CONTACT.match(body)
        if contact and not staff:
            return replace(base, contact=Contact(phone=contact.group(1), name=contact.group(2)))
        command, args = Inbound.parse_command(body)
        return replace(base, command=command, args=args)

    async def run(self, stream: TextIO) -> None:
        loop = asyncio.get_running_loop()
        lines: asyncio.Queue[str] = asyncio.Queue()

        def read() -> None:  # a daemon thread: a blocked read never holds up the shutdown
            try:
                for line in iter(stream.readline, ""):
                    loop.call_soon_threadsafe(lines.put_nowait, line)
                loop.call_soon_threadsafe(lines.put_nowait, "")
            except RuntimeError:  # the loop closed first (the bot stopped): nothing to do
                return

        threading.Thread(target=read, name="console-input", daemon=True).start()
        interactive = stream.isatty()
        while True:
            if interactive:
                self.adapter.out.write("> ")
                self.adapter.out.flush()
            line = await lines.get()
            if not line:
                break
            await self.runtime.receive(self.to_inbound(line.rstrip("\r\n")))
            await self.runtime.idle()
        await self.runtime.idle()

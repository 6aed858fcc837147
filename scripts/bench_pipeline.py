"""Benchmark: real orders through the whole pipeline, against a python-telegram-bot reference.
Prints numbers; asserts nothing. Everything runs in-process (no network, no sockets).

    .venv/bin/python scripts/bench_pipeline.py            # full run (~20 min on 2 cores)
    .venv/bin/python scripts/bench_pipeline.py --quick    # a fast subset (~3 min)
    .venv/bin/python scripts/bench_pipeline.py --customers 10,200 --rates 50 --stored 100000
    .venv/bin/python scripts/bench_pipeline.py --profile  # where the CPU goes (cProfile)

What is measured:

- **ours**: the real `Runtime` (bot/runtime.py) with the real dispatcher on a real SQLite file
  (fresh, migrated; or a copy of one seeded with N stored customers and their history) and a
  null channel adapter that records each send. Every simulated customer places a real order:
  /start, consent, /order, name, phone, address, email skipped, request, photos skipped,
  confirm — ten messages, each checked against the catalog prompt it must produce.
- **PTB**: the same dialogue written as a plain python-telegram-bot v22 `ConversationHandler`
  (state in memory), fed `Update`s through `Application.update_queue` with a `BaseRequest`
  that answers every Bot API call at once. It uses the project's validators and texts, so
  the difference is the pipeline. Run in the same process type and time window, interleaved.
- **closed loop**: N customers at once; each sends its next message only after all replies
  to the previous one arrived (then a new customer takes the slot after confirming); nobody
  sends after the window. Throughput = messages answered / time until the last was answered.
- **open loop**: messages offered at a fixed rate whatever the replies (customers take turns;
  each sends one message every `--think` seconds); latency from the message's *scheduled*
  time to its own first reply (no coordinated omission); msg/s = answered inside the window.
  Keeps up = nothing lost and no backlog one second after the window.
- A message's replies are matched to it by position: a conversation's replies are delivered
  in order, and the catalog says how many replies each step produces and what they say.
- Statements, BEGINs and COMMITs are counted with SQLAlchemy engine events and attributed to
  the task that ran them: storing the inbound (`receive`), processing it (`conv:*` tasks) or
  delivering (`delivery` task); so are the pool's reset ROLLBACKs, aiosqlite's hand-offs to
  its connection thread and event-loop iterations. Peak RSS is the run's own (VmHWM; each
  run is a subprocess).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import functools
import itertools
import json
import logging
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeAlias

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from handlers.i18n import catalog, t  # noqa: E402

CATALOG = PROJECT / "handlers" / "orders" / "catalog.example.toml"
THINK = 1.0  # open loop: seconds between two messages of one customer

# ---- the dialogue ---------------------------------------------------------------------------

# (inbound fields, catalog keys of the replies it must produce, in order). The name step's
# text is filled per customer. The confirmation also posts one alert to the staff chat.
DIALOGUE: list[tuple[dict[str, str], tuple[str, ...]]] = [
    ({"text": "/start", "command": "start"}, ("core.greeting", "consent.notice")),
    ({"payload": "consent:yes"}, ("consent.thanks", "core.menu_intro")),
    ({"text": "/order", "command": "order"}, ("order.ask.full_name",)),
    ({"text": "{name}"}, ("order.ask.phone",)),
    ({"text": "0912 345 678"}, ("flow.contact_saved", "order.ask.address")),
    ({"text": "12 Hàng Bông, phường Hoàn Kiếm, Hà Nội"}, ("order.ask.email",)),
    ({"text": "bỏ qua"}, ("order.ask.request",)),
    ({"text": "SD-001 cho phòng khách"}, ("order.ask.photos",)),
    ({"payload": "f:skip"}, ("order.review_title",)),
    ({"payload": "f:ok"}, ("order.confirmed",)),
]

FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Huỳnh", "Phan", "Vũ", "Võ", "Đặng", "Bùi"]
MIDDLE = ["Văn", "Thị", "Hữu", "Minh", "Ngọc", "Thu", "Đức", "Thanh", "Quốc", "Bảo"]
GIVEN = ["Lan", "Hùng", "Mai", "Dũng", "Hương", "Tuấn", "Linh", "Phương", "Khoa", "Trang", "Anh"]


def customer_name(n: int) -> str:
    """A valid Vietnamese full name (no digits: the name step refuses them)."""
    return (
        f"{FAMILY[n % len(FAMILY)]} {MIDDLE[(n // len(FAMILY)) % len(MIDDLE)]} "
        f"{GIVEN[(n // (len(FAMILY) * len(MIDDLE))) % len(GIVEN)]}"
    )


def reply_marker(key: str) -> str:
    """What every rendering of `key` contains: its first line up to the first placeholder."""
    return catalog("vi")[key].split("{", 1)[0].splitlines()[0].strip()


# ---- measurement ----------------------------------------------------------------------------


@dataclass
class Sent:
    """One inbound message waiting for its replies."""

    at: float  # scheduled (open loop) or sent (closed loop) time
    expected: tuple[str, ...]
    got: int = 0
    first: float | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)


class Tracker:
    """Matches replies to the message that caused them (per chat, in order) and checks them."""

    def __init__(self, staff_chat: str) -> None:
        self.staff_chat = staff_chat
        self.markers = {key: reply_marker(key) for _, keys in DIALOGUE for key in keys}
        self.waiting: dict[str, collections.deque[Sent]] = {}
        self.broken: set[str] = set()  # chats whose dialogue lost a message
        self.latencies: list[float] = []  # of messages answered inside the window
        self.first_times: list[float] = []
        self.outbound = 0
        self.staff_alerts = 0
        self.wrong = 0
        self.unexpected = 0

    def expect(self, chat: str, expected: tuple[str, ...], at: float) -> Sent:
        sent = Sent(at, expected)
        self.waiting.setdefault(chat, collections.deque()).append(sent)
        return sent

    def abandon(self, chat: str) -> None:
        """The message was not stored: this customer's dialogue cannot be checked further."""
        self.broken.add(chat)
        for sent in self.waiting.pop(chat, ()):
            sent.done.set()

    def reply(self, chat: str, text: str) -> None:
        now = time.perf_counter()
        self.outbound += 1
        if chat == self.staff_chat:
            self.staff_alerts += 1
            return
        queue = self.waiting.get(chat)
        if not queue:
            if chat not in self.broken:
                self.unexpected += 1
            return
        sent = queue[0]
        if sent.first is None:
            sent.first = now
            self.first_times.append(now)
            self.latencies.append(now - sent.at)
        if self.markers[sent.expected[sent.got]] not in text:
            # E.g. the internal-error apology: this message is answered, but the dialogue
            # can no longer be checked (the customer's slot moves on to a new customer).
            self.wrong += 1
            self.abandon(chat)
            return
        sent.got += 1
        if sent.got == len(sent.expected):
            queue.popleft()
            sent.done.set()

    def pending(self) -> int:
        return sum(len(q) for q in self.waiting.values())


class SqlCounter:
    """Statements and transactions per pipeline phase, from SQLAlchemy engine events."""

    def __init__(self) -> None:
        self.statements: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self.tx: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
        # Rows per statement text: an executemany counts once above and len(rows) here.
        self.rows: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self.loop_turns = 0
        self.on = False

    @staticmethod
    def phase() -> str:
        task = asyncio.current_task()
        name = task.get_name() if task is not None else ""
        # The runtime's tasks: "inbox" stores arrivals (group commit, on behalf of the
        # clients' receive() calls), "process" handles them in batches.
        if name == "process" or name.startswith("conv:"):
            return "process"
        if name == "inbox" or name.startswith("client"):
            return "receive"
        if name == "maintenance":
            return "other"
        return "deliver"  # the delivery task and the per-chat tasks it gathers

    def attach(self, sync_engine: Any) -> None:
        from sqlalchemy import event

        @event.listens_for(sync_engine, "before_cursor_execute")
        def _statement(
            conn: Any, cursor: Any, sql: str, parameters: Any, context: Any, many: bool
        ) -> None:
            if self.on:
                self.statements[self.phase()][sql] += 1
                self.rows[self.phase()][sql] += len(parameters) if many else 1

        for name in ("begin", "commit", "rollback"):
            event.listen(sync_engine, name, self._tx_listener(name))

        @event.listens_for(sync_engine.pool, "reset")
        def _reset(*args: Any) -> None:  # the pool's ROLLBACK when a connection is returned
            if self.on:
                self.tx[self.phase()]["pool reset"] += 1

        self._count_thread_hops()

    def _count_thread_hops(self) -> None:
        """Every aiosqlite call is a hand-off to the connection's thread and back."""
        with contextlib.suppress(ImportError):
            import aiosqlite.core

            execute = aiosqlite.core.Connection._execute

            async def counted(connection: Any, fn: Any, *args: Any, **kwargs: Any) -> Any:
                if self.on:
                    self.tx[self.phase()]["thread hop"] += 1
                return await execute(connection, fn, *args, **kwargs)

            aiosqlite.core.Connection._execute = counted  # type: ignore[method-assign,assignment]

    def count_loop_turns(self, loop: asyncio.AbstractEventLoop) -> None:
        run_once = loop._run_once  # type: ignore[attr-defined]

        def counted() -> None:
            if self.on:
                self.loop_turns += 1
            run_once()

        loop._run_once = counted  # type: ignore[attr-defined]

    def _tx_listener(self, name: str) -> Callable[[Any], None]:
        def listener(conn: Any) -> None:
            if self.on:
                self.tx[self.phase()][name] += 1

        return listener

    def to_json(self) -> dict[str, Any]:
        return {
            "statements": {p: dict(c) for p, c in self.statements.items()},
            "tx": {p: dict(c) for p, c in self.tx.items()},
            "loop_turns": self.loop_turns,
        }


def short_sql(sql: str) -> str:
    sql = " ".join(sql.split())
    sql = re.sub(r"^SELECT .*? FROM", "SELECT … FROM", sql)
    sql = re.sub(r"^INSERT INTO (\S+) \(.*", r"INSERT INTO \1 (…)", sql)
    sql = re.sub(r"\((?:\?, )+\?\)", "(…)", sql)
    sql = re.sub(r"\b(\w+)\.", "", sql)  # table-qualified column names
    return sql[:120]


# ---- the two systems ------------------------------------------------------------------------


class OursSystem:
    """The project's Runtime on a SQLite file, with a null adapter that records sends."""

    name = "ours"

    def __init__(self, db_path: Path, tracker: Tracker, counter: SqlCounter) -> None:
        self.db_path = db_path
        self.tracker = tracker
        self.counter = counter

    async def start(self) -> None:
        from bot.runtime import Runtime
        from handlers.context import ShopConfig
        from handlers.messages import STAFF, SendResult
        from handlers.orders.catalog import Catalog
        from storage.db import create_engine, migrate_to_head, session_factory

        tracker = self.tracker
        ids = itertools.count(1)

        from bot.channels.console import ConsoleAdapter

        class NullAdapter:
            name = "console"
            capabilities = ConsoleAdapter.capabilities

            async def send(
                self, message: Any, edit_message_id: Any = None, reply_to_message_id: Any = None
            ) -> Any:
                tracker.reply(message.chat_id, message.text)
                return SendResult(str(next(ids)))

            async def delete(self, chat_id: str, message_id: str) -> None:
                return None

        self.engine = create_engine(f"sqlite+aiosqlite:///{self.db_path}")
        await migrate_to_head(self.engine)
        self.counter.attach(self.engine.sync_engine)
        config = ShopConfig(
            staff_channel="console", staff_chat_id=STAFF, catalog=Catalog.load(CATALOG)
        )
        self.runtime = Runtime(session_factory(self.engine), config)
        self.runtime.add_adapter(NullAdapter())
        self.runtime.start()
        from handlers.messages import Inbound

        self.inbound = Inbound

    async def send(self, chat: int, n: int, fields: dict[str, Any]) -> None:
        user = str(chat)
        key = f"{user}:{n}"
        message = self.inbound(
            channel="console", chat_id=user, user_id=user, dedupe_key=key, **fields
        )
        if not await self.runtime.receive(message):
            raise RuntimeError("duplicate")

    async def orders(self) -> int:
        # Its own sqlite3 connection: the pool may be exhausted by a backlog left on purpose.
        import sqlite3

        with contextlib.closing(sqlite3.connect(self.db_path, timeout=30)) as db:
            return int(db.execute("SELECT count(*) FROM orders").fetchone()[0])

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.runtime.stop(), 3)  # a backlog may be left on purpose
        with contextlib.suppress(Exception):
            await self.engine.dispose()


class PtbSystem:
    """The same dialogue as a plain python-telegram-bot ConversationHandler, in memory."""

    name = "ptb"
    STAFF_CHAT = -1001

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.update_ids = itertools.count(1)
        self.orders_placed = 0

    async def start(self) -> None:
        from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
        from telegram.ext import (
            Application,
            CallbackQueryHandler,
            CommandHandler,
            ConversationHandler,
            MessageHandler,
            filters,
        )
        from telegram.request import BaseRequest, RequestData
        from telegram.warnings import PTBUserWarning

        from handlers.errors import InvalidInput
        from handlers.orders import codes
        from handlers.orders.validators import (
            parse_address,
            parse_email,
            parse_full_name,
            parse_phone,
            parse_request,
        )

        warnings.filterwarnings("ignore", category=PTBUserWarning)
        tracker = self.tracker
        message_ids = itertools.count(1)
        bot_user = {"id": 1, "is_bot": True, "first_name": "Bench", "username": "bench_bot"}

        class NullRequest(BaseRequest):
            """Answers every Bot API call at once, like a network with no latency."""

            @property
            def read_timeout(self) -> float | None:
                return None

            async def initialize(self) -> None:
                return None

            async def shutdown(self) -> None:
                return None

            async def do_request(
                self,
                url: str,
                method: str,
                request_data: RequestData | None = None,
                read_timeout: Any = None,
                write_timeout: Any = None,
                connect_timeout: Any = None,
                pool_timeout: Any = None,
            ) -> tuple[int, bytes]:
                endpoint = url.rsplit("/", 1)[-1]
                params = request_data.parameters if request_data else {}
                result: Any = True
                if endpoint == "getMe":
                    result = bot_user
                elif endpoint == "sendMessage":
                    chat = params["chat_id"]
                    tracker.reply(str(chat), str(params["text"]))
                    result = {
                        "message_id": next(message_ids),
                        "date": int(time.time()),
                        "chat": {"id": chat, "type": "private"},
                        "from": bot_user,
                        "text": params["text"],
                    }
                return 200, json.dumps({"ok": True, "result": result}).encode()

        def tr(key: str, **params: object) -> str:
            return t("vi", key, **params)

        def keyboard(*rows: tuple[tuple[str, str], ...]) -> InlineKeyboardMarkup:
            return InlineKeyboardMarkup(
                [
                    [InlineKeyboardButton(tr(label), callback_data=data) for label, data in row]
                    for row in rows
                ]
            )

        step_buttons = keyboard((("flow.btn.back", "f:back"), ("flow.btn.cancel", "f:cancel")))
        skip_buttons = keyboard(
            (
                ("flow.btn.skip", "f:skip"),
                ("flow.btn.back", "f:back"),
                ("flow.btn.cancel", "f:cancel"),
            )
        )
        Context: TypeAlias = Any  # ContextTypes.DEFAULT_TYPE, untyped here
        NAME, PHONE, ADDRESS, EMAIL, REQUEST, PHOTOS, REVIEW = range(7)

        async def start(update: Update, context: Context) -> None:
            assert update.effective_chat is not None
            chat = update.effective_chat.id
            await context.bot.send_message(chat, tr("core.greeting"))
            await context.bot.send_message(
                chat,
                tr("consent.notice"),
                reply_markup=keyboard(
                    (("consent.btn.agree", "consent:yes"),),
                    (("consent.btn.read_policy", "consent:policy"),),
                    (("consent.btn.decline", "consent:no"),),
                ),
            )

        async def consent(update: Update, context: Context) -> None:
            assert update.callback_query is not None and update.effective_chat is not None
            await update.callback_query.answer()
            assert context.user_data is not None
            context.user_data["consent"] = True
            chat = update.effective_chat.id
            await context.bot.send_message(chat, tr("consent.thanks"))
            await context.bot.send_message(
                chat, tr("core.menu_intro"), reply_markup=keyboard((("menu.order", "order"),))
            )

        async def order(update: Update, context: Context) -> int:
            assert update.effective_chat is not None and context.user_data is not None
            context.user_data["draft"] = {}
            await context.bot.send_message(
                update.effective_chat.id,
                tr("order.ask.full_name"),
                reply_markup=keyboard((("flow.btn.cancel", "f:cancel"),)),
            )
            return NAME

        def text_step(
            field_name: str,
            parse: Callable[[str], str],
            prompt: str,
            next_state: int,
            buttons: InlineKeyboardMarkup,
            ack: str | None = None,
        ) -> Callable[[Update, Context], Coroutine[Any, Any, int]]:
            async def step(update: Update, context: Context) -> int:
                assert update.message is not None and context.user_data is not None
                chat = update.message.chat_id
                typed = update.message.text or ""
                try:
                    value = (
                        None
                        if field_name == "email" and typed.lower() in ("bỏ qua", "skip")
                        else parse(typed)
                    )
                except InvalidInput as exc:
                    await context.bot.send_message(chat, tr(exc.key, **exc.params))
                    return next_state - 1
                context.user_data["draft"][field_name] = value
                if ack:
                    await context.bot.send_message(chat, tr(ack))
                await context.bot.send_message(chat, tr(prompt), reply_markup=buttons)
                return next_state

            return step

        async def skip_photos(update: Update, context: Context) -> int:
            assert update.callback_query is not None and update.effective_chat is not None
            assert context.user_data is not None
            await update.callback_query.answer()
            draft = context.user_data["draft"]
            lines = [tr("order.review_title"), ""]
            lines += [f"{n}. {value}" for n, value in enumerate(draft.values(), start=1)]
            lines += ["", tr("flow.review_hint")]
            await context.bot.send_message(
                update.effective_chat.id,
                "\n".join(lines),
                reply_markup=keyboard(
                    (("flow.btn.confirm", "f:ok"),), (("flow.btn.cancel", "f:cancel"),)
                ),
            )
            return REVIEW

        async def confirm(update: Update, context: Context) -> int:
            assert update.callback_query is not None and update.effective_chat is not None
            assert context.user_data is not None
            await update.callback_query.answer()
            code = codes.new_code()
            orders = context.bot_data.setdefault("orders", {})
            orders[code] = dict(context.user_data.pop("draft"))
            self.orders_placed += 1
            await context.bot.send_message(self.STAFF_CHAT, f"🆕 {code}")
            await context.bot.send_message(
                update.effective_chat.id,
                tr("order.confirmed", code=code, product="", hours="8:00–21:00"),
            )
            return ConversationHandler.END

        async def cancel(update: Update, context: Context) -> int:
            assert update.effective_chat is not None
            await context.bot.send_message(update.effective_chat.id, tr("flow.cancelled"))
            return ConversationHandler.END

        typed = filters.TEXT & ~filters.COMMAND
        conversation = ConversationHandler(
            entry_points=[CommandHandler("order", order)],
            states={
                NAME: [
                    MessageHandler(
                        typed,
                        text_step(
                            "full_name", parse_full_name, "order.ask.phone", PHONE, step_buttons
                        ),
                    )
                ],
                PHONE: [
                    MessageHandler(
                        typed,
                        text_step(
                            "phone",
                            parse_phone,
                            "order.ask.address",
                            ADDRESS,
                            step_buttons,
                            ack="flow.contact_saved",
                        ),
                    )
                ],
                ADDRESS: [
                    MessageHandler(
                        typed,
                        text_step("address", parse_address, "order.ask.email", EMAIL, skip_buttons),
                    )
                ],
                EMAIL: [
                    MessageHandler(
                        typed,
                        text_step("email", parse_email, "order.ask.request", REQUEST, step_buttons),
                    )
                ],
                REQUEST: [
                    MessageHandler(
                        typed,
                        text_step(
                            "request", parse_request, "order.ask.photos", PHOTOS, skip_buttons
                        ),
                    )
                ],
                PHOTOS: [CallbackQueryHandler(skip_photos, pattern="^f:skip$")],
                REVIEW: [CallbackQueryHandler(confirm, pattern="^f:ok$")],
            },
            fallbacks=[CommandHandler("cancel", cancel)],
        )
        self.app = (
            Application.builder()
            .token("1:bench")
            .request(NullRequest())
            .get_updates_request(NullRequest())
            .updater(None)
            .build()
        )
        self.app.add_handler(CommandHandler("start", start))
        self.app.add_handler(CallbackQueryHandler(consent, pattern="^consent:yes$"))
        self.app.add_handler(conversation)
        await self.app.initialize()
        await self.app.start()
        self.update_cls = Update

    async def send(self, chat: int, n: int, fields: dict[str, str]) -> None:
        user = {"id": chat, "is_bot": False, "first_name": "Khách"}
        chat_obj = {"id": chat, "type": "private"}
        update_id = next(self.update_ids)
        now = int(time.time())
        data: dict[str, Any]
        if "payload" in fields:
            data = {
                "update_id": update_id,
                "callback_query": {
                    "id": str(update_id),
                    "from": user,
                    "chat_instance": str(chat),
                    "data": fields["payload"],
                    "message": {"message_id": 1, "date": now, "chat": chat_obj, "text": "…"},
                },
            }
        else:
            text = fields["text"]
            message: dict[str, Any] = {
                "message_id": update_id,
                "date": now,
                "chat": chat_obj,
                "from": user,
                "text": text,
            }
            if "command" in fields:
                message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text)}]
            data = {"update_id": update_id, "message": message}
        await self.app.update_queue.put(self.update_cls.de_json(data, self.app.bot))

    async def orders(self) -> int:
        return self.orders_placed

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.app.stop(), 3)
            await self.app.shutdown()


# ---- load generators ------------------------------------------------------------------------


class Load:
    def __init__(self, system: Any, tracker: Tracker) -> None:
        self.system = system
        self.tracker = tracker
        self.customers = itertools.count(1_000_001)
        self.offered = 0
        self.lost = 0

    def fields(self, step: int, chat: int) -> dict[str, str]:
        fields = dict(DIALOGUE[step][0])
        if fields.get("text") == "{name}":
            fields["text"] = customer_name(chat)
        return fields

    async def offer(
        self, chat: int, step: int, at: float, after: asyncio.Task[Sent] | None = None
    ) -> Sent:
        """Send one message (once `after`, the customer's previous one, has been handed
        over: platforms deliver a chat's messages in order); one the system refuses to store
        is lost."""
        sent = self.tracker.expect(str(chat), DIALOGUE[step][1], at)
        self.offered += 1
        if after is not None:
            await after
        try:
            await self.system.send(chat, step, self.fields(step, chat))
        except Exception:
            self.lost += 1
            self.tracker.abandon(str(chat))
        return sent

    async def closed_slot(self, deadline: float, give_up: float, once: bool = False) -> None:
        """Customers one after another, each sending its next message after the replies."""
        while time.perf_counter() < deadline:
            chat = next(self.customers)
            for step in range(len(DIALOGUE)):
                if time.perf_counter() >= deadline:
                    return
                sent = await self.offer(chat, step, time.perf_counter())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(sent.done.wait(), give_up - time.perf_counter())
                if str(chat) in self.tracker.broken or not sent.done.is_set():
                    break
            if once:
                return

    async def open_loop(self, rate: float, seconds: float, think: float) -> None:
        """Offer `rate` messages/s for `seconds`; customers take turns (one message each per
        `think` seconds), so a slow system builds up per-conversation backlogs."""
        slots = max(1, round(rate * think))
        position = [len(DIALOGUE)] * slots  # step of each slot's current customer
        chats = [0] * slots
        previous: dict[int, asyncio.Task[Sent]] = {}  # each chat's latest message
        start = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            slot = i % slots
            if position[slot] >= len(DIALOGUE) or str(chats[slot]) in self.tracker.broken:
                chats[slot], position[slot] = next(self.customers), 0
            chat = chats[slot]
            previous[chat] = asyncio.create_task(
                self.offer(chat, position[slot], due, previous.get(chat)), name="client-open"
            )
            position[slot] += 1


async def run_one(spec: dict[str, Any], profiler: Any = None) -> dict[str, Any]:
    """One measured run (in its own process): returns its numbers. A `cProfile.Profile`
    given as `profiler` runs during the measured window and drain only."""
    loop = asyncio.get_running_loop()
    task_errors: collections.Counter[str] = collections.Counter()

    def on_error(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        task_errors[type(exc).__name__ if exc else str(context.get("message"))[:60]] += 1

    loop.set_exception_handler(on_error)
    log_counts: collections.Counter[str] = collections.Counter()

    class CountLogs(logging.Handler):
        """Warnings and errors the product logged (e.g. "handling … failed"), counted."""

        def emit(self, record: logging.LogRecord) -> None:
            log_counts[f"{record.levelname} {record.name}: {record.msg}"[:90]] += 1

    logging.getLogger().addHandler(CountLogs(logging.WARNING))
    tracker = Tracker("staff" if spec["system"] == "ours" else str(PtbSystem.STAFF_CHAT))
    counter = SqlCounter()
    counter.count_loop_turns(loop)
    folder = Path(tempfile.mkdtemp(prefix="bench-"))
    system: Any
    if spec["system"] == "ours":
        db = folder / "bench.db"
        if spec.get("seed_file"):
            shutil.copyfile(spec["seed_file"], db)
        system = OursSystem(db, tracker, counter)
    else:
        system = PtbSystem(tracker)
    await system.start()
    load = Load(system, tracker)
    orders_before = await system.orders()

    # Warm-up and check: one customer's whole dialogue, alone.
    await load.closed_slot(float("inf"), time.perf_counter() + 30, once=True)
    warm = {"wrong": tracker.wrong, "orders": await system.orders() - orders_before}
    tracker.latencies.clear()
    tracker.first_times.clear()
    load.offered = tracker.outbound = tracker.staff_alerts = 0
    orders_before = await system.orders()

    seconds = spec["seconds"]
    counter.on = True
    if profiler is not None:
        profiler.enable()
    cpu0 = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    give_up = deadline + spec["drain"]
    if spec["mode"] == "closed":
        slots = [
            asyncio.create_task(load.closed_slot(deadline, give_up), name=f"client-{i}")
            for i in range(spec["customers"])
        ]
        await asyncio.wait(slots, timeout=give_up - time.perf_counter() + 1)
        backlog_end = None
    else:
        await load.open_loop(spec["rate"], seconds, spec["think"])
        await asyncio.sleep(max(0.0, deadline - time.perf_counter()))
        backlog_end = tracker.pending()
        await asyncio.sleep(1.0)
    backlog_1s = tracker.pending()
    in_window = sum(1 for at in tracker.first_times if at <= deadline)
    while tracker.pending() and time.perf_counter() < give_up:  # noqa: ASYNC110  (bounded drain)
        await asyncio.sleep(0.05)
    drained_at = time.perf_counter()
    if spec["system"] == "ours" and not tracker.pending():
        await asyncio.sleep(0.2)  # the staff alerts of the last confirmations
    counter.on = False
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - cpu0  # all threads, window and drain
    unanswered = tracker.pending()
    answered = len(tracker.first_times)
    # Inbound messages processed: ours counts its inbox marks; PTB, what it answered.
    marks = sum(
        n for sql, n in counter.rows["process"].items() if sql.startswith("UPDATE inbox SET")
    )
    processed = marks if spec["system"] == "ours" else answered
    if spec["mode"] == "closed":
        # No message is sent after the deadline, and each customer has at most one waiting:
        # throughput = answered / time until the last of them was answered.
        end = max(tracker.first_times) if tracker.first_times else drained_at
        throughput = answered / (end - start)
    else:
        throughput = in_window / seconds  # answered inside the window at the offered rate
    orders = await system.orders() - orders_before
    await system.stop()
    shutil.rmtree(folder, ignore_errors=True)
    return {
        **spec,
        "warm": warm,
        "throughput": throughput,
        "offered": load.offered,
        "offered_rate": load.offered / seconds,
        "answered_in_window": in_window,
        "answered": answered,
        "processed": processed,
        "stored_inbound": counter.tx["receive"]["commit"],
        "outbound": tracker.outbound,
        "staff_alerts": tracker.staff_alerts,
        "latencies": sorted(tracker.latencies),
        "cpu_ms_per_msg": 1000 * cpu / max(1, processed),
        "lost": load.lost,
        "unanswered": unanswered,
        "backlog_end": backlog_end,
        "backlog_1s": backlog_1s,
        "drain_s": drained_at - deadline,
        "wrong": tracker.wrong,
        "unexpected": tracker.unexpected,
        "orders": orders,
        "task_errors": dict(task_errors),
        "log_errors": dict(log_counts),
        "rss_mb": peak_rss_mb(),
        "load": os.getloadavg()[0],
        "sql": counter.to_json(),
    }


def peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM; ru_maxrss would include the parent's, from before exec)."""
    for text in Path("/proc/self/status").read_text().splitlines():
        if text.startswith("VmHWM:"):
            return int(text.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- seeding stored customers ---------------------------------------------------------------


def seed(path: Path, customers: int) -> float:
    """A migrated database with `customers` customers who each consented, placed one order,
    and exchanged 4 inbound / 5 outbound messages (processed and sent), written with
    sqlite3 `executemany` in one transaction. Returns seconds."""
    import sqlite3

    from handlers.context import CONSENT_PURPOSE, policy_version
    from storage.db import create_engine, migrate_to_head

    started = time.perf_counter()

    async def migrate() -> None:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        await migrate_to_head(engine)
        await engine.dispose()

    asyncio.run(migrate())
    base = datetime(2025, 6, 1)
    version = policy_version()
    address = "12 Hàng Bông, Hoàn Kiếm, Hà Nội"

    @functools.lru_cache(maxsize=1)
    def at(i: int) -> str:  # how SQLAlchemy stores a UTC datetime in SQLite
        return (base + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S.%f")

    rows: dict[str, Callable[[int], list[tuple[Any, ...]]]] = {
        "customers (id, language, full_name, phone, address, created_at, last_seen_at,"
        " lock_notified)": lambda i: [
            (i, "vi", customer_name(i), f"+8491{i:07d}", address, at(i), at(i), 0)
        ],
        "channel_identities (customer_id, channel, platform_user_id, chat_id, created_at)": (
            lambda i: [(i, "console", f"s{i}", f"s{i}", at(i))]
        ),
        "consents (customer_id, purpose, policy_version, granted, decided_at)": lambda i: [
            (i, CONSENT_PURPOSE, version, 1, at(i))
        ],
        "orders (id, code, customer_id, status, channel, language, full_name, phone, address,"
        " request_text, photos, product_code, created_at, updated_at)": lambda i: [
            (
                i,
                f"VAV-S{i:07d}",
                i,
                "new",
                "console",
                "vi",
                customer_name(i),
                f"+8491{i:07d}",
                address,
                "SD-001",
                "[]",
                "SD-001",
                at(i),
                at(i),
            )
        ],
        "order_status_history (order_id, status, at, actor)": lambda i: [
            (i, "new", at(i), f"customer:{i}")
        ],
        "audit_log (at, actor, action)": lambda i: [
            (at(i), f"customer:{i}", action) for action in ("consent", "order_created")
        ],
        "inbox (channel, dedupe_key, chat_id, platform_user_id, payload, received_at,"
        " processed_at)": lambda i: [
            ("console", f"s{i}:{n}", f"s{i}", f"s{i}", "{}", at(i), at(i)) for n in range(4)
        ],
        "outbox (channel, chat_id, customer_id, payload, status, attempts, next_attempt_at,"
        " created_at, sent_at, platform_message_id)": lambda i: [
            ("console", f"s{i}", i, "{}", "sent", 1, at(i), at(i), at(i), f"{i}-{n}")
            for n in range(5)
        ],
    }
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-500000")  # 500 MB: index pages stay in memory
    with db:
        for table, make in rows.items():
            width = len(make(1)[0])
            sql = f"INSERT INTO {table} VALUES ({', '.join('?' * width)})"
            db.executemany(sql, (row for i in range(1, customers + 1) for row in make(i)))
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    return time.perf_counter() - started


# ---- orchestration and reporting ------------------------------------------------------------


def run_child(spec: dict[str, Any]) -> dict[str, Any] | None:
    """Each run in its own process: a clean heap, its own peak RSS, no leftovers."""
    done = subprocess.run(
        [sys.executable, __file__, "--run-spec", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=spec["seconds"] + spec["drain"] + 180,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        error = (done.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  run failed ({error[:150]}): {spec}", flush=True)
        return None
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * q))]


def per_message(result: dict[str, Any]) -> dict[str, float]:
    """Statements and transactions per inbound message (store + process) and per delivered
    message (delivery worker)."""
    sql, tx = result["sql"]["statements"], result["sql"]["tx"]
    inbound = max(1, result["processed"])
    delivered = max(1, result["outbound"])

    def count(phase: str) -> int:
        return sum(sql.get(phase, {}).values())

    return {
        "stmt_in": (count("receive") + count("process")) / inbound,
        "commit_in": (
            tx.get("receive", {}).get("commit", 0) + tx.get("process", {}).get("commit", 0)
        )
        / inbound,
        "stmt_out": count("deliver") / delivered,
        "commit_out": tx.get("deliver", {}).get("commit", 0) / delivered,
    }


def line(result: dict[str, Any]) -> str:
    lat = result["latencies"]
    pm = per_message(result) if result["system"] == "ours" else None
    counts = (
        f" | stmt/in {pm['stmt_in']:.1f} commit/in {pm['commit_in']:.2f}"
        f" stmt/out {pm['stmt_out']:.1f} commit/out {pm['commit_out']:.2f}"
        if pm
        else ""
    )
    extra = ""
    if result["mode"] == "open":
        extra = (
            f" | offered {result['offered_rate']:.0f}/s backlog@end {result['backlog_end']}"
            f" @+1s {result['backlog_1s']}"
        )
    return (
        f"  {result['system']:4} {label(result):24} {result['throughput']:8.1f} msg/s"
        f"  p50 {pct(lat, 0.5) * 1000:8.1f}  p99 {pct(lat, 0.99) * 1000:8.1f}"
        f"  max {pct(lat, 1) * 1000:8.1f} ms  cpu {result['cpu_ms_per_msg']:6.2f} ms/msg"
        f"  rss {result['rss_mb']:5.0f} MB  load {result['load']:4.1f}  orders {result['orders']:5}"
        f"  lost {result['lost']} unanswered {result['unanswered']} wrong {result['wrong']}"
        f"{' task-errors ' + str(result['task_errors']) if result['task_errors'] else ''}"
        f"{' logged ' + str(sum(result['log_errors'].values())) if result['log_errors'] else ''}"
        f"{extra}{counts}"
    )


def label(result: dict[str, Any]) -> str:
    stored = f" stored {result['stored']:,}" if result.get("stored") else ""
    if result["mode"] == "closed":
        return f"closed {result['customers']:>4} cust{stored}"
    return f"open {result['rate']:>4}/s{stored}"


def median_of(results: list[dict[str, Any]], key: Callable[[dict[str, Any]], float]) -> float:
    return statistics.median(key(r) for r in results)


def summary(groups: dict[str, list[dict[str, Any]]]) -> None:
    print("\n== Summary (medians over repeats) ==")
    print(
        f"{'system':5} {'configuration':26} {'msg/s':>8} {'p50 ms':>9} {'p99 ms':>9} "
        f"{'max ms':>9} {'cpu ms':>7} {'RSS MB':>7} {'stmt/in':>8} {'commit/in':>9} "
        f"{'stmt/out':>8} {'commit/out':>10} {'lost':>5} {'keeps up':>8} {'ours/PTB':>8}"
    )
    ptb_by_customers = {
        r[0]["customers"]: median_of(r, lambda x: x["throughput"])
        for r in groups.values()
        if r[0]["system"] == "ptb"
    }
    for results in groups.values():
        first = results[0]
        ours = first["system"] == "ours"
        pm = [per_message(r) for r in results] if ours else []
        cells = [
            median_of(results, lambda r: r["throughput"]),
            median_of(results, lambda r: pct(r["latencies"], 0.5) * 1000),
            median_of(results, lambda r: pct(r["latencies"], 0.99) * 1000),
            median_of(results, lambda r: pct(r["latencies"], 1) * 1000),
            median_of(results, lambda r: r["cpu_ms_per_msg"]),
            max(r["rss_mb"] for r in results),
        ]
        text = (
            f"{first['system']:5} {label(first):26} {cells[0]:8.1f} {cells[1]:9.1f} "
            f"{cells[2]:9.1f} {cells[3]:9.1f} {cells[4]:7.2f} {cells[5]:7.0f} "
        )
        if pm:
            text += (
                f"{statistics.median(p['stmt_in'] for p in pm):8.1f} "
                f"{statistics.median(p['commit_in'] for p in pm):9.2f} "
                f"{statistics.median(p['stmt_out'] for p in pm):8.1f} "
                f"{statistics.median(p['commit_out'] for p in pm):10.2f} "
            )
        else:
            text += f"{'-':>8} {'-':>9} {'-':>8} {'-':>10} "
        text += f"{sum(r['lost'] for r in results):5} "
        if first["mode"] == "open":
            keeps = all(r["lost"] == 0 and r["backlog_1s"] == 0 for r in results)
            text += f"{'yes' if keeps else 'NO':>8}"
        else:
            text += f"{'':>8}"
        if ours and first["mode"] == "closed" and not first.get("stored"):
            reference = ptb_by_customers.get(first["customers"])
            if reference:
                text += f" {cells[0] / reference:8.3f}"
        print(text)


def statement_table(result: dict[str, Any]) -> None:
    sql, tx = result["sql"]["statements"], result["sql"]["tx"]
    inbound, delivered = max(1, result["processed"]), max(1, result["outbound"])
    print(
        f"\n== SQL per message ({label(result)}, {result['processed']} inbound processed, "
        f"{result['outbound']} delivered) =="
    )
    for phase, per, unit in (
        ("receive", inbound, "inbound"),
        ("process", inbound, "inbound"),
        ("deliver", delivered, "delivered"),
        ("other", inbound, "inbound"),
    ):
        statements = collections.Counter[str]()
        for text, n in sql.get(phase, {}).items():
            statements[short_sql(text)] += n
        if not statements:
            continue
        total = sum(statements.values())
        txc = tx.get(phase, {})
        print(
            f"-- {phase}: {total / per:.2f} statements per {unit}; BEGIN "
            f"{txc.get('begin', 0) / per:.2f}, COMMIT {txc.get('commit', 0) / per:.2f}, "
            f"ROLLBACK {txc.get('rollback', 0) / per:.2f} (+ pool reset "
            f"{txc.get('pool reset', 0) / per:.2f}), thread hand-offs "
            f"{txc.get('thread hop', 0) / per:.1f}"
        )
        for text, n in statements.most_common():
            print(f"   {n / per:6.2f}  {text}")
    every = collections.Counter[str]()
    for phase_tx in tx.values():
        every.update(phase_tx)
    total = sum(sum(c.values()) for c in sql.values())
    print(
        f"-- all phases, per inbound message (its deliveries included): {total / inbound:.1f} "
        f"statements, {every['commit'] / inbound:.2f} COMMIT, {every['rollback'] / inbound:.2f} "
        f"ROLLBACK, {every['pool reset'] / inbound:.2f} pool-reset ROLLBACK, "
        f"{every['thread hop'] / inbound:.1f} aiosqlite thread hand-offs, "
        f"{result['sql']['loop_turns'] / inbound:.0f} event-loop iterations"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--customers",
        default="10,50,200,1000",
        help="closed loop: customers at once (comma-separated)",
    )
    parser.add_argument(
        "--rates", default="50,100,200,500", help="open loop: offered messages/s (comma-separated)"
    )
    parser.add_argument(
        "--stored",
        default="1000,10000,100000",
        help="customers already stored (comma-separated; 0 = none)",
    )
    parser.add_argument(
        "--stored-customers",
        type=int,
        default=200,
        help="closed-loop customers at once for the stored runs",
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="measured window per run")
    parser.add_argument(
        "--drain", type=float, default=20.0, help="how long to wait for replies after the window"
    )
    parser.add_argument(
        "--think",
        type=float,
        default=THINK,
        help="open loop: seconds between a customer's messages",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per configuration")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a fast subset: 10,200 customers; 50,200 msg/s; 10k stored; 5 s; once",
    )
    parser.add_argument("--no-ptb", action="store_true", help="skip the PTB reference")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile one closed-loop run of ours in-process and exit",
    )
    parser.add_argument("--run-spec", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.run_spec:
        print(json.dumps(asyncio.run(run_one(json.loads(args.run_spec)))))
        sys.stdout.flush()
        os._exit(0)  # don't wait for a backlog left on purpose
    if args.quick:
        args.customers, args.rates, args.stored = "10,200", "50,200", "10000"
        args.seconds, args.repeat, args.drain = 5.0, 1, 10.0
    customers = [int(c) for c in args.customers.split(",") if c]
    rates = [float(r) for r in args.rates.split(",") if r]
    stored = [int(s) for s in args.stored.split(",") if s and int(s)]
    common = {"seconds": args.seconds, "drain": args.drain, "think": args.think}
    if args.profile:
        profile({"system": "ours", "mode": "closed", "customers": customers[-1], **common})
        return

    print(
        f"bench_pipeline: {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at start; Python "
        f"{sys.version.split()[0]}; window {args.seconds:g} s, drain ≤ {args.drain:g} s, "
        f"{args.repeat} run(s) per configuration, ours and PTB interleaved"
    )
    plan: list[dict[str, Any]] = []
    for n in customers:
        plan.append({"system": "ours", "mode": "closed", "customers": n, **common})
        if not args.no_ptb:
            plan.append({"system": "ptb", "mode": "closed", "customers": n, **common})
    for rate in rates:
        plan.append({"system": "ours", "mode": "open", "rate": rate, **common})
    seeds: dict[int, str] = {}
    folder = Path(tempfile.mkdtemp(prefix="bench-seed-"))
    for n in stored:
        path = folder / f"stored-{n}.db"
        took = seed(path, n)
        print(
            f"seeded {n:,} customers (+ consent, order, 4 inbox and 5 outbox rows each) in "
            f"{took:.1f} s: {path.stat().st_size / 1e6:.0f} MB"
        )
        seeds[n] = str(path)
        plan.append(
            {
                "system": "ours",
                "mode": "closed",
                "customers": args.stored_customers,
                "stored": n,
                "seed_file": str(path),
                **common,
            }
        )
    groups: dict[str, list[dict[str, Any]]] = {}
    try:
        for repeat in range(args.repeat):
            print(f"\n== Round {repeat + 1}/{args.repeat} ==", flush=True)
            for spec in plan:
                result = run_child(spec)
                if result is not None:
                    groups.setdefault(f"{spec['system']} {label(spec)}", []).append(result)
                    print(line(result), flush=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    checks = [r for results in groups.values() for r in results]
    print(
        f"\nwarm-up dialogue checks: {sum(r['warm']['orders'] for r in checks)} orders "
        f"from {len(checks)} single-customer dialogues, "
        f"{sum(r['warm']['wrong'] for r in checks)} wrong replies"
    )
    logged = collections.Counter[str]()
    for r in checks:
        logged.update(r["log_errors"])
        logged.update({f"task died: {k}": v for k, v in r["task_errors"].items()})
    if logged:
        print("warnings/errors logged by the bot across all runs:")
        for text, n in logged.most_common():
            print(f"  {n:6}  {text}")
    closed = [
        r
        for r in groups.values()
        if r[0]["system"] == "ours" and r[0]["mode"] == "closed" and not r[0].get("stored")
    ]
    if closed:  # the fewest customers: whole dialogues, every step in its share
        statement_table(max(closed[0], key=lambda r: r["processed"]))
    summary(groups)


def profile(spec: dict[str, Any]) -> None:
    """cProfile (CPU time) of one run's window: the main thread only, where the event loop
    runs; aiosqlite's SQLite thread is not seen (py-spy sees every thread)."""
    import cProfile
    import pstats

    profiler = cProfile.Profile(time.thread_time)  # CPU time: a busy machine's waits don't count
    result = asyncio.run(run_one(spec, profiler))
    print(line(result))
    stats = pstats.Stats(profiler)
    areas: collections.Counter[str] = collections.Counter()
    for (filename, _, function), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        areas[area(filename, function)] += tottime
    idle = areas.pop("waiting in epoll (idle)", 0.0)
    total = sum(areas.values())
    print(f"\nmain thread CPU: {total:.1f} s (+{idle:.1f} s in epoll); by area:")
    for name, seconds in areas.most_common():
        print(f"  {100 * seconds / total:5.1f}%  {name}")
    print()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)


def area(filename: str, function: str) -> str:
    """Which layer a profiled function belongs to."""
    if "select.epoll" in function:
        return "waiting in epoll (idle)"
    if "sqlalchemy/orm" in filename:
        return "SQLAlchemy ORM"
    if "sqlalchemy/util/_concurrency" in filename or "sqlalchemy/util/concurrency" in filename:
        return "SQLAlchemy async bridge (greenlet)"
    if "greenlet" in function or "greenlet" in filename:
        return "SQLAlchemy async bridge (greenlet)"
    if "sqlalchemy/dialects" in filename or "sqlalchemy/connectors" in filename:
        return "SQLAlchemy aiosqlite adapter"
    if "sqlalchemy" in filename:
        return "SQLAlchemy Core/engine/pool"
    if "aiosqlite" in filename:
        return "aiosqlite"
    if "SimpleQueue" in function or "threading" in filename or "queue.py" in filename:
        return "thread hand-offs (queues, locks)"
    if "sqlite3" in function:
        return "sqlite3 (main thread)"
    if "asyncio" in filename or "selectors" in filename or "socket" in function:
        return "asyncio event loop"
    for part in ("handlers/", "storage/", "bot/"):
        if f"/{part}" in filename:
            return f"project {part}"
    if "bench_pipeline" in filename:
        return "benchmark driver"
    if "json" in filename or "json" in function:
        return "json"
    return "other (stdlib, builtins)"


if __name__ == "__main__":
    main()

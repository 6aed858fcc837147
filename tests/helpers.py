"""Shared test helpers: a controllable clock, a recording channel adapter, and `Harness`,
which drives the real pipeline (inbox → dispatcher → outbox → delivery) in-process.

Typical use (the `harness` fixture in `conftest.py` builds one on a fresh database)::

    async def test_something(harness: Harness) -> None:
        await harness.consent("1")                       # /start + "I agree"
        replies = await harness.say("1", "/order")       # Outbounds delivered for this step
        assert first_line("order.ask.full_name") in joined(replies)
        await harness.press("1", harness.payload_of("1", "flow.btn.cancel"))

Everything goes through `Runtime.receive` and `Runtime.idle`, exactly like a real channel:
replies are what the adapter was asked to send, after commit.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.console import ConsoleAdapter
from bot.runtime import DeliveryPolicy, Runtime
from handlers.context import ShopConfig
from handlers.engine import position
from handlers.i18n import t
from handlers.messages import (
    STAFF,
    Attachment,
    Button,
    ChannelCapabilities,
    Contact,
    Inbound,
    Outbound,
    PermanentSendError,
    SendResult,
    TemporarySendError,
)
from handlers.orders.catalog import Catalog
from handlers.router import Composition
from storage.models import (
    Base,
    ChannelIdentity,
    ConversationState,
    Customer,
    InboxEvent,
    Order,
    OutboxMessage,
)
from storage.repositories import OrderRepository, StateRepository, UnitOfWork

PROJECT_DIR = Path(__file__).resolve().parent.parent
EXAMPLE_CATALOG = PROJECT_DIR / "handlers" / "orders" / "catalog.example.toml"

CHANNEL = "console"
CONSOLE_CAPABILITIES = ConsoleAdapter.capabilities
STAFF_USER = "900"  # a staff admin (in `staff_admin_ids` of the default config)
START_TIME = datetime(2026, 1, 15, 3, 0, tzinfo=UTC)  # 10:00 in Hanoi

# Large enough that `Runtime.idle()` returns while a failed send waits for its retry: idle()
# keeps polling (in real time) when the next retry is due within 5 seconds, and the fake
# clock does not move by itself. Tests advance the clock past the backoff explicitly.
TEST_DELIVERY = DeliveryPolicy(base_delay=60.0, max_delay=3600.0, max_attempts=12)

# Each Harness step moves the clock this much first, like a person typing: customers are
# flood-limited per minute (handlers/support/abuse.py), and a frozen clock would make every
# message of a long test arrive "at once". Pass `pace=timedelta(0)` to freeze time.
TYPING_PACE = timedelta(seconds=4)

# Environment variables `run_cli` removes: the developer's own shop settings.
CLI_SETTING_PREFIXES = ("TELEGRAM_", "ZALO_", "STAFF_", "DATABASE_", "WEBHOOK_", "RETENTION_")

RowT = TypeVar("RowT", bound=Base)


def tr(key: str, lang: str = "vi", **params: object) -> str:
    """The catalog text a user sees for `key` (Vietnamese unless told)."""
    return t(lang, key, **params)


def kb_reply(key: str, lang: str = "vi", **params: object) -> str:
    """A knowledge-base answer as the bot sends it: with the hotline line when the answer
    itself does not give the hotline (no dead ends)."""
    text = tr(key, lang, **params)
    if tr("core.hotline", lang) in text:
        return text
    return f"{text}\n\n{tr('support.more_help', lang)}"


def first_line(key: str, lang: str = "vi", **params: object) -> str:
    """The first line of a catalog text: enough to recognise a prompt in output."""
    return tr(key, lang, **params).splitlines()[0]


def texts(messages: Iterable[Outbound]) -> list[str]:
    return [m.text for m in messages]


def joined(messages: Iterable[Outbound]) -> str:
    """All texts of `messages` in one string, for `in` checks."""
    return "\n\n".join(texts(messages))


def in_order(messages: Iterable[Outbound], expected: Sequence[str]) -> bool:
    """True when each text of `expected` starts some message, in this order (other messages,
    e.g. acknowledgements, may come in between)."""
    remaining = iter(texts(messages))
    return all(any(text.startswith(want) for text in remaining) for want in expected)


def to_chat(messages: Iterable[Outbound], chat_id: str) -> list[Outbound]:
    return [m for m in messages if m.chat_id == chat_id]


def flat_buttons(message: Outbound) -> list[Button]:
    return [button for row in message.buttons for button in row]


def run_cli(tmp_path: Path, *args: str, lines: Sequence[str] = (), **env_extra: str) -> str:
    """Run `python -m bot ARGS` to completion with `lines` typed on stdin: in `tmp_path` (no
    stray `.env`), with its data in `tmp_path/data`, the shop's own settings taken out of the
    environment and `env_extra` put in. It must exit 0; returns its stdout."""
    env = {
        key: value for key, value in os.environ.items() if not key.startswith(CLI_SETTING_PREFIXES)
    }
    env.update(DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(PROJECT_DIR), **env_extra)
    result = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        input="".join(f"{line}\n" for line in lines),
        capture_output=True,
        text=True,
        encoding="utf-8",
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


class FakeClock:
    """A clock the test moves by hand; pass it as `Runtime(clock=...)`."""

    def __init__(self, start: datetime = START_TIME) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        """`clock.advance(hours=25)` or `clock.advance(timedelta(seconds=90))`."""
        self.now += delta if delta is not None else timedelta(**kwargs)
        return self.now


@dataclass(frozen=True)
class Sent:
    """One successful `send` call, as the adapter saw it."""

    message: Outbound
    edit_message_id: str | None
    reply_to_message_id: str | None
    platform_message_id: str


class RecordingAdapter:
    """A `ChannelAdapter` that records what it is asked to send (the test's "platform").

    Platform ids are "1", "2", ... in order of successful sends. `fail_next(n, error)` makes
    the next `n` sends (optionally only those to `chat_id`) raise `error`, which may be an
    exception instance, an exception class, or one of the shortcuts "temporary",
    "permanent", "unreachable" (permanent + unreachable) and "generic" (RuntimeError).
    It declares the console's capabilities unless told others.
    """

    def __init__(
        self, name: str = CHANNEL, capabilities: ChannelCapabilities = CONSOLE_CAPABILITIES
    ) -> None:
        self.name = name
        self.capabilities = capabilities
        self.sent: list[Sent] = []
        self.deleted: list[tuple[str, str]] = []
        self.attempts = 0  # every send call, including failed ones
        self._ids = itertools.count(1)
        self._failures: list[tuple[str | None, BaseException]] = []
        self._changed = asyncio.Event()

    # ---- controlling failures ---------------------------------------------------------------
    def fail_next(
        self,
        count: int = 1,
        error: BaseException | type[BaseException] | str = "temporary",
        chat_id: str | None = None,
    ) -> None:
        for _ in range(count):
            self._failures.append((chat_id, _make_error(error)))

    @property
    def failures_left(self) -> int:
        return len(self._failures)

    # ---- the ChannelAdapter protocol --------------------------------------------------------
    async def send(
        self,
        message: Outbound,
        edit_message_id: str | None = None,
        reply_to_message_id: str | None = None,
    ) -> SendResult:
        self.attempts += 1
        for index, (chat_id, error) in enumerate(self._failures):
            if chat_id is None or chat_id == message.chat_id:
                del self._failures[index]
                raise error
        platform_id = edit_message_id or str(next(self._ids))
        self.sent.append(Sent(message, edit_message_id, reply_to_message_id, platform_id))
        self._changed.set()
        return SendResult(platform_message_id=platform_id)

    async def delete(self, chat_id: str, message_id: str) -> None:
        self.deleted.append((chat_id, message_id))

    # ---- inspecting ---------------------------------------------------------------------
    @property
    def messages(self) -> list[Outbound]:
        return [s.message for s in self.sent]

    def to(self, chat_id: str) -> list[Outbound]:
        return [s.message for s in self.sent if s.message.chat_id == chat_id]

    async def wait_for(self, count: int, within: float = 30.0) -> None:
        """Wait until at least `count` messages were sent (for the background worker)."""

        async def _wait() -> None:
            while len(self.sent) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(_wait(), within)


def _make_error(error: BaseException | type[BaseException] | str) -> BaseException:
    if isinstance(error, BaseException):
        return error
    if isinstance(error, type):
        return error("simulated failure")
    if error == "temporary":
        return TemporarySendError("simulated timeout")
    if error == "permanent":
        return PermanentSendError("simulated refusal")
    if error == "unreachable":
        return PermanentSendError("bot blocked by user", unreachable=True)
    if error == "generic":
        return RuntimeError("simulated network error")
    raise ValueError(f"unknown failure kind {error!r}")


@cache
def example_catalog() -> Catalog:
    """`handlers/orders/catalog.example.toml`, loaded once."""
    return Catalog.load(EXAMPLE_CATALOG)


def shop_config(**overrides: Any) -> ShopConfig:
    """The test shop: example catalog, staff on the console channel in chat `STAFF`."""
    values: dict[str, Any] = {
        "catalog": example_catalog(),
        "staff_channel": CHANNEL,
        "staff_chat_id": STAFF,
        "staff_admin_ids": frozenset({STAFF_USER}),
    }
    values.update(overrides)
    return ShopConfig(**values)


class Harness:
    """Drives one `Runtime` on a migrated database, one step at a time.

    Each step (`say`, `press`, `contact`, `photo`, `staff`, `send`) advances the clock by
    `pace`, stores an `Inbound` with a fresh dedupe key through `runtime.receive`, waits for
    `runtime.idle()`, and returns the `Outbound`s delivered during that step (to anyone: the
    customer, the staff chat, other customers). Private chats use the user id as chat id.
    Staff write in `config.staff_chat_id` (`STAFF`) on the same "console" channel.
    """

    _instances = itertools.count(1)

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        clock: FakeClock | None = None,
        config: ShopConfig | None = None,
        adapter: RecordingAdapter | None = None,
        delivery: DeliveryPolicy = TEST_DELIVERY,
        pace: timedelta = TYPING_PACE,
        app: Composition | None = None,
    ) -> None:
        self.sessions = sessions
        self.pace = pace
        self.clock = clock or FakeClock()
        self.config = config or shop_config()
        self.adapter = adapter or RecordingAdapter(CHANNEL)
        self.runtime = Runtime(sessions, self.config, clock=self.clock, delivery=delivery, app=app)
        self.runtime.add_adapter(self.adapter)
        self._keys = itertools.count(1)
        self._prefix = f"h{next(self._instances)}"

    # ---- building inbounds -------------------------------------------------------------
    def inbound(self, user_id: str, text: str = "", **fields: Any) -> Inbound:
        """A customer's private-chat inbound; `/command args` in `text` is parsed."""
        command, args = Inbound.parse_command(text) if text else (None, "")
        base = Inbound(
            channel=CHANNEL,
            chat_id=user_id,
            user_id=user_id,
            dedupe_key=f"{self._prefix}:{next(self._keys)}",
            text=text,
            command=command,
            args=args if command else "",
        )
        return replace(base, **fields)

    def staff_inbound(
        self,
        text: str = "",
        user_id: str = STAFF_USER,
        payload: str | None = None,
        reply_to: str | None = None,
        **fields: Any,
    ) -> Inbound:
        command, args = Inbound.parse_command(text) if text else (None, "")
        base = Inbound(
            channel=CHANNEL,
            chat_id=self.config.staff_chat_id,
            user_id=user_id,
            dedupe_key=f"{self._prefix}:{next(self._keys)}",
            text=text,
            command=command,
            args=args if command else "",
            payload=payload,
            from_staff_chat=True,
            user_display_name=f"Staff {user_id}",
            reply_to_message_id=reply_to,
        )
        return replace(base, **fields)

    # ---- steps ---------------------------------------------------------------------------
    async def send(self, inbound: Inbound) -> list[Outbound]:
        """Receive one inbound, wait until idle, return what was delivered meanwhile."""
        mark = len(self.adapter.sent)
        self.clock.advance(self.pace)
        await self.runtime.receive(inbound)
        await self.runtime.idle()
        return [s.message for s in self.adapter.sent[mark:]]

    async def say(self, user_id: str, text: str, **fields: Any) -> list[Outbound]:
        return await self.send(self.inbound(user_id, text, **fields))

    async def press(self, user_id: str, payload: str, text: str = "") -> list[Outbound]:
        return await self.send(self.inbound(user_id, text, payload=payload))

    async def contact(self, user_id: str, phone: str, name: str = "") -> list[Outbound]:
        return await self.send(self.inbound(user_id, "", contact=Contact(phone=phone, name=name)))

    async def photo(self, user_id: str, ref: str, caption: str = "") -> list[Outbound]:
        return await self.send(
            self.inbound(user_id, caption, attachments=(Attachment("photo", ref),))
        )

    async def staff(
        self,
        text: str = "",
        user_id: str = STAFF_USER,
        payload: str | None = None,
        reply_to: str | None = None,
    ) -> list[Outbound]:
        """A message (or button press) in the staff chat."""
        return await self.send(self.staff_inbound(text, user_id, payload, reply_to))

    async def hand_to_carrier(self, order_id: int, user_id: str = STAFF_USER) -> list[Outbound]:
        """Press the alert's "shipping" button, then confirm the slip it shows; returns what
        was delivered after the confirmation."""
        (question,) = [
            m
            for m in await self.staff(user_id=user_id, payload=f"os:{order_id}:shipping")
            if m.buttons
        ]
        (confirm,) = [b for row in question.buttons for b in row if b.payload.startswith("oh:")]
        return await self.staff(user_id=user_id, payload=confirm.payload)

    def mark(self) -> int:
        """A position in the delivery log, for `since()`."""
        return len(self.adapter.sent)

    def since(self, mark: int) -> list[Outbound]:
        """What was delivered after `mark` (e.g. around direct `runtime.receive` calls)."""
        return [s.message for s in self.adapter.sent[mark:]]

    async def deliver(self) -> list[Outbound]:
        """Run one delivery pass (after advancing the clock); returns what was delivered."""
        mark = len(self.adapter.sent)
        await self.runtime.idle()
        return [s.message for s in self.adapter.sent[mark:]]

    def advance(self, delta: timedelta | None = None, **kwargs: float) -> datetime:
        return self.clock.advance(delta, **kwargs)

    async def close(self) -> None:
        await self.runtime.stop()

    # ---- common journeys -------------------------------------------------------------------
    async def consent(self, user_id: str) -> list[Outbound]:
        """/start, then "I agree": the customer sees the main menu."""
        await self.say(user_id, "/start")
        return await self.press(user_id, "consent:yes")

    async def order_until(self, user_id: str, step: str, **answers: str) -> list[Outbound]:
        """Consent (if needed) and walk the order flow until `step` is being asked.

        `step` is a step name ("full_name", "phone", "address", "email", "request",
        "photos") or "review". Default answers can be overridden by keyword. A returning
        customer, first offered the saved details, chooses to type new ones ("f:new").
        Returns the replies of the last message sent.
        """
        values = {**DEFAULT_ANSWERS, **answers}
        if not await self.has_consent(user_id):
            await self.consent(user_id)
        replies = await self.say(user_id, "/order")
        state = await self.state(user_id)
        if state is not None and position(state) == "saved":
            replies = await self.press(user_id, "f:new")
        for name in ORDER_STEPS:
            if name == step:
                return replies
            replies = await self.say(user_id, values[name])
            if name == "request" and _offered(replies):
                # A description that fits catalog works is answered "did you mean…?";
                # these journeys keep the customer's own words.
                replies = await self.press(user_id, "f:pick:offer.own")
        assert step == "review", f"unknown step {step!r}"
        return replies

    async def place_order(self, user_id: str, **answers: str) -> str:
        """A whole order, confirmed (by a returning customer too); returns the new order's
        code (exactly one order must have been added)."""
        before = {o.code for o in await self.orders()}
        await self.order_until(user_id, "review", **answers)
        await self.press(user_id, "f:ok")
        (code,) = {o.code for o in await self.orders()} - before
        return code

    # ---- inspecting ------------------------------------------------------------------------
    def delivered(self, chat_id: str | None = None) -> list[Outbound]:
        messages = self.adapter.messages
        return messages if chat_id is None else [m for m in messages if m.chat_id == chat_id]

    def last_message(self, chat_id: str) -> Outbound:
        return self.delivered(chat_id)[-1]

    def last_with_buttons(self, chat_id: str) -> Outbound | None:
        return next((m for m in reversed(self.delivered(chat_id)) if m.buttons), None)

    def last_buttons(self, chat_id: str) -> list[Button]:
        """The buttons of the latest message with buttons in `chat_id` (flattened)."""
        message = self.last_with_buttons(chat_id)
        return flat_buttons(message) if message else []

    def payload_of(self, chat_id: str, label_key: str, **params: object) -> str:
        """The payload of the latest button whose label is catalog text `label_key`."""
        labels = {tr(label_key, lang, **params) for lang in ("vi", "en")}
        for button in self.last_buttons(chat_id):
            if button.label in labels:
                return button.payload
        raise AssertionError(f"no button {label_key!r} in {self.last_buttons(chat_id)}")

    # Reads use a plain session (closing it keeps loaded attributes; a `UnitOfWork` rolls back
    # on exit, which would expire them).
    async def state(self, chat_id: str) -> ConversationState | None:
        """The stored conversation state (flow, step, draft) of `chat_id`, if any."""
        async with self.sessions() as session:
            return await StateRepository(session).get(CHANNEL, chat_id)

    async def has_consent(self, user_id: str) -> bool:
        async with UnitOfWork(self.sessions) as uow:
            identity = await uow.customers.identity(CHANNEL, user_id)
            if identity is None:
                return False
            latest = await uow.consents.latest(identity.customer_id, "order_processing")
            return latest is not None and latest.granted and latest.withdrawn_at is None

    async def orders(self) -> Sequence[Order]:
        """Every order (with its status history), oldest first."""
        async with self.sessions() as session:
            return await OrderRepository(session).all_for_export()

    async def order(self, code: str) -> Order:
        """The order with `code` (with its status history)."""
        return next(o for o in await self.orders() if o.code == code)

    async def customer(self, user_id: str) -> Customer | None:
        """The customer behind `user_id` (None when there is none, e.g. after erasure)."""
        async with self.sessions() as session:
            identity = await session.scalar(
                select(ChannelIdentity).where(
                    ChannelIdentity.channel == CHANNEL, ChannelIdentity.platform_user_id == user_id
                )
            )
            return None if identity is None else await session.get(Customer, identity.customer_id)

    async def rows(self, model: type[RowT]) -> Sequence[RowT]:
        """Every stored row of the table `model`, in id order (oldest first)."""
        async with self.sessions() as session:
            query = select(model).order_by(*inspect(model).primary_key)
            return (await session.scalars(query)).all()

    async def outbox_rows(self) -> Sequence[OutboxMessage]:
        return await self.rows(OutboxMessage)

    async def inbox_rows(self) -> Sequence[InboxEvent]:
        return await self.rows(InboxEvent)


# The order flow's steps, in order, and answers that each step accepts.
def _offered(replies: Sequence[Outbound]) -> bool:
    return any(b.payload == "f:pick:offer.own" for m in replies for b in flat_buttons(m))


ORDER_STEPS = ("full_name", "phone", "address", "email", "request", "photos")
DEFAULT_ANSWERS = {
    "full_name": "Nguyễn Thị Lan",
    "phone": "0912 345 678",
    "address": "12 Hàng Bông, phường Hoàn Kiếm, Hà Nội",
    "email": "bỏ qua",
    "request": "SD-001",
    "photos": "bỏ qua",
}
# The prompt id of each step (what the customer is asked).
STEP_PROMPTS = {name: f"order.ask.{name}" for name in ORDER_STEPS}

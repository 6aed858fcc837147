"""Soak and fault measurement: the REAL bot process (`python -m bot run`) against the fake
Telegram Bot API (tests/fakes/telegram_api.py) on 127.0.0.1. Prints numbers; asserts nothing.

    .venv/bin/python scripts/soak.py [--customers 10] [--seconds 45] [--minutes 0]
                                     [--conditions baseline,group,flood,poison,kill]

Each condition starts a fresh data folder and bot process. Customers (each a new Telegram
user per journey) place real orders step by step — /start, consent, /order, a Vietnamese name,
phone, address, skip email, request, skip photos, confirm — waiting for each reply before the
next step (0.3–1 s "typing" pause). A step's latency is from pushing its update until the
first reply that answers THAT step (matched by content, so a late or duplicated earlier reply
never counts). Conditions:

- baseline: the staff chat is not rate-limited.
- group:    the staff chat is a group limited like Telegram's (20 messages/min, then 429 with
            retry_after); every other condition uses it too.
- flood:    one user sends --flood messages (--flood-rate a second) while the customers order.
- poison:   one customer, after ordering, writes a message that is relayed to the staff chat,
            where the fake Bot API refuses it with HTTP 500 every time (a persistent failure
            that looks temporary); the staff alerts after it must still arrive.
- kill:     the bot is killed with SIGKILL every --kill-every seconds of uptime and restarted;
            latency is also shown without the time the bot was down ("up" columns).

Columns: steps = customer messages sent; lost = steps with no reply within --step-timeout;
dup = messages sent twice (the same text again in the same chat); staff = order alerts that
reached the staff chat / orders confirmed; p50/p99/max = customer reply latency in seconds;
RSS = the bot's resident memory (MB) first → last sample (max). `--minutes M` adds a run of M
minutes (group condition) and prints RSS once a minute, to see whether memory stays flat.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT))

from handlers.i18n import t  # noqa: E402
from tests.fakes.telegram_api import Call, FakeTelegramAPI  # noqa: E402

TOKEN = "123456:SOAK"
STAFF_CHAT = -1001234567890
STAFF_ADMIN = 900
GROUP_LIMIT = (20, 60.0)
FAMILY = ["Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Vũ", "Đặng", "Bùi", "Đỗ", "Hồ"]
MIDDLE = ["Thị", "Văn", "Minh", "Ngọc", "Thu", "Đức", "Hồng", "Quang"]
GIVEN = ["Lan", "Hùng", "Mai", "Anh", "Tuấn", "Hương", "Dũng", "Linh", "Trang", "Nam"]
STREETS = ["Hàng Bông", "Hàng Gai", "Lý Thường Kiệt", "Trần Hưng Đạo", "Bà Triệu", "Kim Mã"]
WARDS = ["phường Hoàn Kiếm", "phường Ba Đình", "phường Đống Đa", "phường Tây Hồ"]
PHONE_PREFIXES = ["090", "091", "093", "094", "096", "097", "098", "086", "088"]
POISON_MARKER = "khung-tranh-x9"
POISON = f"Em muốn đổi khung tranh ({POISON_MARKER}) sang màu trắng ạ"


def vi(key: str) -> str:
    """The Vietnamese catalog text up to its first placeholder (what a reply starts with)."""
    return t("vi", key).split("{")[0].splitlines()[0]


# ---- the fake Bot API, indexed by chat --------------------------------------------------------


class Replies:
    """Successful sendMessage calls per chat, with a wake-up per chat."""

    def __init__(self, api: FakeTelegramAPI) -> None:
        self.by_chat: dict[int, list[Call]] = defaultdict(list)
        self.events: dict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.ready_at: list[float] = []
        self.chat_actions = 0
        api.listeners.append(self._seen)

    def _seen(self, call: Call) -> None:
        if call.method == "deleteWebhook":  # the bot's last call before it starts polling
            self.ready_at.append(call.at)
        if call.method == "sendChatAction":
            self.chat_actions += 1
        if call.method != "sendMessage" or call.failed is not None:
            return
        chat = call.params.get("chat_id")
        if isinstance(chat, int):
            self.by_chat[chat].append(call)
            self.events[chat].set()

    async def first(
        self, chat: int, since: int, match: Callable[[Call], bool], within: float
    ) -> Call | None:
        """The first message to `chat` after index `since` that `match`es, or None."""
        deadline = time.monotonic() + within
        checked = since
        while True:
            calls = self.by_chat[chat]
            for call in calls[checked:]:
                if match(call):
                    return call
            checked = len(calls)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            event = self.events[chat]
            event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)


def has_button(label: str) -> Callable[[Call], bool]:
    def match(call: Call) -> bool:
        rows = (call.params.get("reply_markup") or {}).get("inline_keyboard", [])
        return any(button.get("text") == label for row in rows for button in row)

    return match


def contains(text: str) -> Callable[[Call], bool]:
    return lambda call: text in str(call.params.get("text", ""))


def button_of(call: Call, label: str) -> str:
    rows = (call.params.get("reply_markup") or {}).get("inline_keyboard", [])
    return next(b["callback_data"] for row in rows for b in row if b.get("text") == label)


# ---- the bot process --------------------------------------------------------------------------


class BotProcess:
    """`python -m bot run` in its own data folder, pointed at the fake; restartable."""

    def __init__(self, api: FakeTelegramAPI, data_dir: Path, log_path: Path) -> None:
        self.api = api
        self.data_dir = data_dir
        self.log = log_path.open("ab")
        self.process: asyncio.subprocess.Process | None = None
        self.down: list[tuple[float, float]] = []  # (killed at, answering again at)
        self.rss: list[tuple[float, float]] = []  # (time, MB)

    async def start(self, replies: Replies) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TELEGRAM_", "ZALO_", "STAFF_", "DATABASE_", "WEBHOOK_"))
        }
        env.update(
            DATA_DIR=str(self.data_dir),
            PYTHONPATH=str(PROJECT),
            TELEGRAM_BOT_TOKEN=TOKEN,
            TELEGRAM_API_BASE_URL=self.api.base_url,
            STAFF_CHAT_ID=str(STAFF_CHAT),
            STAFF_ADMIN_IDS=str(STAFF_ADMIN),
            WEBHOOK_HOST="127.0.0.1",
        )
        polls = len(replies.ready_at)
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            cwd=self.data_dir.parent,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=self.log,
            stderr=self.log,
        )
        deadline = time.monotonic() + 60
        while len(replies.ready_at) == polls:  # ready: it polls for updates
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the bot did not start; see {self.log.name}")
            await asyncio.sleep(0.02)

    async def kill(self) -> float:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()
        return time.monotonic()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.process.wait(), 20)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()
        self.log.close()

    def sample_rss(self) -> None:
        if self.process is None or self.process.returncode is not None:
            return
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    self.rss.append((time.monotonic(), int(line.split()[1]) / 1024))


# ---- customers --------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    steps: int = 0
    lost: int = 0
    latencies: list[float] = field(default_factory=list)
    up_latencies: list[float] = field(default_factory=list)  # minus the time the bot was down
    orders: list[str] = field(default_factory=list)  # codes the customers saw confirmed
    confirmed_at: dict[str, float] = field(default_factory=dict)
    kills: int = 0
    slowest: list[tuple[float, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


class Customers:
    def __init__(
        self,
        api: FakeTelegramAPI,
        replies: Replies,
        bot: BotProcess,
        result: Result,
        step_timeout: float,
    ) -> None:
        self.api = api
        self.replies = replies
        self.bot = bot
        self.result = result
        self.step_timeout = step_timeout
        self.users = iter(range(10_000_000, 99_999_999, 7))
        self.rng = random.Random(12)

    def _details(self) -> tuple[str, str, str]:
        r = self.rng
        name = f"{r.choice(FAMILY)} {r.choice(MIDDLE)} {r.choice(GIVEN)}"
        phone = r.choice(PHONE_PREFIXES) + "".join(str(r.randrange(10)) for _ in range(7))
        address = f"{r.randrange(1, 200)} {r.choice(STREETS)}, {r.choice(WARDS)}, Hà Nội"
        return name, phone, address

    async def step(self, user: int, update: dict[str, Any], match: Callable[[Call], bool]) -> Call:
        since = len(self.replies.by_chat[user])
        sent_at = time.monotonic()
        self.api.push_update(update)
        self.result.steps += 1
        reply = await self.replies.first(user, since, match, self.step_timeout)
        if reply is None:
            self.result.lost += 1
            raise LookupError("no reply")
        latency = reply.at - sent_at
        self.result.latencies.append(latency)
        what = update.get("message", {}).get("text") or update["callback_query"]["data"]
        self.result.slowest.append((latency, str(what)[:24]))
        down = sum(
            max(0.0, min(end, reply.at) - max(start, sent_at)) for start, end in self.bot.down
        )
        self.result.up_latencies.append(latency - down)
        await asyncio.sleep(self.rng.uniform(0.3, 1.0))
        return reply

    async def journey(self, after: str | None = None) -> None:
        """One new customer places one order; `after`: a message they send afterwards."""
        api = self.api
        user = next(self.users)
        name, phone, address = self._details()
        first = self.rng.choice(GIVEN)
        try:
            agree = t("vi", "consent.btn.agree")
            msg = await self.step(
                user, api.text_update(user, "/start", first_name=first), has_button(agree)
            )
            await self.step(
                user,
                api.callback_update(user, button_of(msg, agree), msg.result["message_id"]),
                lambda call: True,
            )
            await self.step(
                user, api.text_update(user, "/order"), contains(vi("order.ask.full_name"))
            )
            await self.step(user, api.text_update(user, name), contains(vi("order.ask.phone")))
            await self.step(user, api.text_update(user, phone), contains(vi("order.ask.address")))
            skip = t("vi", "flow.btn.skip")
            msg = await self.step(user, api.text_update(user, address), has_button(skip))
            await self.step(
                user,
                api.callback_update(user, button_of(msg, skip), msg.result["message_id"]),
                contains(vi("order.ask.request")),
            )
            msg = await self.step(user, api.text_update(user, "SD-001"), has_button(skip))
            confirm = t("vi", "flow.btn.confirm")
            msg = await self.step(
                user,
                api.callback_update(user, button_of(msg, skip), msg.result["message_id"]),
                has_button(confirm),
            )
            msg = await self.step(
                user,
                api.callback_update(user, button_of(msg, confirm), msg.result["message_id"]),
                contains(vi("order.confirmed")),
            )
            code = re.search(r"\b[A-Z]{2,4}-?[0-9A-Z]{4,8}\b", msg.params["text"])
            if code:
                self.result.orders.append(code.group(0))
                self.result.confirmed_at[code.group(0)] = msg.at
            if after is not None:
                self.api.push_update(api.text_update(user, after))
        except LookupError:
            return

    async def run(self, until: float, after: Callable[[], str | None] = lambda: None) -> None:
        while time.monotonic() < until:
            await self.journey(after())


# ---- conditions -------------------------------------------------------------------------------


FLOODER = 5_000_001


async def flood(api: FakeTelegramAPI, count: int, rate: float) -> None:
    user = FLOODER
    for i in range(count):
        api.push_update(api.text_update(user, f"spam spam {i}"))
        await asyncio.sleep(1 / rate)


async def killer(bot: BotProcess, replies: Replies, until: float, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        if time.monotonic() >= until:
            return
        killed = await bot.kill()
        bot.down.append((killed, float("inf")))
        await bot.start(replies)
        bot.down[-1] = (killed, time.monotonic())


async def sampler(bot: BotProcess, every: float) -> None:
    while True:
        bot.sample_rss()
        await asyncio.sleep(every)


async def run_condition(name: str, args: argparse.Namespace, seconds: float) -> Result:
    result = Result(name)
    group = name != "baseline"
    with tempfile.TemporaryDirectory(prefix=f"soak-{name}-") as tmp:
        async with FakeTelegramAPI(
            token=TOKEN, group_rate_limit=GROUP_LIMIT if group else None
        ) as api:
            api.chats[STAFF_CHAT] = {"id": STAFF_CHAT, "type": "supergroup", "title": "Staff"}
            if name == "poison":
                api.poison_marker = POISON_MARKER
            replies = Replies(api)
            bot = BotProcess(api, Path(tmp) / "data", Path(args.logs) / f"soak-{name}.log")
            await bot.start(replies)
            rss = asyncio.create_task(sampler(bot, 2.0 if seconds < 300 else 10.0))
            customers = Customers(api, replies, bot, result, args.step_timeout)
            until = time.monotonic() + seconds
            extra: list[asyncio.Task[None]] = []
            if name == "flood":
                extra.append(asyncio.create_task(flood(api, args.flood, args.flood_rate)))
            if name == "kill":
                extra.append(asyncio.create_task(killer(bot, replies, until, args.kill_every)))
            poison_once = iter([POISON])
            after = (lambda: next(poison_once, None)) if name == "poison" else (lambda: None)
            minutes = asyncio.create_task(report_minutes(bot)) if seconds >= 120 else None
            await asyncio.gather(
                *(customers.run(until, after) for _ in range(args.customers)), *extra
            )
            result.kills = len(bot.down)
            # Let the staff chat drain (20 alerts a minute in a group), then count.
            deadline = time.monotonic() + args.drain
            while time.monotonic() < deadline and missing_alerts(replies, result):
                event = replies.events[STAFF_CHAT]
                event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), deadline - time.monotonic())
            if minutes is not None:
                minutes.cancel()
            rss.cancel()
            result.notes.append(f"typing calls {replies.chat_actions}")
            delivered = len(result.orders) - len(missing_alerts(replies, result))
            result.notes.append(f"staff {delivered}/{len(result.orders)}")
            waits = staff_waits(replies, result)
            if waits:
                result.notes.append(f"staff alert p50 {statistics.median(waits):.1f}s")
                result.notes.append(f"max {max(waits):.1f}s")
            result.notes.append(f"dup {duplicates(replies)}")
            result.notes.append(rss_text(bot))
            result.notes.append(f"load {os.getloadavg()[0]:.1f}")
            await bot.stop()
            with contextlib.suppress(Exception):
                await api.wait_for("getUpdates", timeout=0.1)
    return result


async def report_minutes(bot: BotProcess) -> None:
    minute = 0
    while True:
        await asyncio.sleep(60)
        minute += 1
        if bot.rss:
            print(f"  minute {minute:3d}: RSS {bot.rss[-1][1]:.1f} MB", flush=True)


def missing_alerts(replies: Replies, result: Result) -> list[str]:
    staff_text = "\n".join(str(c.params.get("text", "")) for c in replies.by_chat[STAFF_CHAT])
    return [code for code in result.orders if code not in staff_text]


def staff_waits(replies: Replies, result: Result) -> list[float]:
    """Seconds from a customer's confirmation to their order's alert in the staff chat."""
    waits = []
    for code, confirmed in result.confirmed_at.items():
        alert = next(
            (c for c in replies.by_chat[STAFF_CHAT] if code in str(c.params.get("text", ""))),
            None,
        )
        if alert is not None:
            waits.append(alert.at - confirmed)
    return waits


def duplicates(replies: Replies) -> int:
    """Messages sent again: the same text (and buttons) as an earlier message in that chat.
    Each customer chat is one order journey, whose replies are all different; staff-chat
    messages name their order."""
    count = 0
    for chat, calls in replies.by_chat.items():
        if chat == FLOODER:
            continue  # its replies are the same fallback and notices, by design
        seen: set[str] = set()
        for call in calls:
            key = f"{call.params.get('text')}|{call.params.get('reply_markup')}"
            if key in seen:
                count += 1
            seen.add(key)
    return count


def rss_text(bot: BotProcess) -> str:
    if not bot.rss:
        return "RSS -"
    values = [mb for _, mb in bot.rss]
    return f"RSS {values[0]:.0f}→{values[-1]:.0f} (max {max(values):.0f})"


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def print_table(results: list[Result]) -> None:
    header = (
        f"{'condition':<10} {'steps':>6} {'lost':>5} {'p50':>6} {'p99':>6} {'max':>6}"
        f" {'up p99':>7} {'up max':>7} {'kills':>5}  notes"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        p50 = statistics.median(r.latencies) if r.latencies else float("nan")
        print(
            f"{r.name:<10} {r.steps:>6} {r.lost:>5} {p50:>6.2f} {pct(r.latencies, 0.99):>6.2f}"
            f" {max(r.latencies, default=float('nan')):>6.2f}"
            f" {pct(r.up_latencies, 0.99):>7.2f} {max(r.up_latencies, default=float('nan')):>7.2f}"
            f" {r.kills:>5}  {'; '.join(r.notes)}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=45.0, help="per condition")
    parser.add_argument("--conditions", default="baseline,group,flood,poison,kill")
    parser.add_argument("--minutes", type=float, default=0.0, help="extra long run (RSS)")
    parser.add_argument("--flood", type=int, default=3000, help="messages from the flooder")
    parser.add_argument("--flood-rate", type=float, default=200.0, help="its messages a second")
    parser.add_argument("--kill-every", type=float, default=5.0)
    parser.add_argument("--step-timeout", type=float, default=30.0)
    parser.add_argument("--drain", type=float, default=90.0, help="max wait for staff alerts")
    parser.add_argument("--verbose", action="store_true", help="print the slowest steps")
    parser.add_argument("--logs", default=tempfile.gettempdir(), help="bot logs folder")
    args = parser.parse_args()
    results: list[Result] = []
    for name in [c.strip() for c in args.conditions.split(",") if c.strip()]:
        print(f"running {name} …", flush=True)
        results.append(await run_condition(name, args, args.seconds))
    if args.minutes > 0:
        print(f"running long ({args.minutes:g} min) …", flush=True)
        results.append(await run_condition("long", args, args.minutes * 60))
    print()
    print_table(results)
    if args.verbose:
        for r in results:
            worst = sorted(r.slowest, reverse=True)[:5]
            print(f"{r.name} slowest: " + ", ".join(f"{lat:.2f}s {what!r}" for lat, what in worst))


if __name__ == "__main__":
    asyncio.run(main())

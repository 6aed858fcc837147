"""Benchmark: messages through the whole pipeline (inbox → dispatch → outbox → delivery) on a
real SQLite file, with a no-op channel adapter. Prints numbers; asserts nothing.

    .venv/bin/python scripts/bench_pipeline.py [--customers 50]

Each simulated customer sends the 11 messages of a complete order (start, consent, the six
steps, confirm), all customers at once; a message's latency is from `receive()` until its
first reply has been handed to the adapter.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.channels.console import ConsoleAdapter  # noqa: E402
from bot.runtime import Runtime  # noqa: E402
from handlers.context import ShopConfig  # noqa: E402
from handlers.messages import STAFF, Inbound, Outbound, SendResult  # noqa: E402
from handlers.orders.catalog import Catalog  # noqa: E402
from storage.db import create_engine, migrate_to_head, session_factory  # noqa: E402

CATALOG = Path(__file__).resolve().parent.parent / "handlers" / "orders" / "catalog.example.toml"


class NullAdapter:
    name = "console"
    capabilities = ConsoleAdapter.capabilities

    def __init__(self) -> None:
        self.ids = itertools.count(1)
        self.first_reply: dict[str, float] = {}
        self.replied: dict[str, asyncio.Event] = {}
        self.sent = 0

    async def send(
        self,
        message: Outbound,
        edit_message_id: str | None = None,
        reply_to_message_id: str | None = None,
    ) -> SendResult:
        self.sent += 1
        if message.chat_id not in self.first_reply:
            self.first_reply[message.chat_id] = time.perf_counter()
            self.replied.setdefault(message.chat_id, asyncio.Event()).set()
        return SendResult(str(next(self.ids)))

    async def delete(self, chat_id: str, message_id: str) -> None:
        return None


def script(user: str) -> list[dict[str, object]]:
    return [
        {"text": "/start", "command": "start"},
        {"payload": "consent:yes"},
        {"text": "/order", "command": "order"},
        {"text": f"Nguyễn Văn Khách {user}"},
        {"text": "0912 345 678"},
        {"text": "12 Hàng Bông, phường Hoàn Kiếm, Hà Nội"},
        {"text": "bỏ qua"},
        {"text": "SD-001 cho phòng khách"},
        {"payload": "f:skip"},
        {"payload": "f:ok"},
        {"text": "/orders", "command": "orders"},
    ]


async def customer(
    runtime: Runtime, adapter: NullAdapter, user: str, latencies: list[float]
) -> None:
    for n, fields in enumerate(script(user)):
        adapter.first_reply.pop(user, None)
        replied = adapter.replied[user] = asyncio.Event()
        started = time.perf_counter()
        inbound = Inbound(
            channel="console",
            chat_id=user,
            user_id=user,
            dedupe_key=f"{user}:{n}",
            **fields,  # type: ignore[arg-type]
        )
        await runtime.receive(inbound)
        await replied.wait()
        latencies.append(adapter.first_reply[user] - started)


async def main(customers: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        engine = create_engine(f"sqlite+aiosqlite:///{folder}/bench.db")
        await migrate_to_head(engine)
        config = ShopConfig(
            staff_channel="console", staff_chat_id=STAFF, catalog=Catalog.load(CATALOG)
        )
        runtime = Runtime(session_factory(engine), config)
        adapter = NullAdapter()
        runtime.add_adapter(adapter)
        runtime.start()
        latencies: list[float] = []
        started = time.perf_counter()
        await asyncio.gather(
            *(customer(runtime, adapter, str(1000 + i), latencies) for i in range(customers))
        )
        await runtime.idle()
        elapsed = time.perf_counter() - started
        await runtime.stop()
        await engine.dispose()
    latencies.sort()
    count = len(latencies)
    print(f"customers                 {customers}")
    print(f"inbound messages          {count}")
    print(f"outbound messages         {adapter.sent}")
    print(f"wall time                 {elapsed:.2f} s")
    print(f"throughput                {count / elapsed:.1f} inbound msg/s")
    print(f"latency p50               {statistics.median(latencies) * 1000:.1f} ms")
    print(f"latency p95               {latencies[int(count * 0.95) - 1] * 1000:.1f} ms")
    print(f"latency max               {latencies[-1] * 1000:.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50)
    asyncio.run(main(parser.parse_args().customers))

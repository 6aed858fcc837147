"""`/healthz` and `/metrics` of the running bot, over real HTTP on 127.0.0.1: what an
operator's monitoring sees after real orders, and when the database is gone."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
from starlette.applications import Starlette

from bot.observability import observability_routes
from storage.db import create_engine, session_factory
from tests.fakes.server import ServedApp
from tests.helpers import Harness


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one Prometheus sample in an exposition text."""
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    pattern = rf"^{re.escape(name)}(?:\{{{re.escape(wanted)}\}})? (\S+)$"
    match = re.search(pattern, text, flags=re.M)
    assert match, f"{name} {labels} not in:\n{text}"
    return float(match.group(1))


async def test_health_and_metrics_after_real_orders(harness: Harness) -> None:
    await harness.place_order("1")
    await harness.place_order("2")
    runtime = harness.runtime
    app = Starlette(routes=observability_routes(runtime.metrics, runtime.pipeline_health))
    async with ServedApp(app, "bot") as served, httpx.AsyncClient(base_url=served.origin) as http:
        health = await http.get("/healthz")
        page = await http.get("/metrics")
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "lag_seconds": 0.0,
        "inbound_pending": 0,
        "oldest_inbound_seconds": None,
        "outbound_pending": 0,
        "oldest_outbound_seconds": None,
    }
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/plain")
    text = page.text
    received = sample(text, "vav_messages_received_total", channel="console")
    assert received == len(await harness.inbox_rows())  # every stored inbound, once
    assert sample(text, "vav_handling_seconds_count") == received
    sent = sample(text, "vav_messages_sent_total", channel="console")
    assert sent == len(harness.delivered())  # replies and both staff alerts
    assert sample(text, "vav_delivery_seconds_count", channel="console") >= 1
    assert sample(text, "vav_pending_messages", direction="out") == 0
    # Labels are channels and directions: nothing of the customers' (names, phones, chats).
    assert "Nguy" not in text and "0912" not in text and 'chat="' not in text


async def test_health_is_503_with_one_line_when_the_database_cannot_be_read(
    harness: Harness, tmp_path: Path
) -> None:
    broken = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'gone.db'}")
    (tmp_path / "missing" / "gone.db").unlink()
    (tmp_path / "missing").rmdir()
    harness.runtime.sessions = session_factory(broken)
    runtime = harness.runtime
    app = Starlette(routes=observability_routes(runtime.metrics, runtime.pipeline_health))
    try:
        async with (
            ServedApp(app, "bot") as served,
            httpx.AsyncClient(base_url=served.origin) as http,
        ):
            health = await http.get("/healthz")
            page = await http.get("/metrics")
    finally:
        await broken.dispose()
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"
    assert health.json()["error"].startswith("database: unable to open database file")
    assert page.status_code == 503

"""What an operator watches: `GET /healthz` and `GET /metrics` (Prometheus).

- `/healthz` looks at the database: 200 with the backlog (messages waiting to be processed
  and sent, and the age of the oldest — the delivery lag) when it answers, 503 with one line
  when it does not. A load balancer or container runtime can act on it.
- `/metrics`: the runtime reports events to a `Metrics` object (messages in and out, handling
  and delivery latency, send errors by cause, token refreshes); the queue gauges are read
  from the database at scrape time. Labels are channels, directions and error causes only —
  never a chat, a user or a text: metrics, like logs, carry no personal data. Serve both to
  the monitoring network only (the reverse proxy should not publish them).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from storage.db import StorageError, db_error_cause
from storage.health import PipelineHealth

# Seconds: a reply should take well under one; a retry or a rate limit takes tens.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.messages_in = Counter(
            "vav_messages_received",
            "Inbound messages stored, by channel",
            ["channel"],
            registry=self.registry,
        )
        self.messages_out = Counter(
            "vav_messages_sent",
            "Outbound messages delivered, by channel",
            ["channel"],
            registry=self.registry,
        )
        self.send_errors = Counter(
            "vav_send_errors",
            "Failed send attempts, by channel and cause (temporary ones are retried)",
            ["channel", "cause"],
            registry=self.registry,
        )
        self.handling = Histogram(
            "vav_handling_seconds",
            "From storing an inbound message to committing its handling",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.delivery = Histogram(
            "vav_delivery_seconds",
            "From queueing an outbound message to the platform accepting it",
            ["channel"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.token_refreshes = Counter(
            "vav_token_refreshes",
            "Zalo OA access-token refreshes, by outcome",
            ["outcome"],
            registry=self.registry,
        )
        self._pending = Gauge(
            "vav_pending_messages",
            "Messages waiting, by direction (in: to be processed, out: to be sent)",
            ["direction"],
            registry=self.registry,
        )
        self._oldest = Gauge(
            "vav_oldest_pending_seconds",
            "Age of the oldest waiting message, by direction",
            ["direction"],
            registry=self.registry,
        )

    def render(self, health: PipelineHealth) -> bytes:
        """The exposition text, with the queue gauges set from `health` (read just now)."""
        for direction, count, oldest in (
            ("in", health.inbound_pending, health.oldest_inbound_seconds),
            ("out", health.outbound_pending, health.oldest_outbound_seconds),
        ):
            self._pending.labels(direction).set(count)
            self._oldest.labels(direction).set(oldest or 0.0)
        return generate_latest(self.registry)


def observability_routes(
    metrics: Metrics, health: Callable[[], Awaitable[PipelineHealth]]
) -> list[Route]:
    """`/healthz` and `/metrics`, both reading the pipeline's backlog through `health`."""

    async def healthz(_request: Request) -> Response:
        try:
            pipeline = await health()
        except (OSError, StorageError) as exc:
            return JSONResponse(
                {"status": "unavailable", "error": f"database: {db_error_cause(exc)}"},
                status_code=503,
            )
        return JSONResponse(
            {"status": "ok", "lag_seconds": round(pipeline.lag_seconds, 1), **pipeline.as_dict()}
        )

    async def metrics_page(_request: Request) -> Response:
        try:
            pipeline = await health()
        except (OSError, StorageError):
            return Response("database unavailable\n", status_code=503)
        return Response(metrics.render(pipeline), media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz), Route("/metrics", metrics_page)]

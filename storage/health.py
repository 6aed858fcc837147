"""How the message pipeline is doing, from the database alone: what waits to be processed and
to be sent, and for how long. Read by `/healthz` and `python -m bot health`."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import InboxEvent, OutboxMessage


@dataclass(frozen=True)
class PipelineHealth:
    inbound_pending: int  # stored, not yet processed
    oldest_inbound_seconds: float | None
    outbound_pending: int  # replies and alerts not yet delivered (retries included)
    oldest_outbound_seconds: float | None  # the delivery lag

    @property
    def lag_seconds(self) -> float:
        return max(self.oldest_inbound_seconds or 0.0, self.oldest_outbound_seconds or 0.0)

    def as_dict(self) -> dict[str, float | int | None]:
        return {key: _rounded(value) for key, value in asdict(self).items()}


def _rounded(value: float | int | None) -> float | int | None:
    return round(value, 1) if isinstance(value, float) else value


async def pipeline_health(session: AsyncSession, now: datetime) -> PipelineHealth:
    inbound = (
        await session.execute(
            select(func.count(), func.min(InboxEvent.received_at)).where(
                InboxEvent.processed_at.is_(None)
            )
        )
    ).one()
    outbound = (
        await session.execute(
            select(func.count(), func.min(OutboxMessage.created_at)).where(
                OutboxMessage.status == "pending"
            )
        )
    ).one()
    return PipelineHealth(
        inbound_pending=inbound[0],
        oldest_inbound_seconds=_age(inbound[1], now),
        outbound_pending=outbound[0],
        oldest_outbound_seconds=_age(outbound[1], now),
    )


def _age(since: datetime | None, now: datetime) -> float | None:
    if since is None:
        return None
    return max(0.0, (now - since).total_seconds())

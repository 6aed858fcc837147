"""The message pipeline: inbox → per-conversation processing → outbox → delivery.

- `receive()` stores an inbound in the inbox (unique per channel + dedupe key) before the
  adapter acknowledges the platform; a duplicate returns False and does nothing else.
- Each conversation (channel, chat id) is processed by at most one task at a time, oldest
  inbox row first, so one customer's messages never interleave while different customers
  run concurrently. One inbound = one transaction: state change + outbox rows + inbox mark.
- Delivery runs one queue per chat: a task per chat with due rows sends them strictly in
  order, while chats never wait for each other (a rate-limited staff group, a customer whose
  messages keep failing). Failures are classified by cause: permanent ones fail the row at
  once and the queue moves on; temporary ones back off that chat only. Platform message ids
  are recorded; scheduled deletions are performed.
- On start, unprocessed inbox rows and unsent outbox rows from before a crash are resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.channels.base import ChannelAdapter
from bot.observability import Metrics
from handlers import composition
from handlers.context import AfterCommit, ShopConfig, enqueue, staff_notice
from handlers.dispatcher import dispatch
from handlers.i18n import pick_language, t
from handlers.maintenance import run_maintenance
from handlers.messages import (
    MAX_TEXT_CHARS,
    Inbound,
    Outbound,
    PermanentSendError,
    SendResult,
    TemporarySendError,
    normalize_text,
)
from handlers.router import Composition
from handlers.support.abuse import is_flood_limited, shed_if_flooding
from storage.db import Sessions, checkpoint, db_error_cause, is_transient_db_error
from storage.health import PipelineHealth, pipeline_health
from storage.models import OutboxMessage
from storage.repositories import NewInbound, UnitOfWork, store_inbound_batch

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Job = Callable[["UnitOfWork"], Awaitable[Any]]

INBOX_BATCH = 500  # arrivals stored per transaction
PROCESS_BATCH = 64  # conversations (one message each) handled per transaction
# Unprocessed inbound past which receive() waits and webhooks ask the platform to retry:
# a few seconds of work, far below what the backlog could hold, so latency stays bounded.
HIGH_WATER = 2000
SWEEP_EVERY = 30.0  # seconds between looks for pending inbox rows nobody is processing


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DeliveryPolicy:
    base_delay: float = 1.0
    max_delay: float = 300.0
    max_attempts: int = 12  # ~1 hour of retries before a row is marked failed
    # An error no adapter classified (a bug, an unexpected library error): retrying it rarely
    # helps, so the row fails after this many attempts instead of parking its chat for an hour.
    unclassified_attempts: int = 3
    sends_in_flight: int = 32  # platform calls at once, across all chats
    merge_chars: int = 3500  # staff lines queued in a rate-limited chat go out as one message

    def backoff(self, attempts: int) -> float:
        delay = min(self.max_delay, self.base_delay * 2 ** (attempts - 1))
        return delay * (0.8 + 0.4 * random.random())  # jitter: failed sends don't retry in step


class Runtime:
    def __init__(
        self,
        sessions: Sessions,
        config: ShopConfig,
        clock: Clock = utc_now,
        delivery: DeliveryPolicy | None = None,
        app: Composition | None = None,
    ) -> None:
        self.sessions = sessions
        self.config = config
        self.app = app or composition.build()
        self.clock = clock
        self.delivery = delivery or DeliveryPolicy()
        self.adapters: dict[str, ChannelAdapter] = {}
        # Inbound waiting to be stored by the inbox writer (group commit), with their waiters.
        self._to_store: list[tuple[Inbound, asyncio.Future[bool]]] = []
        self._inbox_writer: asyncio.Task[None] | None = None
        # Conversations with pending inbox rows, oldest first (a dict as an ordered set), the
        # ones in the batch being processed, and the processing loop itself.
        self._ready: dict[tuple[str, str], None] = {}
        self._in_batch: set[tuple[str, str]] = set()
        self._processor: asyncio.Task[None] | None = None
        self._alone: set[tuple[str, str]] = set()  # in a failed batch: retried one by one
        self._not_before: dict[tuple[str, str], float] = {}  # failing: retry after (loop time)
        self._failures: dict[tuple[str, str], int] = {}
        self.batch_size = PROCESS_BATCH
        # Backpressure: stored but unprocessed inbound; past the mark, receive() waits.
        self._backlog = 0
        self.high_water = HIGH_WATER
        self._capacity = asyncio.Event()
        self._sweep_task: asyncio.Task[None] | None = None
        self._wake_delivery = asyncio.Event()
        self._delivery_task: asyncio.Task[None] | None = None
        self._maintenance_task: asyncio.Task[None] | None = None
        self._queues: dict[tuple[str, str], asyncio.Task[None]] = {}  # one task per chat
        self._sends = asyncio.Semaphore(self.delivery.sends_in_flight)
        # Delivery's bookkeeping (claims, outcomes) from every chat's queue, run together in
        # one transaction by `_bookkeeper`: sends run concurrently, the writes share a commit.
        self._jobs: list[tuple[Job, asyncio.Future[object]]] = []
        self._bookkeeper_task: asyncio.Task[None] | None = None
        # Scheduled deletions: when the earliest is due (None: none known), and whether the
        # outbox must be looked at again (at start, after an erasure moved some to now).
        self._next_deletion: datetime | None = None
        self._check_deletions = True
        self._recent_sends: dict[tuple[str, str], deque[datetime]] = {}  # chats with a quota
        self._paused: dict[tuple[str, str], datetime] = {}  # chat → when it may send again
        self._recovered = False
        self._delivered_at: dict[str, datetime] = {}  # channel → its last successful send
        self._failing_since: dict[int, datetime] = {}  # outbox id → its first failure
        self._stopping = False
        # Waits before a conversation retries after a database error (disk full, locked).
        self.db_retry_delay = 1.0
        self.db_retry_max = 60.0
        self.metrics = Metrics()  # rendered at /metrics when the web server runs

    def add_adapter(self, adapter: ChannelAdapter) -> None:
        """Deliver through `adapter` and tell the handlers what its channel can do."""
        self.adapters[adapter.name] = adapter
        channels = {**self.config.channels, adapter.name: adapter.capabilities}
        self.config = replace(self.config, channels=channels)

    # ---- inbound ---------------------------------------------------------------------------

    async def receive(self, inbound: Inbound) -> bool:
        """Store the inbound, then schedule its processing. False for a duplicate delivery and
        for a message from a sender muted by flood control (not stored: it would be dropped).

        Arrivals are stored together (group commit): this returns once the transaction that
        holds this inbound has committed, so the adapter acknowledges only what is stored.
        Storing waits — it never gives up and drops the message — and past the high-water
        mark of unprocessed messages it first waits for the backlog to shrink (polling
        adapters thereby poll more slowly; webhooks ask `overloaded()` before calling)."""
        inbound = _clean(inbound)
        if not inbound.from_staff_chat and shed_if_flooding(
            self.sessions.kw.get("bind"), (inbound.channel, inbound.user_id), self.clock()
        ):
            return False  # a muted flooder's message: dropped as flood control would drop it
        while self._backlog >= self.high_water:
            self._capacity.clear()
            await self._capacity.wait()
        stored: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._to_store.append((inbound, stored))
        if self._inbox_writer is None or self._inbox_writer.done():
            self._inbox_writer = asyncio.create_task(self._write_inbox(), name="inbox")
        if not await stored:
            log.info("duplicate %s event dropped", inbound.channel)
            return False
        return True

    def overloaded(self) -> bool:
        """More unprocessed inbound than the high-water mark: a webhook should answer with a
        status that makes the platform retry later, before storing anything."""
        return self._backlog >= self.high_water

    async def _write_inbox(self) -> None:
        """Store queued arrivals, up to INBOX_BATCH per transaction, until none is left. A
        database error keeps them queued (their senders keep waiting) and is retried."""
        failures = 0
        while self._to_store:
            batch = self._to_store[:INBOX_BATCH]
            events = [
                NewInbound(i.channel, i.dedupe_key, i.chat_id, i.user_id, i.to_json())
                for i, _ in batch
            ]
            try:
                ids = await store_inbound_batch(self.sessions, events, self.clock())
            except Exception as exc:  # nothing is lost: the batch is stored again later
                failures += 1
                delay = self._retry_delay(failures)
                log.error(
                    "storing %s inbound failed, they wait (retry %s in %.1fs): %s",
                    len(batch),
                    failures,
                    delay,
                    db_error_cause(exc),
                )
                await asyncio.sleep(delay)
                continue
            failures = 0
            await _let_others_in()
            del self._to_store[: len(batch)]
            for (inbound, stored), event_id in zip(batch, ids, strict=True):
                if event_id is not None:
                    self._backlog += 1
                    self.metrics.messages_in.labels(inbound.channel).inc()
                    self._kick_conversation(inbound.channel, inbound.chat_id)
                if not stored.done():
                    stored.set_result(event_id is not None)

    def _retry_delay(self, failures: int) -> float:
        return min(self.db_retry_max, self.db_retry_delay * 2 ** min(failures - 1, 16))

    def is_busy(self, channel: str, chat_id: str) -> bool:
        """Whether this conversation still has inbound work waiting or running (for typing
        indicators)."""
        key = (channel, chat_id)
        return key in self._ready or key in self._in_batch

    def wants_typing(self, channel: str, chat_id: str, user_id: str) -> bool:
        """Whether a "typing…" indicator fits: the conversation is being worked on and the
        sender is not flood-limited (their messages are dropped unanswered)."""
        if not self.is_busy(channel, chat_id):
            return False
        engine = self.sessions.kw.get("bind")
        return not is_flood_limited(engine, (channel, user_id), self.clock())

    def _kick_conversation(self, channel: str, chat_id: str) -> None:
        """The conversation has pending inbox rows: make sure the processing loop looks."""
        self._ready[(channel, chat_id)] = None
        if self._processor is None or self._processor.done():
            self._processor = asyncio.create_task(self._process_loop(), name="process")

    async def _process_loop(self) -> None:
        """Process ready conversations in batches until none is left.

        A batch takes at most one message per conversation (its oldest pending), so each
        conversation's messages are handled one at a time and in order, while many
        conversations share one transaction and one commit. A batch that fails on a database
        error is retried one conversation at a time (`_alone`), so a conversation that keeps
        failing waits with backoff (its message stays pending) and holds up nobody else."""
        loop = asyncio.get_running_loop()
        while self._ready and not self._stopping:
            now = loop.time()
            due = [key for key in self._ready if self._not_before.get(key, 0.0) <= now]
            if not due:
                wake = min(self._not_before.get(key, now) for key in self._ready)
                await asyncio.sleep(max(0.01, wake - now))
                continue
            if due[0] in self._alone:
                batch = due[:1]
            else:
                batch = [key for key in due if key not in self._alone][: self.batch_size]
            for key in batch:
                del self._ready[key]
            self._in_batch.update(batch)
            try:
                more = await self._process_batch(batch)
            except Exception as exc:  # never let the loop die: the messages stay pending
                for key in batch:
                    self._ready[key] = None
                if len(batch) > 1:
                    self._alone.update(batch)
                    log.error(
                        "a batch of %s conversations failed, retrying them one by one: %s",
                        len(batch),
                        db_error_cause(exc),
                    )
                else:
                    self._fail_alone(batch[0], exc, loop.time())
                continue
            finally:
                self._in_batch.difference_update(batch)
            for key in batch:
                self._alone.discard(key)
                self._not_before.pop(key, None)
                self._failures.pop(key, None)
            for key in more:
                self._ready[key] = None
            self._wake_delivery.set()
            await _let_others_in()

    def _fail_alone(self, key: tuple[str, str], exc: Exception, now: float) -> None:
        failures = self._failures[key] = self._failures.get(key, 0) + 1
        delay = self._retry_delay(failures)
        self._not_before[key] = now + delay
        if is_transient_db_error(exc):
            log.error(
                "%s conversation: database error, its message stays pending "
                "(retry %s in %.1fs): %s",
                key[0],
                failures,
                delay,
                db_error_cause(exc),
            )
        else:
            log.exception("%s conversation failed: %s", key[0], type(exc).__name__)

    async def _process_batch(self, keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """Handle the oldest pending inbound of each conversation in one transaction; returns
        the conversations that have more pending.

        Each message runs in its own SAVEPOINT: a handler's own failure undoes only that
        message, which is marked done with its error and apologised for, while the rest of
        the batch commits. A database error fails the whole batch (nothing is marked, nothing
        sent): the caller retries it."""
        after_commit: set[AfterCommit] = set()
        erased: list[tuple[str, str]] = []
        async with UnitOfWork(self.sessions) as uow:
            heads = await uow.inbox.heads(keys)
            if not heads:
                return []
            messages = [(head, Inbound.from_json(head.payload)) for head in heads]
            await self._prefetch(uow, [inbound for _, inbound in messages])
            now = self.clock()
            marks: list[tuple[int, str | None]] = []
            # A message alone needs no savepoint: its failure undoes the whole transaction.
            alone = len(messages) == 1
            for head, inbound in messages:
                try:
                    async with uow.savepoint(enabled=not alone):
                        ctx = await dispatch(uow, inbound, self.config, now, self.app)
                except Exception as exc:  # keep the process running; the draft is untouched
                    if is_transient_db_error(exc):
                        raise
                    log.exception(
                        "handling %s event %s failed: %s", head.channel, head.id, type(exc).__name__
                    )
                    if alone:
                        await uow.rollback()
                    marks.append((head.id, type(exc).__name__[:200]))
                    await self._apologize(uow, inbound, now)
                    continue
                marks.append((head.id, None))
                after_commit |= ctx.after_commit
                if AfterCommit.CHAT_ERASED in ctx.after_commit:
                    erased.append((head.channel, head.chat_id))
            await uow.inbox.mark_processed_many(marks, now)
            await uow.commit()
        handled = self.clock()
        for head, _ in messages:
            self.metrics.handling.observe(max(0.0, (handled - head.received_at).total_seconds()))
        if after_commit:
            self._check_deletions = True  # an erasure may have scheduled deletions for now
        self._backlog = max(0, self._backlog - len(heads))
        if self._backlog < self.high_water:
            self._capacity.set()
        for channel, chat_id in erased:
            # Adapters that keep copies outside the database (the console's files) drop them.
            chat_erased = getattr(self.adapters.get(channel), "chat_erased", None)
            if chat_erased is not None:
                chat_erased(chat_id)
        if AfterCommit.CHECKPOINT_WAL in after_commit:
            try:
                await self.checkpoint()
            except Exception as exc:  # the message is handled; the next checkpoint catches up
                log.warning("WAL checkpoint failed: %s", db_error_cause(exc))
        return [(head.channel, head.chat_id) for head in heads if head.pending > 1]

    async def _prefetch(self, uow: UnitOfWork, inbounds: list[Inbound]) -> None:
        """Load the batch's customers and conversation states in two queries. Only for
        customer messages whose sender appears once: a staff message can act on any
        customer, so a batch holding one reads everything as it goes."""
        if any(inbound.from_staff_chat for inbound in inbounds):
            return
        senders = Counter((inbound.channel, inbound.user_id) for inbound in inbounds)
        await uow.customers.prefetch_identities([key for key, n in senders.items() if n == 1])
        await uow.states.prefetch([(inbound.channel, inbound.chat_id) for inbound in inbounds])

    async def _apologize(self, uow: UnitOfWork, inbound: Inbound, now: datetime) -> None:
        """Tell the customer their message could not be handled, in their language."""
        try:
            async with uow.savepoint():
                lang = pick_language(None, inbound.language_hint, self.config.default_language)
                identity = await uow.customers.identity(inbound.channel, inbound.user_id)
                if identity is not None:
                    customer = await uow.customers.get(identity.customer_id)
                    lang = pick_language(customer.language if customer else None, None, lang)
                text = t(lang, "core.internal_error")
                await enqueue(uow, Outbound(inbound.channel, inbound.chat_id, text), now)
        except Exception as exc:
            if is_transient_db_error(exc):
                raise
            log.exception("apologizing on %s failed: %s", inbound.channel, type(exc).__name__)

    async def pipeline_health(self) -> PipelineHealth:
        """The backlog as the database holds it (for /healthz and /metrics)."""
        async with self.sessions() as session:
            return await pipeline_health(session, self.clock())

    async def checkpoint(self) -> None:
        """Truncate the SQLite WAL after an erasure (see `storage.db.checkpoint`)."""
        await checkpoint(self.sessions)

    async def resume_pending(self) -> int:
        """Look at every conversation with unprocessed inbox rows (left by a crash, or by a
        processing error); returns their number. Also run periodically (`_sweep_loop`)."""
        async with UnitOfWork(self.sessions) as uow:
            pending = await uow.inbox.pending_counts()
        self._backlog = sum(pending.values())
        if self._backlog < self.high_water:
            self._capacity.set()
        for channel, chat_id in pending:
            self._kick_conversation(channel, chat_id)
        return len(pending)

    async def _sweep_loop(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            try:
                await self.resume_pending()
            except Exception as exc:
                log.error("inbox sweep failed: %s", db_error_cause(exc))

    # ---- delivery --------------------------------------------------------------------------

    def start(self, maintenance_every: float = 3600.0, sweep_every: float = SWEEP_EVERY) -> None:
        if self._delivery_task is None:
            self._delivery_task = asyncio.create_task(self._delivery_loop(), name="delivery")
            self._maintenance_task = asyncio.create_task(
                self._maintenance_loop(maintenance_every), name="maintenance"
            )
            self._sweep_task = asyncio.create_task(self._sweep_loop(sweep_every), name="sweep")
            self._wake_delivery.set()

    async def maintain(self) -> dict[str, int]:
        """Drafts expiry, retention purge and other periodic work, in one transaction."""
        async with UnitOfWork(self.sessions) as uow:
            counts = await run_maintenance(uow, self.app, self.config, self.clock())
            await uow.commit()
        self._check_deletions = True
        if counts.get("retention_erased"):
            await self.checkpoint()
        self._wake_delivery.set()
        return counts

    async def _maintenance_loop(self, every: float) -> None:
        while True:
            try:
                await self.maintain()
            except Exception as exc:
                log.exception("maintenance failed: %s", type(exc).__name__)
            await asyncio.sleep(every)

    async def _delivery_loop(self) -> None:
        """Starts a queue task for each chat whose next row is due; never waits for a send."""
        while True:
            self._wake_delivery.clear()
            try:
                next_due = await self._schedule()
            except Exception as exc:
                log.exception("delivery scheduling failed: %s", type(exc).__name__)
                next_due = 5.0
            timeout = 60.0 if next_due is None else max(0.05, next_due)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_delivery.wait(), timeout)

    async def deliver_due(self) -> float | None:
        """Send everything due now and wait until it is done (tests and `idle()` use this; the
        worker does not wait); returns seconds until the next row is due (None: none)."""
        while True:
            next_due = await self._schedule()
            running = list(self._queues.values())
            if not running:
                return next_due
            await asyncio.wait(running)

    async def _schedule(self) -> float | None:
        """Start the queue of every chat whose oldest pending row is due (and that is not
        paused by its rate limit); returns seconds until the next chat becomes due."""
        await self._recover_interrupted()
        now = self.clock()
        async with UnitOfWork(self.sessions) as uow:
            heads = [
                ((row.channel, row.chat_id), (row.next_attempt_at - now).total_seconds())
                for row in await uow.outbox.queue_heads()
            ]
        waits: list[float] = []
        for chat, wait in heads:
            if chat in self._queues:
                continue  # its task is running; it wakes the worker when it ends
            wait = max(wait, (self._paused.get(chat, now) - now).total_seconds())
            if wait > 0:
                waits.append(wait)
                continue
            self._paused.pop(chat, None)
            task = asyncio.create_task(self._run_queue(chat), name=f"deliver:{chat[0]}")
            self._queues[chat] = task
            task.add_done_callback(functools.partial(self._queue_done, chat))
        deletion_wait = await self._delete_due()
        if deletion_wait is not None:
            waits.append(deletion_wait)
        return min(waits) if waits else None

    def _queue_done(self, chat: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self._queues.get(chat) is task:
            del self._queues[chat]
        self._wake_delivery.set()

    async def _recover_interrupted(self) -> None:
        """Once per process: rows whose send had started when the last process died. The
        platform may or may not have them; they are sent again (at-least-once, never lost)."""
        if self._recovered:
            return
        self._recovered = True
        async with UnitOfWork(self.sessions) as uow:
            rows = await uow.outbox.interrupted()
            for row in rows:
                row.send_started_at = None
                row.last_error = "interrupted mid-send; sent again"
            await uow.commit()
        if rows:
            log.info("%s outbox rows were mid-send at a crash; sending them again", len(rows))

    async def _run_queue(self, chat: tuple[str, str]) -> None:
        """Send one chat's due rows in order until its queue is empty or must wait (a retry,
        a rate limit). Nothing overtakes a row that waits; no other chat waits for this one.
        A send's outcome is stored with the claim of the next, in the transaction the
        bookkeeper shares among all chats; a chat whose queue held nothing more at its claim
        ends without looking again (new rows wake the worker, which restarts it)."""
        try:
            claim = await self._bookkeep(lambda uow: self._claim(uow, chat))
            while claim is not None:
                async with self._sends:
                    outcome = await self._attempt(claim)
                claim = await self._bookkeep(
                    functools.partial(self._record_and_claim, chat, claim, outcome)
                )
        except Exception as exc:  # a database error: leave the rows pending, try again soon
            log.exception("delivery to a %s chat failed: %s", chat[0], type(exc).__name__)
            self._paused[chat] = self.clock() + timedelta(seconds=5)

    async def _record_and_claim(
        self,
        chat: tuple[str, str],
        claim: _Claim,
        outcome: SendResult | Exception,
        uow: UnitOfWork,
    ) -> _Claim | None:
        waits = await self._record(uow, claim, outcome)
        if waits or self._stopping or not claim.more:
            return None
        return await self._claim(uow, chat)

    async def _bookkeep(self, job: Callable[[UnitOfWork], Awaitable[Any]]) -> Any:
        """Run `job` in the bookkeeper's next shared transaction; its result once committed."""
        done: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._jobs.append((job, done))
        if self._bookkeeper_task is None or self._bookkeeper_task.done():
            self._bookkeeper_task = asyncio.create_task(self._bookkeeper(), name="bookkeeping")
        return await done

    async def _bookkeeper(self) -> None:
        """Run queued delivery jobs together: one transaction, one commit per pass. When a
        pass fails, its jobs are run again one per transaction, so that one failing job
        (reported to its chat's queue) does not fail the others."""
        while self._jobs:
            jobs, self._jobs = self._jobs, []
            try:
                results = await self._run_jobs([job for job, _ in jobs])
            except Exception as exc:
                if len(jobs) == 1:
                    jobs[0][1].set_exception(exc)
                    continue
                for job, done in jobs:
                    try:
                        (result,) = await self._run_jobs([job])
                    except Exception as alone:
                        done.set_exception(alone)
                    else:
                        done.set_result(result)
                continue
            for (_, done), result in zip(jobs, results, strict=True):
                done.set_result(result)
            await _let_others_in()

    async def _run_jobs(self, jobs: list[Job]) -> list[object]:
        async with UnitOfWork(self.sessions) as uow:
            results = [await job(uow) for job in jobs]
            await uow.commit()
        return results

    def _quota_wait(self, chat: tuple[str, str]) -> float:
        """Seconds before this chat may be sent to again under its platform quota (e.g. 20
        messages a minute in a Telegram group); pauses the chat's queue meanwhile, so that
        its rows pile up and are merged instead of waiting inside a send."""
        quota = self._quota(chat)
        if quota is None:
            return 0.0
        count, period = quota
        now = self.clock()
        recent = self._recent_sends.setdefault(chat, deque())
        while recent and recent[0] <= now - timedelta(seconds=period):
            recent.popleft()
        if len(recent) < count:
            return 0.0
        self._paused[chat] = recent[0] + timedelta(seconds=period)
        return (self._paused[chat] - now).total_seconds()

    def _quota(self, chat: tuple[str, str]) -> tuple[int, float] | None:
        quota = getattr(self.adapters.get(chat[0]), "send_quota", None)
        return quota(chat[1]) if quota is not None else None

    async def _claim(self, uow: UnitOfWork, chat: tuple[str, str]) -> _Claim | None:
        """The chat's next due message (several rows merged when the chat is rate-limited),
        marked as being sent; the caller commits before the platform is called."""
        now = self.clock()
        if self._quota_wait(chat) > 0:
            return None
        rows = await uow.outbox.queue(*chat, limit=MERGE_ROWS)
        if not rows or rows[0].next_attempt_at > now:
            return None
        head = rows[0]
        if chat[0] not in self.adapters:
            head.next_attempt_at = now + timedelta(seconds=60)
            head.last_error = f"no adapter for {chat[0]}"
            return None
        message = Outbound.from_json(head.payload)
        batch = [head]
        if self._quota(chat) is not None:
            for row in rows[1:]:
                if row.next_attempt_at > now or row.tag != head.tag:
                    break
                merged = _merge(message, row, self.delivery.merge_chars)
                if merged is None:
                    break
                message = merged
                batch.append(row)
        for row in batch:
            row.send_started_at = now
        return _Claim(
            chat,
            [row.id for row in batch],
            message,
            await self._platform_id(uow, message.edit_of),
            await self._platform_id(uow, message.reply_to),
            more=len(rows) > len(batch),
            queued_at=head.created_at,
        )

    async def _attempt(self, claim: _Claim) -> SendResult | Exception:
        adapter = self.adapters[claim.chat[0]]
        try:
            return await adapter.send(
                claim.message,
                edit_message_id=claim.edit_id,
                reply_to_message_id=claim.reply_id,
            )
        except Exception as exc:
            return exc

    async def _record(
        self, uow: UnitOfWork, claim: _Claim, outcome: SendResult | Exception
    ) -> bool:
        """Store the outcome of one send; True when the chat's queue must wait now."""
        now = self.clock()
        if isinstance(outcome, SendResult):
            self._delivered_at[claim.chat[0]] = now
            if claim.chat in self._recent_sends:
                self._recent_sends[claim.chat].append(now)
        channel = claim.chat[0]
        if isinstance(outcome, SendResult):
            self._failing_since.pop(claim.row_ids[0], None)
            self.metrics.messages_out.labels(channel).inc(len(claim.row_ids))
            if claim.queued_at is not None:
                waited = max(0.0, (now - claim.queued_at).total_seconds())
                self.metrics.delivery.labels(channel).observe(waited)
            await self._sent(uow, claim, outcome, now)
            return False
        self.metrics.send_errors.labels(channel, _error_kind(outcome)).inc()
        rows = await uow.outbox.by_ids(claim.row_ids)
        if not rows:
            return False  # erased while in flight (/delete removes unsent rows)
        for row in rows:
            row.send_started_at = None
            row.attempts += 1
        return await self._failed(uow, outcome, rows, now)

    async def _sent(
        self, uow: UnitOfWork, claim: _Claim, result: SendResult, now: datetime
    ) -> None:
        """Mark the claimed rows sent with one UPDATE, without reading them again (rows
        erased while in flight are simply not there any more)."""
        message = claim.message
        if message.edit_of is not None and result.platform_message_id is None:
            platform_id = claim.edit_id
        else:
            platform_id = result.platform_message_id
        delete_at = None
        if message.delete_after_seconds:
            delete_at = now + timedelta(seconds=message.delete_after_seconds)
            if self._next_deletion is None or delete_at < self._next_deletion:
                self._next_deletion = delete_at
        await uow.outbox.mark_sent(claim.row_ids, now, platform_id, delete_at)

    async def _failed(
        self,
        uow: UnitOfWork,
        error: Exception,
        rows: Sequence[OutboxMessage],
        now: datetime,
    ) -> bool:
        """Classify a failed send by its cause; True when the chat's queue must wait."""
        head = rows[0]
        if isinstance(error, PermanentSendError):
            await self._fail(uow, rows, error.reason, error.unreachable, now)
            return False
        failing_since = self._failing_since.setdefault(head.id, now)
        if isinstance(error, TemporarySendError):
            reason, retry_after, limit = error.reason, error.retry_after, self.delivery.max_attempts
            # Refused again and again while other messages on the same channel go through:
            # the trouble is this message (a misclassified refusal), not the network.
            if (
                retry_after is None
                and head.attempts >= self.delivery.unclassified_attempts
                and self._delivered_at.get(head.channel, failing_since) > failing_since
            ):
                limit = head.attempts
                reason = f"refused repeatedly: {reason}"
        else:  # nobody classified it: not worth an hour of retries
            reason, retry_after = f"unclassified {type(error).__name__}", None
            limit = self.delivery.unclassified_attempts
        if head.attempts >= limit:
            log.warning("outbox %s gave up after %s attempts", head.id, head.attempts)
            await self._fail(uow, rows, f"gave up: {reason}", False, now)
            return False
        delay = max(retry_after or 0.0, self.delivery.backoff(head.attempts))
        for row in rows:
            row.next_attempt_at = now + timedelta(seconds=delay)
            row.last_error = reason[:200]
        log.info(
            "outbox %s attempt %s failed (%s); retry in %.1fs",
            head.id,
            head.attempts,
            reason[:80],
            delay,
        )
        return True

    async def _fail(
        self,
        uow: UnitOfWork,
        rows: Sequence[OutboxMessage],
        reason: str,
        unreachable: bool,
        now: datetime,
    ) -> None:
        """Fail rows for good and let their chat's queue move on; staff hear of it once."""
        head = rows[0]
        self._failing_since.pop(head.id, None)
        for row in rows:
            row.status = "failed"
            row.last_error = reason[:200]
            row.payload = {}
        log.warning("outbox %s failed permanently: %s", head.id, reason[:80])
        staff_chat = (head.channel, head.chat_id) == (
            self.config.staff_channel,
            self.config.staff_chat_id,
        )
        if unreachable:
            await uow.customers.mark_unreachable(head.channel, head.chat_id, now)
            # The rest of this chat's queue would fail the same way: fail it with one notice.
            await uow.outbox.fail_pending(head.channel, head.chat_id, reason[:200], but=head.id)
            if staff_chat:
                return  # nowhere to tell staff: the bot cannot post in their chat
        if staff_chat:
            # One message could not be posted (e.g. unencodable text); the chat itself works.
            if head.tag is not None or head.customer_id is not None:
                await staff_notice(
                    uow, self.config, now, "core.staff.staff_delivery_failed", reason=reason[:120]
                )
            return
        await staff_notice(
            uow,
            self.config,
            now,
            "core.staff.delivery_failed",
            customer=head.customer_id or "?",
            channel=head.channel,
            reason=reason[:120],
        )

    async def _platform_id(self, uow: UnitOfWork, outbox_id: int | None) -> str | None:
        if outbox_id is None:
            return None
        earlier = await uow.outbox.get(outbox_id)
        return earlier.platform_message_id if earlier is not None else None

    def wake_delivery(self) -> None:
        """Messages were committed outside a conversation (e.g. a bank webhook): send them."""
        self._wake_delivery.set()

    async def notify_staff(self, key: str, **params: object) -> None:
        """A system notice to the staff chat (e.g. the Zalo token refresh keeps failing)."""
        async with UnitOfWork(self.sessions) as uow:
            await staff_notice(uow, self.config, self.clock(), key, **params)
            await uow.commit()
        self._wake_delivery.set()

    async def customer_left(self, channel: str, platform_user_id: str) -> None:
        """The platform says the customer unfollowed/blocked us: stop trying to reach them."""
        async with UnitOfWork(self.sessions) as uow:
            identity = await uow.customers.identity(channel, platform_user_id)
            if identity is not None:
                identity.unreachable_since = self.clock()
                await uow.commit()

    async def _delete_due(self) -> float | None:
        """Remove messages scheduled to disappear (e.g. /mydata on shared devices). The
        outbox is read only when the earliest known deletion is due (or after an erasure):
        a delivery pass with nothing to delete costs no query."""
        now = self.clock()
        if not self._check_deletions:
            if self._next_deletion is None:
                return None
            if self._next_deletion > now:
                return (self._next_deletion - now).total_seconds()
        self._check_deletions = False
        # Senders running beside this pass note their deletions in _next_deletion; one that
        # commits after the read below is kept by the merge at the end, not overwritten.
        self._next_deletion = None
        async with UnitOfWork(self.sessions) as uow:
            rows = await uow.outbox.scheduled_deletions()
            for row in rows:
                if row.delete_at is None or row.delete_at > now:
                    continue
                adapter = self.adapters.get(row.channel)
                if adapter is not None and row.platform_message_id:
                    try:
                        await adapter.delete(row.chat_id, row.platform_message_id)
                    except Exception as exc:
                        log.info("deleting outbox %s failed: %s", row.id, type(exc).__name__)
                row.delete_at = None
            await uow.commit()
            later = [r.delete_at for r in rows if r.delete_at is not None]
        if self._next_deletion is not None:
            later.append(self._next_deletion)
        self._next_deletion = min(later) if later else None
        return (self._next_deletion - now).total_seconds() if self._next_deletion else None

    # ---- lifecycle -------------------------------------------------------------------------

    async def idle(self, limit: float = 30.0) -> None:
        """Wait until every conversation is processed and nothing is due for delivery."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            tasks = self._inbound_tasks()
            if tasks:
                await asyncio.wait(tasks, timeout=max(0.01, deadline - loop.time()))
                continue
            next_due = await self.deliver_due()
            if not self._inbound_tasks() and (next_due is None or next_due > 5):
                return
            before = self.clock()
            await asyncio.sleep(min(0.05, max(0.0, next_due or 0.0)))
            if next_due and next_due > 0 and self.clock() == before:
                return  # a stopped clock (tests advance it by hand): nothing falls due by waiting

    def _inbound_tasks(self) -> list[asyncio.Task[None]]:
        """The inbox writer and the processing loop, while they run."""
        tasks = (self._inbox_writer, self._processor)
        return [task for task in tasks if task is not None and not task.done()]

    async def stop(self) -> None:
        """Finish in-flight conversations, then stop the delivery worker; a send in progress
        finishes and is recorded instead of being cut off."""
        tasks = self._inbound_tasks()
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=10)
            # Still retrying (e.g. the database is down): stop anyway. An uncommitted batch
            # stays pending in the inbox and is processed after the restart, exactly once.
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._stopping = True
        if self._sweep_task is not None:
            self._sweep_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweep_task
            self._sweep_task = None
        if self._maintenance_task is not None:
            self._maintenance_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance_task
            self._maintenance_task = None
        if self._delivery_task is not None:
            self._delivery_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivery_task
            self._delivery_task = None
        queues = list(self._queues.values())
        if queues:
            _, late = await asyncio.wait(queues, timeout=10)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)


async def _let_others_in() -> None:
    """Yield once after a transaction: whoever waits for the one SQLite connection (woken
    when it was returned) takes it before this loop asks again — without this, a busy loop
    re-takes it at once and the inbox writer, the processing loop and delivery starve each
    other."""
    await asyncio.sleep(0)


MAX_FIELD_CHARS = 300  # names, ids, payloads, attachment references


def _clean(inbound: Inbound) -> Inbound:
    """Every text field NFC, without control characters or lone surrogates, and bounded, so
    that handlers, the database and the platforms (which must encode it as UTF-8) all see
    the same well-formed text — whatever an adapter or a forged event put in."""

    def short(value: str) -> str:
        return normalize_text(value)[:MAX_FIELD_CHARS]

    def optional(value: str | None) -> str | None:
        return None if value is None else short(value)

    contact = inbound.contact
    if contact is not None:
        contact = replace(
            contact,
            phone=short(contact.phone),
            name=short(contact.name),
            address=short(contact.address),
            user_id=None if contact.user_id is None else normalize_text(contact.user_id),
        )
    # Identifiers are normalized but never cut: two users must not collapse into one.
    return replace(
        inbound,
        chat_id=normalize_text(inbound.chat_id),
        user_id=normalize_text(inbound.user_id),
        dedupe_key=normalize_text(inbound.dedupe_key),
        text=normalize_text(inbound.text)[:MAX_TEXT_CHARS],
        command=optional(inbound.command),
        args=normalize_text(inbound.args)[:MAX_TEXT_CHARS],
        payload=optional(inbound.payload),
        contact=contact,
        attachments=tuple(
            replace(item, ref=normalize_text(item.ref)[:MAX_TEXT_CHARS], name=short(item.name))
            for item in inbound.attachments
        ),
        language_hint=optional(inbound.language_hint),
        user_display_name=short(inbound.user_display_name),
        reply_to_message_id=optional(inbound.reply_to_message_id),
    )


MERGE_ROWS = 20  # rows looked at when merging a rate-limited chat's queue into one message


def _error_kind(error: Exception) -> str:
    """A send error's kind, for metrics (its reason may quote a platform's free text)."""
    if isinstance(error, PermanentSendError):
        return "permanent"
    return "temporary" if isinstance(error, TemporarySendError) else "unclassified"


@dataclass(frozen=True)
class _Claim:
    """One send in flight: the rows it delivers (several when merged) and what is sent."""

    chat: tuple[str, str]
    row_ids: list[int]
    message: Outbound
    edit_id: str | None
    reply_id: str | None
    more: bool = True  # the chat's queue held more rows at the claim
    queued_at: datetime | None = None  # the first row's creation: delivery latency


def _merge(message: Outbound, row: OutboxMessage, limit: int) -> Outbound | None:
    """`message` with the next queued row appended, when both are plain lines (no buttons,
    edits, files, keyboards or self-deletion) threaded alike, within `limit` characters."""
    follower = Outbound.from_json(row.payload)
    if not (_plain(message) and _plain(follower)):
        return None
    if (message.html, message.reply_to) != (follower.html, follower.reply_to):
        return None
    text = f"{message.text}\n\n{follower.text}"
    return replace(message, text=text) if len(text) <= limit else None


def _plain(message: Outbound) -> bool:
    return not (
        message.buttons
        or message.ask_contact
        or message.remove_keyboard
        or message.document is not None
        or message.edit_of is not None
        or message.delete_after_seconds
    )

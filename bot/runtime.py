"""The message pipeline: inbox → per-conversation processing → outbox → delivery.

- `receive()` stores an inbound in the inbox (unique per channel + dedupe key) before the
  adapter acknowledges the platform; a duplicate returns False and does nothing else.
- Each conversation (channel, chat id) is processed by at most one task at a time, oldest
  inbox row first, so one customer's messages never interleave while different customers
  run concurrently. One inbound = one transaction: state change + outbox rows + inbox mark.
- The delivery worker sends committed outbox rows right after commit, retries with backoff,
  records platform message ids, and performs scheduled deletions.
- On start, unprocessed inbox rows and unsent outbox rows from before a crash are resumed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from bot.channels.base import ChannelAdapter
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
    TemporarySendError,
    normalize_text,
)
from handlers.router import Composition
from storage.db import Sessions, checkpoint, db_error_cause, is_transient_db_error
from storage.models import OutboxMessage
from storage.repositories import UnitOfWork, store_inbound

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DeliveryPolicy:
    base_delay: float = 1.0
    max_delay: float = 300.0
    max_attempts: int = 12  # ~1 hour of retries before a row is marked failed

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
        self._conversations: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._arrived: set[tuple[str, str]] = set()  # rows stored while their task ran
        self._wake_delivery = asyncio.Event()
        self._delivery_task: asyncio.Task[None] | None = None
        self._maintenance_task: asyncio.Task[None] | None = None
        self._delivery_lock = asyncio.Lock()  # one delivery pass at a time: no double sends
        self._chat_slots = asyncio.Semaphore(8)  # chats sent to concurrently
        self._stopping = False
        # Waits before a conversation retries after a database error (disk full, locked).
        self.db_retry_delay = 1.0
        self.db_retry_max = 60.0

    def add_adapter(self, adapter: ChannelAdapter) -> None:
        """Deliver through `adapter` and tell the handlers what its channel can do."""
        self.adapters[adapter.name] = adapter
        channels = {**self.config.channels, adapter.name: adapter.capabilities}
        self.config = replace(self.config, channels=channels)

    # ---- inbound ---------------------------------------------------------------------------

    async def receive(self, inbound: Inbound) -> bool:
        """Store the inbound, then schedule its processing. False for a duplicate delivery."""
        inbound = _clean(inbound)
        event_id = await store_inbound(
            self.sessions,
            inbound.channel,
            inbound.dedupe_key,
            inbound.chat_id,
            inbound.user_id,
            inbound.to_json(),
            self.clock(),
        )
        if event_id is None:
            log.info("duplicate %s event dropped", inbound.channel)
            return False
        self._kick_conversation(inbound.channel, inbound.chat_id)
        return True

    def is_busy(self, channel: str, chat_id: str) -> bool:
        """Whether this conversation still has inbound work running (for typing indicators)."""
        task = self._conversations.get((channel, chat_id))
        return task is not None and not task.done()

    def _kick_conversation(self, channel: str, chat_id: str) -> None:
        key = (channel, chat_id)
        task = self._conversations.get(key)
        if task is not None and not task.done():
            # The running task looks at the inbox again before it ends (see _drain_conversation).
            self._arrived.add(key)
            return
        task = asyncio.create_task(self._drain_conversation(key), name=f"conv:{channel}")
        self._conversations[key] = task
        task.add_done_callback(functools.partial(self._forget, key))

    def _forget(self, key: tuple[str, str], task: asyncio.Task[None]) -> None:
        if self._conversations.get(key) is task:
            del self._conversations[key]

    async def _drain_conversation(self, key: tuple[str, str]) -> None:
        """Process this conversation's inbox rows, oldest first, until none is left.

        A database that cannot be written (disk full, locked, gone) leaves the row pending:
        the task waits and tries again, with backoff, until the database works again."""
        failures = 0
        while not self._stopping:
            self._arrived.discard(key)
            try:
                found = await self._process_next(key)
            except Exception as exc:  # never let the task die: "exception never retrieved"
                failures += 1
                delay = min(self.db_retry_max, self.db_retry_delay * 2 ** min(failures - 1, 16))
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
                await asyncio.sleep(delay)
                continue
            failures = 0
            if not found and key not in self._arrived:
                # No await between this check and the task's end: a row stored from now on
                # finds the task done and starts a new one.
                return

    async def _process_next(self, key: tuple[str, str]) -> bool:
        """Handle the oldest pending inbound of the conversation; False when there is none.

        A handler's own failure marks the row done and apologises to the customer; a
        transient database error is raised instead (the row stays pending, nothing is sent).
        """
        after_commit: set[AfterCommit] = set()
        async with UnitOfWork(self.sessions) as uow:
            event = await uow.inbox.next_pending(*key)
            if event is None:
                return False
            event_id = event.id
            inbound = Inbound.from_json(event.payload)
            now = self.clock()
            try:
                ctx = await dispatch(uow, inbound, self.config, now, self.app)
                await uow.inbox.mark_processed(event_id, now)
                await uow.commit()
                after_commit = ctx.after_commit
            except Exception as exc:  # keep the process running; the draft is untouched
                await uow.rollback()
                if is_transient_db_error(exc):
                    raise
                log.exception(
                    "handling %s event %s failed: %s", key[0], event_id, type(exc).__name__
                )
                await self._apologize(event_id, inbound, type(exc).__name__)
        if AfterCommit.CHAT_ERASED in after_commit:
            # Adapters that keep copies outside the database (the console's files) drop them.
            chat_erased = getattr(self.adapters.get(key[0]), "chat_erased", None)
            if chat_erased is not None:
                chat_erased(key[1])
        if AfterCommit.CHECKPOINT_WAL in after_commit:
            try:
                await self.checkpoint()
            except Exception as exc:  # the message is handled; the next checkpoint catches up
                log.warning("WAL checkpoint failed: %s", db_error_cause(exc))
        self._wake_delivery.set()
        return True

    async def _apologize(self, event_id: int, inbound: Inbound, error: str) -> None:
        """Mark the event handled-with-error and tell the customer, in a fresh transaction."""
        async with UnitOfWork(self.sessions) as uow:
            now = self.clock()
            await uow.inbox.mark_processed(event_id, now, error=error[:200])
            lang = pick_language(None, inbound.language_hint, self.config.default_language)
            identity = await uow.customers.identity(inbound.channel, inbound.user_id)
            if identity is not None:
                customer = await uow.customers.get(identity.customer_id)
                lang = pick_language(customer.language if customer else None, None, lang)
            text = t(lang, "core.internal_error")
            await enqueue(uow, Outbound(inbound.channel, inbound.chat_id, text), now)
            await uow.commit()

    async def checkpoint(self) -> None:
        """Truncate the SQLite WAL after an erasure (see `storage.db.checkpoint`)."""
        await checkpoint(self.sessions)

    async def resume_pending(self) -> int:
        """Process inbox rows left unprocessed by a crash; returns the number of conversations."""
        async with UnitOfWork(self.sessions) as uow:
            conversations = await uow.inbox.pending_conversations()
        for channel, chat_id in conversations:
            self._kick_conversation(channel, chat_id)
        return len(conversations)

    # ---- delivery --------------------------------------------------------------------------

    def start(self, maintenance_every: float = 3600.0) -> None:
        if self._delivery_task is None:
            self._delivery_task = asyncio.create_task(self._delivery_loop(), name="delivery")
            self._maintenance_task = asyncio.create_task(
                self._maintenance_loop(maintenance_every), name="maintenance"
            )
            self._wake_delivery.set()

    async def maintain(self) -> dict[str, int]:
        """Drafts expiry, retention purge and other periodic work, in one transaction."""
        async with UnitOfWork(self.sessions) as uow:
            counts = await run_maintenance(uow, self.app, self.config, self.clock())
            await uow.commit()
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
        while True:
            self._wake_delivery.clear()
            try:
                next_due = await self.deliver_due()
            except Exception as exc:
                log.exception("delivery pass failed: %s", type(exc).__name__)
                next_due = 5.0
            timeout = 60.0 if next_due is None else max(0.05, next_due)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake_delivery.wait(), timeout)

    async def deliver_due(self) -> float | None:
        """Send every due outbox row once; returns seconds until the next retry (None: none)."""
        async with self._delivery_lock:
            return await self._deliver_due()

    async def _deliver_due(self) -> float | None:
        """Chats are served concurrently (a rate-limited staff group must not hold up
        customers); within one chat, rows go strictly in order and nothing overtakes a row
        that waits for its retry."""
        now = self.clock()
        queues: dict[tuple[str, str], list[tuple[int, float]]] = {}
        after_id = 0
        while True:  # page through every pending row, oldest first
            async with UnitOfWork(self.sessions) as uow:
                rows = await uow.outbox.pending(after_id=after_id, limit=500)
                page = [
                    (
                        row.id,
                        (row.channel, row.chat_id),
                        (row.next_attempt_at - now).total_seconds(),
                    )
                    for row in rows
                ]
            if not page:
                break
            after_id = page[-1][0]
            for row_id, chat, wait in page:
                queues.setdefault(chat, []).append((row_id, wait))
        waits = await asyncio.gather(*(self._deliver_chat(queue) for queue in queues.values()))
        due = [wait for wait in waits if wait is not None]
        next_due = min(due) if due else None
        deletion_wait = await self._delete_due()
        if deletion_wait is not None:
            next_due = deletion_wait if next_due is None else min(next_due, deletion_wait)
        return next_due

    async def _deliver_chat(self, queue: list[tuple[int, float]]) -> float | None:
        """Send one chat's due rows in order; returns the wait before its next attempt."""
        async with self._chat_slots:
            for row_id, wait in queue:
                if wait > 0:
                    return wait
                async with UnitOfWork(self.sessions) as uow:
                    row = await uow.outbox.get(row_id)
                    if row is None or row.status != "pending":
                        continue
                    retry_in = await self._send_row(uow, row)
                    await uow.commit()
                if retry_in is not None:
                    return retry_in
        return None

    async def _send_row(self, uow: UnitOfWork, row: OutboxMessage) -> float | None:
        """Try one row; returns the retry delay if it must be retried."""
        adapter = self.adapters.get(row.channel)
        now = self.clock()
        if adapter is None:
            row.next_attempt_at = now + timedelta(seconds=60)
            row.last_error = f"no adapter for {row.channel}"
            return 60.0
        message = Outbound.from_json(row.payload)
        edit_id = await self._platform_id(uow, message.edit_of)
        reply_id = await self._platform_id(uow, message.reply_to)
        row.attempts += 1
        try:
            result = await adapter.send(
                message, edit_message_id=edit_id, reply_to_message_id=reply_id
            )
        except PermanentSendError as exc:
            row.status = "failed"
            row.last_error = exc.reason[:200]
            row.payload = {}
            log.warning("outbox %s failed permanently: %s", row.id, exc.reason[:80])
            if exc.unreachable:
                await uow.customers.mark_unreachable(row.channel, row.chat_id, now)
                # The rest of this chat's queue would fail the same way: fail it with one notice.
                await uow.outbox.fail_pending(
                    row.channel, row.chat_id, exc.reason[:200], but=row.id
                )
            if (row.channel, row.chat_id) != (self.config.staff_channel, self.config.staff_chat_id):
                await staff_notice(
                    uow,
                    self.config,
                    now,
                    "core.staff.delivery_failed",
                    customer=row.customer_id or "?",
                    channel=row.channel,
                    reason=exc.reason[:120],
                )
            return None
        except Exception as exc:
            retry_after = exc.retry_after if isinstance(exc, TemporarySendError) else None
            reason = exc.reason if isinstance(exc, TemporarySendError) else type(exc).__name__
            if row.attempts >= self.delivery.max_attempts:
                row.status = "failed"
                row.last_error = f"gave up: {reason}"[:200]
                log.warning("outbox %s gave up after %s attempts", row.id, row.attempts)
                return None
            delay = max(retry_after or 0.0, self.delivery.backoff(row.attempts))
            row.next_attempt_at = now + timedelta(seconds=delay)
            row.last_error = reason[:200]
            log.info(
                "outbox %s attempt %s failed (%s); retry in %.1fs",
                row.id,
                row.attempts,
                reason[:80],
                delay,
            )
            return delay
        row.status = "sent"
        row.sent_at = now
        if message.edit_of is not None and result.platform_message_id is None:
            row.platform_message_id = edit_id
        else:
            row.platform_message_id = result.platform_message_id
        if message.delete_after_seconds:
            row.delete_at = now + timedelta(seconds=message.delete_after_seconds)
        # The text may hold personal data; once delivered only the platform id is needed.
        row.payload = {}
        return None

    async def _platform_id(self, uow: UnitOfWork, outbox_id: int | None) -> str | None:
        if outbox_id is None:
            return None
        earlier = await uow.outbox.get(outbox_id)
        return earlier.platform_message_id if earlier is not None else None

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
        """Remove messages scheduled to disappear (e.g. /mydata on shared devices)."""
        now = self.clock()
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
            waits = [(r.delete_at - now).total_seconds() for r in rows if r.delete_at is not None]
        return min(waits) if waits else None

    # ---- lifecycle -------------------------------------------------------------------------

    async def idle(self, limit: float = 30.0) -> None:
        """Wait until every conversation is processed and nothing is due for delivery."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while loop.time() < deadline:
            tasks = [task for task in self._conversations.values() if not task.done()]
            if tasks:
                await asyncio.wait(tasks, timeout=max(0.01, deadline - loop.time()))
                continue
            next_due = await self.deliver_due()
            if not [t for t in self._conversations.values() if not t.done()] and (
                next_due is None or next_due > 5
            ):
                return
            await asyncio.sleep(min(0.05, max(0.0, next_due or 0.0)))

    async def stop(self) -> None:
        """Finish in-flight conversations, then stop the delivery worker."""
        tasks = [task for task in self._conversations.values() if not task.done()]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        self._stopping = True
        if self._maintenance_task is not None:
            self._maintenance_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance_task
            self._maintenance_task = None
        if self._delivery_task is not None:
            # Let a send in progress finish (and be recorded) instead of cutting it off.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._delivery_lock.acquire(), 10)
            self._delivery_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._delivery_task
            self._delivery_task = None


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

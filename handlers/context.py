"""What a handler works with during one inbound: the unit of work, the customer, the language,
and the ways to answer (everything sent goes to the outbox in the same transaction)."""

from __future__ import annotations

import enum
import hashlib
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from handlers.errors import InvalidInput
from handlers.i18n import DEFAULT_LANGUAGE, catalog, pick_language, t
from handlers.messages import STAFF, Button, ChannelCapabilities, Document, Inbound, Outbound
from handlers.orders.catalog import Catalog
from handlers.payloads import Payload
from storage.models import ChannelIdentity, ConversationState, Customer, OutboxMessage
from storage.repositories import UnitOfWork

if TYPE_CHECKING:
    from handlers.router import Composition

CONSENT_PURPOSE = "order_processing"


def policy_version() -> str:
    """Derived from the policy text itself, so a changed policy gets a new version."""
    digest = hashlib.sha256(catalog("vi")["policy.full_text"].encode("utf-8")).hexdigest()
    return f"vi-{digest[:10]}"


@dataclass(frozen=True)
class ShopConfig:
    """The settings handlers need, free of any platform detail."""

    staff_channel: str = ""  # the adapter the staff chat lives on: set by the runtime
    staff_chat_id: str = STAFF
    staff_admin_ids: frozenset[str] = frozenset()
    default_language: str = DEFAULT_LANGUAGE
    draft_ttl: timedelta = timedelta(hours=24)
    carrier_name: str = "Giao Hàng Nhanh"
    shop_hours: str = "8:00–21:00"
    retention_days: int = 730  # inactive customers are erased after this; 0 disables
    mydata_delete_after: timedelta = timedelta(minutes=5)  # /mydata removes itself (shared devices)
    ticket_reannounce_after: timedelta = timedelta(hours=4)
    urgent_ticket_reannounce_after: timedelta = timedelta(hours=1)
    flood_limit: int = 20  # messages per customer …
    flood_window: timedelta = timedelta(seconds=60)  # … within this window
    inbox_keep: timedelta = timedelta(days=7)  # processed inbox rows: the dedupe window
    outbox_keep: timedelta = timedelta(days=30)  # sent rows that no edit/redaction needs
    catalog: Catalog = field(default_factory=Catalog)  # the TOML seed of the database catalog
    staff_web_url: str = ""  # the staff page's public address; empty: the page is off
    # Zalo ZNS template id per order status, for status updates outside Zalo's window.
    zns_templates: Mapping[str, str] = field(default_factory=dict)
    shipping_fee_vnd: int = 0  # flat shipping fee per order …
    free_shipping_over_vnd: int = 0  # … waived from this subtotal on (0: never waived)
    payment_bank_bin: str = ""  # NAPAS bank BIN (6 digits) for VietQR; empty: no QR
    payment_account_number: str = ""
    payment_account_name: str = ""
    # What each registered adapter can do, by its name: filled in by the runtime.
    channels: Mapping[str, ChannelCapabilities] = field(default_factory=dict)

    def capabilities(self, channel: str) -> ChannelCapabilities:
        """What `channel` can do; an undeclared channel gets the least capable defaults."""
        return self.channels.get(channel) or ChannelCapabilities()


ButtonRows = tuple[tuple[Button, ...], ...]


def reachable_identity(identities: Sequence[ChannelIdentity]) -> ChannelIdentity | None:
    """The account staff messages go to: the newest one not known to be unreachable."""
    reachable = [i for i in identities if i.unreachable_since is None] or list(identities)
    return reachable[-1] if reachable else None


def window_end(
    config: ShopConfig, customer: Customer, identity: ChannelIdentity
) -> datetime | None:
    """Until when the platform of `identity` lets the shop write to the customer (Zalo OA:
    7 days after their last message); None where there is no such limit."""
    window = config.capabilities(identity.channel).messaging_window
    return None if window is None else customer.last_seen_at + window


class AfterCommit(enum.Enum):
    """Work the runtime does once the handler's transaction has committed."""

    CHECKPOINT_WAL = "checkpoint"  # fold erased data out of the SQLite WAL (see erasure)
    CHAT_ERASED = "chat_erased"  # adapters drop what they keep outside the database (files)


def staff_message(
    config: ShopConfig,
    html_text: str,
    buttons: ButtonRows = (),
    *,
    tag: str | None = None,
    edit_of: int | None = None,
    reply_to: int | None = None,
    document: Document | None = None,
) -> Outbound:
    """A message to the staff chat; `html_text` must already be escaped."""
    return Outbound(
        config.staff_channel,
        config.staff_chat_id,
        html_text,
        buttons=buttons,
        html=True,
        tag=tag,
        edit_of=edit_of,
        reply_to=reply_to,
        document=document,
    )


async def enqueue(
    uow: UnitOfWork, message: Outbound, now: datetime, customer_id: int | None = None
) -> OutboxMessage:
    """Write `message` to the outbox (sent after the commit); returns its row, whose id is
    assigned when the transaction next flushes (rows of one flush keep their order)."""
    return await uow.outbox.add(
        message.channel,
        message.chat_id,
        message.to_json(),
        now,
        customer_id=customer_id,
        tag=message.tag,
    )


async def staff_notice(
    uow: UnitOfWork, config: ShopConfig, now: datetime, key: str, **params: object
) -> None:
    """A system notice to the staff chat where no conversation is at hand (erasure by the
    retention job, delivery failures, token trouble): catalog text, escaped, via the outbox."""
    text = html.escape(t(config.default_language, key, **params))
    await enqueue(uow, staff_message(config, text), now)


@dataclass
class Context:
    uow: UnitOfWork
    inbound: Inbound
    config: ShopConfig
    now: datetime
    app: Composition
    customer: Customer | None = None
    state: ConversationState | None = None
    sent: list[Outbound] = field(default_factory=list)
    after_commit: set[AfterCommit] = field(default_factory=set)
    # Set when a message to a customer was not attempted because the platform's messaging
    # window is closed (staff have been told to call instead).
    window_closed: bool = False
    shop_catalog: Catalog | None = None  # loaded from the database by the dispatcher

    @property
    def catalog(self) -> Catalog:
        """The shop's current catalog (staff edits apply at once; see catalog_store)."""
        return self.shop_catalog if self.shop_catalog is not None else self.config.catalog

    # ---- channel ----------------------------------------------------------------------------
    @property
    def capabilities(self) -> ChannelCapabilities:
        """What the channel this inbound came from can do."""
        return self.config.capabilities(self.inbound.channel)

    # ---- language -------------------------------------------------------------------------
    @property
    def lang(self) -> str:
        setting = self.customer.language if self.customer else None
        return pick_language(setting, self.inbound.language_hint, self.config.default_language)

    def tr(self, key: str, **params: object) -> str:
        return t(self.lang, key, **params)

    def staff_text(self, key: str, **params: object) -> str:
        """A staff-chat line (HTML-escaped, staff language), values filled in before escaping."""
        return html.escape(t(self.config.default_language, key, **params))

    def button(self, key: str, payload: Payload, **params: object) -> Button:
        return Button(self.tr(key, **params), payload.pack())

    def error_text(self, error: InvalidInput) -> str:
        return self.tr(error.key, **error.params)

    async def replace_state(self, flow: str, step: str, data: dict[str, Any]) -> ConversationState:
        """This conversation's new state (a flow of the engine, or a wish parked until
        consent), replacing the previous one; it expires after the draft TTL."""
        if self.state is not None:
            await self.uow.states.remove(self.state, flush=True)
        self.state = ConversationState(
            channel=self.inbound.channel,
            chat_id=self.inbound.chat_id,
            customer_id=self.customer.id if self.customer else None,
            flow=flow,
            step=step,
            data=data,
            expires_at=self.now + self.config.draft_ttl,
            updated_at=self.now,
        )
        await self.uow.states.save(self.state)
        return self.state

    async def show_menu(self, intro: str) -> None:
        """`intro` followed by the main menu (every feature's menu items, in order)."""
        rows = tuple((self.button(item.label_key, item.payload),) for item in self.app.menu)
        await self.reply(intro, rows)

    # ---- who ------------------------------------------------------------------------------
    @property
    def is_staff(self) -> bool:
        """Staff = members of the staff chat (they write from it) plus the configured admins."""
        return self.inbound.from_staff_chat or self.is_admin

    @property
    def is_admin(self) -> bool:
        return self.inbound.user_id in self.config.staff_admin_ids

    async def refuse_unless_admin(self) -> bool:
        """For admin-only actions (bulk personal data, locks): refuse anyone else — also
        when the command reaches us from outside the staff chat — and audit the attempt."""
        if self.is_admin:
            return False
        await self.audit("refused", detail=f"admin-only:/{self.inbound.command}")
        await self.to_staff(self.staff_text("staff.admin_only"))
        return True

    @property
    def actor(self) -> str:
        if self.inbound.from_staff_chat or self.customer is None:
            return f"staff:{self.inbound.channel}:{self.inbound.user_id}"
        return f"customer:{self.customer.id}"

    async def audit(
        self, action: str, subject: str | None = None, detail: str | None = None
    ) -> None:
        await self.uow.audit.add(self.now, self.actor, action, subject, detail)

    # ---- sending (all through the outbox, committed with the state change) ----------------
    async def send(self, message: Outbound, customer_id: int | None = None) -> OutboxMessage:
        row = await enqueue(self.uow, message, self.now, customer_id)
        self.sent.append(message)
        return row

    async def reply(
        self,
        text: str,
        buttons: ButtonRows = (),
        *,
        ask_contact: bool = False,
        remove_keyboard: bool = False,
        document: Document | None = None,
        delete_after_seconds: int | None = None,
        photo: str | None = None,
    ) -> OutboxMessage:
        """Answer in the conversation the inbound came from."""
        return await self.send(
            Outbound(
                channel=self.inbound.channel,
                chat_id=self.inbound.chat_id,
                text=text,
                buttons=buttons,
                ask_contact=ask_contact,
                contact_label=self.tr("flow.btn.share_contact") if ask_contact else "",
                remove_keyboard=remove_keyboard,
                document=document,
                photo=photo,
                delete_after_seconds=delete_after_seconds,
            ),
            customer_id=self.customer.id if self.customer else None,
        )

    async def to_staff(
        self,
        html: str,
        buttons: ButtonRows = (),
        *,
        tag: str | None = None,
        edit_of: int | None = None,
        reply_to: int | None = None,
        document: Document | None = None,
        customer_id: int | None = None,
    ) -> OutboxMessage:
        """Post to the staff group chat; `html` must already be escaped."""
        return await self.send(
            staff_message(
                self.config,
                html,
                buttons,
                tag=tag,
                edit_of=edit_of,
                reply_to=reply_to,
                document=document,
            ),
            customer_id=customer_id,
        )

    async def to_customer(
        self,
        customer: Customer,
        key: str,
        params: dict[str, object] | None = None,
        buttons: ButtonRows = (),
        document: Document | None = None,
    ) -> OutboxMessage | None:
        """Message a customer (staff actions, payments) in their own channel and language.
        Not attempted (None) when they have no account, or when their platform's messaging
        window has closed: then staff are told since when, and the number to call."""
        identity = reachable_identity(await self.uow.customers.identities_of(customer.id))
        if identity is None:
            return None
        end = window_end(self.config, customer, identity)
        if end is not None and self.now >= end:
            await self.window_closed_notice(customer, end)
            return None
        lang = pick_language(customer.language, None, self.config.default_language)
        return await self.send(
            Outbound(
                channel=identity.channel,
                chat_id=identity.chat_id,
                text=t(lang, key, **(params or {})),
                buttons=buttons,
                document=document,
            ),
            customer_id=customer.id,
        )

    async def window_closed_notice(self, customer: Customer, since: datetime) -> None:
        """Tell staff (once per action) that the customer cannot be messaged any more."""
        if self.window_closed:
            return
        self.window_closed = True
        phone = customer.phone or await self.uow.orders.latest_phone(customer.id)
        key, values = window_notice(customer, since, phone)
        await self.to_staff(self.staff_text(key, **values))


def window_notice(
    customer: Customer, since: datetime, phone: str | None
) -> tuple[str, dict[str, object]]:
    """The catalog key and values of the "cannot message this customer" notice."""
    from handlers.orders.service import local_time  # orders imports this module
    from handlers.orders.validators import format_phone_display

    values: dict[str, object] = {"customer": customer.id, "since": local_time(since)}
    if not phone:
        return "staff.window_closed_no_phone", values
    return "staff.window_closed", {**values, "phone": format_phone_display(phone)}

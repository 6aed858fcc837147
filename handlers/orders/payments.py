"""Paying for an order: the VietQR sent after confirmation, and the payment status.

    unpaid ──(staff tap "Đã nhận tiền", or a matching bank notification)──▶ paid
    paid ──(staff tap "Đã hoàn tiền")──▶ refunded

- After confirmation (or when staff set the final price of custom work with
  `/price CODE amount`), the customer receives a VietQR PNG: bank BIN, account, the amount
  and the order code as transfer note (see vietqr.py). Without payment settings: a polite
  note that staff will send the payment details.
- A bank notification (SePay, see bot/payments.py) becomes a `BankTransfer`; it marks the
  order paid only when its note carries the order code and the amount equals the total.
  A different amount is shown to staff and never accepted automatically; a notification
  delivered twice is applied once (unique provider transaction id).
- Every payment event is a `PaymentEvent` row (ids and amounts only) and an audit entry;
  customers see them in /mydata and the export; erasure removes the customer link.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from handlers.buttons import PaymentButton
from handlers.context import Context, ShopConfig
from handlers.i18n import t
from handlers.messages import Document, Inbound
from handlers.orders import codes
from handlers.orders.catalog import format_vnd
from handlers.orders.service import CANCELLED, OPEN_STATUSES, refresh_alert
from handlers.orders.staff import live_order
from handlers.orders.vietqr import Transfer, VietQRError, transfer_note
from handlers.router import Composition, Router
from storage.catalog import PAID, UNPAID, PaymentEvent
from storage.models import Order
from storage.repositories import UnitOfWork

log = logging.getLogger(__name__)

router = Router("payments")

# NAPAS BINs of the banks most shops use, to name the bank under the QR (else the BIN).
BANK_NAMES = {
    "970436": "Vietcombank",
    "970415": "VietinBank",
    "970418": "BIDV",
    "970405": "Agribank",
    "970422": "MB Bank",
    "970407": "Techcombank",
    "970416": "ACB",
    "970432": "VPBank",
    "970423": "TPBank",
    "970403": "Sacombank",
    "970441": "VIB",
    "970443": "SHB",
}


def bank_label(bank_bin: str) -> str:
    name = BANK_NAMES.get(bank_bin)
    return f"{name} ({bank_bin})" if name else bank_bin


async def _record(
    uow: UnitOfWork,
    order: Order | None,
    kind: str,
    amount: int | None,
    provider: str,
    actor: str,
    now: datetime,
    external_id: str | None = None,
) -> bool:
    return await uow.payments.add(
        PaymentEvent(
            order_id=order.id if order else None,
            customer_id=order.customer_id if order else None,
            kind=kind,
            amount_vnd=amount,
            provider=provider,
            external_id=external_id,
            actor=actor,
            at=now,
        )
    )


async def request_payment(ctx: Context, order: Order) -> None:
    """Send the customer what they need to pay: the VietQR image, or (without payment
    settings) word that staff will send the details. Custom work waits for its price."""
    if order.total_vnd is None or order.customer_id is None:
        return
    customer = await ctx.uow.customers.get(order.customer_id)
    if customer is None:
        return
    config = ctx.config
    params: dict[str, object] = {"code": order.code, "amount": format_vnd(order.total_vnd)}
    png: bytes | None = None
    if config.payment_bank_bin and config.payment_account_number:
        note = transfer_note(order.code)
        transfer = Transfer(
            config.payment_bank_bin, config.payment_account_number, order.total_vnd, note
        )
        try:
            png = transfer.png()
        except VietQRError as error:  # settings are validated at start; an odd amount is not
            log.warning("no VietQR for order %s: %s", order.id, error)
        params.update(
            bank=bank_label(config.payment_bank_bin),
            account=config.payment_account_number,
            holder=config.payment_account_name or "—",
            note=note,
        )
    if png is None:
        await ctx.to_customer(customer, "catalog.payment.no_qr", params)
        return
    await ctx.to_customer(
        customer,
        "catalog.payment.qr",
        params,
        document=Document(f"{order.code}-VietQR.png", png, "image/png"),
    )
    await _record(ctx.uow, order, "qr_sent", order.total_vnd, "bot", ctx.actor, ctx.now)
    await ctx.audit("payment_qr_sent", subject=order.code, detail=f"amount={order.total_vnd}")


async def set_payment(
    ctx: Context,
    order: Order,
    status: Literal["paid", "refunded"],
    provider: str,
    actor: str,
    amount: int | None = None,
    external_id: str | None = None,
) -> bool:
    """Change the payment status, record the event, refresh the staff alert, tell the
    customer. False when the event was recorded before (a repeated notification)."""
    if not await _record(
        ctx.uow, order, status, amount, provider, actor, ctx.now, external_id=external_id
    ):
        return False
    order.payment_status = status
    order.updated_at = ctx.now
    if status == PAID:
        order.paid_at = ctx.now
    await ctx.uow.audit.add(ctx.now, actor, f"payment_{status}", order.code, f"via={provider}")
    await refresh_alert(ctx, order)
    if order.customer_id is not None:
        customer = await ctx.uow.customers.get(order.customer_id)
        if customer is not None:
            amount_text = format_vnd(amount if amount is not None else order.total_vnd or 0)
            await ctx.to_customer(
                customer,
                f"catalog.payment.notify.{status}",
                {"code": order.code, "amount": amount_text},
            )
    return True


@router.payload(PaymentButton, staff=True, refused_key="order.staff.not_found")
async def payment_button(ctx: Context, button: PaymentButton) -> None:
    """One tap on the order alert: "Đã nhận tiền" (unpaid → paid) or "Đã hoàn tiền"."""
    order = await live_order(ctx, button.order_id)
    if order is None:
        return
    required = UNPAID if button.status == "paid" else PAID
    if order.payment_status != required or order.total_vnd is None:
        await ctx.to_staff(
            ctx.staff_text(
                "catalog.staff.payment_unchanged",
                code=order.code,
                status=t(ctx.config.default_language, f"catalog.payment.{order.payment_status}"),
            )
        )
        return
    await set_payment(ctx, order, button.status, "staff", ctx.actor, amount=order.total_vnd)


_AMOUNT = re.compile(r"^\d{1,3}(?:[.,\s]?\d{3})*$")


def parse_amount(text: str) -> int | None:
    """ "2500000", "2.500.000", "2,500,000" → 2500000; anything else → None."""
    text = text.strip().removesuffix("đ").removesuffix("₫").removesuffix("d").strip()
    if not _AMOUNT.match(text):
        return None
    amount = int(re.sub(r"\D", "", text))
    return amount if 0 < amount < 10**12 else None


@router.command("price", staff=True, help_key="help.staff.price")
async def price_command(ctx: Context) -> None:
    """`/price CODE amount`: the final price of an order (custom work, or a changed deal);
    the customer receives the QR for it."""
    code_text, _, amount_text = ctx.inbound.args.strip().partition(" ")
    code = codes.normalize_code(code_text)
    amount = parse_amount(amount_text)
    if code is None or amount is None:
        await ctx.to_staff(ctx.staff_text("catalog.staff.price_usage"))
        return
    order = await ctx.uow.orders.by_code(code)
    if order is None or order.erased_at is not None:
        await ctx.to_staff(ctx.staff_text("order.staff.not_found"))
        return
    if order.status not in OPEN_STATUSES or order.payment_status != UNPAID:
        await ctx.to_staff(ctx.staff_text("catalog.staff.price_closed", code=order.code))
        return
    if order.price_vnd is None:  # custom work: the price is for the whole order
        order.price_vnd, order.quantity = amount, 1
    order.shipping_fee_vnd = 0
    order.total_vnd = amount
    order.updated_at = ctx.now
    await ctx.audit("order_priced", subject=order.code, detail=f"amount={amount}")
    await refresh_alert(ctx, order)
    await ctx.to_staff(
        ctx.staff_text("catalog.staff.priced", code=order.code, amount=format_vnd(amount))
    )
    await request_payment(ctx, order)


# ---- bank notifications --------------------------------------------------------------------


@dataclass(frozen=True)
class BankTransfer:
    """One bank transaction as a notification service reports it (provider-neutral)."""

    provider: str  # "sepay"
    external_id: str  # the provider's transaction id: the deduplication key
    amount_vnd: int
    note: str  # the transfer note; read for the order code only, never stored
    incoming: bool = True


Outcome = Literal["paid", "mismatch", "unmatched", "duplicate", "ignored"]


async def apply_bank_transfer(
    uow: UnitOfWork, config: ShopConfig, app: Composition, transfer: BankTransfer, now: datetime
) -> Outcome:
    """Apply one bank notification in the caller's transaction (the caller commits)."""
    if not transfer.incoming or transfer.amount_vnd <= 0:
        return "ignored"
    provider, external_id = transfer.provider, transfer.external_id
    if await uow.payments.seen(provider, external_id):
        return "duplicate"
    actor = f"bank:{provider}"
    inbound = Inbound(channel="bank", chat_id="", user_id=provider, dedupe_key=external_id)
    ctx = Context(uow=uow, inbound=inbound, config=config, now=now, app=app)
    code = codes.find_code(transfer.note)
    order = await uow.orders.by_code(code) if code else None
    amount = format_vnd(transfer.amount_vnd)
    if order is None or order.erased_at is not None or order.total_vnd is None:
        if not await _record(
            uow, None, "unmatched", transfer.amount_vnd, provider, actor, now, external_id
        ):
            return "duplicate"
        await uow.audit.add(now, actor, "payment_unmatched", code, f"amount={transfer.amount_vnd}")
        await ctx.to_staff(ctx.staff_text("catalog.staff.transfer_unmatched", amount=amount))
        return "unmatched"
    if order.payment_status != UNPAID or order.status == CANCELLED:
        kind: Outcome = "unmatched"
        key = "catalog.staff.transfer_not_due"
    elif transfer.amount_vnd != order.total_vnd:
        kind, key = "mismatch", "catalog.staff.amount_mismatch"
    else:
        if not await set_payment(
            ctx, order, "paid", provider, actor, amount=transfer.amount_vnd, external_id=external_id
        ):
            return "duplicate"
        await ctx.to_staff(
            ctx.staff_text("catalog.staff.paid_by_bank", code=order.code, amount=amount)
        )
        return "paid"
    if not await _record(uow, order, kind, transfer.amount_vnd, provider, actor, now, external_id):
        return "duplicate"
    await uow.audit.add(now, actor, f"payment_{kind}", order.code, f"amount={transfer.amount_vnd}")
    await ctx.to_staff(
        ctx.staff_text(
            key,
            code=order.code,
            amount=amount,
            expected=format_vnd(order.total_vnd),
            status=t(ctx.config.default_language, f"catalog.payment.{order.payment_status}"),
        )
    )
    return kind


# ---- data rights ---------------------------------------------------------------------------


@router.eraser
async def forget_payments(uow: UnitOfWork, customer_id: int, now: datetime) -> list[str]:
    """Payment events stay as anonymous bookkeeping (order id, amount), without the customer."""
    await uow.payments.detach_customer(customer_id)
    return []

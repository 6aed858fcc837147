"""Everything stored about one customer, as one JSON-ready dict (schema in docs/export-schema.md
and docs/export.schema.json). `/mydata` renders the same dict, so what customers see and what
they download can never differ."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from handlers.context import CONSENT_PURPOSE
from handlers.router import ExportSection
from storage.models import Customer
from storage.repositories import UnitOfWork
from storage.tags import Tag

SCHEMA_VERSION = 1


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


async def collect(
    uow: UnitOfWork,
    sections: Mapping[str, ExportSection],
    customer: Customer,
    now: datetime,
) -> dict[str, Any]:
    """The whole export; `sections` are the other features' parts (e.g. "tickets")."""
    identities = await uow.customers.identities_of(customer.id)
    consents = await uow.consents.of(customer.id)
    orders = await uow.orders.of_customer(customer.id)
    relayed = await uow.relayed.of_customer(customer.id)
    disclosures = await uow.disclosures.of_customer(customer.id)
    payments_by_order: dict[int | None, list[dict[str, Any]]] = {}
    for event in await uow.payments.of_customer(customer.id):
        payments_by_order.setdefault(event.order_id, []).append(
            {"kind": event.kind, "amount_vnd": event.amount_vnd, "at": iso(event.at)}
        )
    messages_by_thread: dict[str, list[dict[str, Any]]] = {}
    for message in relayed:
        messages_by_thread.setdefault(message.thread, []).append(
            {"direction": message.direction, "text": message.text, "at": iso(message.at)}
        )
    codes_by_order_id = {order.id: order.code for order in orders}
    data: dict[str, Any] = {
        "schema": "vietartview.customer-data",
        "version": SCHEMA_VERSION,
        "generated_at": iso(now),
        "profile": {
            "customer_id": customer.id,
            "full_name": customer.full_name,
            "phone": customer.phone,
            "address": customer.address,
            "email": customer.email,
            "language": customer.language,
            "created_at": iso(customer.created_at),
            "last_seen_at": iso(customer.last_seen_at),
            "locked": customer.locked_at is not None,
        },
        "channel_identities": [
            {
                "channel": i.channel,
                "platform_user_id": i.platform_user_id,
                "since": iso(i.created_at),
            }
            for i in identities
        ],
        "consents": [
            {
                "purpose": c.purpose,
                "policy_version": c.policy_version,
                "granted": c.granted,
                "decided_at": iso(c.decided_at),
                "withdrawn_at": iso(c.withdrawn_at),
            }
            for c in consents
            if c.purpose == CONSENT_PURPOSE
        ],
        "orders": [
            {
                "code": o.code,
                "status": o.status,
                "created_at": iso(o.created_at),
                "full_name": o.full_name,
                "phone": o.phone,
                "address": o.address,
                "email": o.email,
                "request": o.request_text,
                "product_code": o.product_code,
                "quantity": o.quantity,
                "unit_price_vnd": o.price_vnd,
                "shipping_fee_vnd": o.shipping_fee_vnd,
                "total_vnd": o.total_vnd,
                "payment_status": o.payment_status,
                "payments": payments_by_order.get(o.id, []),
                "photos": list(o.photos or []),
                "status_history": [{"status": h.status, "at": iso(h.at)} for h in o.history],
                "messages": messages_by_thread.pop(str(Tag("order", o.id)), []),
            }
            for o in orders
        ],
        "other_messages": [
            {"thread": thread, **message}
            for thread, messages in messages_by_thread.items()
            for message in messages
        ],
        "disclosures": [
            {
                "recipient_kind": d.recipient_kind,
                "recipient": d.recipient_name,
                "fields": list(d.fields),
                "reason": d.reason,
                "order_code": codes_by_order_id.get(d.order_id) if d.order_id else None,
                "at": iso(d.at),
            }
            for d in disclosures
        ],
    }
    for name, collector in sections.items():
        data[name] = await collector(uow, customer.id)
    return data


def to_json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, indent=2).encode("utf-8")

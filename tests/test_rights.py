"""Customer data rights (issue 5): `/mydata` (and its self-deletion), editing each field
through the order validators, the JSON export validated against `docs/export.schema.json`,
`/delete` with staff-chat redaction, consent withdrawal, legal disclosures by staff admins,
retention (in the running bot and `python -m bot purge`), and locked accounts.

The raw-bytes check of erasure (database file and WAL) is in `test_erasure.py`.
"""

from __future__ import annotations

import html
import json
import re
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.channels.telegram import TelegramAdapter
from bot.channels.zalo_bot import ZaloBotAdapter
from bot.channels.zalo_oa import ZaloOAAdapter
from handlers.context import policy_version
from handlers.messages import STAFF, ChannelCapabilities, Outbound
from storage.db import create_engine, migrate_to_head, session_factory
from storage.models import (
    AuditEntry,
    ChannelIdentity,
    Customer,
    Disclosure,
    OutboxMessage,
)
from storage.support import Ticket
from tests.helpers import (
    DEFAULT_ANSWERS,
    PROJECT_DIR,
    FakeClock,
    Harness,
    RecordingAdapter,
    first_line,
    flat_buttons,
    joined,
    run_cli,
    shop_config,
    texts,
    to_chat,
    tr,
)

SCHEMA_PATH = PROJECT_DIR / "docs" / "export.schema.json"
DEL_CODE = re.compile(r"\bDEL-[2-9A-HJ-KM-NP-Z]{5}\b")
LEGAL_BASIS = "Công an quận Hoàn Kiếm, CV số 123/2026"
STAFF_MEMBER = "777"  # writes in the staff chat but is not a staff admin


# ---- a minimal JSON Schema (draft 2020-12) validator ----------------------------------------
# `jsonschema` is not a dependency. This covers exactly the keywords docs/export.schema.json
# uses, and refuses any other keyword, so the schema cannot silently outgrow the check.

_ANNOTATIONS = frozenset({"$schema", "$id", "title", "description", "$defs"})
_KEYWORDS = frozenset(
    {
        "$ref",
        "type",
        "const",
        "enum",
        "format",
        "minimum",
        "required",
        "properties",
        "additionalProperties",
        "items",
    }
)
_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "array": (list,),
    "object": (dict,),
}


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False
    return isinstance(value, _TYPES[name])


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 and true differ."""
    return type(a) is type(b) and a == b


def _is_datetime(value: str) -> bool:
    """RFC 3339 / ISO-8601 date-time with an offset ("2026-01-15T03:00:00+00:00")."""
    if "T" not in value.upper():
        return False
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return parsed.tzinfo is not None


def schema_errors(
    instance: Any, schema: dict[str, Any], root: dict[str, Any] | None = None, path: str = "$"
) -> list[str]:
    root = root if root is not None else schema
    unknown = set(schema) - _KEYWORDS - _ANNOTATIONS
    assert not unknown, f"the test validator does not support {sorted(unknown)} at {path}"
    errors: list[str] = []
    if "$ref" in schema:
        ref = schema["$ref"]
        assert ref.startswith("#/$defs/"), f"only local $defs references: {ref}"
        errors += schema_errors(instance, root["$defs"][ref.removeprefix("#/$defs/")], root, path)
    if "type" in schema:
        names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(instance, name) for name in names):
            return [*errors, f"{path}: expected {'/'.join(names)}, got {instance!r:.60}"]
    if "const" in schema and not _same(instance, schema["const"]):
        errors.append(f"{path}: expected {schema['const']!r}, got {instance!r:.60}")
    if "enum" in schema and not any(_same(instance, v) for v in schema["enum"]):
        errors.append(f"{path}: {instance!r:.60} is not one of {schema['enum']}")
    is_text = isinstance(instance, str)
    if schema.get("format") == "date-time" and is_text and not _is_datetime(instance):
        errors.append(f"{path}: {instance!r} is not an ISO-8601 date-time with an offset")
    if "minimum" in schema and _is_type(instance, "number") and instance < schema["minimum"]:
        errors.append(f"{path}: {instance} < {schema['minimum']}")
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            if key not in instance:
                errors.append(f"{path}: missing {key!r}")
        properties = schema.get("properties", {})
        for key, value in instance.items():
            if key in properties:
                errors += schema_errors(value, properties[key], root, f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: {key!r} is not described by the schema")
    if isinstance(instance, list) and "items" in schema:
        for index, item in enumerate(instance):
            errors += schema_errors(item, schema["items"], root, f"{path}[{index}]")
    return errors


def load_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return schema


def assert_valid_export(document: dict[str, Any]) -> None:
    schema = load_schema()
    assert schema_errors(document, schema) == []
    try:  # also the reference implementation, when a developer happens to have it
        import jsonschema
    except ImportError:
        return
    jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    ).validate(document)


# ---- local helpers ----------------------------------------------------------------------------


def document_json(message: Outbound) -> dict[str, Any]:
    assert message.document is not None, message.text
    assert message.document.mime_type == "application/json"
    assert message.document.filename.endswith(".json")
    data: dict[str, Any] = json.loads(message.document.content.decode("utf-8"))
    return data


async def export(harness: Harness, user_id: str = "1") -> dict[str, Any]:
    replies = await harness.press(user_id, "rights:export")
    (message,) = [m for m in replies if m.document is not None]
    assert message.chat_id == user_id
    return document_json(message)


async def lock(harness: Harness, user_id: str) -> None:
    customer = await harness.customer(user_id)
    assert customer is not None
    async with harness.sessions() as session:
        await session.execute(
            update(Customer)
            .where(Customer.id == customer.id)
            .values(locked_at=harness.clock(), lock_reason="tampering")
        )
        await session.commit()


async def rich_customer(harness: Harness) -> str:
    """Customer 1 with a shipped order (carrier disclosure) and messages both ways."""
    await harness.consent("1")
    await harness.say("1", "/lang vi")
    code = await harness.place_order(
        "1",
        full_name="Đặng Thùy Trâm",
        phone="0987 654 321",
        address="48 Tràng Tiền, Hoàn Kiếm, Hà Nội",
        email="tram.dang@example.com",
        request="SD-001, khung gỗ màu nâu",
    )
    order = await harness.order(code)
    await harness.say("1", "Em ở nhà buổi chiều ạ")
    await harness.staff(f"{code} Dạ shop giao chiều thứ bảy ạ")
    await harness.staff(payload=f"os:{order.id}:claimed")
    await harness.hand_to_carrier(order.id)
    return code


# ---- /mydata ----------------------------------------------------------------------------------


async def test_mydata_shows_everything_stored_and_removes_itself_after_five_minutes(
    harness: Harness, adapter: RecordingAdapter, clock: FakeClock
) -> None:
    code = await rich_customer(harness)

    mark = harness.mark()
    (message,) = await harness.say("1", "/mydata")
    text = message.text
    assert text.startswith(tr("rights.mydata.title"))
    profile = [
        f"• {tr('order.field.full_name')}: Đặng Thùy Trâm",
        f"• {tr('order.field.phone')}: 0987 654 321",
        f"• {tr('order.field.address')}: 48 Tràng Tiền, Hoàn Kiếm, Hà Nội",
        f"• {tr('order.field.email')}: tram.dang@example.com",
        f"• {tr('rights.field.language')}: {tr('lang.vi')}",
    ]
    for line in profile:
        assert line in text
    # No technical text: the policy in words (its hash only in the export), the carrier's
    # disclosure reason and the channel by name, not "delivery" or "console (1)".
    assert tr("rights.policy.current") in text and tr("rights.section.consents") in text
    assert policy_version() not in text
    assert f"• {code} — {tr('order.status.shipping')} — " in text
    assert "→ Em ở nhà buổi chiều ạ" in text  # from the customer
    assert "← Dạ shop giao chiều thứ bảy ạ" in text  # from the shop
    assert "Giao Hàng Nhanh" in text  # the carrier, from the shop's settings
    assert tr("rights.recipient.carrier") in text
    assert f"{tr('rights.reason.delivery')}" in text and "delivery" not in text
    assert tr("rights.section.identities") in text
    assert f"• {tr('rights.channel.console')} — từ " in text and "console (1)" not in text
    for section in ("profile", "consents", "orders", "disclosures", "identities"):
        assert tr(f"rights.section.{section}") in text
    # Shared devices: the message says it will disappear, and it does.
    assert message.delete_after_seconds == 300
    assert text.endswith(tr("rights.mydata.self_delete", minutes=5))
    assert [b.payload for b in flat_buttons(message)] == [
        "rights:edit",
        "rights:export",
        "rights:delete",
        "rights:withdraw",
    ]
    (sent,) = [s for s in adapter.sent[mark:] if s.message is message]

    # (Not closer than 5 s before it is due: `idle()` would keep polling in real time.)
    clock.advance(seconds=290)
    await harness.deliver()
    assert adapter.deleted == []
    clock.advance(seconds=11)
    await harness.deliver()
    assert adapter.deleted == [("1", sent.platform_message_id)]
    clock.advance(hours=1)
    await harness.deliver()
    assert len(adapter.deleted) == 1  # once
    assert [a.action for a in await harness.rows(AuditEntry)].count("mydata_viewed") == 1


async def test_mydata_in_english(harness: Harness) -> None:
    await harness.consent("1")
    await harness.say("1", "/lang en")
    await harness.place_order("1")
    (message,) = await harness.say("1", "/mydata")
    assert message.text.startswith(tr("rights.mydata.title", "en"))
    assert f"{tr('rights.field.language', 'en')}: {tr('lang.en', 'en')}" in message.text
    assert message.text.endswith(tr("rights.mydata.self_delete", "en", minutes=5))


@pytest.mark.parametrize(
    ("channel", "capabilities", "self_deleting"),
    [
        ("telegram", TelegramAdapter.capabilities, True),
        ("zalo", ZaloOAAdapter.capabilities, False),
        ("zalobot", ZaloBotAdapter.capabilities, False),
        # What counts is the declared capability, not the channel's name.
        ("telegram", replace(TelegramAdapter.capabilities, can_delete_messages=False), False),
    ],
)
async def test_mydata_self_deletes_where_the_platform_can(
    harness: Harness,
    clock: FakeClock,
    channel: str,
    capabilities: ChannelCapabilities,
    self_deleting: bool,
) -> None:
    platform = RecordingAdapter(channel, capabilities)
    harness.runtime.add_adapter(platform)
    await harness.send(harness.inbound("5", "/mydata", channel=channel))
    (message,) = platform.messages
    assert message.text.startswith(tr("rights.mydata.title"))
    notice = tr("rights.mydata.self_delete", minutes=5)
    assert (notice in message.text) is self_deleting
    assert message.delete_after_seconds == (300 if self_deleting else None)
    clock.advance(minutes=6)
    await harness.deliver()
    assert platform.deleted == (
        [("5", platform.sent[0].platform_message_id)] if self_deleting else []
    )


async def test_mydata_of_a_new_customer_shows_empty_sections(harness: Harness) -> None:
    (message,) = await harness.say("1", "/mydata")
    assert f"• {tr('order.field.full_name')}: —" in message.text
    assert message.text.count(f"• {tr('rights.none')}") >= 3  # consents, orders, disclosures


# ---- edit ---------------------------------------------------------------------------------------

EDITS = [
    ("full_name", "Mai 2", "validation.name.digits", "Trần Thị Mai", "Trần Thị Mai"),
    ("phone", "gọi em", "validation.phone.letters", "0903.111.222", "+84903111222"),
    (
        "address",
        "Hanoi",
        "validation.address.not_address",
        "99 Kim Mã, Ba Đình",
        "99 Kim Mã, Ba Đình",
    ),
    ("email", "mai@", "validation.email.invalid", "Mai.Tran@Example.ORG", "Mai.Tran@example.org"),
]


@pytest.mark.parametrize(
    ("field", "bad", "reason", "good", "stored"), EDITS, ids=[e[0] for e in EDITS]
)
async def test_editing_a_field_validates_and_updates_profile_and_unshipped_orders(
    harness: Harness, field: str, bad: str, reason: str, good: str, stored: str
) -> None:
    shipped = await harness.place_order("1", email="old@example.com")
    await harness.hand_to_carrier((await harness.order(shipped)).id)
    done = await harness.place_order("1", email="old@example.com")
    done_id = (await harness.order(done)).id
    await harness.hand_to_carrier(done_id)
    await harness.staff(payload=f"os:{done_id}:done")
    open_code = await harness.place_order("1", email="old@example.com")
    before = {o.code: getattr(o, field) for o in await harness.orders()}

    menu = await harness.press("1", "rights:edit")
    assert texts(menu) == [tr("rights.edit.choose")]
    assert f"rights:edit:{field}" in [b.payload for b in flat_buttons(menu[0])]

    replies = await harness.press("1", f"rights:edit:{field}")
    assert texts(replies)[0].startswith(tr(f"rights.edit.ask.{field}"))

    replies = await harness.say("1", bad)
    assert replies[0].text.startswith(tr(reason))
    assert first_line(f"rights.edit.ask.{field}") in replies[0].text  # asked again
    state = await harness.state("1")
    assert state is not None and (state.flow, state.step) == (f"edit_{field}", field)
    assert getattr(await harness.customer("1"), field) == before[open_code]

    replies = await harness.say("1", good)
    assert tr("rights.edit.done", field=tr(f"order.field.{field}"), orders=1) in texts(replies)
    assert await harness.state("1") is None
    assert getattr(await harness.customer("1"), field) == stored
    after = {o.code: getattr(o, field) for o in await harness.orders()}
    assert after == {**before, open_code: stored}  # not the shipped one, not the done one

    (entry,) = [a for a in await harness.rows(AuditEntry) if a.action == "profile_field_changed"]
    assert entry.detail is not None and f"field={field}" in entry.detail
    for row in await harness.rows(AuditEntry):
        row_text = f"{row.actor} {row.action} {row.subject} {row.detail}"
        assert good not in row_text and stored not in row_text


async def test_the_email_can_be_removed_by_skipping(harness: Harness) -> None:
    code = await harness.place_order("1", email="lan@example.com")
    await harness.press("1", "rights:edit:email")
    replies = await harness.press("1", "f:skip")
    assert tr("rights.edit.done", field=tr("order.field.email"), orders=1) in texts(replies)
    assert (await harness.customer("1")).email is None  # type: ignore[union-attr]
    assert (await harness.order(code)).email is None


async def test_a_phone_edit_accepts_a_shared_contact(harness: Harness) -> None:
    await harness.place_order("1")
    replies = await harness.press("1", "rights:edit:phone")
    assert replies[0].ask_contact
    await harness.contact("1", "84987654321")
    assert (await harness.customer("1")).phone == "+84987654321"  # type: ignore[union-attr]


# ---- export ----------------------------------------------------------------------------------


async def test_the_export_is_json_that_matches_the_documented_schema(
    harness: Harness, clock: FakeClock
) -> None:
    code = await rich_customer(harness)
    await harness.say("1", "/mydata")

    data = await export(harness)

    assert_valid_export(data)
    assert (data["schema"], data["version"]) == ("vietartview.customer-data", 1)
    assert datetime.fromisoformat(data["generated_at"]) == clock.now
    assert data["profile"]["full_name"] == "Đặng Thùy Trâm"
    assert data["profile"]["phone"] == "+84987654321"
    assert data["profile"]["email"] == "tram.dang@example.com"
    assert data["profile"]["language"] == "vi" and data["profile"]["locked"] is False
    (consent,) = data["consents"]
    assert consent["granted"] is True and consent["policy_version"] == policy_version()
    (order,) = data["orders"]
    assert (order["code"], order["status"], order["product_code"]) == (code, "shipping", "SD-001")
    assert order["request"] == "SD-001, khung gỗ màu nâu"
    assert [h["status"] for h in order["status_history"]] == ["new", "claimed", "shipping"]
    assert [(m["direction"], m["text"]) for m in order["messages"]] == [
        ("in", "Em ở nhà buổi chiều ạ"),
        ("out", "Dạ shop giao chiều thứ bảy ạ"),
    ]
    (disclosure,) = data["disclosures"]
    assert disclosure["recipient_kind"] == "carrier" and disclosure["order_code"] == code
    assert disclosure["fields"] == ["code", "full_name", "phone", "address"]
    assert data["channel_identities"] == [
        {"channel": "console", "platform_user_id": "1", "since": data["profile"]["created_at"]}
    ]
    assert [a.action for a in await harness.rows(AuditEntry)][-1] == "data_exported"


async def test_the_export_file_is_utf8_with_vietnamese_written_as_is(harness: Harness) -> None:
    await harness.place_order("1", full_name="Đặng Thùy Trâm")
    (message,) = [m for m in await harness.say("1", "/export") if m.document]
    assert message.document is not None
    assert "Đặng Thùy Trâm".encode() in message.document.content
    assert message.text == tr("rights.export.ready")
    assert_valid_export(document_json(message))


async def test_the_export_of_a_customer_without_data_matches_the_schema(harness: Harness) -> None:
    await harness.say("1", "/start")
    await harness.press("1", "consent:no")
    data = await export(harness)
    assert_valid_export(data)
    assert data["orders"] == [] and data["consents"][0]["granted"] is False


def test_the_schema_check_catches_a_wrong_document() -> None:
    schema = load_schema()
    good: dict[str, Any] = {
        "schema": "vietartview.customer-data",
        "version": 1,
        "generated_at": "2026-01-15T03:00:00+00:00",
        "profile": {
            "customer_id": 1,
            "full_name": None,
            "phone": None,
            "address": None,
            "email": None,
            "language": None,
            "created_at": "2026-01-15T03:00:00+00:00",
            "last_seen_at": "2026-01-15T03:00:00+00:00",
            "locked": False,
        },
        "channel_identities": [],
        "consents": [],
        "orders": [],
        "other_messages": [],
        "disclosures": [],
    }
    assert schema_errors(good, schema) == []
    bad = json.loads(json.dumps(good))
    bad["version"] = True
    bad["generated_at"] = "15/01/2026 10:00"
    del bad["profile"]["phone"]
    bad["profile"]["language"] = "fr"
    bad["orders"] = [{"code": "VAV-22222", "status": "paid"}]
    bad["surprise"] = []
    errors = "\n".join(schema_errors(bad, schema))
    for expected in (
        "$.version",
        "$.generated_at",
        "$.profile: missing 'phone'",
        "$.profile.language",
        "$.orders[0].status",
        "$.orders[0]: missing 'created_at'",
        "'surprise' is not described",
    ):
        assert expected in errors, errors


def test_the_schema_and_its_description_cover_the_same_fields() -> None:
    schema = load_schema()
    prose = (PROJECT_DIR / "docs" / "export-schema.md").read_text(encoding="utf-8")
    names: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.get("properties", {}).items():
                names.add(key)
                walk(value)
            for value in node.values():
                if isinstance(value, dict | list):
                    walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    missing = sorted(name for name in names if f"`{name}" not in prose)
    assert missing == []


# ---- /delete -----------------------------------------------------------------------------------


async def test_delete_explains_lists_open_orders_and_keep_changes_nothing(
    harness: Harness,
) -> None:
    open_code = await harness.place_order("1")
    done_code = await harness.place_order("1")
    done_id = (await harness.order(done_code)).id
    await harness.hand_to_carrier(done_id)
    await harness.staff(payload=f"os:{done_id}:done")

    (question,) = await harness.say("1", "/delete")
    assert question.text.startswith(tr("rights.delete.explain"))
    assert question.text.endswith(tr("rights.delete.open_orders", codes=open_code))
    assert [b.label for b in flat_buttons(question)] == [
        tr("rights.btn.delete_confirm"),
        tr("rights.btn.keep"),
    ]

    keep = harness.payload_of("1", "rights.btn.keep")  # "Giữ lại"
    replies = await harness.press("1", keep)
    assert texts(replies) == [tr("rights.delete.kept")]
    assert (await harness.customer("1")).full_name == DEFAULT_ANSWERS["full_name"]  # type: ignore[union-attr]
    assert (await harness.order(open_code)).status == "new"
    assert await harness.has_consent("1")


async def test_delete_erases_cancels_open_orders_redacts_staff_copies_and_starts_afresh(
    harness: Harness,
) -> None:
    code = await rich_customer(harness)  # shipped: still open, with slip and messages
    other = await harness.place_order("2", full_name="Vũ Thị Hồng")
    order = await harness.order(code)
    rows = await harness.outbox_rows()
    tagged = [r for r in rows if r.chat_id == STAFF and r.tag == f"order:{order.id}"]
    first_per_message: dict[str, int] = {}
    for row in tagged:
        assert row.platform_message_id
        first_per_message.setdefault(row.platform_message_id, row.id)
    assert len(first_per_message) >= 4  # alert, relayed question, staff confirmation, slip
    other_alert = next(
        r for r in rows if r.chat_id == STAFF and r.tag and r.tag != f"order:{order.id}"
    )

    await harness.say("1", "/delete")
    replies = await harness.press("1", harness.payload_of("1", "rights.btn.delete_confirm"))

    # The customer gets an erasure reference.
    (done,) = to_chat(replies, "1")
    reference = DEL_CODE.search(done.text)
    assert reference is not None
    assert done.text == tr("rights.delete.done", reference=reference.group())
    # Staff hear that the open order is cancelled …
    staff = to_chat(replies, STAFF)
    assert html.escape(tr("rights.staff.order_cancelled_erased", code=code)) in texts(staff)
    # … and every staff-chat copy about the customer becomes a redaction notice, via the outbox.
    redactions = [m for m in staff if m.edit_of is not None]
    assert sorted(m.edit_of or 0 for m in redactions) == sorted(first_per_message.values())
    assert {m.text for m in redactions} == {html.escape(tr("rights.staff.redacted"))}
    assert all(m.html and m.buttons == () for m in redactions)
    assert other_alert.id not in {m.edit_of for m in redactions}
    assert "Đặng Thùy Trâm" not in joined(replies)

    # An anonymous stub of the order stays for the shop's counts.
    stub = await harness.order(code)
    assert (stub.status, stub.customer_id) == ("cancelled", None)
    assert (stub.full_name, stub.phone, stub.address, stub.email, stub.request_text) == (None,) * 5
    assert stub.erased_at is not None and stub.photos == []
    assert await harness.customer("1") is None
    (disclosure,) = await harness.rows(Disclosure)
    assert disclosure.customer_id is None and disclosure.reason is None
    assert (await harness.order(other)).full_name == "Vũ Thị Hồng"  # untouched
    erased = [a for a in await harness.rows(AuditEntry) if a.action == "customer_erased"]
    assert [a.subject for a in erased] == [reference.group()]

    # Staff can no longer act on it or write to the customer.
    replies = await harness.staff(payload=f"os:{order.id}:done")
    assert texts(replies) == [html.escape(tr("order.staff.not_found"))]
    replies = await harness.staff(f"{code} chị ơi")
    assert to_chat(replies, "1") == []

    # The same platform account is a brand-new customer: consent again, nothing saved.
    replies = await harness.say("1", "/order")
    assert tr("consent.needed_first") in texts(replies)
    replies = await harness.press("1", "consent:yes")
    assert first_line("order.ask.full_name") in joined(replies)
    assert tr("flow.saved_intro") not in joined(replies)
    await harness.say("1", "/cancel")
    (mydata,) = await harness.say("1", "/mydata")
    assert code not in mydata.text and "Đặng Thùy Trâm" not in mydata.text


async def test_an_undelivered_staff_alert_is_dropped_not_sent_after_erasure(
    harness: Harness, adapter: RecordingAdapter, clock: FakeClock
) -> None:
    await harness.order_until("1", "review", full_name="Lê Văn Hưu")
    adapter.fail_next(1, "temporary", chat_id=STAFF)
    await harness.press("1", "f:ok")  # the alert waits for a retry
    await harness.say("1", "/delete")
    await harness.press("1", "rights:delete:confirm")
    clock.advance(hours=2)
    await harness.deliver()
    assert "Lê Văn Hưu" not in joined(harness.delivered(STAFF))


# ---- withdrawing consent ---------------------------------------------------------------------


async def test_withdrawing_consent_stops_orders_tells_staff_and_offers_deletion(
    harness: Harness,
) -> None:
    code = await harness.place_order("1")

    replies = await harness.press("1", "rights:withdraw")
    (answer,) = to_chat(replies, "1")
    assert answer.text == tr("rights.withdraw.done")
    assert [b.payload for b in flat_buttons(answer)] == ["rights:delete"]
    assert texts(to_chat(replies, STAFF)) == [
        html.escape(tr("rights.staff.consent_withdrawn", code=code))
    ]
    assert not await harness.has_consent("1")

    replies = await harness.say("1", "/order")
    assert tr("consent.needed_first") in texts(replies)
    assert first_line("consent.notice") in joined(replies)
    assert first_line("order.ask.full_name") not in joined(replies)

    (mydata,) = await harness.say("1", "/mydata")
    assert tr("rights.consent.withdrawn", at="X").split("X")[0] in mydata.text
    assert [a.action for a in await harness.rows(AuditEntry)].count("consent_withdrawn") == 1

    again = await harness.say("1", "/withdraw")
    assert texts(again) == [tr("rights.withdraw.none")]


async def test_withdrawing_consent_mid_order_drops_the_draft(harness: Harness) -> None:
    await harness.order_until("1", "address", full_name="Phan Bội Châu")
    await harness.say("1", "/withdraw")
    assert await harness.state("1") is None
    assert to_chat(harness.delivered(), STAFF) == []  # no open order, nobody to tell


# ---- legal disclosure ------------------------------------------------------------------------


async def test_legal_disclosure_by_an_admin_exports_to_staff_and_is_visible_to_the_customer(
    harness: Harness,
) -> None:
    code = await harness.place_order("1", full_name="Bùi Xuân Phái")
    await harness.place_order("2", full_name="Vũ Thị Hồng")

    replies = await harness.staff(f"/legal {code} {LEGAL_BASIS}")

    (message,) = replies
    assert message.chat_id == STAFF
    assert message.text == html.escape(tr("rights.legal.done", basis=LEGAL_BASIS))
    data = document_json(message)
    assert_valid_export(data)
    assert data["profile"]["full_name"] == "Bùi Xuân Phái"
    assert [o["code"] for o in data["orders"]] == [code]  # that customer only
    (disclosure,) = await harness.rows(Disclosure)
    assert (disclosure.recipient_kind, disclosure.staff_actor) == ("authority", "staff:console:900")
    assert LEGAL_BASIS in (disclosure.reason or "")
    assert [a.action for a in await harness.rows(AuditEntry)][-1] == "legal_disclosure"

    (mydata,) = await harness.say("1", "/mydata")
    line = next(line for line in mydata.text.splitlines() if LEGAL_BASIS in line)
    assert tr("rights.recipient.authority") in line
    assert LEGAL_BASIS not in (await harness.say("2", "/mydata"))[0].text
    exported = await export(harness)
    assert exported["disclosures"][0]["recipient_kind"] == "authority"


async def test_legal_disclosure_by_phone_number(harness: Harness) -> None:
    await harness.place_order("1", phone="0903 111 222")
    (message,) = await harness.staff(f"/legal +84903111222 {LEGAL_BASIS}")
    assert document_json(message)["profile"]["phone"] == "+84903111222"


async def test_legal_disclosure_refuses_a_phone_shared_by_two_customers(
    harness: Harness,
) -> None:
    """Two customers ordered with the same phone: `/legal <phone>` must not export whichever
    of them came first — it refuses, discloses nothing, and an order code still works."""
    first = await harness.place_order("1", full_name="Bùi Xuân Phái", phone="0903 111 222")
    await harness.place_order("2", full_name="Vũ Thị Hồng", phone="0903 111 222")

    for typed in ("0903 111 222", "+84903111222"):
        replies = await harness.staff(f"/legal {typed} {LEGAL_BASIS}")
        assert [(m.chat_id, m.text, m.document) for m in replies] == [
            (STAFF, html.escape(tr("rights.legal.ambiguous", count=2)), None)
        ]
    assert await harness.rows(Disclosure) == []
    assert "legal_disclosure" not in [a.action for a in await harness.rows(AuditEntry)]
    for user in ("1", "2"):
        (mydata,) = await harness.say(user, "/mydata")
        assert LEGAL_BASIS not in mydata.text

    (message,) = await harness.staff(f"/legal {first} {LEGAL_BASIS}")
    assert document_json(message)["profile"]["full_name"] == "Bùi Xuân Phái"


async def test_legal_disclosure_by_ticket_code_and_by_the_phone_of_an_order(
    harness: Harness,
) -> None:
    """/legal names a customer the way /lock does: a ticket code works, and a phone number
    finds the customer who used it on an order even when their profile has another one."""
    await harness.place_order("1", full_name="Bùi Xuân Phái", phone="0903 111 222")
    customer = await harness.customer("1")
    assert customer is not None
    async with harness.sessions() as session:
        await session.execute(
            update(Customer).where(Customer.id == customer.id).values(phone="+84912000111")
        )
        await session.commit()
    (by_order_phone,) = await harness.staff(f"/legal 0903111222 {LEGAL_BASIS}")
    assert document_json(by_order_phone)["profile"]["full_name"] == "Bùi Xuân Phái"

    await harness.consent("3")
    await harness.say("3", "/complaint")
    await harness.press("3", "f:pick:other")
    await harness.say("3", "Thái độ phục vụ chưa tốt")
    await harness.press("3", "f:skip")
    await harness.press("3", "f:ok")
    (ticket,) = await harness.rows(Ticket)
    (by_ticket,) = await harness.staff(f"/legal {ticket.code} {LEGAL_BASIS}")
    assert document_json(by_ticket)["tickets"][0]["code"] == ticket.code


@pytest.mark.parametrize(
    ("args", "key"),
    [
        ("", "rights.legal.usage"),
        ("VAV-22222", "rights.legal.usage"),
        ("VAV-22222 CA", "rights.legal.not_found"),
    ],
)
async def test_legal_disclosure_needs_a_target_and_a_basis(
    harness: Harness, args: str, key: str
) -> None:
    await harness.place_order("1")
    replies = await harness.staff(f"/legal {args}".strip())
    assert texts(replies) == [html.escape(tr(key))]
    assert await harness.rows(Disclosure) == []


async def test_legal_disclosure_by_a_non_admin_is_refused_and_audited(harness: Harness) -> None:
    code = await harness.place_order("1", full_name="Bùi Xuân Phái")

    replies = await harness.staff(f"/legal {code} {LEGAL_BASIS}", user_id=STAFF_MEMBER)

    assert [(m.chat_id, m.text, m.document) for m in replies] == [
        (STAFF, tr("staff.admin_only"), None)
    ]
    assert await harness.rows(Disclosure) == []
    refused = [a for a in await harness.rows(AuditEntry) if a.action == "refused"]
    assert [(a.actor, a.detail) for a in refused] == [
        (f"staff:console:{STAFF_MEMBER}", "admin-only:/legal")
    ]
    (mydata,) = await harness.say("1", "/mydata")
    assert LEGAL_BASIS not in mydata.text


# ---- retention -----------------------------------------------------------------------------------


async def test_retention_erases_inactive_customers_only(harness: Harness, clock: FakeClock) -> None:
    assert harness.config.retention_days == 730
    stale = await harness.place_order("1", full_name="Lê Văn Hưu")
    await harness.place_order("2", full_name="Vũ Thị Hồng")
    clock.advance(days=730)
    await harness.say("2", "/orders")  # customer 2 is still around
    clock.advance(days=1)

    counts = await harness.runtime.maintain()
    delivered = await harness.deliver()

    assert counts["retention_erased"] == 1
    assert await harness.customer("1") is None
    assert (await harness.customer("2")).full_name == "Vũ Thị Hồng"  # type: ignore[union-attr]
    stub = await harness.order(stale)
    assert (stub.status, stub.full_name, stub.customer_id) == ("cancelled", None, None)
    staff = texts(to_chat(delivered, STAFF))
    assert html.escape(tr("rights.staff.order_cancelled_erased", code=stale)) in staff
    assert html.escape(tr("rights.staff.redacted")) in staff
    erased = [a for a in await harness.rows(AuditEntry) if a.action == "customer_erased"]
    assert [a.actor for a in erased] == ["system:retention"]

    assert (await harness.runtime.maintain())["retention_erased"] == 0  # nothing left to do


async def test_retention_zero_erases_nobody(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> None:
    h = Harness(sessions, clock=clock, config=shop_config(retention_days=0))
    try:
        await h.place_order("1")
        clock.advance(days=3650)
        assert (await h.runtime.maintain())["retention_erased"] == 0
        assert await h.customer("1") is not None
    finally:
        await h.close()


async def test_maintenance_deletes_expired_drafts(harness: Harness, clock: FakeClock) -> None:
    await harness.order_until("1", "email", full_name="Cao Bá Quát")
    await harness.order_until("2", "phone", full_name="Hồ Xuân Hương")
    clock.advance(hours=23)
    assert (await harness.runtime.maintain())["expired_drafts"] == 0
    await harness.say("2", "0912 345 678")  # still typing: the draft lives on
    clock.advance(hours=2)

    assert (await harness.runtime.maintain())["expired_drafts"] == 1
    assert await harness.state("1") is None
    assert await harness.state("2") is not None


async def _seed_for_purge(db_file: Path) -> None:
    """Customer 1 last seen 800 days ago, customer 2 yesterday, customer 3 left a draft."""
    engine = create_engine(f"sqlite+aiosqlite:///{db_file}")
    try:
        await migrate_to_head(engine)
        now = datetime.now(UTC)
        clock = FakeClock(now - timedelta(days=800))
        h = Harness(session_factory(engine), clock=clock, config=shop_config())
        try:
            await h.place_order("1", full_name="Lê Văn Hưu")
            clock.now = now - timedelta(days=2)
            await h.order_until("3", "address")
            clock.now = now - timedelta(days=1)
            await h.place_order("2", full_name="Vũ Thị Hồng")
        finally:
            await h.close()
    finally:
        await engine.dispose()


async def _identities(db_file: Path) -> list[str]:
    engine = create_engine(f"sqlite+aiosqlite:///{db_file}")
    try:
        async with session_factory(engine)() as session:
            rows = await session.scalars(select(ChannelIdentity.platform_user_id))
            return sorted(rows.all())
    finally:
        await engine.dispose()


@pytest.mark.subprocess
async def test_purge_command_prints_how_many_were_erased(tmp_path: Path) -> None:
    db_file = tmp_path / "data" / "vietartview.db"
    await _seed_for_purge(db_file)

    out = run_cli(tmp_path, "purge", RETENTION_DAYS="0")
    assert "Erased 0 inactive customer(s) (retention 0 days)" in out
    assert "deleted 1 expired draft(s)" in out
    assert await _identities(db_file) == ["1", "2", "3"]

    out = run_cli(tmp_path, "purge", RETENTION_DAYS="730")
    assert "Erased 1 inactive customer(s) (retention 730 days)" in out
    assert "deleted 0 expired draft(s)" in out
    assert await _identities(db_file) == ["2", "3"]


# ---- the console channel: /mydata → export → /delete ----------------------------------------


@pytest.mark.subprocess
def test_mydata_export_delete_on_the_console(tmp_path: Path) -> None:
    """Exports are written 0600 under unguessable names in a per-chat 0700 folder, and
    `/delete` removes them — the customer's and the staff's bulk export alike."""
    lines = [
        "/start",
        "1",
        "/order",
        "Trần Văn Minh",
        "0987654321",
        "45 Láng Hạ, Đống Đa, Hà Nội",
        "bo qua",
        "SD-001",
        "xong",
        "1",  # confirm
        "/mydata",
        "2",  # 📥 Tải dữ liệu
        "/export",  # twice: two files, not one overwritten
        "@staff /export",
    ]
    out = run_cli(tmp_path, "chat", lines=lines, STAFF_ADMIN_IDS="900")

    assert tr("rights.mydata.title") in out and "• Họ tên: Trần Văn Minh" in out
    data_dir = tmp_path / "data"
    files = sorted((data_dir / "files").glob("*/*.json"))
    assert len(files) == 2 and all(f"📎 {path}" in out for path in files)
    assert files[0].parent == files[1].parent and files[0].name != files[1].name
    assert re.fullmatch(r"[A-Za-z0-9_-]{16}-vietartview-data-\d{8}\.json", files[0].name)
    data = json.loads(files[0].read_text(encoding="utf-8"))
    assert_valid_export(data)
    assert data["profile"]["full_name"] == "Trần Văn Minh"
    (csv_file,) = (data_dir / "files").glob("*/*.csv")
    assert "Trần Văn Minh" in csv_file.read_text(encoding="utf-8-sig")
    for path in [*files, csv_file, data_dir / "vietartview.db"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in [data_dir, data_dir / "files", files[0].parent, csv_file.parent]:
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder

    out = run_cli(tmp_path, "chat", lines=["/delete", "1", "/mydata"], STAFF_ADMIN_IDS="900")
    reference = DEL_CODE.search(out)
    assert reference is not None
    after = out[out.index(reference.group()) :]
    assert "Trần Văn Minh" not in after.split("[staff]")[-1]  # the last /mydata is empty
    assert f"• {tr('order.field.full_name')}: —" in after
    # Nothing of theirs is left in the files folder, under any name.
    left = [path for path in (data_dir / "files").rglob("*") if path.is_file()]
    for path in left:
        content = path.read_bytes()
        for value in ("Trần Văn Minh", "0987654321", "+84987654321", "Láng Hạ"):
            assert value.encode() not in content, (value, path)
    assert not any(path.exists() for path in [*files, csv_file])


# ---- locked accounts keep their rights -------------------------------------------------------


async def test_a_locked_customer_keeps_mydata_export_and_delete_but_cannot_order(
    harness: Harness,
) -> None:
    code = await harness.place_order("1", full_name="Lê Văn Hưu")
    await lock(harness, "1")

    replies = await harness.say("1", "/order")
    assert texts(replies) == [tr("core.locked")]
    assert await harness.state("1") is None
    assert await harness.say("1", "/order") == []  # told once, then ignored

    (mydata,) = await harness.say("1", "/mydata")
    assert "Lê Văn Hưu" in mydata.text and code in mydata.text
    data = await export(harness)
    assert data["profile"]["locked"] is True
    assert_valid_export(data)
    (orders,) = await harness.say("1", "/orders")
    assert code in orders.text

    await harness.say("1", "/delete")
    replies = await harness.press("1", "rights:delete:confirm")
    assert DEL_CODE.search(joined(to_chat(replies, "1")))
    assert await harness.customer("1") is None
    assert (await harness.order(code)).full_name is None
    # The lock went with the data: the account starts afresh, like any erased customer.
    replies = await harness.say("1", "/start")
    assert first_line("consent.notice") in joined(replies)


async def test_outbox_rows_kept_after_erasure_hold_no_payload(harness: Harness) -> None:
    await rich_customer(harness)
    await harness.say("1", "/delete")
    await harness.press("1", "rights:delete:confirm")
    async with harness.sessions() as session:
        rows = (await session.scalars(select(OutboxMessage))).all()
    assert all(row.status == "sent" for row in rows)
    assert all(row.payload == {} for row in rows)
    assert not [row for row in rows if row.chat_id == "1" and row.customer_id is not None]

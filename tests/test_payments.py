"""Payment: the VietQR sent after confirmation (its PNG decoded and every field and the CRC
checked against the NAPAS/EMVCo layout), the payment status (staff one tap, /price for custom
work), the SePay bank webhook over real HTTP on 127.0.0.1 (valid → paid and both sides told;
bad key → 401, nothing changed; amount mismatch → staff told, not paid; a duplicate
notification → applied once), and payment events in the audit log, /mydata, the export and
erasure."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
import zxingcpp
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette

import bot.channels.telegram as tg
from bot.payments import SEPAY_PATH, sepay_route
from handlers.messages import STAFF, Document, Outbound
from handlers.orders.export import COLUMNS
from handlers.orders.vietqr import Transfer, VietQRError, crc16_ccitt, parse_tlv, transfer_note
from storage.catalog import PaymentEvent
from storage.models import AuditEntry
from tests.fakes.server import ServedApp
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.fakes.zalo_api import MESSAGE_PATH, FakeZaloAPI
from tests.helpers import (
    FakeClock,
    Harness,
    RecordingAdapter,
    flat_buttons,
    joined,
    run_cli,
    shop_config,
    to_chat,
    tr,
)
from tests.test_zalo_oa import Stack

BANK_BIN = "970436"
ACCOUNT = "0011004455667"
HOLDER = "CONG TY VIET ART VIEW"
API_KEY = "sepay-test-key-123"
PAYMENT_SETTINGS = {
    "payment_bank_bin": BANK_BIN,
    "payment_account_number": ACCOUNT,
    "payment_account_name": HOLDER,
}


def decode_png(png: bytes) -> str:
    (found,) = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    return str(found.text)


def check_vietqr(payload: str, amount: int, note: str) -> None:
    """Every field of the NAPAS VietQR layout, and the CRC over everything before it."""
    fields = parse_tlv(payload)
    assert list(fields) == ["00", "01", "38", "53", "54", "58", "62", "63"]
    assert fields["00"] == "01"  # payload format indicator
    assert fields["01"] == "12"  # dynamic: carries an amount
    merchant = parse_tlv(fields["38"])
    assert merchant == {"00": "A000000727", "01": merchant["01"], "02": "QRIBFTTA"}
    assert parse_tlv(merchant["01"]) == {"00": BANK_BIN, "01": ACCOUNT}
    assert fields["53"] == "704"
    assert fields["54"] == str(amount)
    assert fields["58"] == "VN"
    assert parse_tlv(fields["62"]) == {"08": note}
    assert payload.endswith("6304" + fields["63"])
    assert fields["63"] == crc16_ccitt(payload[:-4])


# ---- the payload itself ---------------------------------------------------------------------


def test_crc_is_crc16_ccitt_false() -> None:
    assert crc16_ccitt("123456789") == "29B1"  # the standard check value
    # A published NAPAS example (liopay/vietqr-php README) ends in CRC 5802.
    example = (
        "00020101021138480010A00000072701300006970403011621129950446040255204581253037045802VN"
        "5910PHUONG CAC6005HANOI62110307NPS6869"
    )
    assert crc16_ccitt(example + "6304") == "5802"


def test_the_png_decodes_to_the_payload_with_every_field() -> None:
    transfer = Transfer(BANK_BIN, ACCOUNT, 9_050_000, transfer_note("VAV-7K3Q9"))
    payload = decode_png(transfer.png())
    assert payload == transfer.payload()
    check_vietqr(payload, 9_050_000, "VAV7K3Q9")


@pytest.mark.parametrize(
    ("bank_bin", "account", "amount", "note"),
    [
        ("97043", ACCOUNT, 1000, "VAV7K3Q9"),
        (BANK_BIN, "00-11", 1000, "VAV7K3Q9"),
        (BANK_BIN, ACCOUNT, 0, "VAV7K3Q9"),
        (BANK_BIN, ACCOUNT, 1000, "Nguyễn Lan"),  # only the code ever goes in the note
    ],
)
def test_bad_transfer_details_are_refused(
    bank_bin: str, account: str, amount: int, note: str
) -> None:
    with pytest.raises(VietQRError):
        Transfer(bank_bin, account, amount, note).payload()


# ---- after confirmation ---------------------------------------------------------------------


@pytest.fixture
async def paying(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> AsyncIterator[Harness]:
    config = shop_config(
        shipping_fee_vnd=50_000, free_shipping_over_vnd=10_000_000, **PAYMENT_SETTINGS
    )
    harness = Harness(sessions, clock=clock, config=config, adapter=RecordingAdapter("console"))
    try:
        yield harness
    finally:
        await harness.close()


def qr_message(messages: list[Outbound]) -> Outbound:
    return next(m for m in messages if m.document is not None)


async def test_the_customer_receives_a_vietqr_after_confirmation(paying: Harness) -> None:
    code = await paying.place_order("1", request="SD-001 lấy 2 bức")
    message = qr_message(to_chat(paying.delivered("1"), "1"))
    assert message.document is not None
    assert (message.document.mime_type, message.document.filename) == (
        "image/png",
        f"{code}-VietQR.png",
    )
    note = code.replace("-", "")
    assert message.text == tr(
        "catalog.payment.qr",
        code=code,
        amount="9.050.000 ₫",
        bank="Vietcombank (970436)",
        account=ACCOUNT,
        holder=HOLDER,
        note=note,
    )
    check_vietqr(decode_png(message.document.content), 9_050_000, note)
    (event,) = await paying.rows(PaymentEvent)
    assert (event.kind, event.amount_vnd) == ("qr_sent", 9_050_000)


async def test_without_bank_settings_staff_will_send_the_details(harness: Harness) -> None:
    code = await harness.place_order("1")
    messages = to_chat(harness.delivered("1"), "1")
    assert all(m.document is None for m in messages)
    assert tr("catalog.payment.no_qr", code=code, amount="4.500.000 ₫") in joined(messages)


async def test_custom_work_gets_its_qr_when_staff_set_the_price(paying: Harness) -> None:
    code = await paying.place_order("1", request="vẽ chân dung gia đình theo ảnh")
    assert all(m.document is None for m in paying.delivered("1"))
    replies = await paying.staff(f"/price {code} 2.500.000")
    assert tr("catalog.staff.priced", code=code, amount="2.500.000 ₫") in joined(replies)
    message = qr_message(to_chat(replies, "1"))
    assert message.document is not None
    check_vietqr(decode_png(message.document.content), 2_500_000, code.replace("-", ""))
    replies = await paying.staff(f"/price {code} hai triệu")
    assert to_chat(replies, STAFF)[0].text == tr("catalog.staff.price_usage")


@pytest.mark.subprocess
def test_the_console_writes_the_qr_png_and_prints_its_path(tmp_path: Path) -> None:
    output = run_cli(
        tmp_path,
        "chat",
        lines=[
            "/start",
            "1",
            "/catalog",
            "1",
            "1",
            "2",
            "Nguyễn Thị Lan",
            "0912345678",
            "12 Hàng Bạc, Hà Nội",
            "bỏ qua",
            "bỏ qua",
            "1",
        ],
        PAYMENT_BANK_BIN=BANK_BIN,
        PAYMENT_ACCOUNT_NUMBER=ACCOUNT,
        PAYMENT_ACCOUNT_NAME=HOLDER,
    )
    line = next(line for line in output.splitlines() if line.startswith("📎 ") and "VietQR" in line)
    path = Path(line.removeprefix("📎 "))
    assert path.is_relative_to(tmp_path / "data" / "files")
    payload = decode_png(path.read_bytes())
    check_vietqr(payload, 9_000_000, parse_tlv(parse_tlv(payload)["62"])["08"])


# ---- payment status -------------------------------------------------------------------------


async def test_staff_mark_an_order_paid_with_one_tap(paying: Harness) -> None:
    code = await paying.place_order("1")
    order = await paying.order(code)
    replies = await paying.staff(payload=f"pay:{order.id}:paid")
    assert (await paying.order(code)).payment_status == "paid"
    assert tr("catalog.payment.notify.paid", code=code, amount="4.550.000 ₫") in joined(
        to_chat(replies, "1")
    )
    (edited,) = [m for m in to_chat(replies, STAFF) if m.edit_of is not None]
    assert tr("catalog.payment.line", status=tr("catalog.payment.paid")) in edited.text
    assert [b.payload for b in flat_buttons(edited)][-1] == f"pay:{order.id}:refunded"

    replies = await paying.staff(payload=f"pay:{order.id}:paid")  # a second tap: no change
    assert "paid" not in [e.kind for e in await paying.rows(PaymentEvent)][2:]
    await paying.staff(payload=f"pay:{order.id}:refunded")
    assert (await paying.order(code)).payment_status == "refunded"
    actions = [a.action for a in await paying.rows(AuditEntry) if a.subject == code]
    assert actions[-2:] == ["payment_paid", "payment_refunded"]


async def test_customers_cannot_press_payment_buttons(paying: Harness) -> None:
    code = await paying.place_order("1")
    order = await paying.order(code)
    replies = await paying.press("1", f"pay:{order.id}:paid")
    assert to_chat(replies, "1")[0].text == tr("staff.not_allowed")
    assert (await paying.order(code)).payment_status == "unpaid"


# ---- the bank webhook over HTTP -------------------------------------------------------------


def sepay(ident: int, amount: int, content: str, kind: str = "in") -> dict[str, object]:
    return {
        "id": ident,
        "gateway": "Vietcombank",
        "transactionDate": "2026-01-15 10:05:00",
        "accountNumber": ACCOUNT,
        "code": None,
        "content": content,
        "transferType": kind,
        "transferAmount": amount,
        "accumulated": 19_077_000,
        "subAccount": None,
        "referenceCode": "MBVCB.3278907687",
        "description": "",
    }


@pytest.fixture
async def webhook(paying: Harness) -> AsyncIterator[httpx.AsyncClient]:
    served = ServedApp(Starlette(routes=[sepay_route(paying.runtime, API_KEY)]), "bot webhook")
    async with served, httpx.AsyncClient(base_url=served.origin) as client:
        yield client


async def post(client: httpx.AsyncClient, body: object, key: str = API_KEY) -> httpx.Response:
    return await client.post(SEPAY_PATH, json=body, headers={"Authorization": f"Apikey {key}"})


async def test_a_matching_transfer_marks_the_order_paid_and_tells_both_sides(
    paying: Harness, webhook: httpx.AsyncClient
) -> None:
    code = await paying.place_order("1")
    mark = paying.mark()
    note = f"MBVCB.1234.{code.replace('-', '')}.CT tu 0011 NGUYEN THI LAN"
    response = await post(webhook, sepay(92704, 4_550_000, note))
    assert (response.status_code, response.json()) == (200, {"success": True})
    await paying.deliver()
    delivered = paying.since(mark)
    assert (await paying.order(code)).payment_status == "paid"
    assert tr("catalog.payment.notify.paid", code=code, amount="4.550.000 ₫") in joined(
        to_chat(delivered, "1")
    )
    assert tr("catalog.staff.paid_by_bank", code=code, amount="4.550.000 ₫") in joined(
        to_chat(delivered, STAFF)
    )
    paid = [e for e in await paying.rows(PaymentEvent) if e.kind == "paid"]
    assert [(e.provider, e.external_id, e.amount_vnd) for e in paid] == [
        ("sepay", "92704", 4_550_000)
    ]
    audit = [a for a in await paying.rows(AuditEntry) if a.action == "payment_paid"]
    assert [(a.actor, a.subject) for a in audit] == [("bank:sepay", code)]
    assert all("NGUYEN" not in (a.detail or "") for a in await paying.rows(AuditEntry))

    # The same notification again (SePay retries): applied once, still acknowledged.
    mark = paying.mark()
    response = await post(webhook, sepay(92704, 4_550_000, note))
    assert response.status_code == 200
    await paying.deliver()
    assert paying.since(mark) == []
    assert len([e for e in await paying.rows(PaymentEvent) if e.kind == "paid"]) == 1


@pytest.mark.parametrize("key", ["wrong-key", "sepay-test-key-12", "x" * 40])
async def test_a_bad_api_key_is_refused_and_changes_nothing(
    paying: Harness, webhook: httpx.AsyncClient, key: str
) -> None:
    code = await paying.place_order("1")
    events = len(await paying.rows(PaymentEvent))
    response = await post(webhook, sepay(1, 4_550_000, code), key=key)
    assert response.status_code == 401
    no_header = await webhook.post(SEPAY_PATH, json=sepay(1, 4_550_000, code))
    assert no_header.status_code == 401
    assert (await paying.order(code)).payment_status == "unpaid"
    assert len(await paying.rows(PaymentEvent)) == events


async def test_an_amount_mismatch_is_shown_to_staff_and_not_paid(
    paying: Harness, webhook: httpx.AsyncClient
) -> None:
    code = await paying.place_order("1")
    mark = paying.mark()
    response = await post(webhook, sepay(555, 4_000_000, f"{code} thanh toan"))
    assert response.status_code == 200
    await paying.deliver()
    delivered = paying.since(mark)
    assert (await paying.order(code)).payment_status == "unpaid"
    assert to_chat(delivered, "1") == []
    assert tr(
        "catalog.staff.amount_mismatch", code=code, amount="4.000.000 ₫", expected="4.550.000 ₫"
    ) in joined(to_chat(delivered, STAFF))
    assert [e.kind for e in await paying.rows(PaymentEvent)][-1] == "mismatch"


async def test_unmatched_outgoing_and_malformed_notifications(
    paying: Harness, webhook: httpx.AsyncClient
) -> None:
    mark = paying.mark()
    assert (await post(webhook, sepay(7, 100_000, "chuyen tien an trua"))).status_code == 200
    await paying.deliver()
    assert tr("catalog.staff.transfer_unmatched", amount="100.000 ₫") in joined(paying.since(mark))
    assert (await post(webhook, sepay(8, 100_000, "phi", kind="out"))).status_code == 200
    assert (await post(webhook, {"id": 9})).status_code == 400
    bad_json = await webhook.post(
        SEPAY_PATH, content=b"{not json", headers={"Authorization": f"Apikey {API_KEY}"}
    )
    assert bad_json.status_code == 400
    assert [e.external_id for e in await paying.rows(PaymentEvent)] == ["7"]


# ---- data rights ----------------------------------------------------------------------------


async def test_payment_events_are_in_mydata_and_the_export_and_erasure_unlinks_them(
    paying: Harness,
) -> None:
    code = await paying.place_order("1")
    order = await paying.order(code)
    await paying.staff(payload=f"pay:{order.id}:paid")
    replies = await paying.say("1", "/mydata")
    mydata = joined(to_chat(replies, "1"))
    assert tr("catalog.quote.total", total="4.550.000 ₫") in mydata
    assert tr("catalog.payment.line", status=tr("catalog.payment.paid")) in mydata

    replies = await paying.say("1", "/export")
    document = next(m.document for m in to_chat(replies, "1") if m.document is not None)
    data = json.loads(document.content)
    (exported,) = data["orders"]
    assert (exported["quantity"], exported["total_vnd"], exported["payment_status"]) == (
        1,
        4_550_000,
        "paid",
    )
    assert [p["kind"] for p in exported["payments"]] == ["qr_sent", "paid"]

    await paying.say("1", "/delete")
    await paying.press("1", "rights:delete:confirm")
    events = await paying.rows(PaymentEvent)
    assert events and all(e.customer_id is None for e in events)
    assert all(e.actor != f"customer:{order.customer_id}" for e in events)
    assert {e.order_id for e in events} == {order.id}  # anonymous bookkeeping stays


# ---- the QR on each platform ----------------------------------------------------------------


async def test_telegram_shows_the_qr_as_a_photo_and_zalo_oa_as_an_image() -> None:
    png = Transfer(BANK_BIN, ACCOUNT, 450_000, "VAV7K3Q9").png()
    message = Outbound(
        "telegram",
        "42",
        "💳 VAV-7K3Q9",
        document=Document("VAV-7K3Q9-VietQR.png", png, "image/png"),
    )
    async with FakeTelegramAPI(token="123:ABC") as api:
        application = tg.build_application("123:ABC", api.base_url)
        await application.initialize()
        try:
            await tg.TelegramAdapter(application).send(message)
        finally:
            await application.shutdown()
        (photo,) = api.calls("sendPhoto")
        assert photo["caption"] == "💳 VAV-7K3Q9"
        assert api.calls("sendDocument") == []
    async with FakeZaloAPI() as fake, httpx.AsyncClient() as http:
        await Stack(fake, http).adapter.send(replace(message, channel="zalo", chat_id="u1"))
        (upload,) = fake.uploads
        assert (
            decode_png(upload.content) == Transfer(BANK_BIN, ACCOUNT, 450_000, "VAV7K3Q9").payload()
        )
        text, image = [c.json["message"] for c in fake.calls_to(MESSAGE_PATH)]
        assert text == {"text": "💳 VAV-7K3Q9"}
        element = image["attachment"]["payload"]["elements"][0]
        assert element["media_type"] == "image" and element["attachment_id"]


async def test_the_staff_csv_export_carries_quantity_total_and_payment(paying: Harness) -> None:
    code = await paying.place_order("1", request="DH-005 lấy 3 bức")
    replies = await paying.staff("/export")
    document = next(m.document for m in replies if m.document is not None)
    header, line, _totals = csv.reader(io.StringIO(document.content.decode("utf-8-sig")))
    assert header == [tr(f"staff.csv.{column}") for column in COLUMNS]
    row = dict(zip(COLUMNS, line, strict=True))
    assert (row["code"], row["quantity"], row["total_vnd"], row["payment_status"]) == (
        code,
        "3",
        "1400000",
        tr("catalog.payment.unpaid"),
    )

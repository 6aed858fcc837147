"""Erasure is complete down to the bytes (issue 5, DESIGN.md "Privacy by construction").

A customer leaves their name, phone, address, email, a request and messages both ways; after
`/delete` (or the retention purge) the raw bytes of the SQLite database file **and its WAL**
contain none of it, in any encoding the database could have used: UTF-8 (NFC and NFD), and the
ASCII `\\u` escapes of JSON columns (drafts, inbox and outbox payloads). The runtime stays open
while we read the files, so the WAL exists and the after-erasure checkpoint is what matters.

A second customer's data, stored in the same pages, is untouched and still readable.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from handlers.messages import STAFF
from storage.db import sqlite_path
from storage.models import ChannelIdentity, Customer
from tests.helpers import FakeClock, Harness, joined, to_chat, tr

ANH = {
    "full_name": "Trần Thị Ngọc Ánh",
    "phone": "0987 654 321",
    "address": "27 Phố Hàng Gai, phường Hoàn Kiếm, Hà Nội",
    "email": "ngoc.anh.tran@example.com",
    "request": "Tranh sơn dầu hoa sen trắng khổ 80x120, giao trước Tết Nguyên Đán",
}
ANH_MESSAGE = "Em muốn đổi sang khung gỗ óc chó, tầng 3 có thang máy ạ"
STAFF_ANSWER = "Dạ shop đã ghi nhận khung gỗ óc chó cho chị Ngọc Ánh"
ANH_PHONES = ("+84987654321", "84987654321", "0987654321", "0987 654 321")

BINH = {
    "full_name": "Lương Văn Bính",
    "phone": "0903 111 222",
    "address": "5 Phan Đình Phùng, Ba Đình, Hà Nội",
    "email": "binh.luong@example.net",
    "request": "Bức tranh Đông Hồ đám cưới chuột DH-005",
}


def encodings(value: str) -> Iterator[bytes]:
    """Every way `value` could be written in the database file."""
    for form in ("NFC", "NFD"):
        text = unicodedata.normalize(form, value)
        yield text.encode("utf-8")
        yield json.dumps(text)[1:-1].encode("ascii")  # JSON columns: ensure_ascii escapes


def personal_data_of_anh() -> list[str]:
    values = [ANH["full_name"], ANH["address"], ANH["email"], ANH["request"], ANH_MESSAGE]
    return [*values, STAFF_ANSWER, *ANH_PHONES]


def database_files(db_file: Path) -> dict[str, bytes]:
    """The raw bytes of the database and of its WAL (when there is one)."""
    files = {"db": db_file.read_bytes()}
    wal = db_file.with_name(db_file.name + "-wal")
    if wal.exists():
        files["wal"] = wal.read_bytes()
    return files


def found(files: dict[str, bytes], values: list[str]) -> list[str]:
    return [
        f"{value!r} in {name} as {form!r}"
        for value in values
        for form in set(encodings(value))
        for name, raw in files.items()
        if form in raw
    ]


async def leave_traces(harness: Harness, user_id: str, details: dict[str, str]) -> str:
    """An order with every personal field, a message each way, and a carrier hand-off."""
    code = await harness.place_order(user_id, **details)
    return code


@pytest.fixture
def db_file(db_url: str) -> Path:
    path = sqlite_path(db_url)
    assert path is not None, "the erasure scan needs a file database"
    return path


@pytest.mark.sqlite_only  # scans SQLite's files
@pytest.mark.parametrize("how", ["delete", "retention"])
async def test_erased_personal_data_is_gone_from_the_database_and_wal_bytes(
    harness: Harness, clock: FakeClock, db_file: Path, how: str
) -> None:
    anh_code = await leave_traces(harness, "1", ANH)
    anh_order = next(o for o in await harness.orders() if o.code == anh_code)
    await harness.say("1", ANH_MESSAGE)
    await harness.staff(f"{anh_code} {STAFF_ANSWER}")
    await harness.hand_to_carrier(anh_order.id)  # the carrier slip, too
    await harness.say("1", "/mydata")
    await harness.press("1", "rights:edit:address")  # an unfinished edit draft
    await harness.say("1", "Hanoi")

    before = database_files(db_file)
    assert "wal" in before and before["wal"], "the runtime is open: the WAL holds the data"
    assert found(before, [ANH["full_name"]]), "sanity: the scan sees stored data"

    if how == "delete":
        await harness.say("1", "/cancel")
        await harness.say("1", "/delete")
        replies = await harness.press("1", "rights:delete:confirm")
        assert "DEL-" in joined(to_chat(replies, "1"))
    else:
        clock.advance(days=731)
        await leave_traces(harness, "2", BINH)  # Bính is active, Ánh is not
        assert (await harness.runtime.maintain())["retention_erased"] == 1
        await harness.deliver()

    after = database_files(db_file)
    assert found(after, personal_data_of_anh()) == []
    # The shop keeps its anonymous stub, so the file was not simply emptied.
    assert anh_code.encode() in b"".join(after.values())


@pytest.mark.sqlite_only  # scans SQLite's files
async def test_a_second_customers_data_survives_the_first_customers_erasure(
    harness: Harness, db_file: Path
) -> None:
    await leave_traces(harness, "1", ANH)
    await harness.say("1", ANH_MESSAGE)
    binh_code = await leave_traces(harness, "2", BINH)
    await harness.say("2", "Chiều mai em mới ở nhà ạ")

    await harness.say("1", "/delete")
    replies = await harness.press("1", "rights:delete:confirm")
    assert to_chat(replies, "2") == []

    after = database_files(db_file)
    assert found(after, personal_data_of_anh()) == []
    for value in (BINH["full_name"], BINH["address"], BINH["email"]):
        assert found(after, [value]), f"{value!r} was erased with the other customer"

    # Still readable through the bot: profile, order, and the staff can still work on it.
    (mydata,) = await harness.say("2", "/mydata")
    for shown in (BINH["full_name"], "0903 111 222", BINH["address"], BINH["email"]):
        assert shown in mydata.text
    assert binh_code in mydata.text and "Chiều mai em mới ở nhà ạ" in mydata.text
    binh_order = next(o for o in await harness.orders() if o.code == binh_code)
    assert (binh_order.full_name, binh_order.phone, binh_order.status) == (
        BINH["full_name"],
        "+84903111222",
        "new",
    )
    replies = await harness.staff(payload=f"os:{binh_order.id}:claimed")
    assert tr("order.notify.claimed", code=binh_code) in joined(to_chat(replies, "2"))
    redacted = tr("rights.staff.redacted")
    assert redacted not in joined(to_chat(replies, STAFF))

    async with harness.sessions() as session:
        customers = (await session.scalars(select(Customer))).all()
        identities = (await session.scalars(select(ChannelIdentity))).all()
    assert [c.full_name for c in customers] == [BINH["full_name"]]
    assert [i.platform_user_id for i in identities] == ["2"]

"""Every field of an inbound is normalised before it is stored: NFC, no control characters,
no lone surrogates (which no platform can encode), bounded length — names, contacts,
payloads and attachments included, not only the text."""

from __future__ import annotations

import dataclasses
import unicodedata
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from bot.runtime import MAX_FIELD_CHARS, _clean
from handlers.messages import Attachment, Contact, Inbound
from tests.helpers import Harness, first_line

NASTY = ["\ud800", "\udfff", "\x00", "\x1b[31m", "\u202e", "\x7f", "e\u0301", "\u200b"]
nasty_text = st.lists(st.one_of(st.text(max_size=20), st.sampled_from(NASTY)), max_size=12).map(
    "".join
)


def _strings(value: Any) -> list[str]:
    """Every string inside an inbound (dataclasses, tuples, optionals)."""
    if isinstance(value, str):
        return [value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [s for f in dataclasses.fields(value) for s in _strings(getattr(value, f.name))]
    if isinstance(value, tuple):
        return [s for item in value for s in _strings(item)]
    return []


def _well_formed(text: str) -> bool:
    text.encode("utf-8")  # raises on a lone surrogate
    return unicodedata.is_normalized("NFC", text) and all(
        ch in "\n\t" or unicodedata.category(ch)[0] != "C" for ch in text
    )


@given(
    text=nasty_text,
    name=nasty_text,
    phone=nasty_text,
    address=nasty_text,
    payload=nasty_text,
    ref=nasty_text,
    display=nasty_text,
)
def test_every_field_comes_out_well_formed(
    text: str, name: str, phone: str, address: str, payload: str, ref: str, display: str
) -> None:
    inbound = Inbound(
        channel="console",
        chat_id="1" + text[:3],
        user_id="1" + name[:3],
        dedupe_key="k" + ref[:5],
        text=text,
        args=text,
        payload=payload,
        contact=Contact(phone=phone, name=name, address=address, user_id=display),
        attachments=(Attachment("photo", ref, name=name), Attachment("link", ref)),
        language_hint=payload[:5],
        user_display_name=display,
        reply_to_message_id=ref,
    )
    cleaned = _clean(inbound)
    assert all(_well_formed(s) for s in _strings(cleaned))
    assert cleaned.contact is not None and len(cleaned.contact.name) <= MAX_FIELD_CHARS


async def test_a_forged_contact_is_stored_clean_and_answered(harness: Harness) -> None:
    """A contact whose name carries a lone surrogate and terminal escapes (e.g. a forged
    Zalo `user_submit_info`) is stored without them and the flow goes on."""
    await harness.order_until("1", "phone")
    contact = Contact(phone="0912\x00345678", name="Nguy\ud800ễn \x1b[2JLan", address="Hà\x07 Nội")
    replies = await harness.send(harness.inbound("1", "", contact=contact))

    assert all(row.processed_at is not None and not row.error for row in await harness.inbox_rows())
    state = await harness.state("1")
    assert state is not None and state.data["values"]["phone"] == "+84912345678"
    assert first_line("order.ask.address") in "\n".join(m.text for m in replies)
    for message in replies:
        message.text.encode("utf-8")

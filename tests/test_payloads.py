"""Typed button payloads: every kind round-trips, stays within Telegram's 64 bytes, and
refuses forged input without an exception — in the parser and through the whole bot."""

from __future__ import annotations

import html
import random
import string
from typing import Annotated, Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handlers import buttons
from handlers.composition import build
from handlers.payloads import MAX_PAYLOAD_BYTES, Payload, PayloadError, Token, _FieldSpec
from tests.helpers import Harness, texts, tr

KINDS: list[type[Payload]] = sorted(
    (
        k
        for k in vars(buttons).values()
        if isinstance(k, type) and issubclass(k, Payload) and k is not Payload
    ),
    key=lambda k: k.prefix,
)
BY_PREFIX = {k.prefix: k for k in KINDS}
APP = build()


def test_every_kind_is_routed_exactly_once() -> None:
    """Engine buttons go to the active flow; every other kind to exactly one route."""
    assert len(BY_PREFIX) == len(KINDS)
    routed = [k for k in KINDS if k is not buttons.FlowButton]
    assert {k.prefix for k in routed} == set(APP.payloads)
    assert all(APP.payloads[k.prefix].kind is k for k in routed)


def _field_values(spec: _FieldSpec) -> st.SearchStrategy[Any]:
    if spec.kind == "int":
        return st.integers(spec.low, spec.high)
    if spec.kind == "choice":
        return st.sampled_from(sorted(spec.choices))
    assert spec.pattern is not None
    return st.from_regex(spec.pattern, fullmatch=True)


@st.composite
def payloads(draw: st.DrawFn) -> Payload:
    kind = draw(st.sampled_from(KINDS))
    values = {spec.name: draw(_field_values(spec)) for spec in kind._specs}
    return kind(**values)


@settings(max_examples=1500, deadline=None)
@given(payloads())
def test_round_trip_and_size(payload: Payload) -> None:
    packed = payload.pack()
    assert len(packed.encode("utf-8")) <= MAX_PAYLOAD_BYTES
    assert type(payload).unpack(packed) == payload
    assert BY_PREFIX[packed.split(":")[0]] is type(payload)


FORGED = [
    "rt:²",  # a Unicode digit that str.isdigit() accepts
    "rt:99999999999999999999",
    "rt:-1",
    "rt:0",
    "rt:",
    "rt",
    "rt:1:2",
    "os:1",
    "os:1:bogus",
    "os::claimed",
    "os:١٢:claimed",  # Arabic-Indic digits
    "os:12:claimed:extra",
    "oc:5:because",
    "cp:1:delete",
    "tk:1:open",
    "consent:maybe",
    "lang:fr",
    "rights:edit:password",
    "rights:nuke",
    "f:jump",
    "f:edit:" + "9" * 60,
    "kb:" + "x" * 80,
    "kb:a b",
    "kb:<script>",
    "badchoice:abc",
    "badchoice:99999999",
    "menu:extra",
    "edited:1",
]


@pytest.mark.parametrize("raw", FORGED)
def test_forged_payloads_are_refused(raw: str) -> None:
    assert all(kind.unpack(raw) is None for kind in KINDS)


def test_100k_random_payloads_never_raise() -> None:
    rng = random.Random(20261201)
    alphabet = string.printable + "²١٢đĐàáạ💥\x00\ud800"[:-1] + ":" * 10
    prefixes = [k.prefix for k in KINDS] + ["", "x"]
    refused = 0
    for _ in range(100_000):
        head = rng.choice(prefixes)
        tail = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 70)))
        raw = f"{head}:{tail}" if rng.random() < 0.9 else tail
        for kind in KINDS:
            parsed = kind.unpack(raw)
            if parsed is not None:
                assert parsed.pack() == raw or type(parsed).unpack(parsed.pack()) == parsed
        refused += APP.find_payload(raw) is None
    assert refused > 0  # the generator does produce unknown kinds too


def test_an_oversized_payload_cannot_be_built() -> None:
    class LongNote(Payload, prefix="longnote"):
        note: Annotated[str, Token(r"[a-z]{1,100}")]

    assert LongNote("a" * 50).pack() == "longnote:" + "a" * 50
    with pytest.raises(PayloadError):
        LongNote("a" * 60).pack()


def test_invalid_field_values_cannot_be_built() -> None:
    with pytest.raises(PayloadError):
        buttons.OrderStatusButton(0, "claimed").pack()  # row ids start at 1
    with pytest.raises(PayloadError):
        buttons.KbButton("has space").pack()


def test_trailing_defaults_are_left_out() -> None:
    assert buttons.FlowButton("back").pack() == "f:back"
    assert buttons.FlowButton("edit", "3").pack() == "f:edit:3"
    assert buttons.RightsButton("delete", "confirm").pack() == "rights:delete:confirm"
    assert buttons.RightsButton.unpack("rights:delete") == buttons.RightsButton("delete")


# ---- through the bot: a forged button gets the stale-button note, never an error ------------

CUSTOMER_FORGED = {
    "rt:²": "returns.order_not_found",
    "rt:99999999999999999999": "returns.order_not_found",
    "kb:no space": "flow.stale_button",
    "rights:edit:password": "flow.stale_button",
    "f:x": "flow.stale_button",
    "consent:maybe": "flow.stale_button",
}
STAFF_FORGED = {
    "os:1:bogus": "order.staff.not_found",
    "os:99999999999999999999:claimed": "order.staff.not_found",
    "cp:²:ack": "support.staff.not_found",
    "tk:1:open": "talk.staff.not_found",
}


@pytest.mark.parametrize(("raw", "key"), CUSTOMER_FORGED.items())
async def test_a_forged_customer_button_is_refused_politely(
    harness: Harness, raw: str, key: str
) -> None:
    await harness.consent("1")
    replies = await harness.press("1", raw)
    assert texts(replies) == [tr(key)]


@pytest.mark.parametrize(("raw", "key"), STAFF_FORGED.items())
async def test_a_forged_staff_button_is_refused_politely(
    harness: Harness, raw: str, key: str
) -> None:
    replies = await harness.staff(payload=raw)
    assert texts(replies) == [html.escape(tr(key))]

"""One voice and no dead ends (issue 11, points 8 and 9).

The catalogs speak with one persona and show customers no technical text; the consent summary
fits one phone screen; every "cannot" answer offers a next step (and the hotline where a person
is needed); /delete names what will go unanswered.
"""

from __future__ import annotations

import re

import pytest
from babel.messages.pofile import read_po

from handlers.context import policy_version
from handlers.i18n import LANGUAGES, LOCALES_DIR, t
from handlers.messages import Outbound
from storage.support import SupportThread, Ticket
from tests.helpers import Harness, flat_buttons, kb_reply, tr

HOTLINE = "0815336668"
# Keys written by others (the policy is the shop's own text; privacy_kb.po has its owner).
NOT_OURS = {"policy.full_text"}
# Staff type these English filter words as command arguments (`/orders shipping`).
COMMAND_ARGUMENTS = {"help.staff.orders"}


def messages(lang: str) -> dict[str, str]:
    """Every message of `lang` except privacy_kb.po and the policy text."""
    found: dict[str, str] = {}
    for path in sorted((LOCALES_DIR / lang / "LC_MESSAGES").glob("*.po")):
        if path.name == "privacy_kb.po":
            continue
        with path.open("rb") as fh:
            for message in read_po(fh, locale=lang):
                if message.id and message.string and message.id not in NOT_OURS:
                    found[str(message.id)] = str(message.string)
    return found


VI = messages("vi")
EN = messages("en")

UNDERSCORED = re.compile(r"\w+_\w+")
POLICY_HASH = re.compile(r"\bvi-[0-9a-f]{10}\b")
STATUS_WORDS = re.compile(
    r"\b(open|acknowledged|resolved|claimed|contacted|shipping|done|cancelled|delivery)\b"
)
# The bot calling itself anything but "em", or the shop "Shop"; the customer's own voice in a
# button ("Đơn hàng của tôi") is lower-case and allowed.
OTHER_PERSONA = re.compile(r"\b(?:[Cc]húng tôi|Tôi|[Ss]hop)\b")


class _Placeholders:
    """ALL_CAPS_WITH_UNDERSCORE words such as MÃ_ĐƠN or REFRESH_TOKEN."""

    @staticmethod
    def search(text: str) -> bool:
        return any(w.upper() == w and w.lower() != w for w in UNDERSCORED.findall(text))


PLACEHOLDER = _Placeholders()


def problems(pattern: re.Pattern[str] | _Placeholders, skip: set[str] = frozenset()) -> list[str]:  # type: ignore[assignment]
    return [
        f"{key}: {value!r}"
        for key, value in VI.items()
        if key not in skip and pattern.search(value)
    ]


def test_the_scan_covers_the_catalogs() -> None:
    assert len(VI) > 300 and "consent.notice" in VI and "policy.full_text" not in VI
    assert PLACEHOLDER.search("/order MÃ_ĐƠN") and not PLACEHOLDER.search("cơ_quan và số")
    assert POLICY_HASH.search(policy_version())
    assert STATUS_WORDS.search("lý do: delivery") and OTHER_PERSONA.search("Shop chưa nhận")
    assert not OTHER_PERSONA.search("📦 Đơn hàng của tôi")


def test_vietnamese_messages_have_no_placeholders_or_hashes() -> None:
    assert problems(PLACEHOLDER) == []
    assert problems(POLICY_HASH) == []


def test_vietnamese_messages_have_no_english_status_words() -> None:
    assert problems(STATUS_WORDS, COMMAND_ARGUMENTS) == []


def test_the_bot_speaks_as_em_in_every_vietnamese_message() -> None:
    assert problems(OTHER_PERSONA) == []


def test_staff_messages_never_call_staff_quy_khach() -> None:
    staff = {k: v for k, v in VI.items() if k.startswith("staff.") or ".staff." in k}
    assert staff and [k for k, v in staff.items() if "quý khách" in v.lower()] == []


def test_quotation_marks_are_consistent() -> None:
    assert [k for k, v in VI.items() if "“" in v or "”" in v] == []
    assert [k for k, v in EN.items() if "«" in v or "»" in v] == []


def test_the_hotline_lives_in_one_catalog_entry() -> None:
    for catalog in (VI, EN):
        assert [k for k, v in catalog.items() if HOTLINE in v] == ["core.hotline"]
    assert HOTLINE in t("vi", "returns.no_orders") and HOTLINE in t("en", "core.locked")


@pytest.mark.parametrize("lang", LANGUAGES)
def test_the_consent_summary_fits_one_phone_screen(lang: str) -> None:
    assert len(t(lang, "consent.notice")) <= 600


async def test_the_consent_summary_has_the_full_policy_one_tap_away(harness: Harness) -> None:
    replies = await harness.say("1", "/order")
    notice = next(m for m in replies if m.text == tr("consent.notice"))
    (read,) = [b for b in flat_buttons(notice) if b.label == tr("consent.btn.read_policy")]
    full = await harness.press("1", read.payload)
    assert any(tr("policy.full_text")[:80] in m.text for m in full)


# ---- no dead ends -----------------------------------------------------------------------------


def kinds(message: Outbound) -> set[str]:
    return {b.payload.partition(":")[0] for b in flat_buttons(message)}


@pytest.mark.parametrize("ask", ["/return", "tranh bi hong muon doi tra", "bảo hành tranh thế nào"])
async def test_returns_without_an_order_answer_from_the_policy_with_hotline_and_staff(
    harness: Harness, ask: str
) -> None:
    await harness.consent("1")
    replies = await harness.say("1", ask)
    # /return answers with its own screen; a typed question with the policy topic's answer.
    answer = next(
        m for m in replies if m.text in {tr("returns.no_orders"), kb_reply("kb.returns.answer")}
    )
    assert HOTLINE in answer.text
    assert "chưa thể tạo yêu cầu" not in answer.text
    if ask.startswith("/"):
        assert "talk" in kinds(answer)


async def test_empty_orders_and_complaints_offer_a_next_step_and_the_hotline(
    harness: Harness,
) -> None:
    await harness.consent("1")
    (orders,) = await harness.say("1", "/orders")
    assert orders.text == tr("order.none_yet") and HOTLINE in orders.text
    assert {"order", "talk"} <= kinds(orders)
    (tickets,) = await harness.say("1", "/complaints")
    assert tickets.text == tr("support.tickets.none") and HOTLINE in tickets.text
    assert {"complaint", "talk"} <= kinds(tickets)


async def test_mydata_with_nothing_stored_offers_ordering_and_staff(harness: Harness) -> None:
    await harness.consent("1")
    (message,) = await harness.say("1", "/mydata")
    assert tr("rights.mydata.empty_hint") in message.text
    assert {"order", "talk", "rights"} <= kinds(message)


async def test_mydata_shows_tickets_with_localized_kind_and_status(harness: Harness) -> None:
    await harness.consent("1")
    await harness.say("1", "/complaint")
    await harness.press("1", "f:pick:leak")
    await harness.say("1", "Giao sai tranh")
    await harness.press("1", "f:skip")
    await harness.press("1", "f:ok")
    (ticket,) = await harness.rows(Ticket)
    (message,) = await harness.say("1", "/mydata")
    assert (
        f"• {ticket.code} — {tr('support.kind.complaint')} — {tr('support.status.open')} — "
        in message.text
    )
    assert not STATUS_WORDS.search(message.text)
    assert tr("rights.mydata.empty_hint") not in message.text


# ---- /delete says what will go unanswered -----------------------------------------------------


async def test_delete_names_the_open_complaint_and_staff_thread_and_gives_the_hotline(
    harness: Harness,
) -> None:
    await harness.consent("1")
    await harness.say("1", "/complaint")
    await harness.press("1", "f:pick:leak")
    await harness.say("1", "Có người gọi điện biết tên và địa chỉ của em, em nghi bị lộ")
    await harness.press("1", "f:skip")
    await harness.press("1", "f:ok")
    await harness.press("1", "talk")
    (ticket,) = await harness.rows(Ticket)
    (thread,) = await harness.rows(SupportThread)

    (confirm,) = await harness.say("1", "/delete")
    items = f"{tr('talk.item')} {thread.code}; {tr('support.kind.complaint')} {ticket.code}"
    assert tr("rights.delete.unanswered", items=items) in confirm.text
    assert HOTLINE in confirm.text
    assert {"rights:delete:confirm", "rights:keep"} <= {b.payload for b in flat_buttons(confirm)}


async def test_delete_with_nothing_pending_lists_nothing(harness: Harness) -> None:
    await harness.consent("1")
    (confirm,) = await harness.say("1", "/delete")
    assert confirm.text == tr("rights.delete.explain")
    assert HOTLINE in confirm.text

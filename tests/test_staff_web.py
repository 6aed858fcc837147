"""The staff web page (issue 15) over HTTP, in-process (httpx's ASGI transport against the
real Starlette app and the real runtime): sign-in by single-use link, sessions, CSRF, roles,
search, the order page's reply and carrier hand-off, tickets with their SLA clocks, the
read-only pages, the CSV export and the dashboard."""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.staff_web import StaffWeb
from bot.web import build_app
from handlers.i18n import catalog
from handlers.messages import STAFF
from storage.models import AuditEntry, Disclosure
from storage.staff_web import StaffSession
from tests.helpers import (
    CONSOLE_CAPABILITIES,
    FakeClock,
    Harness,
    RecordingAdapter,
    joined,
    shop_config,
    to_chat,
    tr,
)
from tests.test_support_flows import file_complaint

BASE = "https://shop.example"
MEMBER = "777"  # in the staff chat, not an admin
TEMPLATES = Path(__file__).resolve().parent.parent / "bot" / "staff_web" / "templates"


@pytest.fixture
async def web(
    sessions: async_sessionmaker[AsyncSession], clock: FakeClock
) -> AsyncIterator[tuple[Harness, httpx.AsyncClient]]:
    capabilities = replace(CONSOLE_CAPABILITIES, messaging_window=timedelta(days=7))
    harness = Harness(
        sessions,
        clock=clock,
        config=shop_config(staff_web_url=f"{BASE}/staff"),
        adapter=RecordingAdapter("console", capabilities),
    )
    app = build_app(StaffWeb(harness.runtime).routes())
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
        try:
            yield harness, client
        finally:
            await harness.close()


async def link_for(harness: Harness, user_id: str = "900") -> str:
    """`/web` in the staff chat; returns the sign-in link's path."""
    replies = await harness.staff("/web", user_id=user_id)
    (message,) = [m for m in replies if "/staff/login/" in m.text]
    assert message.delete_after_seconds == 600  # the link leaves the chat when it expires
    url = re.search(r"https://\S+", html.unescape(message.text))
    assert url is not None
    return url.group(0).removeprefix(BASE)


async def sign_in(harness: Harness, client: httpx.AsyncClient, user_id: str = "900") -> str:
    """Signs in; returns the CSRF token of the new session."""
    path = await link_for(harness, user_id)
    page = await client.get(path)
    assert page.status_code == 200 and 'id="sign-in"' in page.text
    answer = await client.post(path)
    assert answer.status_code == 303 and answer.headers["location"] == "/staff/"
    await harness.deliver()  # the staff chat's "signed in" notice
    return csrf_of((await client.get("/staff/orders")).text)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None
    return found.group(1)


def flash(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'<div class="card flash"[^>]*>(.*?)</div>', page)]


# ---- signing in ------------------------------------------------------------------------------


async def test_a_link_signs_in_once_with_a_hardened_cookie(
    web: tuple[Harness, httpx.AsyncClient],
) -> None:
    harness, client = web
    path = await link_for(harness)
    assert (await client.get(path)).status_code == 200
    assert (await client.get(path)).status_code == 200  # a link preview does not spend it
    answer = await client.post(path)
    cookie = answer.headers["set-cookie"].lower()
    for attribute in ("secure", "httponly", "samesite=strict", "path=/staff"):
        assert attribute in cookie
    assert (await client.get("/staff/")).status_code == 200

    other = httpx.AsyncClient(transport=client._transport, base_url=BASE)  # another browser
    async with other:
        used = await other.post(path)
        assert used.status_code == 410
        assert html.escape(tr("staff.web.error.link")) in used.text
        assert (await other.get("/staff/")).status_code == 401
    sessions = await harness.rows(StaffSession)
    assert len(sessions) == 1 and sessions[0].token_hash not in answer.headers["set-cookie"]
    await harness.deliver()
    assert harness.delivered(STAFF)[-1].text == html.escape(
        tr("staff.web.signed_in", name="Staff 900")
    )
    audit = [a for a in await harness.rows(AuditEntry) if a.action == "web_signed_in"]
    assert audit[0].actor == "staff:web:900:Staff 900" and audit[0].detail == "admin"


async def test_an_expired_link_is_refused(web: tuple[Harness, httpx.AsyncClient]) -> None:
    harness, client = web
    path = await link_for(harness)
    harness.advance(minutes=11)
    assert (await client.get(path)).status_code == 410
    assert (await client.post(path)).status_code == 410
    assert (await client.get("/staff/")).status_code == 401
    assert (await client.post("/staff/login/forged-token")).status_code == 410


async def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    web: tuple[Harness, httpx.AsyncClient],
) -> None:
    harness, client = web
    code = await harness.place_order("1")
    order = await harness.order(code)
    csrf = await sign_in(harness, client)
    mark = harness.mark()
    for form in ({"status": "claimed"}, {"status": "claimed", "csrf": csrf[:-1] + "x"}):
        refused = await client.post(f"/staff/orders/{order.id}/status", data=form)
        assert refused.status_code == 403
        assert html.escape(tr("staff.web.error.csrf")) in refused.text
    assert (await harness.order(code)).status == "new" and harness.since(mark) == []
    ok = await client.post(
        f"/staff/orders/{order.id}/status", data={"status": "claimed", "csrf": csrf}
    )
    assert ok.status_code == 303
    assert (await harness.order(code)).status == "claimed"


async def test_sign_out_and_web_off_revoke_sessions(web: tuple[Harness, httpx.AsyncClient]) -> None:
    harness, client = web
    csrf = await sign_in(harness, client)
    assert (await client.post("/staff/logout", data={"csrf": csrf})).status_code == 303
    assert (await client.get("/staff/")).status_code == 401

    await sign_in(harness, client)
    (notice,) = await harness.staff("/web off")
    assert notice.text == html.escape(tr("staff.web.signed_out", count=1))
    assert (await client.get("/staff/")).status_code == 401


# ---- orders ---------------------------------------------------------------------------------


async def test_search_by_diacritic_free_name_or_any_phone_format(
    web: tuple[Harness, httpx.AsyncClient],
) -> None:
    harness, client = web
    lan = await harness.place_order("1", full_name="Nguyễn Thị Lan", phone="0912 345 678")
    ha = await harness.place_order("2", full_name="Phạm Thu Hà", phone="0903 111 222")
    csrf = await sign_in(harness, client)
    for query, expected in [
        ("nguyen thi lan", {lan}),
        ("THU HA", {ha}),
        ("+84 912 345 678", {lan}),
        ("0903.111.222", {ha}),
        ("345678", {lan}),
        (lan.lower(), {lan}),
        ("Hoàng", set()),
    ]:
        page = await client.post("/staff/orders", data={"q": query, "csrf": csrf})
        assert page.status_code == 200
        found = {code for code in (lan, ha) if code in page.text}
        assert found == expected, query
    # Filters by status travel in the URL, names and phones never do.
    assert 'method="post" action="/staff/orders"' in page.text
    filtered = await client.get("/staff/orders?status=new&q=nguyen")
    assert lan in filtered.text and ha in filtered.text  # ?q= is ignored


async def test_orders_filtered_by_payment_show_total_and_payment(
    web: tuple[Harness, httpx.AsyncClient],
) -> None:
    harness, client = web
    paid = await harness.place_order("1", full_name="Nguyễn Thị Lan", request="SD-001")
    unpaid = await harness.place_order("2", full_name="Phạm Thu Hà", request="DH-005")
    order = await harness.order(paid)
    await harness.staff(payload=f"pay:{order.id}:paid")  # the alert's one tap
    await sign_in(harness, client)
    for payment, expected in [("paid", {paid}), ("unpaid", {unpaid}), ("", {paid, unpaid})]:
        page = await client.get(f"/staff/orders?payment={payment}")
        assert page.status_code == 200
        assert {code for code in (paid, unpaid) if code in page.text} == expected, payment
    listing = (await client.get("/staff/orders?payment=paid")).text
    assert html.escape(tr("catalog.payment.paid")) in listing
    assert "4.500.000" in listing  # the order's total, as the shop writes prices
    assert (await harness.order(paid)).payment_status == "paid"


async def test_order_page_reply_and_confirmed_carrier_hand_off(
    web: tuple[Harness, httpx.AsyncClient],
) -> None:
    harness, client = web
    code = await harness.place_order(
        "1", full_name="Ngô Bảo Châu", phone="0987 654 321", email="chau@example.com"
    )
    order = await harness.order(code)
    await harness.say("1", "Shop ơi khi nào giao ạ?")
    csrf = await sign_in(harness, client, MEMBER)

    detail = await client.get(f"/staff/orders/{order.id}")
    assert "Shop ơi khi nào giao ạ?" in html.unescape(detail.text)
    assert html.escape(tr("staff.web.window_open", until="")[:20]) in detail.text

    mark = harness.mark()
    sent = await client.post(
        f"/staff/orders/{order.id}/reply", data={"text": "Dạ thứ Sáu ạ", "csrf": csrf}
    )
    assert sent.status_code == 303
    await harness.deliver()
    assert [m.text for m in harness.since(mark) if m.chat_id == "1"] == [
        tr("order.staff_message", code=code, text="Dạ thứ Sáu ạ")
    ]
    after = await client.get(f"/staff/orders/{order.id}")
    assert tr("order.staff.relayed", code=code) in flash(after.text)
    assert flash((await client.get(f"/staff/orders/{order.id}")).text) == []  # shown once

    ship = await client.get(f"/staff/orders/{order.id}/ship")
    slip = re.search(r'<pre class="slip" id="slip">(.*?)</pre>', ship.text, re.S)
    assert slip is not None and "chau@example.com" not in ship.text
    assert html.unescape(slip.group(1)) == tr(
        "order.carrier_slip",
        carrier="Giao Hàng Nhanh",
        code=code,
        name="Ngô Bảo Châu",
        phone="0987 654 321",
        address=order.address,
    )
    assert (await harness.order(code)).status == "new"  # showing it changed nothing
    check = re.search(r'name="check" value="([^"]+)"', ship.text)
    assert check is not None
    mark = harness.mark()
    done = await client.post(
        f"/staff/orders/{order.id}/ship", data={"check": check.group(1), "csrf": csrf}
    )
    assert done.status_code == 303
    await harness.deliver()
    assert (await harness.order(code)).status == "shipping"
    assert [m.text for m in harness.since(mark) if m.chat_id == "1"] == [
        tr("order.notify.shipping", code=code, carrier="Giao Hàng Nhanh")
    ]
    (disclosure,) = await harness.rows(Disclosure)
    assert disclosure.staff_actor == "staff:web:777:Staff 777"
    history = (await harness.order(code)).history
    assert history[-1].actor_name == "Staff 777"
    # The team sees it in the staff chat too.
    assert any(code in m.text for m in harness.since(mark) if m.chat_id == STAFF)


async def test_a_closed_zalo_window_is_shown_and_the_reply_not_attempted(
    web: tuple[Harness, httpx.AsyncClient],
) -> None:
    harness, client = web
    code = await harness.place_order("1", phone="0912 345 678")
    order = await harness.order(code)
    harness.advance(days=8)
    csrf = await sign_in(harness, client)
    page = await client.get(f"/staff/orders/{order.id}")
    assert "0912 345 678" in page.text and 'class="card warn" id="window"' in page.text
    mark = harness.mark()
    await client.post(f"/staff/orders/{order.id}/reply", data={"text": "Alo", "csrf": csrf})
    await harness.deliver()
    assert [m for m in harness.since(mark) if m.chat_id == "1"] == []
    notes = flash((await client.get(f"/staff/orders/{order.id}")).text)
    assert notes and notes[0].startswith("⚠️ Khách Zalo không nhận được tin nhắn từ ")


async def test_cancel_from_the_page_needs_a_reason(web: tuple[Harness, httpx.AsyncClient]) -> None:
    harness, client = web
    code = await harness.place_order("1")
    order = await harness.order(code)
    csrf = await sign_in(harness, client)
    refused = await client.post(
        f"/staff/orders/{order.id}/cancel", data={"reason": "", "note": " ", "csrf": csrf}
    )
    assert refused.status_code == 400 and (await harness.order(code)).status == "new"
    await client.post(
        f"/staff/orders/{order.id}/cancel",
        data={"reason": "out_of_stock", "note": "", "csrf": csrf},
    )
    assert (await harness.order(code)).status == "cancelled"


async def test_bulk_export_is_for_admins_only_and_audited(
    web: tuple[Harness, httpx.AsyncClient],
) -> None:
    harness, client = web
    await harness.place_order("1", full_name="Nguyễn Thị Lan")
    await sign_in(harness, client, MEMBER)
    assert (await client.get("/staff/export.csv")).status_code == 403
    await sign_in(harness, client, "900")
    answer = await client.get("/staff/export.csv")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    text = answer.content.decode("utf-8-sig")
    assert text.startswith("Mã đơn,Trạng thái,Ngày đặt") and "Nguyễn Thị Lan" in text
    assert [a.action for a in await harness.rows(AuditEntry)][-1] == "orders_exported"


async def test_admins_hide_and_reprice_works_on_the_web_page_open_orders_keep_theirs(
    web: tuple[Harness, httpx.AsyncClient],
) -> None:
    harness, client = web
    before = await harness.place_order("1", request="SD-001")  # confirmed at 4.500.000 ₫
    await sign_in(harness, client, MEMBER)
    assert (await client.get("/staff/products")).status_code == 403  # admins only
    csrf = await sign_in(harness, client, "900")
    page = await client.get("/staff/products")
    assert page.status_code == 200 and "SD-001" in page.text and 'value="4500000"' in page.text

    change = "/staff/products/SD-001"
    refused = await client.post(change, data={"csrf": csrf, "action": "price", "price": "abc"})
    assert refused.status_code == 400
    assert html.escape(tr("catalog.admin.bad_price")) in refused.text
    assert (await client.post(change, data={"action": "hide"})).status_code == 403  # no CSRF
    moved = await client.post(change, data={"csrf": csrf, "action": "price", "price": "5.200.000"})
    assert moved.status_code == 303
    assert (await client.post(change, data={"csrf": csrf, "action": "hide"})).status_code == 303

    # In effect at once: customers no longer see the work; the open order keeps its price.
    categories = to_chat(await harness.say("2", "/catalog"), "2")
    oil = harness.last_buttons("2")[0]  # the first kind: oil paintings
    works = to_chat(await harness.press("2", oil.payload), "2")
    assert "SD-004" in joined(works) and "SD-001" not in joined(categories + works)
    assert (await harness.order(before)).price_vnd == 4_500_000
    (await client.post(change, data={"csrf": csrf, "action": "show"}))
    after = await harness.place_order("3", request="SD-001")
    assert (await harness.order(after)).price_vnd == 5_200_000
    actions = [a.action for a in await harness.rows(AuditEntry) if a.subject == "SD-001"]
    assert actions == ["product_price", "product_hidden", "product_shown"]
    listing = (await client.get("/staff/products")).text
    assert 'value="5200000"' in listing


# ---- tickets, read-only pages, dashboard ----------------------------------------------------


async def test_tickets_urgent_first_with_sla_clocks_reply_ack_resolve(
    web: tuple[Harness, httpx.AsyncClient],
) -> None:
    harness, client = web
    normal = await file_complaint(harness, "1", "service", "Khung tranh bị móp một góc")
    urgent = await file_complaint(harness, "2", "leak", "Có người lạ gọi biết tên địa chỉ tôi")
    harness.advance(hours=2)
    csrf = await sign_in(harness, client)
    page = (await client.get("/staff/tickets")).text
    assert page.index(urgent.code) < page.index(normal.code)
    assert html.escape(tr("staff.web.sla.late", time="")[:6]) in page  # urgent: 1 h, now late
    assert tr("staff.web.sla.left", time="1 giờ 5") in html.unescape(page)  # normal: 4 h

    mark = harness.mark()
    await client.post(
        f"/staff/tickets/{normal.id}/reply", data={"text": "Shop đang kiểm tra ạ", "csrf": csrf}
    )
    await harness.deliver()
    assert [m.text for m in harness.since(mark) if m.chat_id == "1"] == [
        tr("staff.ticket_message", code=normal.code, text="Shop đang kiểm tra ạ")
    ]
    await client.post(f"/staff/tickets/{urgent.id}/ack", data={"csrf": csrf})
    await client.post(
        f"/staff/tickets/{urgent.id}/resolve", data={"text": "Đã khóa tài khoản lạ", "csrf": csrf}
    )
    resolved = (await client.get(f"/staff/tickets/{urgent.id}")).text
    assert tr("support.status.resolved") in resolved


async def test_read_only_pages_and_the_dashboard(web: tuple[Harness, httpx.AsyncClient]) -> None:
    harness, client = web
    code = await harness.place_order("1")
    await harness.hand_to_carrier((await harness.order(code)).id)
    await file_complaint(harness, "2", "other", "Muốn góp ý về website ạ")
    await sign_in(harness, client)
    privacy = (await client.get("/staff/privacy")).text
    assert "Giao Hàng Nhanh" in privacy and "code, full_name, phone, address" in privacy
    audit = (await client.get("/staff/audit")).text
    assert "order_shipping" in audit and "web_signed_in" in audit
    board = (await client.get("/staff/")).text
    assert board.count("<svg") == 2 and 'id="median"' in board
    for page in ("/staff/privacy", "/staff/audit", "/staff/"):
        answer = await client.get(page)
        assert answer.headers["cache-control"] == "no-store"
        assert "default-src 'none'" in answer.headers["content-security-policy"]
        assert "http://" not in answer.text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    english = await client.post(
        "/staff/lang", data={"lang": "en", "csrf": csrf_of(board), "next": "/staff/"}
    )
    assert english.status_code == 303
    assert tr("staff.web.dash.title", "en") in (await client.get("/staff/")).text


def test_every_template_message_id_exists_in_both_languages() -> None:
    used = set()
    for template in TEMPLATES.glob("*.html"):
        used |= set(re.findall(r"_\('([a-z_]+\.[a-z_.]*[a-z_])'\s*[,)]", template.read_text()))
    assert used
    for lang in ("vi", "en"):
        assert sorted(key for key in used if key not in catalog(lang)) == []


@pytest.mark.subprocess
def test_web_login_in_a_terminal_prints_a_link(tmp_path: Path) -> None:
    from tests.helpers import run_cli

    out = run_cli(
        tmp_path,
        "web-login",
        "Chị Hạnh",
        "--admin",
        STAFF_WEB_ENABLED="true",
        STAFF_WEB_PUBLIC_URL="https://shop.example",
    )
    assert re.fullmatch(r"https://shop\.example/staff/login/[\w-]{40,}\n", out)

"""The staff web page: orders, tickets, data-rights events, the audit log and a dashboard,
server-rendered (Jinja2, autoescaped), Vietnamese first with an English toggle, no
JavaScript and nothing from another site.

Security:
- Sign-in only through a single-use link (`/web` in the staff chat, or `python -m bot
  web-login NAME`), valid 10 minutes. Opening the link shows a button; only pressing it
  (POST) spends the link, so a chat's link preview cannot use it up.
- Sessions are rows in the database (revocable: sign out, `/web off`, the sessions page);
  the cookie holds a random secret whose digest is stored; Secure, HttpOnly,
  SameSite=Strict, path /staff.
- Every POST carries the session's CSRF token (else 403); every action is audited with the
  staff member's name; admin-only pages follow STAFF_ADMIN_IDS.
- Nothing personal in URLs: searches are POSTed; pages are `no-store`, `no-referrer`, and a
  strict Content-Security-Policy; the server's access log is off (bot/web.py).

Actions run the staff chat's own handlers in a `Context` of the member (`staff_context`),
so chat and page share one implementation of each action.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from bot.runtime import Runtime
from bot.staff_web.charts import bar_chart
from handlers import staff_desk
from handlers.buttons import CarrierConfirmButton, OrderStatusButton
from handlers.context import Context, staff_notice
from handlers.i18n import LANGUAGES, t
from handlers.messages import strip_html
from handlers.orders import catalog_admin
from handlers.orders import staff as order_staff
from handlers.orders.catalog import format_vnd
from handlers.orders.catalog_store import from_row
from handlers.orders.export import local_stamp, orders_csv
from handlers.orders.payments import parse_amount
from handlers.orders.search import search_orders
from handlers.orders.service import (
    CANCELLED,
    SHIPPING,
    TRANSITIONS,
    carrier_slip,
    local_time,
    status_label,
)
from handlers.orders.validators import format_phone_display
from handlers.staff_desk import StaffMember
from handlers.support import complaints, talk
from storage.catalog import PAID, REFUNDED, UNPAID
from storage.repositories import UnitOfWork
from storage.staff_web import StaffSession, digest
from storage.support import SupportThread, Ticket, thread_tag, ticket_tag

COOKIE = "vav_staff"
TEMPLATES = Path(__file__).resolve().parent / "templates"
MAX_FORM_BYTES = 16 * 1024
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}
PRIVACY_ACTIONS = (
    "data_exported",
    "mydata_viewed",
    "customer_erased",
    "consent_withdrawn",
    "profile_field_changed",
    "legal_disclosure",
    "customer_locked",
    "customer_unlocked",
)
STATUS_ACTIONS = ("claimed", "contacted", "done")


class Refused(Exception):
    """Answer with `status` and a short page (bad CSRF token, not an admin, …)."""

    def __init__(self, status: int, key: str) -> None:
        super().__init__(key)
        self.status = status
        self.key = key


class Page:
    """What one request works with: the unit of work, the session, the form, the language."""

    def __init__(
        self, web: StaffWeb, request: Request, uow: UnitOfWork, session: StaffSession | None
    ) -> None:
        self.web = web
        self.request = request
        self.uow = uow
        self.session = session
        # Read now: a commit or rollback expires the row, and the page renders after one.
        self.session_id = session.id if session is not None else None
        self.csrf = session.csrf_token if session is not None else ""
        self._member = (
            StaffMember(
                session.staff_id,
                session.staff_name,
                staff_desk.member_role(web.runtime.config, session.staff_id, session.role),
            )
            if session is not None
            else None
        )
        self.form: dict[str, str] = {}
        self.queued = False  # the handler queued messages: deliver after the commit
        self.now = web.runtime.clock()
        lang = session.language if session else request.query_params.get("lang", "vi")
        self.lang = lang if lang in LANGUAGES else "vi"

    @property
    def member(self) -> StaffMember:
        assert self._member is not None
        return self._member

    def tr(self, key: str, **params: object) -> str:
        return t(self.lang, key, **params)

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        flash = self.web.flashes.pop(self.session_id, []) if self.session_id else []
        body = self.web.env.get_template(template).render(
            _=self.tr,
            lang=self.lang,
            member=self._member,
            csrf=self.csrf,
            flash=flash,
            local_time=local_time,
            status_label=lambda s: status_label(self.lang, s),
            phone=format_phone_display,
            vnd=format_vnd,
            **values,
        )
        return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)

    async def read_form(self) -> None:
        raw = await self.request.body()
        if len(raw) > MAX_FORM_BYTES:
            raise Refused(413, "staff.web.error.too_large")
        parsed = parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True)
        self.form = {key: values[0] for key, values in parsed.items()}

    def check_csrf(self) -> None:
        sent = self.form.get("csrf", "")
        if not self.csrf or not secrets.compare_digest(sent.encode(), self.csrf.encode()):
            raise Refused(403, "staff.web.error.csrf")

    def require_admin(self) -> None:
        if not self.member.is_admin:
            raise Refused(403, "staff.web.error.admin_only")

    async def act(self, action: Callable[[Context], Awaitable[object]]) -> None:
        """Run a staff action as the member, commit, deliver, and keep what the staff chat
        was told as the flash of the next page."""
        config = self.web.runtime.config
        ctx = staff_desk.staff_context(
            self.uow, config, self.web.runtime.app, self.now, self.member
        )
        await action(ctx)
        await self.uow.commit()
        self.web.deliver()
        notes = [
            strip_html(m.text)
            for m in ctx.sent
            if m.chat_id == config.staff_chat_id and m.edit_of is None and m.document is None
        ]
        assert self.session_id is not None
        self.web.flashes.setdefault(self.session_id, []).extend(notes)


Handler = Callable[[Page], Awaitable[Response]]


class StaffWeb:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.env = Environment(
            loader=FileSystemLoader(TEMPLATES),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self.flashes: dict[int, list[str]] = {}  # per session: notes for the next page
        self._deliveries: set[asyncio.Task[object]] = set()

    def deliver(self) -> None:
        """Send what the action queued now, without making the browser wait for it."""
        task: asyncio.Task[object] = asyncio.create_task(self.runtime.deliver_due())
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    # ---- routing -------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        def page(handler: Handler, *, post: bool = False, signed_in: bool = True) -> Any:
            async def endpoint(request: Request) -> Response:
                return await self._serve(request, handler, post, signed_in)

            return endpoint

        get, post = ["GET"], ["POST"]
        routes = [
            Route("/", page(dashboard_page), methods=get),
            Route("/login/{secret}", page(login_page, signed_in=False), methods=get),
            Route("/login/{secret}", page(sign_in, post=True, signed_in=False), methods=post),
            Route("/logout", page(sign_out, post=True), methods=post),
            Route("/lang", page(switch_language, post=True), methods=post),
            Route("/orders", page(orders_page), methods=get),
            Route("/orders", page(orders_page, post=True), methods=post),
            Route("/orders/{id:int}", page(order_page), methods=get),
            Route("/orders/{id:int}/reply", page(order_reply, post=True), methods=post),
            Route("/orders/{id:int}/status", page(order_status, post=True), methods=post),
            Route("/orders/{id:int}/ship", page(ship_page), methods=get),
            Route("/orders/{id:int}/ship", page(ship_confirmed, post=True), methods=post),
            Route("/orders/{id:int}/cancel", page(order_cancel, post=True), methods=post),
            Route("/tickets", page(tickets_page), methods=get),
            Route("/tickets/{id:int}", page(ticket_page), methods=get),
            Route("/tickets/{id:int}/{action}", page(ticket_action, post=True), methods=post),
            Route("/threads/{id:int}", page(thread_page), methods=get),
            Route("/threads/{id:int}/{action}", page(thread_action, post=True), methods=post),
            Route("/privacy", page(privacy_page), methods=get),
            Route("/audit", page(audit_page), methods=get),
            Route("/export.csv", page(export_csv), methods=get),
            Route("/products", page(products_page), methods=get),
            Route("/products/{code}", page(product_change, post=True), methods=post),
            Route("/sessions", page(sessions_page), methods=get),
            Route("/sessions/{id:int}/revoke", page(revoke_session, post=True), methods=post),
        ]
        return [Mount("/staff", routes=routes)]

    async def _serve(
        self, request: Request, handler: Handler, post: bool, signed_in: bool
    ) -> Response:
        async with UnitOfWork(self.runtime.sessions) as uow:
            session = None
            cookie = request.cookies.get(COOKIE, "")
            if cookie:
                session = await uow.staff_web.live_session(cookie, self.runtime.clock())
            page = Page(self, request, uow, session)
            try:
                if signed_in and session is None:
                    raise Refused(401, "staff.web.error.signed_out")
                if post:
                    await page.read_form()
                    if signed_in:
                        page.check_csrf()
                if session is not None:
                    session.last_seen_at = page.now
                response = await handler(page)
                await uow.commit()
                if page.queued:
                    self.deliver()
                return response
            except Refused as refused:
                await uow.rollback()
                return page.render("error.html", status=refused.status, message=refused.key)


def redirect(url: str) -> Response:
    return RedirectResponse(url, status_code=303, headers=SECURITY_HEADERS)


def _int(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _date(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


# ---- signing in and out ------------------------------------------------------------------


async def login_page(page: Page) -> Response:
    login = await page.uow.staff_web.login(page.request.path_params["secret"])
    if login is None or login.used_at is not None or login.expires_at <= page.now:
        return page.render("error.html", status=410, message="staff.web.error.link")
    return page.render("login.html", name=login.staff_name)


async def sign_in(page: Page) -> Response:
    uow = page.uow
    login = await uow.staff_web.login(page.request.path_params["secret"])
    if (
        login is None
        or login.used_at is not None
        or login.expires_at <= page.now
        or not await uow.staff_web.spend_login(login, page.now)
    ):
        await uow.commit()
        return page.render("error.html", status=410, message="staff.web.error.link")
    secret = secrets.token_urlsafe(32)
    role = staff_desk.member_role(page.web.runtime.config, login.staff_id, login.role)
    await uow.staff_web.add_session(
        StaffSession(
            token_hash=digest(secret),
            csrf_token=secrets.token_urlsafe(32),
            login_id=login.id,
            staff_id=login.staff_id,
            staff_name=login.staff_name,
            role=role,
            language=page.lang,
            created_at=page.now,
            last_seen_at=page.now,
            expires_at=page.now + staff_desk.SESSION_TTL,
        )
    )
    member = StaffMember(login.staff_id, login.staff_name, role)
    actor = f"staff:{staff_desk.WEB_CHANNEL}:{member.id}:{member.name}"[:64]
    await uow.audit.add(page.now, actor, "web_signed_in", detail=role)
    # The team sees every sign-in: a link used by someone else does not go unnoticed.
    await staff_notice(
        uow, page.web.runtime.config, page.now, "staff.web.signed_in", name=member.name
    )
    page.queued = True
    response = redirect("/staff/")
    response.set_cookie(
        COOKIE,
        secret,
        max_age=int(staff_desk.SESSION_TTL.total_seconds()),
        path="/staff",
        secure=True,
        httponly=True,
        samesite="strict",
    )
    return response


def _actor(page: Page) -> str:
    member = page.member
    return f"staff:{staff_desk.WEB_CHANNEL}:{member.id}:{member.name}"[:64]


async def sign_out(page: Page) -> Response:
    assert page.session is not None
    page.session.revoked_at = page.now
    await page.uow.audit.add(page.now, _actor(page), "web_signed_out")
    response = redirect("/staff/")  # the "not signed in" page says how to sign in again
    response.delete_cookie(COOKIE, path="/staff", secure=True, httponly=True, samesite="strict")
    return response


async def switch_language(page: Page) -> Response:
    assert page.session is not None
    if page.form.get("lang") in LANGUAGES:
        page.session.language = page.form["lang"]
    back = page.form.get("next", "/staff/")
    return redirect(back if back.startswith("/staff/") else "/staff/")


async def sessions_page(page: Page) -> Response:
    sessions = await page.uow.staff_web.live_sessions(page.now)
    if not page.member.is_admin:
        sessions = [s for s in sessions if s.staff_id == page.member.id]
    return page.render("sessions.html", sessions=sessions, current=page.session_id)


async def revoke_session(page: Page) -> Response:
    target = await page.uow.staff_web.session_by_id(page.request.path_params["id"])
    if target is None or not (page.member.is_admin or target.staff_id == page.member.id):
        raise Refused(404, "staff.web.error.not_found")
    target.revoked_at = page.now
    await page.uow.audit.add(page.now, _actor(page), "web_session_revoked", subject=str(target.id))
    return redirect("/staff/sessions")


# ---- dashboard -----------------------------------------------------------------------------


async def dashboard_page(page: Page) -> Response:
    board = await staff_desk.dashboard(page.uow, page.now)
    per_day = bar_chart(
        [(day.strftime("%d/%m"), count) for day, count in board.orders_per_day],
        page.tr("staff.web.dash.orders_per_day"),
    )
    by_age = bar_chart(
        [(page.tr(key), count) for key, count in board.open_by_age],
        page.tr("staff.web.dash.open_by_age"),
        width=480,
    )
    median = (
        staff_desk.duration_text(page.lang, board.median_first_answer)
        if board.median_first_answer is not None
        else None
    )
    return page.render(
        "dashboard.html", per_day=per_day, by_age=by_age, median=median, answered=board.answered
    )


# ---- orders --------------------------------------------------------------------------------

PAYMENT_STATUSES = (UNPAID, PAID, REFUNDED)


async def orders_page(page: Page) -> Response:
    source = page.form if page.form else dict(page.request.query_params)
    status = source.get("status") or None
    status = status if status in TRANSITIONS else None
    payment = source.get("payment") or None
    payment = payment if payment in PAYMENT_STATUSES else None
    day_from, day_to = _date(source.get("from")), _date(source.get("to"))
    query = page.form.get("q", "")  # POSTed only: names and phones stay out of URLs
    orders = await search_orders(page.uow, query, status, day_from, day_to, payment=payment)
    return page.render(
        "orders.html",
        orders=orders,
        statuses=list(TRANSITIONS),
        selected=status or "",
        payments=PAYMENT_STATUSES,
        selected_payment=payment or "",
        day_from=source.get("from", ""),
        day_to=source.get("to", ""),
        query=query,
    )


async def _order(page: Page) -> Any:
    order = await page.uow.orders.by_id(page.request.path_params["id"])
    if order is None or order.erased_at is not None:
        raise Refused(404, "staff.web.error.not_found")
    return order


async def order_page(page: Page) -> Response:
    order = await _order(page)
    uow = page.uow
    window, closed = await staff_desk.window_text(
        uow, page.web.runtime.config, page.lang, order.customer_id, page.now
    )
    messages = await uow.staff_web.thread(f"order:{order.id}")
    tickets = [
        ticket
        for ticket in await uow.support.tickets_of(order.customer_id or 0)
        if ticket.order_id == order.id
    ]
    allowed = TRANSITIONS[order.status]
    return page.render(
        "order_detail.html",
        order=order,
        window=window,
        window_closed=closed,
        messages=messages,
        tickets=tickets,
        actions=[s for s in STATUS_ACTIONS if s in allowed],
        can_ship=SHIPPING in allowed,
        can_cancel=CANCELLED in allowed,
        reasons=order_staff.CANCEL_REASONS,
    )


async def order_reply(page: Page) -> Response:
    order = await _order(page)
    text = page.form.get("text", "")
    await page.act(lambda ctx: order_staff.reply_to_order(ctx, order, text))
    return redirect(f"/staff/orders/{order.id}")


async def order_status(page: Page) -> Response:
    order = await _order(page)
    status = page.form.get("status", "")
    if status not in STATUS_ACTIONS:
        raise Refused(400, "staff.web.error.bad_request")
    button = OrderStatusButton(order.id, status)  # type: ignore[arg-type]
    await page.act(lambda ctx: order_staff.status_button(ctx, button))
    return redirect(f"/staff/orders/{order.id}")


async def ship_page(page: Page) -> Response:
    order = await _order(page)
    ctx = staff_desk.staff_context(
        page.uow, page.web.runtime.config, page.web.runtime.app, page.now, page.member
    )
    slip = carrier_slip(ctx, order)
    return page.render(
        "ship.html",
        order=order,
        slip=slip,
        check=order_staff.slip_check(slip),
        carrier=page.web.runtime.config.carrier_name,
        allowed=SHIPPING in TRANSITIONS[order.status],
    )


async def ship_confirmed(page: Page) -> Response:
    order = await _order(page)
    check = page.form.get("check", "")
    if not check.isalnum() or len(check) > 32:
        raise Refused(400, "staff.web.error.bad_request")
    button = CarrierConfirmButton(order.id, check)
    await page.act(lambda ctx: order_staff.carrier_confirmed(ctx, button))
    return redirect(f"/staff/orders/{order.id}")


async def order_cancel(page: Page) -> Response:
    order = await _order(page)
    reason = page.form.get("reason", "")
    note = page.form.get("note", "").strip()[:300]
    if reason in order_staff.CANCEL_REASONS:
        note = t(order.language, f"order.cancel_reason.{reason}") + (f": {note}" if note else "")
    if not note:
        raise Refused(400, "staff.web.error.cancel_reason")

    async def cancel(ctx: Context) -> None:
        if CANCELLED not in TRANSITIONS[order.status]:
            await ctx.to_staff(ctx.staff_text("order.staff.cannot_cancel", code=order.code))
            return
        await order_staff.change_status(ctx, order, CANCELLED, note=note)

    await page.act(cancel)
    return redirect(f"/staff/orders/{order.id}")


# ---- catalog (admins) -------------------------------------------------------------------


async def products_page(page: Page) -> Response:
    page.require_admin()
    rows = await page.uow.catalog.rows()
    return page.render("products.html", products=[from_row(row) for row in rows])


async def product_change(page: Page) -> Response:
    """Hide, show or reprice a work, through the same functions as the staff chat's card:
    audited, announced in the staff chat, in effect for the next message."""
    page.require_admin()
    row = await page.uow.catalog.by_code(page.request.path_params["code"])
    if row is None:
        raise Refused(404, "staff.web.error.not_found")
    action = page.form.get("action", "")
    if action in ("hide", "show"):
        await page.act(lambda ctx: catalog_admin.set_hidden(ctx, row, action == "hide"))
    elif action == "price" and (amount := parse_amount(page.form.get("price", ""))) is not None:
        await page.act(lambda ctx: catalog_admin.set_price(ctx, row, amount))
    else:
        refusal = "catalog.admin.bad_price" if action == "price" else "staff.web.error.bad_request"
        raise Refused(400, refusal)
    return redirect("/staff/products")


async def export_csv(page: Page) -> Response:
    page.require_admin()
    orders = await page.uow.orders.all_for_export()
    content = orders_csv(page.web.runtime.config.default_language, orders)
    await page.uow.audit.add(
        page.now, _actor(page), "orders_exported", detail=f"rows={len(orders)}"
    )
    return Response(
        content,
        media_type="text/csv; charset=utf-8",
        headers={
            **SECURITY_HEADERS,
            "Content-Disposition": f'attachment; filename="don-hang-{local_stamp(page.now)}.csv"',
        },
    )


# ---- tickets and talk-to-staff threads -----------------------------------------------------


async def tickets_page(page: Page) -> Response:
    config = page.web.runtime.config
    rows = []
    tickets = sorted(  # urgent first, then not yet taken up, then the oldest
        await page.uow.staff_web.open_tickets(),
        key=lambda t: (not t.urgent, t.status != "open", t.created_at),
    )
    for ticket in tickets:
        due = staff_desk.sla_due(config, ticket)
        late = due is not None and page.now >= due
        clock = (
            page.tr(
                "staff.web.sla.late" if late else "staff.web.sla.left",
                time=staff_desk.duration_text(page.lang, abs(page.now - due)),
            )
            if due is not None
            else page.tr(
                "staff.web.sla.taken",
                time=staff_desk.duration_text(
                    page.lang, (ticket.acknowledged_at or page.now) - ticket.created_at
                ),
            )
        )
        rows.append(
            {
                "ticket": ticket,
                "what": complaints.describe(page.lang, ticket),
                "age": staff_desk.duration_text(page.lang, page.now - ticket.created_at),
                "clock": clock,
                "late": late,
            }
        )
    threads = [
        {"thread": thread, "age": staff_desk.duration_text(page.lang, page.now - thread.opened_at)}
        for thread in await page.uow.staff_web.open_threads()
    ]
    return page.render("tickets.html", rows=rows, threads=threads)


async def _ticket(page: Page) -> Ticket:
    ticket = await page.uow.support.ticket(page.request.path_params["id"])
    if ticket is None or ticket.erased_at is not None:
        raise Refused(404, "staff.web.error.not_found")
    return ticket


async def ticket_page(page: Page) -> Response:
    ticket = await _ticket(page)
    window, _closed = await staff_desk.window_text(
        page.uow, page.web.runtime.config, page.lang, ticket.customer_id, page.now
    )
    order = await page.uow.orders.by_id(ticket.order_id) if ticket.order_id else None
    return page.render(
        "ticket.html",
        ticket=ticket,
        what=complaints.describe(page.lang, ticket),
        order=order,
        window=window,
        messages=await page.uow.staff_web.thread(ticket_tag(ticket)),
    )


async def ticket_action(page: Page) -> Response:
    ticket = await _ticket(page)
    action = page.request.path_params["action"]
    text = page.form.get("text", "")
    if action == "ack":
        await page.act(lambda ctx: complaints.acknowledge(ctx, ticket))
    elif action == "reply":
        await page.act(lambda ctx: complaints.interim_reply(ctx, ticket, text))
    elif action == "resolve":
        await page.act(lambda ctx: complaints.resolve(ctx, ticket, text))
    else:
        raise Refused(404, "staff.web.error.not_found")
    return redirect(f"/staff/tickets/{ticket.id}")


async def _thread(page: Page) -> SupportThread:
    thread = await page.uow.support.thread(page.request.path_params["id"])
    if thread is None:
        raise Refused(404, "staff.web.error.not_found")
    return thread


async def thread_page(page: Page) -> Response:
    thread = await _thread(page)
    window, _closed = await staff_desk.window_text(
        page.uow, page.web.runtime.config, page.lang, thread.customer_id, page.now
    )
    return page.render(
        "thread.html",
        thread=thread,
        window=window,
        messages=await page.uow.staff_web.thread(thread_tag(thread)),
    )


async def thread_action(page: Page) -> Response:
    thread = await _thread(page)
    action = page.request.path_params["action"]
    if action == "reply":
        text = page.form.get("text", "")
        await page.act(lambda ctx: talk.answer_in_thread(ctx, thread, text))
    elif action == "close":
        await page.act(lambda ctx: talk.close_thread(ctx, thread))
    else:
        raise Refused(404, "staff.web.error.not_found")
    return redirect(f"/staff/threads/{thread.id}")


# ---- read-only: data-rights events and the audit log --------------------------------------


async def privacy_page(page: Page) -> Response:
    return page.render(
        "privacy.html",
        disclosures=await page.uow.staff_web.disclosures(),
        events=await page.uow.staff_web.audit(actions=PRIVACY_ACTIONS),
    )


async def audit_page(page: Page) -> Response:
    return page.render("audit.html", entries=await page.uow.staff_web.audit())

"""The composition root: every feature's router, in order, and the main menu.

Read top to bottom, `ROUTERS` is the precedence of the whole bot: for a command or button the
one router that declares it answers; free text outside a flow is offered to each router's text
handlers in this order until one takes it, then the fallback menu; staff-chat messages the
same. Inbound filters (flood control) run before any routing, in this order too.
"""

from __future__ import annotations

from handlers import staff_desk
from handlers.buttons import (
    CatalogButton,
    ComplaintButton,
    KbButton,
    MyDataButton,
    OrderButton,
    ReturnsButton,
    TalkButton,
)
from handlers.flows import consent, core
from handlers.orders import catalog_admin, payments, products
from handlers.orders import flow as orders
from handlers.orders import staff as order_staff
from handlers.rights import commands as rights
from handlers.router import Composition, MenuItem, Router
from handlers.support import abuse, answers, complaints, returns, talk

ROUTERS: tuple[Router, ...] = (
    core.router,  # /start /menu /help /privacy /lang, generic buttons, draft expiry
    consent.router,  # the consent buttons; features wait for consent via after_consent
    rights.answers_router,  # a typed yes/no to the pending "delete everything?" question
    abuse.router,  # flood control (inbound filter), /lock and /unlock
    talk.router,  # an open staff conversation takes the customer's text first
    complaints.router,  # complaints, tickets; staff replies to "how to resolve" prompts
    products.router,  # /catalog browsing; "xem tranh", "giá", product descriptions in free text
    answers.router,  # privacy questions and intents in free text, /faq
    returns.router,  # returns and warranty requests
    orders.router,  # ordering; free text while an order is open is relayed to staff
    order_staff.router,  # staff buttons and commands on orders; replies to order alerts
    payments.router,  # payment status: staff one-tap "paid", /price, erasure of payment links
    catalog_admin.router,  # staff admins edit the catalog from the staff chat
    rights.router,  # /mydata, /export, /delete, /withdraw, /legal, retention purge
    staff_desk.router,  # /web: sign-in links for the staff web page
)

MAIN_MENU: tuple[MenuItem, ...] = (
    MenuItem("menu.order", OrderButton()),
    MenuItem("menu.catalog", CatalogButton()),
    MenuItem("menu.mydata", MyDataButton()),
    MenuItem("menu.faq", KbButton()),
    MenuItem("menu.complaint", ComplaintButton()),
    MenuItem("menu.returns", ReturnsButton()),
    MenuItem("menu.talk", TalkButton()),
)


def build() -> Composition:
    """The bot's handlers, ready for the dispatcher and the runtime."""
    return Composition(ROUTERS, MAIN_MENU)

"""Every button payload kind of the bot: the whole wire protocol of buttons in one place.

Each kind packs and parses itself (see handlers/payloads.py); a handler receives the parsed
object, and anything forged or stale is refused before a handler runs.
"""

from __future__ import annotations

from typing import Annotated, Literal

from handlers.payloads import Bounded, Key, Payload, RowId, Token

OrderStatus = Literal["new", "claimed", "contacted", "shipping", "done", "cancelled"]
CancelReason = Literal["customer_request", "out_of_stock", "unreachable"]
ProfileField = Literal["full_name", "phone", "address", "email"]


# ---- produced by adapters ------------------------------------------------------------------


class BadChoice(Payload, prefix="badchoice"):
    """A typed button number that the latest message does not have (numbered channels)."""

    number: Annotated[int, Bounded(0, 10**6)]


class EditedMessage(Payload, prefix="edited"):
    """A customer edited an earlier message; it is not processed again."""


# ---- the dialogue engine and consent -------------------------------------------------------


class FlowButton(Payload, prefix="f"):
    """An engine button: cancel, back, skip/done, confirm, use saved / enter new, edit field
    N (`arg` = N), pick an answer (`arg` = the choice's value), keep the suggested answer,
    or go on after being asked whether to cancel."""

    action: Literal[
        "cancel", "back", "skip", "ok", "saved", "new", "edit", "pick", "keep", "resume"
    ]
    arg: Key = ""


class ConsentButton(Payload, prefix="consent"):
    choice: Literal["yes", "no", "policy"]


# ---- customers' menu entries and their answers ---------------------------------------------


class MenuButton(Payload, prefix="menu"):
    pass


class PolicyButton(Payload, prefix="policy"):
    pass


class LanguageButton(Payload, prefix="lang"):
    lang: Literal["vi", "en"]


class OrderButton(Payload, prefix="order"):
    pass


class MyOrdersButton(Payload, prefix="myorders"):
    pass


class MyDataButton(Payload, prefix="mydata"):
    pass


class RightsButton(Payload, prefix="rights"):
    """Data-rights actions; `detail` names the profile field for "edit", or is "confirm" on
    the second press of "delete"."""

    action: Literal["edit", "export", "delete", "keep", "withdraw"]
    detail: Literal["", "confirm", "full_name", "phone", "address", "email"] = ""


class KbButton(Payload, prefix="kb"):
    """One knowledge-base answer; without a topic, the list of topics."""

    topic: Key = ""


class ComplaintButton(Payload, prefix="complaint"):
    pass


class MyTicketsButton(Payload, prefix="mytickets"):
    pass


class ReturnsButton(Payload, prefix="returns"):
    pass


class ReturnOrderButton(Payload, prefix="rt"):
    order_id: RowId


class TalkButton(Payload, prefix="talk"):
    pass


# ---- staff chat ----------------------------------------------------------------------------


class OrderStatusButton(Payload, prefix="os"):
    order_id: RowId
    status: OrderStatus


class CancelReasonButton(Payload, prefix="oc"):
    order_id: RowId
    reason: CancelReason


class CarrierConfirmButton(Payload, prefix="oh"):
    """The second step of a carrier hand-off: `check` is a digest of the slip staff were
    shown, so a slip that changed meanwhile is shown again instead of being sent."""

    order_id: RowId
    check: Key


class KeepOrderButton(Payload, prefix="ok"):
    """ "Do not hand over / do not cancel": the confirmation is dismissed, nothing changes."""

    order_id: RowId


class TicketButton(Payload, prefix="cp"):
    ticket_id: RowId
    action: Literal["ack", "resolve"]


class ThreadButton(Payload, prefix="tk"):
    thread_id: RowId
    action: Literal["close"]


# ---- catalog and payments ------------------------------------------------------------------

ProductCode = Annotated[str, Token(r"[A-Z]{1,8}-[0-9]{1,6}")]
Category = Literal["", "oil", "silk", "lacquer", "woodblock", "print", "other"]


class CatalogButton(Payload, prefix="cat"):
    """Browse the catalog: no category = the list of categories; else one page of it."""

    category: Category = ""
    page: Annotated[int, Bounded(0, 999)] = 0


class ProductButton(Payload, prefix="prod"):
    """Order this product; quantity 0 = ask how many first."""

    code: ProductCode
    quantity: Annotated[int, Bounded(0, 50)] = 0


class PaymentButton(Payload, prefix="pay"):
    """Staff: the order's payment arrived (or was refunded)."""

    order_id: RowId
    status: Literal["paid", "refunded"]


class ProductAdminButton(Payload, prefix="pa"):
    """Staff admins: change one product (hide/show it, set its price, replace its photo)."""

    code: ProductCode
    action: Literal["hide", "show", "price", "photo", "menu"]


class NewProductButton(Payload, prefix="pn"):
    """Staff admins: the kind of the product being added (its draft is in the staff chat's
    state)."""

    category: Category

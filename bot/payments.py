"""Bank-transaction webhook: SePay tells us about money arriving on the shop's account.

    POST /payments/sepay/webhook
    Authorization: Apikey <PAYMENT_WEBHOOK_API_KEY>
    {"id": 92704, "gateway": "Vietcombank", "transactionDate": "2023-03-25 14:02:37",
     "accountNumber": "0123499999", "code": null, "content": "VAV7K3Q9 chuyen tien",
     "transferType": "in", "transferAmount": 2277000, "accumulated": 19077000,
     "subAccount": null, "referenceCode": "MBVCB.3278907687", "description": ""}

(developer.sepay.vn, "SePay Webhooks": payload fields, API-key authentication; SePay retries
until it gets HTTP 200 with {"success": true}.) A wrong or missing key answers 401 and changes
nothing. The transaction is applied by `handlers.orders.payments.apply_bank_transfer` in one
transaction: paid when the note carries the order code and the amount equals the order's
total; anything else is shown to staff. SePay's transaction id is the deduplication key, so
a redelivered notification is applied once. Only the id, the amount and the order found are
kept; the transfer note (it may hold the payer's name) is read, never stored or logged.
"""

from __future__ import annotations

import logging
import secrets
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bot.runtime import Runtime
from bot.web import parse_json_object, read_body
from handlers.orders.payments import BankTransfer, apply_bank_transfer
from storage.db import is_transient_db_error
from storage.repositories import UnitOfWork

log = logging.getLogger(__name__)

SEPAY_PATH = "/payments/sepay/webhook"
MAX_BODY = 64 * 1024


def sepay_transfer(data: dict[str, Any]) -> BankTransfer | None:
    """The transaction in a SePay notification, or None when it is not one."""
    ident, amount = data.get("id"), data.get("transferAmount")
    if isinstance(ident, bool) or not isinstance(ident, (int, str)) or not str(ident).strip():
        return None
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount != int(amount):
        return None
    note = " ".join(
        str(data.get(field) or "") for field in ("code", "content", "description")
    ).strip()
    return BankTransfer(
        provider="sepay",
        external_id=str(ident).strip()[:64],
        amount_vnd=int(amount),
        note=note[:1000],
        incoming=data.get("transferType") == "in",
    )


def _authorized(request: Request, api_key: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "apikey" and secrets.compare_digest(
        given.strip().encode(), api_key.encode()
    )


def sepay_route(runtime: Runtime, api_key: str) -> Route:
    async def endpoint(request: Request) -> Response:
        if not _authorized(request, api_key):
            log.info("sepay webhook: refused (bad api key)")
            return JSONResponse({"success": False}, status_code=401)
        raw = await read_body(request, MAX_BODY)
        if isinstance(raw, Response):
            return raw
        data = parse_json_object(raw)
        transfer = sepay_transfer(data) if data is not None else None
        if transfer is None:
            return JSONResponse({"success": False, "error": "bad payload"}, status_code=400)
        try:
            async with UnitOfWork(runtime.sessions) as uow:
                outcome = await apply_bank_transfer(
                    uow, runtime.config, runtime.app, transfer, runtime.clock()
                )
                await uow.commit()
        except Exception as exc:
            # Not acknowledged: SePay delivers it again (nothing was committed).
            transient = is_transient_db_error(exc)
            log.log(
                logging.WARNING if transient else logging.ERROR,
                "sepay webhook: transaction %s not applied (%s)",
                transfer.external_id,
                type(exc).__name__,
            )
            return JSONResponse({"success": False}, status_code=500)
        log.info("sepay webhook: transaction %s %s", transfer.external_id, outcome)
        runtime.wake_delivery()
        return JSONResponse({"success": True})

    return Route(SEPAY_PATH, endpoint, methods=["POST"])

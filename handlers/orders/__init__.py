"""Pure, channel-neutral building blocks of the order flow: input parsers, the product
catalog and reference codes. Nothing here does I/O except `Catalog.load`.
"""

from handlers.orders.catalog import Catalog, CatalogError, Product, format_vnd
from handlers.orders.codes import find_code, new_code, normalize_code
from handlers.orders.validators import (
    InvalidInput,
    format_phone_display,
    parse_address,
    parse_email,
    parse_full_name,
    parse_phone,
    parse_request,
    phone_from_contact,
)

__all__ = [
    "Catalog",
    "CatalogError",
    "InvalidInput",
    "Product",
    "find_code",
    "format_phone_display",
    "format_vnd",
    "new_code",
    "normalize_code",
    "parse_address",
    "parse_email",
    "parse_full_name",
    "parse_phone",
    "parse_request",
    "phone_from_contact",
]

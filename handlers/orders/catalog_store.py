"""The catalog as the shop edits it: products in the database, seeded once from the TOML file.

The dispatcher loads the current catalog for every message (`shop_catalog`, one tiny query
while nothing changed), so a staff edit applies to the very next message, in every process,
without a restart. Orders keep their own snapshot of name, unit price and quantity.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from handlers.orders.catalog import Catalog, Product
from storage.catalog import ProductRow
from storage.repositories import UnitOfWork


def to_row(
    product: Product, now: datetime, position: int = 0, actor: str | None = None
) -> ProductRow:
    return ProductRow(
        code=product.code,
        category=product.category,
        name_vi=product.name_vi,
        name_en=product.name_en,
        details_vi=product.details_vi,
        details_en=product.details_en,
        price_vnd=product.price_vnd,
        image_url=product.image_url,
        photo_ref=product.photo_ref,
        hidden=product.hidden,
        position=position,
        updated_at=now,
        updated_by=actor,
    )


def from_row(row: ProductRow) -> Product:
    return Product(
        code=row.code,
        name_vi=row.name_vi,
        name_en=row.name_en,
        price_vnd=row.price_vnd,
        image_url=row.image_url,
        category=row.category,
        details_vi=row.details_vi,
        details_en=row.details_en,
        hidden=row.hidden,
        photo_ref=row.photo_ref,
    )


# Built catalogs by the row list they came from (the repository caches rows per revision and
# database): a few entries, the latest of each database in use.
_built: dict[int, tuple[Sequence[ProductRow], Catalog]] = {}
_BUILT_KEPT = 16


async def shop_catalog(uow: UnitOfWork, seed: Catalog, now: datetime) -> Catalog:
    """The current catalog; on a database that never had one, `seed` (the TOML file) is
    copied in first."""
    if await uow.catalog.revision() is None:
        seeded = [to_row(p, now, position) for position, p in enumerate(seed, start=1)]
        await uow.catalog.seed(seeded, now)
    rows = await uow.catalog.rows()
    entry = _built.get(id(rows))
    if entry is not None and entry[0] is rows:
        return entry[1]
    catalog = Catalog(tuple(from_row(row) for row in rows))
    _built[id(rows)] = (rows, catalog)
    while len(_built) > _BUILT_KEPT:
        del _built[next(iter(_built))]
    return catalog

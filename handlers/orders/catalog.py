"""The shop's product catalog: a TOML file staff edit by hand (see catalog.example.toml).

Because people edit it, loading checks every row and reports the first problem as a
`CatalogError` naming the file, the row and the field, so the bot refuses to start with a
clear message instead of failing later in the middle of an order.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from handlers.text import fold

# "SD-001": letters for the kind of work (sơn dầu, lụa, sơn mài…), a dash, a number.
CODE_PATTERN = re.compile(r"^([A-Z]{1,8})-([0-9]{1,6})$")

_REQUIRED_FIELDS = ("code", "name_vi", "name_en", "price_vnd")
_OPTIONAL_FIELDS = ("image_url", "category", "details_vi", "details_en", "hidden")
_ROW_TABLE = "product"

# The kinds of work the shop sells (labels: catalog.category.<key> in locales/*/catalog.po).
CATEGORIES = ("oil", "silk", "lacquer", "woodblock", "print", "other")
# A product without a category takes the one its code letters name.
_CATEGORY_OF_LETTERS = {
    "SD": "oil",
    "LUA": "silk",
    "SM": "lacquer",
    "DH": "woodblock",
    "IN": "print",
}


def category_of_code(code: str) -> str:
    return _CATEGORY_OF_LETTERS.get(code.split("-", 1)[0].upper(), "other")


class CatalogError(Exception):
    """The catalog file cannot be used; the message says where and why."""

    def __init__(self, message: str, row: int | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.row = row  # 1-based position of the [[product]] entry, if the problem is in one
        self.field = field


@dataclass(frozen=True)
class Product:
    code: str  # canonical, upper case: "SD-001"
    name_vi: str
    name_en: str
    price_vnd: int
    image_url: str | None = None
    category: str = ""  # one of CATEGORIES; empty = the one the code letters name
    details_vi: str = ""  # material and size: "sơn dầu trên toan, 60×90 cm"
    details_en: str = ""
    hidden: bool = False  # not shown or matched; orders that have it keep their snapshot
    photo_ref: str | None = None  # a photo staff sent: "<channel>:<platform reference>"

    def __post_init__(self) -> None:
        if not self.category:
            object.__setattr__(self, "category", category_of_code(self.code))

    def title(self, lang: str) -> str:
        """The work's own name in `lang` (Vietnamese for any language other than English)."""
        return self.name_en if lang == "en" else self.name_vi

    def details(self, lang: str) -> str:
        return self.details_en if lang == "en" else self.details_vi

    def name(self, lang: str) -> str:
        """Name with material and size: "Phố cổ Hà Nội mùa thu — sơn dầu trên toan, 60×90 cm"."""
        details = self.details(lang)
        return f"{self.title(lang)} — {details}" if details else self.title(lang)

    def image_for(self, channel: str) -> str | None:
        """What to show as its photo on `channel`: the photo staff sent there (a platform
        file reference works only on its own platform), else the photo address."""
        if self.photo_ref:
            where, _, ref = self.photo_ref.partition(":")
            if where == channel and ref:
                return ref
        return self.image_url


def format_vnd(amount: int) -> str:
    """Vietnamese price style: dot thousands separator, a regular space, then ₫ ("1.250.000 ₫").

    A plain space rather than U+00A0 keeps the text identical on every channel and in tests.
    """
    return f"{amount:,}".replace(",", ".") + " ₫"


class Catalog:
    """An immutable, validated set of products, looked up by code case-insensitively."""

    def __init__(self, products: tuple[Product, ...] = ()) -> None:
        self._products = products
        self._by_code = {p.code.upper(): p for p in products}
        if len(self._by_code) != len(products):
            raise CatalogError("duplicate product codes")
        self._code_regex = _code_regex(products)

    @classmethod
    def load(cls, path: str | Path) -> Catalog:
        """Read and validate a TOML catalog file; raises CatalogError on any problem."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CatalogError(f"{path}: catalog file not found") from None
        except UnicodeDecodeError:
            raise CatalogError(f"{path}: not UTF-8 text; save the file as UTF-8") from None
        except OSError as exc:
            raise CatalogError(f"{path}: cannot read ({exc.strerror})") from None
        return cls.loads(text, source=str(path))

    @classmethod
    def loads(cls, text: str, source: str = "<catalog>") -> Catalog:
        """Parse and validate catalog TOML text; `source` names it in error messages."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise CatalogError(f"{source}: not valid TOML: {exc}") from None
        unknown = sorted(set(data) - {_ROW_TABLE})
        if unknown:
            raise CatalogError(
                f"{source}: unknown top-level key(s) {', '.join(unknown)}; "
                f"products go in [[{_ROW_TABLE}]] tables"
            )
        rows = data.get(_ROW_TABLE, [])
        if not isinstance(rows, list):
            raise CatalogError(f"{source}: '{_ROW_TABLE}' must be written as [[{_ROW_TABLE}]]")
        products: list[Product] = []
        first_row_of: dict[str, int] = {}
        for index, row in enumerate(rows, start=1):
            product = _parse_row(row, index, source)
            if product.code in first_row_of:
                raise CatalogError(
                    f"{source}: product #{index}: code {product.code} is already used by "
                    f"product #{first_row_of[product.code]}",
                    row=index,
                    field="code",
                )
            first_row_of[product.code] = index
            products.append(product)
        return cls(tuple(products))

    @property
    def products(self) -> tuple[Product, ...]:
        return self._products

    def __iter__(self) -> Iterator[Product]:
        return iter(self._products)

    def __len__(self) -> int:
        return len(self._products)

    def get(self, code: str) -> Product | None:
        """The product with this code, ignoring case and surrounding spaces (hidden too:
        an order placed before it was hidden still names it)."""
        return self._by_code.get(code.strip().upper())

    def visible(self, category: str | None = None) -> list[Product]:
        """What customers may browse and order, in display order (optionally one category)."""
        return [
            p
            for p in self._products
            if not p.hidden and (category is None or p.category == category)
        ]

    def categories(self) -> list[str]:
        """The categories that have something to show, in the fixed CATEGORIES order."""
        present = {p.category for p in self._products if not p.hidden}
        return [c for c in CATEGORIES if c in present]

    def find_code_in(self, text: str) -> str | None:
        """The first known product code mentioned in free text, in canonical form.

        Matches regardless of case and diacritics, and with a space, another dash or nothing
        between the letters and the number: "SD-001", "sd 001", "sd001", "Sd–001".
        """
        if self._code_regex is None:
            return None
        match = self._code_regex.search(fold(text))
        if match is None:
            return None
        raw = match.group(0)
        letters = "".join(ch for ch in raw if ch.isalpha())
        digits = "".join(ch for ch in raw if ch.isdigit())
        return f"{letters.upper()}-{digits}"


def _code_regex(products: tuple[Product, ...]) -> re.Pattern[str] | None:
    """One pattern for all codes, so `search` returns the leftmost mention in the text."""
    if not products:
        return None
    # Longest first so that alternation at one position prefers the most specific code.
    alternatives = []
    for code in sorted((p.code for p in products), key=len, reverse=True):
        letters, digits = code.lower().split("-")
        alternatives.append(rf"{letters}\s*[-–—_.]?\s*{digits}")
    # Not glued to other letters or digits: "asd-001" or "sd-0012" are not SD-001.
    return re.compile(rf"(?<![a-z0-9])(?:{'|'.join(alternatives)})(?![0-9])")


def _parse_row(row: object, index: int, source: str) -> Product:
    where = f"{source}: product #{index}"
    if not isinstance(row, Mapping):
        raise CatalogError(f"{where}: must be a [[{_ROW_TABLE}]] table", row=index)
    unknown = sorted(set(row) - set(_REQUIRED_FIELDS) - set(_OPTIONAL_FIELDS))
    if unknown:
        allowed = ", ".join(_REQUIRED_FIELDS + _OPTIONAL_FIELDS)
        raise CatalogError(
            f"{where}: unknown field(s) {', '.join(unknown)} (allowed: {allowed})",
            row=index,
            field=unknown[0],
        )
    for field in _REQUIRED_FIELDS:
        if field not in row:
            raise CatalogError(f"{where}: missing field '{field}'", row=index, field=field)

    code = row["code"]
    if not isinstance(code, str) or not CODE_PATTERN.match(code.strip().upper()):
        raise CatalogError(
            f"{where}: field 'code' must look like SD-001 (letters, a dash, digits)",
            row=index,
            field="code",
        )
    code = code.strip().upper()
    where = f"{where} ({code})"

    names = {field: _text_field(row, field, where, index) for field in ("name_vi", "name_en")}
    details = {
        field: _text_field(row, field, where, index) if field in row else ""
        for field in ("details_vi", "details_en")
    }
    category = row.get("category", "")
    if category and category not in CATEGORIES:
        raise CatalogError(
            f"{where}: field 'category' must be one of {', '.join(CATEGORIES)}",
            row=index,
            field="category",
        )
    hidden = row.get("hidden", False)
    if not isinstance(hidden, bool):
        raise CatalogError(
            f"{where}: field 'hidden' must be true or false", row=index, field="hidden"
        )

    price = row["price_vnd"]
    # bool is an int subclass; `price_vnd = true` is a typo, not a price.
    if not isinstance(price, int) or isinstance(price, bool):
        raise CatalogError(
            f"{where}: field 'price_vnd' must be a whole number of đồng, e.g. 1250000",
            row=index,
            field="price_vnd",
        )
    if price <= 0:
        raise CatalogError(
            f"{where}: field 'price_vnd' must be greater than 0", row=index, field="price_vnd"
        )

    image_url = row.get("image_url")
    if image_url is not None:
        if not isinstance(image_url, str) or not re.match(r"^https?://\S+$", image_url.strip()):
            raise CatalogError(
                f"{where}: field 'image_url' must be an http(s):// address",
                row=index,
                field="image_url",
            )
        image_url = image_url.strip()

    return Product(
        code=code,
        name_vi=names["name_vi"],
        name_en=names["name_en"],
        price_vnd=price,
        image_url=image_url,
        category=category,
        details_vi=details["details_vi"],
        details_en=details["details_en"],
        hidden=hidden,
    )


def _text_field(row: Mapping[str, Any], field: str, where: str, index: int) -> str:
    value = row[field]
    if not isinstance(value, str) or not value.strip():
        raise CatalogError(
            f"{where}: field '{field}' must be non-empty text", row=index, field=field
        )
    return " ".join(value.split())

"""Product catalog loading and lookup, prices, and reference codes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handlers.orders.catalog import Catalog, CatalogError, Product, format_vnd
from handlers.orders.codes import ALPHABET, find_code, new_code, normalize_code

EXAMPLE = Path(__file__).resolve().parent.parent / "handlers" / "orders" / "catalog.example.toml"

GOOD_ROW = """
[[product]]
code = "SD-001"
name_vi = "Phố cổ Hà Nội"
name_en = "Hanoi Old Quarter"
price_vnd = 1250000
"""


@pytest.fixture(scope="module")
def example() -> Catalog:
    return Catalog.load(EXAMPLE)


# --- loading ------------------------------------------------------------------------------


def test_example_catalog_loads(example: Catalog) -> None:
    assert len(example) >= 6
    codes = [p.code for p in example]
    assert len(set(codes)) == len(codes)
    for product in example:
        assert re.fullmatch(r"[A-Z]+-\d+", product.code)
        assert product.price_vnd > 0
        assert product.name_vi and product.name_en
        assert product.image_url is None or product.image_url.startswith("https://")


def test_get_is_case_insensitive(example: Catalog) -> None:
    product = example.get("sd-001")
    assert product is not None and product.code == "SD-001"
    assert example.get(" Lua-002 ") is example.get("LUA-002")
    assert example.get("XX-999") is None


def test_product_name_by_language() -> None:
    product = Product("SD-001", "Phố cổ", "Old Quarter", 1_000_000)
    assert product.name("vi") == "Phố cổ"
    assert product.name("en") == "Old Quarter"
    assert product.name("fr") == "Phố cổ"


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text(GOOD_ROW, encoding="utf-8")
    catalog = Catalog.load(path)
    assert catalog.products == (
        Product("SD-001", "Phố cổ Hà Nội", "Hanoi Old Quarter", 1_250_000, None),
    )


def test_empty_catalog_is_allowed() -> None:
    catalog = Catalog.loads("")
    assert len(catalog) == 0
    assert catalog.find_code_in("SD-001") is None


def _row(**fields: object) -> str:
    lines = ["[[product]]"]
    for key, value in fields.items():
        rendered = f'"{value}"' if isinstance(value, str) else str(value).lower()
        lines.append(f"{key} = {rendered}")
    return "\n".join(lines) + "\n"


BASE = {"code": "SD-001", "name_vi": "Tranh", "name_en": "Painting", "price_vnd": 1000}


def _without(field: str) -> dict[str, object]:
    return {k: v for k, v in BASE.items() if k != field}


@pytest.mark.parametrize(
    ("text", "row", "field", "fragment"),
    [
        (_row(**_without("price_vnd")), 1, "price_vnd", "missing field 'price_vnd'"),
        (_row(**_without("code")), 1, "code", "missing field 'code'"),
        (_row(**_without("name_en")), 1, "name_en", "missing field 'name_en'"),
        (_row(**{**BASE, "price_vnd": -1000}), 1, "price_vnd", "greater than 0"),
        (_row(**{**BASE, "price_vnd": 0}), 1, "price_vnd", "greater than 0"),
        (_row(**{**BASE, "price_vnd": 12.5}), 1, "price_vnd", "whole number"),
        (_row(**{**BASE, "price_vnd": "1.250.000"}), 1, "price_vnd", "whole number"),
        (_row(**{**BASE, "price_vnd": True}), 1, "price_vnd", "whole number"),
        (_row(**{**BASE, "code": "SD001"}), 1, "code", "SD-001"),
        (_row(**{**BASE, "code": ""}), 1, "code", "SD-001"),
        (_row(**{**BASE, "name_vi": "  "}), 1, "name_vi", "non-empty"),
        (_row(**{**BASE, "image_url": "ftp://x/y.jpg"}), 1, "image_url", "http"),
        (_row(**{**BASE, "prce_vnd": 5}), 1, "prce_vnd", "unknown field"),
        (_row(**BASE) + _row(**{**BASE, "code": "sd-001"}), 2, "code", "product #1"),
        (_row(**BASE) + _row(**_without("name_vi")), 2, "name_vi", "product #2"),
    ],
)
def test_bad_rows_are_reported(text: str, row: int, field: str, fragment: str) -> None:
    with pytest.raises(CatalogError) as info:
        Catalog.loads(text, source="catalog.toml")
    message = str(info.value)
    assert info.value.row == row
    assert info.value.field == field
    assert message.startswith(f"catalog.toml: product #{row}")
    assert fragment in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[[product]\ncode = ", "not valid TOML"),
        ("[[products]]\ncode = 'SD-001'\n", "unknown top-level key"),
        ("product = 5\n", "[[product]]"),
    ],
)
def test_bad_files_are_reported(text: str, fragment: str) -> None:
    with pytest.raises(CatalogError, match=re.escape(fragment)):
        Catalog.loads(text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="not found"):
        Catalog.load(tmp_path / "nope.toml")


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    path.write_bytes(GOOD_ROW.encode("cp1258", errors="replace"))
    with pytest.raises(CatalogError, match="UTF-8"):
        Catalog.load(path)


# --- finding codes in free text -------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Tôi muốn mua bức SD-001", "SD-001"),
        ("sd-001", "SD-001"),
        ("cho mình hỏi sd 001 còn không", "SD-001"),
        ("sd001", "SD-001"),
        ("SD - 001 ạ", "SD-001"),
        ("SD–001", "SD-001"),  # en dash from phone keyboards
        ("(SD-001)", "SD-001"),
        ("SD-001x2", "SD-001"),  # quantity right after the code
        ("Tranh lụa 002 giá bao nhiêu?", "LUA-002"),  # "lụa" folded to "lua"
        ("LUA-002 hoặc SD-001", "LUA-002"),  # first mentioned wins
        ("so sánh SD-004 với SM-003", "SD-004"),
        ("Sm003", "SM-003"),
        ("ASD-001", None),  # glued to another letter
        ("SD-0012", None),  # longer number
        ("SD-1", None),
        ("XX-001", None),
        ("Tôi muốn mua tranh", None),
        ("", None),
    ],
)
def test_find_code_in(example: Catalog, text: str, expected: str | None) -> None:
    assert example.find_code_in(text) == expected


# --- prices -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        (0, "0 ₫"),
        (1000, "1.000 ₫"),
        (450_000, "450.000 ₫"),
        (1_250_000, "1.250.000 ₫"),
        (15_000_000, "15.000.000 ₫"),
    ],
)
def test_format_vnd(amount: int, expected: str) -> None:
    assert format_vnd(amount) == expected


# --- reference codes ----------------------------------------------------------------------


def test_new_code_shape() -> None:
    code = new_code("VAV")
    assert re.fullmatch(rf"VAV-[{ALPHABET}]{{5}}", code)
    assert not set("0O1IL") & set(ALPHABET)


@pytest.mark.parametrize("prefix", ["VAV", "VAV-", "vav", "KN-", "KN"])
def test_new_code_prefix(prefix: str) -> None:
    expected = prefix.rstrip("-").upper()
    assert new_code(prefix).startswith(expected + "-")


@pytest.mark.parametrize("prefix", ["", "-", "V1", "VÀ"])
def test_new_code_rejects_bad_prefix(prefix: str) -> None:
    with pytest.raises(ValueError):
        new_code(prefix)


def test_new_codes_unique_over_10000_draws() -> None:
    # 8 characters: 31**8 ≈ 8.5e11 codes, so a repeat in 10,000 draws (p ≈ 6e-5) means a bug.
    draws = [new_code("VAV", length=8) for _ in range(10_000)]
    assert len(set(draws)) == len(draws)


def test_default_codes_rarely_repeat() -> None:
    # 5 characters: about 1.7 repeats are expected in 10,000 draws (birthday bound), which is
    # why the store keeps a unique constraint; far more would mean a broken generator.
    draws = [new_code("VAV") for _ in range(10_000)]
    assert len(set(draws)) >= 9_980
    assert all(re.fullmatch(rf"VAV-[{ALPHABET}]{{5}}", code) for code in draws)
    # Every alphabet character shows up in every position.
    for position in range(4, 9):
        assert {code[position] for code in draws} == set(ALPHABET)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("VAV-7K3Q9", "VAV-7K3Q9"),
        ("vav-7k3q9", "VAV-7K3Q9"),
        ("vav 7k3q9", "VAV-7K3Q9"),
        ("VAV7K3Q9", "VAV-7K3Q9"),
        ("  #VAV_7K3Q9. ", "VAV-7K3Q9"),
        ("VAV – 7K3Q9", "VAV-7K3Q9"),
        ("ＶＡＶ－７Ｋ３Ｑ９", "VAV-7K3Q9"),  # fullwidth
        ("VAV-7K3Q", None),  # too short
        ("VAV-7K3Q9X", None),  # too long
        ("VAV-7K3Q0", None),  # 0 is never used
        ("VAV-OK3Q9", None),  # nor O
        ("KN-7K3Q9", None),  # other prefix
        ("mã đơn VAV-7K3Q9", None),  # not just the code: use find_code
        ("", None),
    ],
)
def test_normalize_code(text: str, expected: str | None) -> None:
    assert normalize_code(text) == expected


def test_normalize_code_other_prefix() -> None:
    assert normalize_code("kn m4txp", prefix="KN-") == "KN-M4TXP"
    assert normalize_code("VAV-M4TXP", prefix="KN") is None


def test_normalize_round_trip() -> None:
    for _ in range(200):
        code = new_code("KN-")
        assert normalize_code(code.lower().replace("-", " "), prefix="KN") == code


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Cho mình hỏi đơn vav 7k3q9 đến đâu rồi", "VAV-7K3Q9"),
        ("đơn VAV-7K3Q9, VAV-M4TXP", "VAV-7K3Q9"),
        ("XVAV-7K3Q9", None),
        ("không có mã", None),
    ],
)
def test_find_code(text: str, expected: str | None) -> None:
    assert find_code(text) == expected

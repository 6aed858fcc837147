"""Typed button payloads (in the spirit of aiogram's `CallbackData`).

A payload kind is a small frozen class with a wire prefix and typed fields:

    class OrderStatusButton(Payload, prefix="os"):
        order_id: RowId
        status: Literal["claimed", "contacted", "shipping", "done", "cancelled"]

`OrderStatusButton(12, "claimed").pack()` gives "os:12:claimed"; `OrderStatusButton.unpack(raw)`
gives the object back, or None for anything forged, stale or malformed — never an exception.
Packing refuses a payload over 64 bytes (Telegram's callback-data limit), so an oversized
button is found where it is built, not when a send fails.

Field types: `int` with bounds (`Annotated[int, Bounded(lo, hi)]`, ASCII digits only),
`Literal[...]` for known values, and `Annotated[str, Token(pattern)]` for short codes. Trailing
fields with a default may be left out on the wire.
"""

from __future__ import annotations

import re
from dataclasses import MISSING, dataclass, fields, replace
from typing import (
    Annotated,
    Any,
    ClassVar,
    Literal,
    Self,
    dataclass_transform,
    get_args,
    get_origin,
    get_type_hints,
)

MAX_PAYLOAD_BYTES = 64  # Telegram's callback_data limit; the strictest platform decides
SEPARATOR = ":"
_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)


class PayloadError(ValueError):
    """A payload that cannot be built (a programming error, caught by the tests)."""


@dataclass(frozen=True)
class Bounded:
    """An integer field within [low, high]."""

    low: int = 0
    high: int = 2**31 - 1


@dataclass(frozen=True)
class Token:
    """A short text field matching `pattern` in full (never containing the separator)."""

    pattern: str = r"[A-Za-z0-9_.\-]{1,40}"


RowId = Annotated[int, Bounded(1, 2**53)]
Key = Annotated[str, Token()]


@dataclass(frozen=True)
class _FieldSpec:
    name: str
    kind: Literal["int", "choice", "token"]
    low: int = 0
    high: int = 0
    choices: frozenset[str] = frozenset()
    pattern: re.Pattern[str] | None = None
    has_default: bool = False
    default: Any = None

    def parse(self, raw: str) -> Any:
        """The field's value, or raise ValueError."""
        if self.kind == "int":
            if not _DIGITS.fullmatch(raw):
                raise ValueError("not a bounded integer")
            value = int(raw)
            if not self.low <= value <= self.high:
                raise ValueError("out of bounds")
            return value
        if self.kind == "choice":
            if raw not in self.choices:
                raise ValueError("unknown value")
            return raw
        assert self.pattern is not None
        if not self.pattern.fullmatch(raw):
            raise ValueError("malformed token")
        return raw

    def format(self, value: Any) -> str:
        raw = str(value) if self.kind == "int" else value
        if not isinstance(raw, str):
            raise PayloadError(f"field {self.name}: not text")
        try:
            self.parse(raw)
        except ValueError as error:
            raise PayloadError(f"field {self.name}: {error}") from None
        return raw


def _spec(name: str, hint: Any, default: Any) -> _FieldSpec:
    spec: _FieldSpec | None = None
    if get_origin(hint) is Literal:
        spec = _FieldSpec(name, "choice", choices=frozenset(get_args(hint)))
    elif get_origin(hint) is Annotated:
        base, *meta = get_args(hint)
        for item in meta:
            if isinstance(item, Bounded) and base is int:
                spec = _FieldSpec(name, "int", low=item.low, high=item.high)
            elif isinstance(item, Token) and base is str:
                spec = _FieldSpec(name, "token", pattern=re.compile(item.pattern, re.ASCII))
    if spec is None:
        raise TypeError(f"payload field {name}: use RowId/Bounded int, Literal or Token str")
    if default is MISSING:
        return spec
    return replace(spec, has_default=True, default=default)


@dataclass_transform(frozen_default=True)
class Payload:
    """Base of every button payload kind; subclasses give `prefix=` and typed fields."""

    prefix: ClassVar[str]
    _specs: ClassVar[tuple[_FieldSpec, ...]]

    def __init_subclass__(cls, *, prefix: str, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not re.fullmatch(r"[a-z]{1,12}", prefix):
            raise TypeError(f"payload prefix {prefix!r}: 1-12 lower-case letters")
        cls.prefix = prefix
        dataclass(frozen=True)(cls)
        hints = get_type_hints(cls, include_extras=True)
        cls._specs = tuple(
            _spec(f.name, hints[f.name], f.default)
            for f in fields(cls)  # type: ignore[arg-type]
        )

    def pack(self) -> str:
        specs = self._specs
        values = [getattr(self, spec.name) for spec in specs]
        # Trailing fields still at their default are left out: "f:back", not "f:back:".
        while (
            values
            and specs[len(values) - 1].has_default
            and (values[-1] == specs[len(values) - 1].default)
        ):
            values.pop()
        parts = [self.prefix, *(spec.format(v) for spec, v in zip(specs, values, strict=False))]
        packed = SEPARATOR.join(parts)
        if len(packed.encode("utf-8")) > MAX_PAYLOAD_BYTES:
            raise PayloadError(f"{self.prefix}: payload over {MAX_PAYLOAD_BYTES} bytes")
        return packed

    @classmethod
    def unpack(cls, raw: str) -> Self | None:
        """The payload `raw` as this kind, or None when it is not a valid one."""
        if not isinstance(raw, str) or len(raw.encode("utf-8", "replace")) > MAX_PAYLOAD_BYTES:
            return None
        head, *parts = raw.split(SEPARATOR)
        specs = cls._specs
        if head != cls.prefix or len(parts) > len(specs):
            return None
        values: dict[str, Any] = {}
        try:
            for index, spec in enumerate(specs):
                if index < len(parts):
                    values[spec.name] = spec.parse(parts[index])
                elif spec.has_default:
                    values[spec.name] = spec.default
                else:
                    return None
        except ValueError:
            return None
        return cls(**values)


def prefix_of(raw: str) -> str:
    """The kind prefix of a raw payload (for routing and, truncated, for the audit log)."""
    return raw.split(SEPARATOR, 1)[0][:16]

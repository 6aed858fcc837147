"""Database URLs as operators write them, and as they may be shown.

`postgresql://…`, `postgres://…` and `sqlite:///…` get the async driver the bot runs on;
anything else is refused with a reason that never quotes the URL (it may hold a password).
Every message that names a database uses `display_url`, which masks the password.
"""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

ASYNC_DRIVERS = {"sqlite": "aiosqlite", "postgresql": "asyncpg"}
ALIASES = {"postgres": "postgresql"}


def normalize_url(value: str) -> str:
    """The URL with the async driver filled in; ValueError (without the URL) if unusable."""
    try:
        url = make_url(value)
    except ArgumentError:
        raise ValueError(
            "not a database URL (expected sqlite:///PATH or "
            "postgresql://USER:PASSWORD@HOST/DATABASE)"
        ) from None
    backend = ALIASES.get(url.get_backend_name(), url.get_backend_name())
    if backend not in ASYNC_DRIVERS:
        raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")
    url = url.set(drivername=f"{backend}+{ASYNC_DRIVERS[backend]}")
    return url.render_as_string(hide_password=False)


def display_url(value: str) -> str:
    """SQLite's file path, or the URL with its password masked."""
    url = make_url(value)
    if url.get_backend_name() == "sqlite":
        return str(url.database)
    return url.render_as_string(hide_password=True)


def without_password(text: str, value: str) -> str:
    """`text` (e.g. a driver's error line) with the URL's password masked, should it appear."""
    password = make_url(value).password
    return text.replace(str(password), "***") if password else text

"""Declarative routing (in the spirit of aiogram 3 routers).

Handlers register for a command, a button payload prefix, or free text; flags say who may
use them. The same registry feeds `/help`, the main menu and the platforms' command menus.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from handlers.context import Context

Handler = Callable[[Context], Awaitable[None]]


@dataclass(frozen=True)
class Route:
    handler: Handler
    staff: bool = False  # only staff (staff chat members and admins) may use it
    admin: bool = False  # only STAFF_ADMIN_IDS
    locked_ok: bool = False  # still available to a locked customer (data rights)
    help_key: str | None = None  # catalog id of the one-line description in /help and menus
    everywhere: bool = False  # also in the staff chat (generic buttons such as "badchoice")


@dataclass(frozen=True)
class MenuItem:
    label_key: str
    payload: str


class Router:
    def __init__(self) -> None:
        self.commands: dict[str, Route] = {}
        self.staff_commands: dict[str, Route] = {}
        self.payloads: dict[str, Route] = {}
        self.text_handlers: list[Handler] = []
        self.staff_text_handlers: list[Handler] = []
        self._priorities: dict[Handler, int] = {}
        self.menu: list[MenuItem] = []

    def command(
        self,
        *names: str,
        staff: bool = False,
        admin: bool = False,
        locked_ok: bool = False,
        help_key: str | None = None,
    ) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            table = self.staff_commands if staff or admin else self.commands
            for index, name in enumerate(names):
                table[name] = Route(
                    handler, staff or admin, admin, locked_ok, help_key if index == 0 else None
                )
            return handler

        return decorator

    def payload(
        self,
        prefix: str,
        *,
        staff: bool = False,
        admin: bool = False,
        locked_ok: bool = False,
        everywhere: bool = False,
    ) -> Callable[[Handler], Handler]:
        """Buttons whose payload is `prefix` or starts with `prefix:`."""

        def decorator(handler: Handler) -> Handler:
            self.payloads[prefix] = Route(
                handler, staff or admin, admin, locked_ok, everywhere=everywhere
            )
            return handler

        return decorator

    def text(self, handler: Handler | None = None, *, priority: int = 100) -> Any:
        """Free text outside any flow. Handlers run by priority (lower first; equal ones in
        registration order) until one answers: `@router.text` or `@router.text(priority=10)`."""
        return self._ordered(self.text_handlers, handler, priority)

    def staff_text(self, handler: Handler | None = None, *, priority: int = 100) -> Any:
        """Plain messages in the staff chat (e.g. replies to an order alert), ordered the same."""
        return self._ordered(self.staff_text_handlers, handler, priority)

    def _ordered(self, table: list[Handler], handler: Handler | None, priority: int) -> Any:
        def add(fn: Handler) -> Handler:
            self._priorities[fn] = priority
            table.append(fn)
            table.sort(key=lambda h: self._priorities[h])  # stable: keeps registration order
            return fn

        return add(handler) if handler is not None else add

    def menu_item(self, label_key: str, payload: str) -> None:
        self.menu.append(MenuItem(label_key, payload))

    def find_payload(self, payload: str) -> Route | None:
        return self.payloads.get(payload.split(":", 1)[0])

    def help_entries(self, staff: bool = False) -> list[tuple[str, str]]:
        table = self.staff_commands if staff else self.commands
        return [(name, route.help_key) for name, route in table.items() if route.help_key]


router = Router()

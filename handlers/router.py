"""Routers and their composition (in the spirit of aiogram 3's `Router.include_router`).

Each feature module owns one `Router` and declares on it what it handles: commands, button
payload kinds, free-text handlers, staff-chat handlers, flows, continuations after consent,
deep links, and its hooks (eraser, export section, periodic task, inbound filter).
Nothing is registered anywhere else on import: `handlers/composition.py` lists the routers in
order — that list is the precedence of the whole bot — with the main menu. `Composition`
merges them and is what the dispatcher, the runtime and the adapters receive.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from handlers.payloads import Payload, prefix_of

if TYPE_CHECKING:
    from handlers.context import Context, ShopConfig
    from handlers.engine import Flow
    from storage.repositories import UnitOfWork

Handler = Callable[..., Awaitable[None]]  # (ctx) for commands; (ctx, payload) for buttons
TextHandler = Callable[["Context"], Awaitable[bool]]  # True = handled, stop here
InboundFilter = Callable[["Context"], Awaitable[bool]]  # False = drop the inbound (answered)
# A remark in the middle of a flow step (a question, a greeting, a leak report): True when it
# was answered, and the step is then asked again instead of taking the text as the answer.
Interjection = Callable[["Context"], Awaitable[bool]]
Continuation = Callable[["Context", dict[str, Any]], Awaitable[None]]
# Hooks of a feature into erasure, export and housekeeping (see handlers/rights, maintenance).
Eraser = Callable[["UnitOfWork", int, datetime], Awaitable[list[str]]]
ExportSection = Callable[["UnitOfWork", int], Awaitable[list[dict[str, Any]]]]
PeriodicTask = Callable[["UnitOfWork", "Composition", "ShopConfig", datetime], Awaitable[int]]
# What of the customer's is still waiting for the staff (open complaints, a staff thread):
# localized short descriptions with their codes, named before /delete erases them unanswered.
Unanswered = Callable[["Context"], Awaitable[list[str]]]

H = TypeVar("H", bound=Callable[..., Any])


@dataclass(frozen=True)
class Route:
    handler: Handler
    staff: bool = False  # only staff (staff chat members and admins) may use it
    admin: bool = False  # only STAFF_ADMIN_IDS
    locked_ok: bool = False  # still available to a locked customer (data rights)
    help_key: str | None = None  # catalog id of the one-line description in /help and menus
    everywhere: bool = False  # also in the staff chat (generic buttons such as "badchoice")
    kind: type[Payload] | None = None  # the payload kind a button route parses
    refused_key: str | None = None  # catalog id answering a payload of `kind` that is invalid


@dataclass(frozen=True)
class MenuItem:
    label_key: str
    payload: Payload


@dataclass(frozen=True)
class DeepLink:
    prefix: str  # of the /start argument, e.g. "p_" in "p_SD-001"
    continuation: str
    key: str  # the continuation's context key that receives the rest


class Router:
    """What one feature handles; see the module docstring."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.commands: dict[str, Route] = {}
        self.staff_commands: dict[str, Route] = {}
        self.payloads: dict[str, Route] = {}
        self.text_handlers: list[TextHandler] = []
        self.staff_text_handlers: list[TextHandler] = []
        self.flows: dict[str, Flow] = {}
        self.continuations: dict[str, Continuation] = {}
        self.deep_links: list[DeepLink] = []
        self.erasers: list[Eraser] = []
        self.export_sections: dict[str, ExportSection] = {}
        self.periodic_tasks: dict[str, PeriodicTask] = {}
        self.inbound_filters: list[InboundFilter] = []
        self.interjections: list[Interjection] = []
        self.unanswered_listers: list[Unanswered] = []

    def command(
        self,
        *names: str,
        staff: bool = False,
        admin: bool = False,
        locked_ok: bool = False,
        help_key: str | None = None,
    ) -> Callable[[H], H]:
        def decorator(handler: H) -> H:
            table = self.staff_commands if staff or admin else self.commands
            for index, name in enumerate(names):
                table[name] = Route(
                    handler, staff or admin, admin, locked_ok, help_key if index == 0 else None
                )
            return handler

        return decorator

    def payload(
        self,
        kind: type[Payload],
        *,
        staff: bool = False,
        admin: bool = False,
        locked_ok: bool = False,
        everywhere: bool = False,
        refused_key: str | None = None,
    ) -> Callable[[H], H]:
        """Buttons of `kind`; the handler is called as `handler(ctx, payload)`. A forged or
        stale payload of this kind is answered with `refused_key` (default: "this button is
        no longer valid") and never reaches the handler."""

        def decorator(handler: H) -> H:
            self.payloads[kind.prefix] = Route(
                handler,
                staff or admin,
                admin,
                locked_ok,
                everywhere=everywhere,
                kind=kind,
                refused_key=refused_key,
            )
            return handler

        return decorator

    def text(self, handler: TextHandler) -> TextHandler:
        """Free text outside any flow, tried in declaration order until one returns True."""
        self.text_handlers.append(handler)
        return handler

    def staff_text(self, handler: TextHandler) -> TextHandler:
        """Plain messages in the staff chat (e.g. replies to an order alert)."""
        self.staff_text_handlers.append(handler)
        return handler

    def flow(self, flow: Flow) -> Flow:
        self.flows[flow.name] = flow
        return flow

    def continuation(self, name: str, fn: Continuation) -> Continuation:
        self.continuations[name] = fn
        return fn

    def deep_link(self, prefix: str, continuation: str, key: str) -> None:
        self.deep_links.append(DeepLink(prefix, continuation, key))

    def eraser(self, fn: Eraser) -> Eraser:
        self.erasers.append(fn)
        return fn

    def export_section(self, name: str) -> Callable[[ExportSection], ExportSection]:
        def decorator(fn: ExportSection) -> ExportSection:
            self.export_sections[name] = fn
            return fn

        return decorator

    def periodic(self, name: str) -> Callable[[PeriodicTask], PeriodicTask]:
        def decorator(fn: PeriodicTask) -> PeriodicTask:
            self.periodic_tasks[name] = fn
            return fn

        return decorator

    def inbound_filter(self, fn: InboundFilter) -> InboundFilter:
        self.inbound_filters.append(fn)
        return fn

    def interjection(self, fn: Interjection) -> Interjection:
        self.interjections.append(fn)
        return fn

    def unanswered(self, fn: Unanswered) -> Unanswered:
        self.unanswered_listers.append(fn)
        return fn


class CompositionError(Exception):
    """Two routers claim the same command, payload kind, flow or continuation."""


def _merge(target: dict[str, Any], source: dict[str, Any], what: str, router: str) -> None:
    for name, value in source.items():
        if name in target:
            raise CompositionError(f"{what} {name!r} declared twice (again in {router})")
        target[name] = value


class Composition:
    """The routers of the bot, merged in order; earlier routers take precedence."""

    def __init__(self, routers: Sequence[Router], menu: Sequence[MenuItem] = ()) -> None:
        self.routers = tuple(routers)
        self.menu = tuple(menu)  # the main menu, in display order
        self.commands: dict[str, Route] = {}
        self.staff_commands: dict[str, Route] = {}
        self.payloads: dict[str, Route] = {}
        self.flows: dict[str, Flow] = {}
        self.continuations: dict[str, Continuation] = {}
        self.export_sections: dict[str, ExportSection] = {}
        self.periodic_tasks: dict[str, PeriodicTask] = {}
        for router in self.routers:
            _merge(self.commands, router.commands, "command", router.name)
            _merge(self.staff_commands, router.staff_commands, "staff command", router.name)
            _merge(self.payloads, router.payloads, "payload kind", router.name)
            _merge(self.flows, router.flows, "flow", router.name)
            _merge(self.continuations, router.continuations, "continuation", router.name)
            _merge(self.export_sections, router.export_sections, "export section", router.name)
            _merge(self.periodic_tasks, router.periodic_tasks, "periodic task", router.name)
        self.text_handlers = _chain(r.text_handlers for r in self.routers)
        self.staff_text_handlers = _chain(r.staff_text_handlers for r in self.routers)
        for item in self.menu:
            if item.payload.prefix not in self.payloads:
                raise CompositionError(f"menu item {item.label_key!r}: no router handles it")
        self.deep_links = _chain(r.deep_links for r in self.routers)
        self.erasers = _chain(r.erasers for r in self.routers)
        self.inbound_filters = _chain(r.inbound_filters for r in self.routers)
        self.interjections = _chain(r.interjections for r in self.routers)
        self.unanswered_listers = _chain(r.unanswered_listers for r in self.routers)

    def find_payload(self, raw: str) -> Route | None:
        return self.payloads.get(prefix_of(raw))

    def help_entries(self, staff: bool = False) -> list[tuple[str, str]]:
        table = self.staff_commands if staff else self.commands
        return [(name, route.help_key) for name, route in table.items() if route.help_key]


T = TypeVar("T")


def _chain(parts: Iterable[list[T]]) -> tuple[T, ...]:
    return tuple(item for part in parts for item in part)

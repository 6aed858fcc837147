"""Assembles the bot from settings: database, runtime, channels."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from pydantic import SecretStr
from starlette.routing import BaseRoute

from bot.channels.console import ConsoleAdapter, ConsoleChat
from bot.config import ConfigError, Settings
from bot.observability import observability_routes
from bot.runtime import Runtime
from bot.web import TELEGRAM_PATH, WebLimits, build_app, serve, telegram_route
from handlers.context import ShopConfig
from handlers.messages import STAFF
from handlers.orders.catalog import Catalog, CatalogError
from storage.db import (
    Database,
    DatabaseUnavailable,
    Sessions,
    StorageError,
    create_engine,
    db_error_cause,
    migrate_to_head,
    session_factory,
    sqlite_path,
)
from storage.health import PipelineHealth, pipeline_health
from storage.lock import DatabaseLocked, acquire_owner_lock
from storage.secrets import stored_secret
from storage.urls import without_password

log = logging.getLogger(__name__)

DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "handlers/orders/catalog.example.toml"


@contextlib.asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[tuple[Database, Sessions]]:
    """Take the database's owner lock (a second bot process stops here with one line naming
    the first one's pid, before any platform is called), create the data folder and database
    if needed, upgrade the schema; the lock is held until the block ends.

    Every way of failing to get there — no driver, server unreachable, wrong password,
    unknown database — is one `DatabaseUnavailable` line, with the password masked."""
    url = settings.resolved_database_url
    private_folder(settings.data_dir)
    try:
        engine = create_engine(url)
    except ImportError as exc:  # asyncpg is an extra: `pip install '.[postgres]'`
        raise DatabaseUnavailable(
            f"DATABASE_URL needs the {exc.name or 'database'} driver, which is not installed: "
            "pip install 'vietartview-bot[postgres]'"
        ) from None
    try:
        lock = await acquire_owner_lock(engine, url)
        try:
            before, after = await migrate_to_head(engine)
        except BaseException:
            await lock.release()
            raise
    except BaseException as exc:
        await engine.dispose()
        if isinstance(exc, OSError | StorageError):
            raise DatabaseUnavailable(connection_problem(settings, exc)) from None
        raise
    if before != after:
        log.info("database migrated from %s to %s", before, after)
    try:
        yield engine, session_factory(engine)
    finally:
        await engine.dispose()
        await lock.release()


async def probe_database(settings: Settings) -> tuple[bool, PipelineHealth]:
    """For `python -m bot health`: whether a bot process owns the database, and the
    pipeline's backlog — read without taking the lock or touching the schema."""
    url = settings.resolved_database_url
    database = sqlite_path(url)
    if database is not None and not database.exists():
        raise DatabaseUnavailable(f"There is no database at {database} yet.")
    engine = create_engine(url)
    try:
        try:
            lock = await acquire_owner_lock(engine, url)
        except DatabaseLocked:
            running = True
        else:
            running = False
            await lock.release()
        async with session_factory(engine)() as session:
            health = await pipeline_health(session, datetime.now(UTC))
    except (OSError, StorageError) as exc:
        raise DatabaseUnavailable(connection_problem(settings, exc)) from None
    finally:
        await engine.dispose()
    return running, health


def connection_problem(settings: Settings, exc: BaseException) -> str:
    cause = without_password(db_error_cause(exc), settings.resolved_database_url)
    return f"Cannot connect to the database {settings.database_display}: {cause}"


def private_folder(path: Path) -> None:
    """The data folder (database, exports) is the bot's alone: created 0700, and closed to
    others if an earlier version left it readable by them."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if (mode := path.stat().st_mode) & 0o077:
            path.chmod(mode & 0o700)
    except OSError as exc:
        raise DatabaseUnavailable(f"Cannot create the data folder {path}: {exc.strerror}") from None


def console_adapter(settings: Settings, user_id: str) -> ConsoleAdapter:
    adapter = ConsoleAdapter(
        user_id=user_id,
        files_dir=settings.data_dir / "files",
        files_keep=timedelta(minutes=settings.files_keep_minutes),
    )
    adapter.remove_expired_files()
    return adapter


def load_catalog(settings: Settings) -> Catalog:
    """The shop's product catalog; a broken file stops the start with one clear line."""
    path = settings.catalog_path or DEFAULT_CATALOG
    try:
        return Catalog.load(path)
    except CatalogError as exc:
        raise ConfigError(f"Configuration error: CATALOG_PATH: {exc}") from None
    except OSError as exc:
        raise ConfigError(
            f"Configuration error: CATALOG_PATH: cannot read {path}: {exc.strerror}"
        ) from None


def staff_chat(settings: Settings) -> tuple[str, str]:
    """(channel, chat id) of the staff chat: the Telegram group when Telegram runs, else the
    terminal ("@staff" lines)."""
    return ("telegram", settings.staff_chat_id) if settings.has_telegram else ("console", STAFF)


def shop_config(settings: Settings, staff_channel: str, staff_chat_id: str) -> ShopConfig:
    return ShopConfig(
        catalog=load_catalog(settings),
        shop_hours=settings.shop_hours,
        retention_days=settings.retention_days,
        mydata_delete_after=timedelta(seconds=settings.mydata_delete_after_seconds),
        ticket_reannounce_after=timedelta(hours=settings.ticket_reannounce_hours),
        urgent_ticket_reannounce_after=timedelta(hours=settings.urgent_ticket_reannounce_hours),
        flood_limit=settings.flood_limit,
        flood_window=timedelta(seconds=settings.flood_window_seconds),
        inbox_keep=timedelta(days=settings.inbox_keep_days),
        outbox_keep=timedelta(days=settings.outbox_keep_days),
        staff_channel=staff_channel,
        staff_chat_id=staff_chat_id,
        staff_admin_ids=frozenset(settings.staff_admin_ids),
        default_language=settings.default_locale,
        draft_ttl=timedelta(hours=settings.draft_ttl_hours),
        carrier_name=settings.carrier_name,
        staff_web_url=settings.staff_web_url,
        zns_templates=dict(settings.zalo_zns_templates),
        shipping_fee_vnd=settings.shipping_fee_vnd,
        free_shipping_over_vnd=settings.free_shipping_over_vnd,
        payment_bank_bin=settings.payment_bank_bin,
        payment_account_number=settings.payment_account_number,
        payment_account_name=settings.payment_account_name,
    )


async def run_console(
    settings: Settings, user_id: str, language: str | None, stream: TextIO = sys.stdin
) -> None:
    async with open_database(settings) as (_engine, sessions):
        runtime = Runtime(sessions, shop_config(settings, "console", STAFF))
        adapter = console_adapter(settings, user_id)
        runtime.add_adapter(adapter)
        runtime.start()
        await runtime.resume_pending()
        await runtime.idle()
        staff_user = settings.staff_admin_ids[0] if settings.staff_admin_ids else "console-staff"
        chat = ConsoleChat(runtime, adapter, staff_user_id=staff_user, language=language)
        try:
            await chat.run(stream)
        finally:
            await runtime.stop()


async def run_channels(
    settings: Settings,
    stop: asyncio.Event | None = None,
    started: Callable[[Runtime], None] | None = None,
) -> None:
    """Run the configured platform channels until SIGINT/SIGTERM (or `stop`), then stop
    cleanly. Tests pass their own `stop` and get the runtime through `started`."""
    if settings.has_telegram and not settings.staff_chat_id:
        raise ConfigError("Configuration error: STAFF_CHAT_ID: required with TELEGRAM_BOT_TOKEN")
    async with open_database(settings) as (_engine, sessions):
        await _run_channels(settings, sessions, stop, started)


async def _run_channels(
    settings: Settings,
    sessions: Sessions,
    stop: asyncio.Event | None,
    started: Callable[[Runtime], None] | None,
) -> None:
    runtime = Runtime(sessions, shop_config(settings, *staff_chat(settings)))
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    background: list[asyncio.Task[None]] = []
    routes: list[BaseRoute] = []
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        if settings.has_telegram:
            await _start_telegram(settings, runtime, stop, background, routes, closers)
        else:  # staff work in this terminal: "@staff …" lines, "[staff] …" output
            console = console_adapter(settings, "")
            runtime.add_adapter(console)
            staff_user = (
                settings.staff_admin_ids[0] if settings.staff_admin_ids else "console-staff"
            )
            chat = ConsoleChat(
                runtime, console, staff_user_id=staff_user, language=None, staff_only=True
            )
            background.append(asyncio.create_task(chat.run(sys.stdin)))
        if settings.has_zalo_oa:
            await _start_zalo_oa(settings, runtime, sessions, routes, closers)
        if settings.has_zalo_bot:
            await _start_zalo_bot(settings, runtime, background, routes, closers)
        if settings.payment_webhook_api_key is not None:
            from bot.payments import sepay_route

            routes.append(sepay_route(runtime, settings.payment_webhook_api_key.get_secret_value()))
        if settings.staff_web_enabled:  # the server then runs in polling mode too
            from bot.staff_web import StaffWeb

            routes.extend(StaffWeb(runtime).routes())
        server: asyncio.Task[None] | None = None
        if routes:
            routes.extend(observability_routes(runtime.metrics, runtime.pipeline_health))
            limits = WebLimits(
                max_connections=settings.webhook_max_connections,
                header_timeout=settings.webhook_header_timeout_seconds,
                body_timeout=settings.webhook_body_timeout_seconds,
            )
            server = asyncio.create_task(
                serve(
                    build_app(routes, limits),
                    settings.webhook_host,
                    settings.webhook_port,
                    stop,
                    limits,
                )
            )
            log.info("webhook server on %s:%s", settings.webhook_host, settings.webhook_port)
        runtime.start()
        await runtime.resume_pending()
        log.info("bot running; Ctrl-C or SIGTERM stops it")
        if started is not None:
            started(runtime)
        await stop.wait()
        log.info("stopping")
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        if server is not None:
            await server
        await runtime.stop()
    finally:
        for close in reversed(closers):
            await close()


async def _webhook_secret(sessions: Sessions, name: str, configured: SecretStr | None) -> str:
    """The configured secret, else one generated on the first start and kept in the database:
    the platform keeps the registered secret, so a restart must present the same one."""
    if configured is not None and configured.get_secret_value():
        return configured.get_secret_value()
    return await stored_secret(sessions, name, lambda: secrets.token_urlsafe(32))


async def _start_telegram(
    settings: Settings,
    runtime: Runtime,
    stop: asyncio.Event,
    background: list[asyncio.Task[None]],
    routes: list[BaseRoute],
    closers: list[Callable[[], Awaitable[None]]],
) -> None:
    from telegram import Update
    from telegram.error import InvalidToken, TelegramError

    from bot.channels import telegram as tg

    assert settings.telegram_bot_token is not None
    application = tg.build_application(
        settings.telegram_bot_token.get_secret_value(), settings.telegram_api_base_url
    )
    try:
        await application.initialize()  # getMe: proves the token works
    except InvalidToken:
        raise ConfigError("Configuration error: TELEGRAM_BOT_TOKEN: Telegram refused it") from None
    except TelegramError as exc:
        raise ConfigError(
            "Configuration error: TELEGRAM_API_BASE_URL: Telegram cannot be reached "
            f"({type(exc).__name__})"
        ) from None
    closers.append(application.shutdown)
    adapter = tg.TelegramAdapter(application)
    runtime.add_adapter(adapter)
    receiver = tg.TelegramReceiver(
        application, adapter, runtime.receive, settings.staff_chat_id, runtime.wants_typing
    )
    try:
        await tg.set_command_menus(application, runtime.app, settings.staff_chat_id)
    except TelegramError as exc:
        log.warning("setting the command menus failed: %s", type(exc).__name__)
    if settings.webhook_public_url:
        secret = await _webhook_secret(
            runtime.sessions, "telegram_webhook_secret", settings.telegram_webhook_secret
        )
        await application.bot.set_webhook(
            url=settings.webhook_public_url.rstrip("/") + TELEGRAM_PATH,
            secret_token=secret,
            allowed_updates=tg.ALLOWED_UPDATES,
        )

        async def handle(data: dict[str, object]) -> None:
            try:
                update = Update.de_json(data, application.bot)
            except Exception as exc:  # unreadable: acknowledge, or Telegram resends it forever
                log.error("skipping an unreadable webhook update (%s)", type(exc).__name__)
                return
            if update is not None:
                await receiver.handle(update)

        routes.append(telegram_route(secret, handle, runtime.overloaded))
        log.info("telegram: webhook mode")
    else:
        await application.bot.delete_webhook()
        background.append(asyncio.create_task(tg.poll(application, receiver, stop)))
        log.info("telegram: polling mode")


async def _start_zalo_oa(
    settings: Settings,
    runtime: Runtime,
    sessions: Sessions,
    routes: list[BaseRoute],
    closers: list[Callable[[], Awaitable[None]]],
) -> None:
    import httpx

    from bot.channels.zalo_oa import ZaloOAAdapter
    from bot.zalo.oa_client import ZaloOAClient
    from bot.zalo.store import DatabaseTokenStore, TokenKeyError, token_cipher
    from bot.zalo.tokens import ZaloTokenManager
    from bot.zalo.webhook import Unfollow, make_zalo_routes

    assert settings.zalo_app_secret is not None and settings.zalo_oa_secret_key is not None
    access = settings.zalo_access_token.get_secret_value() if settings.zalo_access_token else ""
    refresh = settings.zalo_refresh_token.get_secret_value() if settings.zalo_refresh_token else ""
    try:
        store = DatabaseTokenStore(sessions, token_cipher(settings))
        if refresh and await store.seed(access, refresh):
            log.info("zalo oa: token pair seeded from the settings")
        elif await store.load() is None:
            raise ConfigError(
                "Configuration error: ZALO_REFRESH_TOKEN: needed once to seed the Zalo OA tokens"
            )
    except TokenKeyError as exc:
        raise ConfigError(str(exc)) from None
    http = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0))
    closers.append(http.aclose)

    async def token_failed(reason: str) -> None:
        await runtime.notify_staff("core.staff.zalo_token_failed", reason=reason[:120])

    tokens = ZaloTokenManager(
        store,
        http,
        settings.zalo_oauth_base_url,
        settings.zalo_app_id,
        settings.zalo_app_secret.get_secret_value(),
        on_failure=token_failed,
    )
    tokens.on_refresh = lambda outcome: runtime.metrics.token_refreshes.labels(outcome).inc()
    runtime.add_adapter(ZaloOAAdapter(ZaloOAClient(http, settings.zalo_api_base_url, tokens)))
    if settings.zalo_zns_templates:  # status updates outside the messaging window
        from bot.channels.zalo_zns import ZaloZNSAdapter
        from bot.zalo.zns_client import ZaloZNSClient

        runtime.add_adapter(
            ZaloZNSAdapter(ZaloZNSClient(http, settings.zalo_zns_api_base_url, tokens))
        )

    async def on_unfollow(event: Unfollow) -> None:
        await runtime.customer_left("zalo", event.user_id)

    routes.extend(
        make_zalo_routes(
            runtime.receive,
            app_id=settings.zalo_app_id,
            oa_secret_key=settings.zalo_oa_secret_key.get_secret_value(),
            on_unfollow=on_unfollow,
            verification_file_name=settings.zalo_verification_file_name or None,
            verification_file_content=settings.zalo_verification_file_content or None,
            window_s=settings.zalo_webhook_window_seconds,
            overloaded=runtime.overloaded,
        )
    )
    log.info("zalo oa: webhook at /zalo/webhook")


async def _start_zalo_bot(
    settings: Settings,
    runtime: Runtime,
    background: list[asyncio.Task[None]],
    routes: list[BaseRoute],
    closers: list[Callable[[], Awaitable[None]]],
) -> None:
    import httpx

    from bot.channels.zalo_bot import ZaloBotAdapter
    from bot.zalo.bot_client import (
        ZaloBotClient,
        ZaloBotPoller,
        make_zalo_bot_webhook_route,
    )

    assert settings.zalo_bot_token is not None
    http = httpx.AsyncClient(timeout=httpx.Timeout(40.0, connect=5.0))
    closers.append(http.aclose)
    client = ZaloBotClient(
        http, settings.zalo_bot_api_base_url, settings.zalo_bot_token.get_secret_value()
    )
    adapter = ZaloBotAdapter(client)
    runtime.add_adapter(adapter)
    receive = adapter.wrap_receive(runtime.receive)
    if settings.webhook_public_url:
        secret = await _webhook_secret(
            runtime.sessions, "zalo_bot_webhook_secret", settings.zalo_bot_webhook_secret
        )
        route = make_zalo_bot_webhook_route(receive, secret)
        await client.set_webhook(settings.webhook_public_url.rstrip("/") + route.path, secret)
        routes.append(route)
        log.info("zalo bot: webhook mode")
    else:
        await client.delete_webhook()
        poller = ZaloBotPoller(client, receive)
        background.append(asyncio.create_task(poller.run()))
        log.info("zalo bot: polling mode")

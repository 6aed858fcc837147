"""Assembles the bot from settings: database, runtime, channels."""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from pathlib import Path
from typing import TextIO

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.channels.console import ConsoleAdapter, ConsoleChat
from bot.config import ConfigError, Settings
from bot.runtime import Runtime
from handlers.context import ShopConfig
from handlers.messages import STAFF
from handlers.orders.catalog import Catalog, CatalogError
from storage.db import create_engine, migrate_to_head, session_factory

log = logging.getLogger(__name__)

DEFAULT_CATALOG = (
    Path(__file__).resolve().parent.parent / "handlers" / "orders" / "catalog.example.toml"
)


async def open_database(settings: Settings) -> tuple[AsyncEngine, async_sessionmaker[AsyncSession]]:
    """Create the data folder and database if needed and upgrade the schema to the newest."""
    engine = create_engine(settings.resolved_database_url)
    try:
        before, after = await migrate_to_head(engine)
    except BaseException:
        await engine.dispose()
        raise
    if before != after:
        log.info("database migrated from %s to %s", before, after)
    return engine, session_factory(engine)


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


def shop_config(settings: Settings, staff_channel: str, staff_chat_id: str) -> ShopConfig:
    return ShopConfig(
        catalog=load_catalog(settings),
        shop_hours=settings.shop_hours,
        staff_channel=staff_channel,
        staff_chat_id=staff_chat_id,
        staff_admin_ids=frozenset(settings.staff_admin_ids),
        default_language=settings.default_locale,
        draft_ttl=timedelta(hours=settings.draft_ttl_hours),
        carrier_name=settings.carrier_name,
    )


async def run_console(
    settings: Settings, user_id: str, language: str | None, stream: TextIO = sys.stdin
) -> None:
    engine, sessions = await open_database(settings)
    try:
        runtime = Runtime(sessions, shop_config(settings, "console", STAFF))
        adapter = ConsoleAdapter(user_id=user_id, files_dir=settings.data_dir / "files")
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
    finally:
        await engine.dispose()

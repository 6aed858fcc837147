"""Command line: `python -m bot run | chat | migrate | purge | backup | restore | zalo-token`
(each with --help)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from bot.config import ConfigError, Settings, load_settings
from bot.logs import setup_logging
from storage import backup as storage_backup
from storage.db import DatabaseUnavailable, StorageError, describe_db_error, sqlite_path
from storage.lock import DatabaseLocked, FileLock, lock_path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bot",
        description="Viet Art View order and support assistant (Telegram, Zalo, console).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser(
        "run",
        help="run the configured channels (the console chat when no token is set)",
        description="Run the channels configured in the environment or .env. With no "
        "TELEGRAM_BOT_TOKEN and no Zalo token, says so and starts the console chat.",
    )
    chat = sub.add_parser(
        "chat",
        help="chat with the bot in this terminal (or from piped input)",
        description="The console channel: one message per line on standard input. A number "
        "presses a button; '/contact +84912345678 Name' shares a contact; '@staff TEXT' "
        "writes in the staff chat.",
    )
    chat.add_argument("--user", default="1000", help="customer id to chat as (default 1000)")
    chat.add_argument("--lang", choices=("vi", "en"), help="the language hint of this customer")
    sub.add_parser(
        "migrate",
        help="upgrade the database schema to the newest version",
        description="Apply the Alembic migrations to DATABASE_URL (the bot also does this "
        "itself when it starts).",
    )
    token = sub.add_parser(
        "zalo-token",
        help="store a new Zalo OA refresh token (after the shop re-authorizes the app)",
        description="Replace the stored Zalo OA token pair with REFRESH_TOKEN; the next send "
        "refreshes the access token with it.",
    )
    token.add_argument("refresh_token", metavar="REFRESH_TOKEN")
    login = sub.add_parser(
        "web-login",
        help="print a single-use sign-in link (10 minutes) for the staff web page",
        description="Issue a sign-in link for NAME, shown on the page and in the audit log. "
        "While the bot runs it owns the database: type /web in the staff chat instead.",
    )
    login.add_argument("name", metavar="NAME")
    login.add_argument("--admin", action="store_true", help="with admin rights (bulk export)")
    sub.add_parser(
        "purge",
        help="erase customers inactive longer than RETENTION_DAYS and expired drafts",
        description="Run the retention purge once (the running bot also does it hourly) and "
        "print how many customers and drafts were erased.",
    )
    backup = sub.add_parser(
        "backup",
        help="copy the SQLite database to PATH while the bot runs (online backup)",
        description="Write a consistent, integrity-checked copy of the SQLite database to PATH "
        "(mode 0600); the bot may keep running. On PostgreSQL use pg_dump (README, Backups).",
    )
    backup.add_argument("path", metavar="PATH", type=Path)
    restore = sub.add_parser(
        "restore",
        help="replace the SQLite database with a backup (stop the bot first)",
        description="Check the backup at PATH and copy it over the database. The bot must be "
        "stopped; it upgrades the schema itself when it starts again.",
    )
    restore.add_argument("path", metavar="PATH", type=Path)
    health = sub.add_parser(
        "health",
        help="is the bot running and keeping up? (a container's health check)",
        description="Print one JSON line — whether a bot process holds the database, messages "
        "waiting to be processed and sent, and how old the oldest is — and exit 0 when a bot "
        "runs and nothing has waited longer than --max-lag seconds, else 1.",
    )
    health.add_argument("--max-lag", type=float, default=120.0, metavar="SECONDS")
    return parser


async def _health(settings: Settings, max_lag: float) -> bool:
    from bot.app import probe_database

    running, pipeline = await probe_database(settings)
    healthy = running and pipeline.lag_seconds <= max_lag
    report = {"healthy": healthy, "bot_running": running, **pipeline.as_dict()}
    print(json.dumps(report | {"lag_seconds": round(pipeline.lag_seconds, 1)}))
    return healthy


def _backup(settings: Settings, target: Path) -> None:
    info = storage_backup.backup(_sqlite_database(settings, "backup"), target)
    size, schema = _size(info.size_bytes), info.schema_revision
    print(f"Backup written to {info.path} ({size}, schema {schema}).")


def _restore(settings: Settings, source: Path) -> None:
    database = _sqlite_database(settings, "restore")
    lock = FileLock(lock_path(database))  # a running bot holds it: stop it first
    try:
        info = storage_backup.restore(source, database)
    finally:
        asyncio.run(lock.release())
    print(
        f"Database {database} restored from {source} ({_size(info.size_bytes)}, schema "
        f"{info.schema_revision}); start the bot to bring the schema up to date."
    )


def _sqlite_database(settings: Settings, verb: str) -> Path:
    database = sqlite_path(settings.resolved_database_url)
    if database is None:
        raise ConfigError(
            f"`{verb}` handles the SQLite database; for PostgreSQL use pg_dump / pg_restore "
            "(README, Backups)."
        )
    return database


def _size(size: int) -> str:
    return f"{size / 1_048_576:.1f} MB" if size >= 1_048_576 else f"{size / 1024:.0f} KB"


async def _migrate(settings: Settings) -> None:
    from bot.app import open_database

    async with open_database(settings):
        pass
    print(f"Database is up to date: {settings.database_display}")


async def _purge(settings: Settings) -> None:
    from bot.app import open_database, shop_config, staff_chat
    from bot.runtime import Runtime

    async with open_database(settings) as (_engine, sessions):
        runtime = Runtime(sessions, shop_config(settings, *staff_chat(settings)))
        counts = await runtime.maintain()
    print(
        f"Erased {counts.get('retention_erased', 0)} inactive customer(s) "
        f"(retention {settings.retention_days} days); "
        f"deleted {counts.get('expired_drafts', 0)} expired draft(s)."
    )


async def _zalo_token(settings: Settings, refresh_token: str) -> None:
    from bot.app import open_database
    from bot.zalo.store import DatabaseTokenStore, TokenKeyError, token_cipher

    async with open_database(settings) as (_engine, sessions):
        try:
            store = DatabaseTokenStore(sessions, token_cipher(settings))
        except TokenKeyError as exc:
            raise ConfigError(str(exc)) from None
        await store.seed("", refresh_token.strip(), force=True)
    print("Zalo OA refresh token stored; the bot refreshes the access token on its next send.")


async def _web_login(settings: Settings, name: str, admin: bool) -> None:
    from bot.app import open_database
    from handlers.staff_desk import StaffMember, issue_login
    from storage.repositories import UnitOfWork
    from storage.staff_web import ADMIN, STAFF_ROLE

    if not settings.staff_web_url:
        raise ConfigError("Configuration error: STAFF_WEB_ENABLED: the staff page is off")
    member = StaffMember("cli", name.strip()[:100] or "admin", ADMIN if admin else STAFF_ROLE)
    async with open_database(settings) as (_engine, sessions), UnitOfWork(sessions) as uow:
        from bot.runtime import utc_now

        now = utc_now()
        secret = await issue_login(uow, member, now)
        await uow.audit.add(now, "staff:cli", "web_login_issued", detail=member.role)
        await uow.commit()
    print(f"{settings.staff_web_url}/login/{secret}")
    print("Single use, valid for 10 minutes.", file=sys.stderr)


async def _run(settings: Settings) -> None:
    from bot.app import run_console

    if not settings.has_channels:
        print(
            "No TELEGRAM_BOT_TOKEN or Zalo token configured: starting the console chat "
            "(type /start; Ctrl-D to quit).",
            file=sys.stderr,
        )
        await run_console(settings, user_id="1000", language=None)
        return
    from bot.app import run_channels

    await run_channels(settings)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    os.umask(0o077)  # everything the bot creates (database, WAL, exports) is its own
    try:
        settings = load_settings()
        setup_logging(
            verbose=args.command == "run" and settings.has_telegram, log_format=settings.log_format
        )
        if args.command == "migrate":
            asyncio.run(_migrate(settings))
        elif args.command == "zalo-token":
            asyncio.run(_zalo_token(settings, args.refresh_token))
        elif args.command == "web-login":
            asyncio.run(_web_login(settings, args.name, args.admin))
        elif args.command == "purge":
            asyncio.run(_purge(settings))
        elif args.command == "backup":
            _backup(settings, args.path)
        elif args.command == "restore":
            _restore(settings, args.path)
        elif args.command == "health":
            return 0 if asyncio.run(_health(settings, args.max_lag)) else 1
        elif args.command == "chat":
            from bot.app import run_console

            asyncio.run(run_console(settings, user_id=args.user, language=args.lang))
        else:
            asyncio.run(_run(settings))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    except DatabaseLocked as exc:  # another bot process owns the database
        print(exc, file=sys.stderr)
        return 2
    except storage_backup.BackupError as exc:
        print(exc, file=sys.stderr)
        return 1
    except DatabaseUnavailable as exc:
        print(f"Database error: {exc}", file=sys.stderr)
        return 1
    except StorageError as exc:  # e.g. the file became read-only while running
        print(f"Database error: {describe_db_error(exc)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())

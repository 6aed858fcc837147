"""Operating the bot from the command line, as an operator (or a container's health check)
would: `backup PATH` while the bot runs, `restore PATH`, `health` — on real SQLite files."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
from pathlib import Path

import pytest

from tests.test_console_cli import (
    CODE,
    assert_one_clear_line,
    chat,
    finish,
    run_bot,
    start_bot,
)

pytestmark = pytest.mark.subprocess

ORDER = (
    "/order",
    "Nguyễn Văn Thành",
    "/contact +84912345678 Thành",
    "12 Hàng Bạc, Hoàn Kiếm, Hà Nội",
    "1",  # skip the email
    "SD-001",
    "1",  # no photos
    "1",  # confirm
)


def running_bot(data_dir: Path) -> subprocess.Popen[bytes]:
    """A console bot that has started (it answered a first message): it holds the database."""
    bot = start_bot("chat", data_dir=data_dir)
    assert bot.stdin is not None and bot.stdout is not None
    bot.stdin.write(b"/start\n")
    bot.stdin.flush()
    assert bot.stdout.readline()  # its first reply: the owner lock is taken by now
    return bot


def order_codes(database: Path) -> set[str]:
    with sqlite3.connect(database) as connection:
        return {code for (code,) in connection.execute("SELECT code FROM orders")}


def test_backup_while_running_then_restore_after_stopping(tmp_path: Path) -> None:
    data_dir = tmp_path / "run" / "data"
    database = data_dir / "vietartview.db"
    first = CODE.findall(chat(data_dir, "/start", "1", *ORDER))
    assert first and order_codes(database) == {first[0]}

    # The bot is running (it holds the database) while the backup is taken.
    running = running_bot(data_dir)
    target = tmp_path / "backups" / "shop.db"
    target.parent.mkdir()
    result = run_bot("backup", str(target), data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert f"Backup written to {target}" in result.stdout
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert order_codes(target) == {first[0]}
    assert not list(target.parent.glob(".*partial*"))  # no temporary file left behind

    # Restoring under a running bot is refused, and the database is untouched.
    refused = run_bot("restore", str(target), data_dir=data_dir)
    assert_one_clear_line(refused, "Another bot process", f"pid {running.pid}")
    finish(running, "/start\n")

    # A second order after the backup; the restore brings back the state of the backup.
    second = CODE.findall(chat(data_dir, *ORDER))
    assert second and order_codes(database) == {first[0], second[0]}
    restored = run_bot("restore", str(target), data_dir=data_dir)
    assert restored.returncode == 0, restored.stderr
    assert "restored from" in restored.stdout
    assert order_codes(database) == {first[0]}
    # The bot runs on the restored database as before.
    out = chat(data_dir, "@staff /orders")
    assert first[0] in out and second[0] not in out


def test_bad_backup_and_restore_paths_get_one_line(tmp_path: Path) -> None:
    data_dir = tmp_path / "run" / "data"
    database = data_dir / "vietartview.db"

    nothing_yet = run_bot("backup", str(tmp_path / "b.db"), data_dir=data_dir)
    assert_one_clear_line(nothing_yet, "no database")

    chat(data_dir, "/start", "1", *ORDER)
    before = order_codes(database)
    no_folder = run_bot("backup", str(tmp_path / "missing" / "b.db"), data_dir=data_dir)
    assert_one_clear_line(no_folder, "does not exist")

    not_a_database = tmp_path / "notes.db"
    not_a_database.write_text("this is not a database\n" * 100)
    refused = run_bot("restore", str(not_a_database), data_dir=data_dir)
    assert_one_clear_line(refused, "not a readable SQLite database")
    assert order_codes(database) == before

    on_postgres = run_bot(
        "backup",
        str(tmp_path / "b.db"),
        data_dir=data_dir,
        settings={"DATABASE_URL": "postgresql+asyncpg://shop:s3cret@127.0.0.1:1/shop"},
    )
    assert_one_clear_line(on_postgres, "pg_dump")
    assert "s3cret" not in on_postgres.stderr + on_postgres.stdout


def test_health_says_whether_a_bot_runs_and_how_old_the_backlog_is(tmp_path: Path) -> None:
    data_dir = tmp_path / "run" / "data"
    no_database = run_bot("health", data_dir=data_dir)
    assert_one_clear_line(no_database, "no database")

    chat(data_dir, "/start", "1")
    stopped = run_bot("health", data_dir=data_dir)
    assert stopped.returncode == 1
    assert json.loads(stopped.stdout) == {
        "healthy": False,
        "bot_running": False,
        "inbound_pending": 0,
        "oldest_inbound_seconds": None,
        "outbound_pending": 0,
        "oldest_outbound_seconds": None,
        "lag_seconds": 0.0,
    }

    running = running_bot(data_dir)
    try:
        healthy = run_bot("health", data_dir=data_dir)
    finally:
        finish(running, "/start\n")
    assert healthy.returncode == 0, healthy.stderr
    assert json.loads(healthy.stdout)["healthy"] is True

    # A message stored ten minutes ago and never processed (the bot is down): a backlog.
    with sqlite3.connect(data_dir / "vietartview.db") as connection:
        connection.execute(
            "INSERT INTO inbox (channel, dedupe_key, chat_id, platform_user_id, payload,"
            " received_at) VALUES ('console', 'late-1', '7', '7', '{}',"
            " datetime('now', '-600 seconds'))"
        )
    late = json.loads(run_bot("health", "--max-lag", "60", data_dir=data_dir).stdout)
    assert late["inbound_pending"] == 1 and late["oldest_inbound_seconds"] >= 600
    assert late["lag_seconds"] >= 600 and late["healthy"] is False

"""One bot process per database: a second process stops with one line naming the first
one's pid, before it calls any platform; the generated webhook secret survives restarts."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bot.app import run_channels
from storage.lock import DatabaseLocked
from tests.fakes.telegram_api import FakeTelegramAPI
from tests.helpers import CLI_SETTING_PREFIXES, PROJECT_DIR, tr
from tests.telegram_helpers import (
    CUSTOMER,
    TOKEN,
    release_long_poll,
    running_bot,
    texts_to,
    webhook_settings,
)

pytestmark = pytest.mark.subprocess


def _bot(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(CLI_SETTING_PREFIXES)}
    env.update(DATA_DIR=str(tmp_path / "data"), PYTHONPATH=str(PROJECT_DIR))
    return subprocess.Popen(
        [sys.executable, "-m", "bot", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )


def test_a_second_process_on_the_same_database_exits_naming_the_first(tmp_path: Path) -> None:
    first = _bot(tmp_path, "chat")
    lock_file = tmp_path / "data" / "vietartview.db.lock"
    try:
        deadline = time.monotonic() + 60
        while not (lock_file.exists() and lock_file.read_text().strip() == str(first.pid)):
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "the first bot never took the lock"
            time.sleep(0.05)

        second = _bot(tmp_path, "chat")
        out, err = second.communicate("/start\n", timeout=60)
        assert second.returncode == 2
        assert out == ""  # it never answered: it stopped before doing anything
        assert err.strip().splitlines() == [
            f"Another bot process (pid {first.pid}) is already running on "
            f"{tmp_path / 'data' / 'vietartview.db'}: stop it first, or give this one its "
            "own DATA_DIR / DATABASE_URL."
        ]
        # The first one is unaffected and still answers.
        out, err = first.communicate("/start\n", timeout=60)
        assert first.returncode == 0, err
        assert tr("core.greeting").splitlines()[0] in out
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()

    # Released at exit: the next process starts normally.
    third = _bot(tmp_path, "chat")
    out, err = third.communicate("/start\n", timeout=60)
    assert third.returncode == 0, err


def test_the_lock_dies_with_a_killed_process(tmp_path: Path) -> None:
    first = _bot(tmp_path, "chat")
    lock_file = tmp_path / "data" / "vietartview.db.lock"
    deadline = time.monotonic() + 60
    while not (lock_file.exists() and lock_file.read_text().strip() == str(first.pid)):
        assert time.monotonic() < deadline and first.poll() is None
        time.sleep(0.05)
    first.kill()  # kill -9: no clean-up at all
    first.wait()
    second = _bot(tmp_path, "chat")
    out, err = second.communicate("/start\n", timeout=60)
    assert second.returncode == 0, err


async def test_webhook_mode_second_instance_never_touches_the_webhook(tmp_path: Path) -> None:
    async with FakeTelegramAPI(token=TOKEN) as api:
        settings = webhook_settings(tmp_path, api, telegram_webhook_secret=None)
        async with running_bot(api, settings):
            secret = api.calls("setWebhook")[0]["secret_token"]
            calls_before = len(api.requests)
            with pytest.raises(DatabaseLocked, match=rf"pid {os.getpid()}\)"):
                await asyncio.wait_for(run_channels(settings, stop=asyncio.Event()), 30)
            assert len(api.requests) == calls_before  # no getMe, no setWebhook

        # A restart registers the same secret (kept in the database), so an update signed
        # with the secret Telegram already has is accepted.
        async with running_bot(api, settings) as bot:
            assert [c["secret_token"] for c in api.calls("setWebhook")] == [secret, secret]
            accepted = await bot.post(api.text_update(CUSTOMER, "/start"), secret=secret)
            assert accepted.status_code == 200
            await bot.settle()
            assert texts_to(api.requests, CUSTOMER)
        await release_long_poll(api)

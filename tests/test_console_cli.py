"""The command line, driven as a user would: `python -m bot chat` with piped input in a
temporary DATA_DIR, the other subcommands, bad settings and unusable databases, and a
`kill -9` in the middle of an order.

Every run uses a clean environment (no tokens, no `.env`), so what is tested is exactly the
console channel on a fresh SQLite database.
"""

from __future__ import annotations

import hashlib
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.config import Settings
from tests.helpers import PROJECT_DIR, first_line, tr

pytestmark = pytest.mark.subprocess

CODE = re.compile(r"\bVAV-[23456789A-HJKMNP-Z]{5}\b")
RUN_TIMEOUT = 120  # a safety net against a hanging process, not a performance assertion


def clean_env(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key.lower() not in Settings.model_fields and not key.startswith("PYTEST")
    }
    env.update(
        DATA_DIR=str(data_dir),
        PYTHONPATH=str(PROJECT_DIR),
        LC_ALL="C.UTF-8",
        PYTHONDONTWRITEBYTECODE="1",
    )
    env.update(settings)
    return env


def start_bot(
    *args: str,
    data_dir: Path,
    settings: dict[str, str] | None = None,
    preexec: list[str] | None = None,
    cwd: Path | None = None,
) -> subprocess.Popen[bytes]:
    """Start `python -m bot ARGS` (by default in `data_dir`'s parent folder: no `.env`)."""
    if cwd is None:
        cwd = data_dir.parent
        cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [*(preexec or []), sys.executable, "-m", "bot", *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=cwd,
        env=clean_env(data_dir, **(settings or {})),
    )


def finish(proc: subprocess.Popen[bytes], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """Write `stdin`, close it, and wait for the exit."""
    out, err = proc.communicate(stdin.encode("utf-8"), timeout=RUN_TIMEOUT)
    return subprocess.CompletedProcess(
        proc.args, proc.returncode, out.decode("utf-8"), err.decode("utf-8")
    )


def run_bot(*args: str, stdin: str = "", **options: Any) -> subprocess.CompletedProcess[str]:
    """Run `python -m bot ARGS` to completion (options as for `start_bot`)."""
    return finish(start_bot(*args, **options), stdin)


def chat(data_dir: Path, *lines: str, args: tuple[str, ...] = ()) -> str:
    """Feed `lines` to `python -m bot chat`; it must end normally and quietly."""
    result = run_bot("chat", *args, data_dir=data_dir, stdin="".join(f"{x}\n" for x in lines))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return result.stdout


def assert_in_order(output: str, *expected: str) -> None:
    position = 0
    for text in expected:
        found = output.find(text, position)
        assert found >= 0, f"{text!r} not found (in order) in:\n{output}"
        position = found + len(text)


def assert_one_clear_line(result: subprocess.CompletedProcess[str], *words: str) -> None:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "run" / "data"


# ---- first contact ---------------------------------------------------------------------------


def test_first_contact_consent_then_menu_in_vietnamese(data_dir: Path) -> None:
    out = chat(
        data_dir,
        "/start",
        "",  # an empty line
        "/nosuchcommand",
        "42",  # a button number that the consent question does not have
        "\x00\x07",  # only control characters
        "1",  # "I agree"
    )
    assert_in_order(
        out,
        tr("core.greeting"),
        first_line("consent.notice"),
        f"[1] {tr('consent.btn.agree')}",
        tr("core.empty_message"),
        tr("core.unknown_command", command="nosuchcommand"),
        tr("console.no_such_button", number=42),
        tr("core.empty_message"),
        tr("consent.thanks"),
        tr("core.menu_intro"),
        f"[1] {tr('menu.order')}",
    )
    assert (data_dir / "vietartview.db").exists()  # created on first use


def test_english_with_lang_option(data_dir: Path) -> None:
    out = chat(data_dir, "/start", "1", args=("--lang", "en"))
    assert_in_order(
        out,
        tr("core.greeting", "en"),
        f"[1] {tr('consent.btn.agree', 'en')}",
        tr("consent.thanks", "en"),
        tr("core.menu_intro", "en"),
    )
    assert tr("core.greeting") not in out


def test_language_choice_is_remembered_across_runs(data_dir: Path) -> None:
    out = chat(data_dir, "/start", "1", "/lang", "2")
    assert_in_order(out, tr("lang.choose"), f"[2] {tr('lang.en')}", tr("lang.changed", "en"))

    again = chat(data_dir, "/help")  # a new process, same customer, no --lang
    assert tr("help.intro", "en") in again
    assert tr("help.intro") not in again


# ---- a whole order ----------------------------------------------------------------------------


def test_full_order_with_buttons_contact_and_staff_listing(data_dir: Path) -> None:
    out = chat(
        data_dir,
        "/start",
        "1",  # agree
        "/order",
        "Nguyễn Văn Thành",
        "/contact +84912345678 Thành",
        "12 Hàng Bạc, Hoàn Kiếm, Hà Nội",
        "1",  # skip the email
        "SD-001",
        "1",  # no photos
        "1",  # confirm
        "@staff /orders",
    )
    assert_in_order(
        out,
        first_line("order.ask.full_name"),
        first_line("order.ask.phone"),
        "[📱 /contact",
        first_line("order.ask.address"),
        first_line("order.ask.email"),
        first_line("order.ask.request"),
        first_line("order.ask.photos"),
        tr("order.review_title"),
        "Nguyễn Văn Thành",
        "0912 345 678",
    )
    staff_lines = [line for line in out.splitlines() if line.startswith("[staff] ")]
    alert = "\n".join(staff_lines)
    match = CODE.search(alert)
    assert match, out
    code = match.group(0)
    assert "Nguyễn Văn Thành" in alert and "<b>" not in alert  # console shows plain text
    customer_lines = [line for line in out.splitlines() if not line.startswith("[")]
    assert any(code in line for line in customer_lines)  # the customer got the same code
    # `@staff /orders` lists it, after the alert, with the customer's name and phone.
    listing = [line for line in staff_lines if line.startswith(f"[staff] {code} · ")]
    assert len(listing) == 1, alert
    assert "Nguyễn Văn Thành" in listing[0] and "0912 345 678" in listing[0]
    title = next(i for i, line in enumerate(staff_lines) if code in line)
    assert staff_lines.index(listing[0]) > title


# ---- bad input --------------------------------------------------------------------------------


def test_bad_input_gets_clear_replies_and_nfd_names_are_composed(data_dir: Path) -> None:
    nfd_name = unicodedata.normalize("NFD", "Trần Thị Thúy Hằng")
    assert nfd_name != "Trần Thị Thúy Hằng"
    bad_at_name_step = [
        "",  # empty line
        "x" * 10_000,
        "\x01\x02\x1b\x7f",  # nothing but control characters
        "🎨🖼️👍🏽",
        "/foobar",
        "99",  # a button number that does not exist
    ]
    out = chat(
        data_dir,
        "/start",
        "1",
        "/order",
        *bad_at_name_step,
        nfd_name,
        "0912345678",
        "12 Hàng Bạc, Hà Nội",
        "bỏ qua",
        "SD-001",
        "bỏ qua",
    )
    ask_name = first_line("order.ask.full_name")
    # Every bad line was answered, each time asking for the name again…
    assert out.count(ask_name) == 1 + len(bad_at_name_step)
    assert_in_order(
        out,
        tr("core.empty_message"),
        tr("validation.name.too_long", max=100),
        tr("core.empty_message"),
        tr("core.unknown_command", command="foobar"),
        tr("console.no_such_button", number=99),
        first_line("order.ask.phone"),  # …until the decomposed name was accepted
    )
    # The review shows the name composed (NFC), never decomposed.
    assert f"{tr('order.field.full_name')}: Trần Thị Thúy Hằng" in out
    assert nfd_name not in out
    assert "x" * 200 not in out  # a long line is not echoed back


# ---- other subcommands ------------------------------------------------------------------------


def test_help_for_the_program_and_every_subcommand(data_dir: Path) -> None:
    main_help = run_bot("--help", data_dir=data_dir)
    assert main_help.returncode == 0 and main_help.stderr == ""
    assert "usage: python -m bot" in main_help.stdout
    listed = re.findall(r"^\s{4}([a-z][a-z-]+)\s", main_help.stdout, flags=re.MULTILINE)
    assert {"run", "chat", "migrate"} <= set(listed)
    started = {command: start_bot(command, "--help", data_dir=data_dir) for command in listed}
    for command, proc in started.items():  # every listed subcommand explains itself
        result = finish(proc)
        assert result.returncode == 0 and result.stderr == "", command
        assert f"usage: python -m bot {command}" in result.stdout
        if command == "chat":
            assert "--lang" in result.stdout and "--user" in result.stdout
    assert not data_dir.exists()  # asking for help touches nothing


def test_migrate_creates_the_database_and_is_repeatable(data_dir: Path) -> None:
    for _ in range(2):
        result = run_bot("migrate", data_dir=data_dir)
        assert result.returncode == 0 and result.stderr == ""
        assert "vietartview.db" in result.stdout
    assert (data_dir / "vietartview.db").stat().st_size > 0


def test_run_without_tokens_starts_the_console(data_dir: Path) -> None:
    result = run_bot("run", data_dir=data_dir, stdin="/start\n")
    assert result.returncode == 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "console" in lines[0]
    assert tr("core.greeting") in result.stdout


# ---- bad settings and unusable databases ------------------------------------------------------


MALFORMED = [
    ("WEBHOOK_PORT", "abc"),
    ("STAFF_ADMIN_IDS", "1,x"),
    ("TELEGRAM_API_BASE_URL", "telegram-secret-value"),
]


def test_malformed_setting_stops_with_one_line(data_dir: Path) -> None:
    started = [
        (name, value, start_bot("chat", data_dir=data_dir, settings={name: value}))
        for name, value in MALFORMED
    ]
    for name, value, proc in started:
        result = finish(proc, "/start\n")
        assert_one_clear_line(result, name)
        assert value not in result.stderr
        assert result.stdout == ""


def test_unreachable_postgresql_is_one_line_with_the_password_masked(data_dir: Path) -> None:
    url = "postgresql://shop:s3cret@127.0.0.1:1/shop"  # nothing listens on port 1
    for command in ("migrate", "chat"):
        result = run_bot(command, data_dir=data_dir, settings={"DATABASE_URL": url})
        assert_one_clear_line(result, "Cannot connect to the database", "shop:***@127.0.0.1:1")
        assert "s3cret" not in result.stderr + result.stdout


def test_missing_postgresql_driver_is_one_line(data_dir: Path) -> None:
    # `sys.modules[name] = None` makes `import asyncpg` fail as on a machine without it.
    program = "import sys; sys.modules['asyncpg'] = None; from bot.__main__ import main; " \
        "sys.exit(main(['migrate']))"
    proc = subprocess.Popen(
        [sys.executable, "-c", program],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=data_dir.parent.parent,
        env=clean_env(data_dir, DATABASE_URL="postgresql://shop:s3cret@db/shop"),
    )
    result = finish(proc)
    assert_one_clear_line(result, "asyncpg", "pip install")
    assert "s3cret" not in result.stderr


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _without_root_override() -> list[str]:
    """Root ignores file permissions; drop that privilege for the child when we have it."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test a read-only file as root"
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search"]


def test_read_only_database_file(data_dir: Path, migrated_template: Path) -> None:
    data_dir.mkdir(parents=True)
    database = data_dir / "vietartview.db"
    shutil.copyfile(migrated_template, database)  # a valid, up-to-date database
    database.chmod(0o444)
    before = _sha256(database)
    try:
        result = run_bot(
            "chat", data_dir=data_dir, stdin="/start\n", preexec=_without_root_override()
        )
    finally:
        database.chmod(0o644)
    assert_one_clear_line(result, "read-only")
    assert _sha256(database) == before


def test_corrupt_database_file(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    database = data_dir / "vietartview.db"
    database.write_bytes(os.urandom(16_384))
    before = _sha256(database)
    result = run_bot("chat", data_dir=data_dir, stdin="/start\n")
    assert_one_clear_line(result, "corrupt")
    assert _sha256(database) == before
    assert result.stdout == ""


def test_data_dir_that_cannot_be_created(tmp_path: Path) -> None:
    blocker = tmp_path / "run" / "occupied"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file, not a folder")
    result = run_bot("chat", data_dir=blocker / "data", stdin="/start\n", cwd=tmp_path)
    assert_one_clear_line(result, str(blocker / "data"))
    assert result.stdout == ""


# ---- crash in the middle of an order ----------------------------------------------------------


class ConsoleProcess:
    """`python -m bot chat` with a stdin pipe kept open; output is read by a thread."""

    def __init__(self, data_dir: Path) -> None:
        self.proc = start_bot("chat", data_dir=data_dir)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen = ""
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            self.lines.put(raw.decode("utf-8"))

    def say(self, line: str, then_expect: str) -> str:
        """Send one line; return the output up to the line containing `then_expect`."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"{line}\n".encode())
        self.proc.stdin.flush()
        received = ""
        while then_expect not in received:
            try:
                received += self.lines.get(timeout=RUN_TIMEOUT)
            except queue.Empty:
                raise AssertionError(f"no {then_expect!r} after {line!r}: {received}") from None
        self.seen += received
        return received

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=RUN_TIMEOUT)

    def finish(self) -> tuple[int, str, str]:
        """Close stdin (end of input) and wait for a normal exit."""
        assert self.proc.stdin is not None and self.proc.stderr is not None
        self.proc.stdin.close()
        code = self.proc.wait(timeout=RUN_TIMEOUT)
        rest = ""
        while not self.lines.empty():
            rest += self.lines.get()
        return code, rest, self.proc.stderr.read().decode("utf-8")

    def cleanup(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=RUN_TIMEOUT)


@pytest.fixture
def processes() -> Iterator[list[ConsoleProcess]]:
    started: list[ConsoleProcess] = []
    yield started
    for process in started:
        process.cleanup()


def test_kill_9_mid_order_resumes_at_the_same_step(
    data_dir: Path, processes: list[ConsoleProcess]
) -> None:
    first = ConsoleProcess(data_dir)
    processes.append(first)
    first.say("/start", first_line("consent.notice"))
    first.say("1", tr("core.menu_intro"))
    first.say("/order", first_line("order.ask.full_name"))
    first.say("Hoàng Thị Mơ", first_line("order.ask.phone"))
    first.say("0987 654 321", first_line("order.ask.address"))
    first.say("7 Lý Quốc Sư, Hoàn Kiếm, Hà Nội", first_line("order.ask.email"))
    first.kill9()
    assert first.proc.returncode == -signal.SIGKILL

    second = ConsoleProcess(data_dir)
    processes.append(second)
    # The next answer is taken as the email answer: the same step, the same draft.
    second.say("bỏ qua", first_line("order.ask.request"))
    second.say("LUA-002", first_line("order.ask.photos"))
    review = second.say("bỏ qua", tr("flow.review_hint").splitlines()[0])
    assert tr("order.review_title") in review
    assert "Hoàng Thị Mơ" in review
    assert "0987 654 321" in review
    assert "7 Lý Quốc Sư, Hoàn Kiếm, Hà Nội" in review
    assert "LUA-002" in review
    code, _, stderr = second.finish()
    assert code == 0 and stderr == ""

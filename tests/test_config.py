"""Settings: defaults, list parsing, `.env`, and one clear line (without secrets) for a
malformed value."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import DEFAULT_DATA_DIR, ConfigError, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No setting from the developer's environment or `.env` leaks into these tests."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # `.env` is read from the working directory
    return tmp_path


def test_defaults() -> None:
    settings = load_settings()
    assert settings.data_dir == DEFAULT_DATA_DIR
    assert settings.resolved_database_url == (
        f"sqlite+aiosqlite:///{DEFAULT_DATA_DIR / 'vietartview.db'}"
    )
    assert settings.default_locale == "vi"
    assert settings.telegram_api_base_url == "https://api.telegram.org/bot"
    assert settings.zalo_api_base_url == "https://openapi.zalo.me"
    assert settings.zalo_oauth_base_url == "https://oauth.zaloapp.com"
    assert settings.webhook_port == 8080
    assert settings.staff_admin_ids == ()
    assert settings.staff_chat_id == ""
    assert settings.telegram_bot_token is None
    assert not settings.has_telegram


def test_data_dir_and_database_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "shop"))
    settings = load_settings()
    assert (
        settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path / 'shop'}/vietartview.db"
    )
    monkeypatch.setenv("DATABASE_URL", "postgresql+asyncpg://bot@db/shop")
    assert load_settings().resolved_database_url == "postgresql+asyncpg://bot@db/shop"


@pytest.mark.parametrize(
    ("written", "used", "shown"),
    [
        (
            "postgresql://shop:s3cret@db:5432/shop",
            "postgresql+asyncpg://shop:s3cret@db:5432/shop",
            "postgresql+asyncpg://shop:***@db:5432/shop",
        ),
        (
            "postgres://shop:s3cret@db/shop",
            "postgresql+asyncpg://shop:s3cret@db/shop",
            "postgresql+asyncpg://shop:***@db/shop",
        ),
        ("sqlite:////srv/shop/bot.db", "sqlite+aiosqlite:////srv/shop/bot.db", "/srv/shop/bot.db"),
    ],
)
def test_database_url_as_people_write_it(
    monkeypatch: pytest.MonkeyPatch, written: str, used: str, shown: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", written)
    settings = load_settings()
    assert settings.resolved_database_url == used
    assert settings.database_display == shown


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("mysql://shop:s3cret@db/shop", "unsupported database 'mysql'"),
        ("s3cret-not-a-url", "not a database URL"),
    ],
)
def test_unusable_database_url_is_one_line_without_the_url(
    monkeypatch: pytest.MonkeyPatch, url: str, words: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ConfigError) as error:
        load_settings()
    message = str(error.value)
    assert message.startswith("Configuration error: DATABASE_URL: ") and words in message
    assert "s3cret" not in message and "Value error" not in message


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("111,222", ("111", "222")),
        (" 111 , 222 ,", ("111", "222")),
        ("-1001234567890", ("-1001234567890",)),
        ("", ()),
    ],
)
def test_staff_admin_ids_are_comma_separated(
    monkeypatch: pytest.MonkeyPatch, raw: str, parsed: tuple[str, ...]
) -> None:
    monkeypatch.setenv("STAFF_ADMIN_IDS", raw)
    assert load_settings().staff_admin_ids == parsed


@pytest.mark.parametrize(
    ("raw", "parsed"),
    [
        ("http://127.0.0.1:8081/bot", "http://127.0.0.1:8081/bot"),
        ("https://api.telegram.org/bot", "https://api.telegram.org/bot"),
    ],
)
def test_telegram_api_base_url_keeps_the_bot_suffix(
    monkeypatch: pytest.MonkeyPatch, raw: str, parsed: str
) -> None:
    monkeypatch.setenv("TELEGRAM_API_BASE_URL", raw)
    assert load_settings().telegram_api_base_url == parsed


def test_zalo_base_url_trailing_slash_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZALO_API_BASE_URL", "http://127.0.0.1:9000/")
    assert load_settings().zalo_api_base_url == "http://127.0.0.1:9000"


def test_dot_env_is_read_and_the_environment_wins(
    monkeypatch: pytest.MonkeyPatch, clean_environment: Path
) -> None:
    (clean_environment / ".env").write_text(
        "DEFAULT_LOCALE=en\nSTAFF_ADMIN_IDS=5,6\nTELEGRAM_BOT_TOKEN=123:abc\n", encoding="utf-8"
    )
    settings = load_settings()
    assert settings.default_locale == "en"
    assert settings.staff_admin_ids == ("5", "6")
    assert settings.has_telegram
    monkeypatch.setenv("DEFAULT_LOCALE", "vi")
    assert load_settings().default_locale == "vi"


SECRET = "987654:SECRET-token-value"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("WEBHOOK_PORT", "abc"),
        ("WEBHOOK_PORT", "70000"),
        ("WEBHOOK_PORT", "0"),
        ("STAFF_ADMIN_IDS", "1,x"),
        ("STAFF_ADMIN_IDS", "111;222"),
        ("DEFAULT_LOCALE", "fr"),
        ("DRAFT_TTL_HOURS", "0"),
        ("DRAFT_TTL_HOURS", "soon"),
        ("TELEGRAM_API_BASE_URL", f"ftp://{SECRET}@example.org/bot"),
        ("TELEGRAM_API_BASE_URL", f"api.telegram.org/bot{SECRET}"),
        ("ZALO_API_BASE_URL", f"openapi.zalo.me?token={SECRET}"),
        ("ZALO_OAUTH_BASE_URL", "oauth.zaloapp.com"),
    ],
)
def test_malformed_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert name in message
    assert message.startswith("Configuration error:")
    assert "SECRET" not in message  # the value itself is never echoed
    if len(value) > 3:
        assert value not in message


def test_only_the_first_bad_setting_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEBHOOK_PORT", "abc")
    monkeypatch.setenv("DEFAULT_LOCALE", "fr")
    with pytest.raises(ConfigError) as info:
        load_settings()
    assert "\n" not in str(info.value)
    assert ("WEBHOOK_PORT" in str(info.value)) != ("DEFAULT_LOCALE" in str(info.value))


def test_secrets_are_not_shown_when_settings_are_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "TELEGRAM_BOT_TOKEN",
        "ZALO_APP_SECRET",
        "ZALO_OA_SECRET_KEY",
        "ZALO_ACCESS_TOKEN",
        "ZALO_REFRESH_TOKEN",
        "TELEGRAM_WEBHOOK_SECRET",
    ):
        monkeypatch.setenv(name, f"{SECRET}-{name}")
    monkeypatch.setenv("ZALO_APP_ID", "1234567890")  # a Zalo OA needs its app id too
    settings = load_settings()
    assert "SECRET" not in repr(settings) and "SECRET" not in str(settings)
    assert settings.telegram_bot_token is not None
    assert settings.telegram_bot_token.get_secret_value() == f"{SECRET}-TELEGRAM_BOT_TOKEN"

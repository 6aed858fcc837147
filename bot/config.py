"""Settings from the environment or `.env` (names in DESIGN.md), read with pydantic-settings.

A missing or malformed setting stops the program with one line naming it (`ConfigError`);
secret values are never echoed back.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.urls import display_url, normalize_url

PROJECT_DIR = Path(__file__).resolve().parent.parent
DEFAULT_DATA_DIR = PROJECT_DIR / "data"


class ConfigError(Exception):
    """One clear line for the operator, naming the setting."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    data_dir: Path = DEFAULT_DATA_DIR
    database_url: str = ""  # empty → SQLite file in data_dir
    default_locale: str = "vi"

    telegram_bot_token: SecretStr | None = None
    telegram_api_base_url: str = "https://api.telegram.org/bot"
    staff_chat_id: str = ""  # empty → staff work in the console (prefix "@staff ")
    staff_admin_ids: Annotated[tuple[str, ...], NoDecode] = ()

    zalo_app_id: str = ""
    zalo_app_secret: SecretStr | None = None
    zalo_oa_secret_key: SecretStr | None = None
    zalo_access_token: SecretStr | None = None
    zalo_refresh_token: SecretStr | None = None
    zalo_api_base_url: str = "https://openapi.zalo.me"
    zalo_oauth_base_url: str = "https://oauth.zaloapp.com"
    zalo_webhook_window_seconds: int = Field(default=300, gt=0)
    zalo_verification_file_name: str = ""
    zalo_verification_file_content: str = ""
    token_encryption_key: SecretStr | None = None  # Fernet key; default: from ZALO_APP_SECRET
    zalo_bot_token: SecretStr | None = None
    zalo_bot_api_base_url: str = "https://bot-api.zaloplatforms.com"
    zalo_bot_webhook_secret: SecretStr | None = None
    # ZNS template id per order status ("shipping:301234,done:301235"): status updates to a
    # Zalo customer whose messaging window has closed go as these templates.
    zalo_zns_templates: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    zalo_zns_api_base_url: str = "https://business.openapi.zalo.me"

    staff_web_enabled: bool = False  # the staff page /staff/ on the web server
    staff_web_public_url: str = ""  # its public address; default WEBHOOK_PUBLIC_URL

    webhook_host: str = "127.0.0.1"  # behind a reverse proxy (TLS); 0.0.0.0 to expose it
    webhook_port: int = Field(default=8080, ge=1, le=65535)
    webhook_max_connections: int = Field(default=256, ge=4)
    webhook_header_timeout_seconds: float = Field(default=10, gt=0)
    webhook_body_timeout_seconds: float = Field(default=10, gt=0)
    webhook_public_url: str = ""
    telegram_webhook_secret: SecretStr | None = None

    policy_version: str = "2021-11-25"
    draft_ttl_hours: float = Field(default=24, gt=0)
    catalog_path: Path | None = None
    carrier_name: str = "Giao Hàng Nhanh"
    shop_hours: str = "8:00–21:00"
    retention_days: int = Field(default=730, ge=0)
    mydata_delete_after_seconds: int = Field(default=300, ge=0)
    files_keep_minutes: float = Field(default=15, gt=0)
    log_format: Literal["text", "json"] = "text"
    ticket_reannounce_hours: float = Field(default=4, gt=0)
    urgent_ticket_reannounce_hours: float = Field(default=1, gt=0)
    flood_limit: int = Field(default=20, gt=0)
    flood_window_seconds: float = Field(default=60, gt=0)
    inbox_keep_days: float = Field(default=7, gt=0)
    outbox_keep_days: float = Field(default=30, gt=0)

    shipping_fee_vnd: int = Field(default=0, ge=0)  # flat fee per order
    free_shipping_over_vnd: int = Field(default=0, ge=0)  # subtotal from which it is free
    payment_bank_bin: str = ""  # NAPAS BIN of the shop's bank (6 digits): enables VietQR
    payment_account_number: str = ""
    payment_account_name: str = ""
    payment_webhook_api_key: SecretStr | None = None  # SePay "Authorization: Apikey …"

    @field_validator("staff_admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            items = tuple(part.strip() for part in value.split(",") if part.strip())
            if not all(item.lstrip("-").isdigit() for item in items):
                raise ValueError("expected comma-separated numeric ids, e.g. 111,222")
            return items
        return value

    @field_validator("zalo_zns_templates", mode="before")
    @classmethod
    def _split_templates(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        from handlers.orders.service import TRANSITIONS

        templates: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            status, _, template_id = part.partition(":")
            if status.strip() not in TRANSITIONS or not template_id.strip().isdigit():
                raise ValueError(
                    "expected status:template_id pairs, e.g. shipping:301234,done:301235 "
                    f"(statuses: {', '.join(TRANSITIONS)})"
                )
            templates[status.strip()] = template_id.strip()
        return templates

    @field_validator("token_encryption_key")
    @classmethod
    def _fernet_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        try:
            if len(base64.urlsafe_b64decode(value.get_secret_value().encode("ascii"))) == 32:
                return value
        except (ValueError, UnicodeEncodeError):
            pass
        raise ValueError(
            "expected a Fernet key (44 characters of URL-safe base64), e.g. from "
            "`python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key())'`"
        )

    @field_validator("payment_bank_bin")
    @classmethod
    def _bank_bin(cls, value: str) -> str:
        value = value.strip()
        if value and not (len(value) == 6 and value.isascii() and value.isdigit()):
            raise ValueError("expected the 6-digit NAPAS bank BIN, e.g. 970436 (Vietcombank)")
        return value

    @field_validator("payment_account_number")
    @classmethod
    def _account_number(cls, value: str) -> str:
        value = value.replace(" ", "")
        if value and not (len(value) <= 19 and value.isascii() and value.isalnum()):
            raise ValueError("expected 1-19 letters or digits")
        return value

    @model_validator(mode="after")
    def _complete_payment(self) -> Settings:
        if bool(self.payment_bank_bin) != bool(self.payment_account_number):
            missing = "PAYMENT_ACCOUNT_NUMBER" if self.payment_bank_bin else "PAYMENT_BANK_BIN"
            raise ValueError(f"{missing} is required for VietQR payments")
        return self

    @field_validator("default_locale")
    @classmethod
    def _known_locale(cls, value: str) -> str:
        if value not in ("vi", "en"):
            raise ValueError("expected vi or en")
        return value

    @field_validator(
        "telegram_api_base_url",
        "zalo_api_base_url",
        "zalo_oauth_base_url",
        "zalo_bot_api_base_url",
        "zalo_zns_api_base_url",
    )
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("expected an http:// or https:// URL")
        return value.rstrip("/") if not value.endswith("/bot") else value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        """`postgresql://…` and `sqlite:///…` as people write them, with the async driver the
        bot runs on filled in; anything else is one clear line (never echoing the URL)."""
        return normalize_url(value) if value else value

    @model_validator(mode="after")
    def _complete_zalo_oa(self) -> Settings:
        """A half-configured Zalo OA is an error, not a silently disabled channel."""
        given = {
            "ZALO_APP_ID": bool(self.zalo_app_id),
            "ZALO_APP_SECRET": self.zalo_app_secret is not None,
            "ZALO_OA_SECRET_KEY": self.zalo_oa_secret_key is not None,
        }
        if any(given.values()) or self.zalo_refresh_token is not None:
            missing = [name for name, present in given.items() if not present]
            if missing:
                raise ValueError(f"{missing[0]} is required to run the Zalo Official Account")
        return self

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite+aiosqlite:///{self.data_dir / 'vietartview.db'}"

    @property
    def database_display(self) -> str:
        """The database for messages: SQLite's file path, or the URL with its password
        masked."""
        return display_url(self.resolved_database_url)

    @property
    def staff_web_url(self) -> str:
        """The staff page's address ("" when the page is off)."""
        if not self.staff_web_enabled:
            return ""
        base = self.staff_web_public_url or self.webhook_public_url
        base = base or f"http://{self.webhook_host}:{self.webhook_port}"
        return base.rstrip("/") + "/staff"

    @property
    def has_zalo_oa(self) -> bool:
        return bool(self.zalo_app_id and self.zalo_oa_secret_key and self.zalo_app_secret)

    @property
    def has_zalo_bot(self) -> bool:
        return self.zalo_bot_token is not None and bool(self.zalo_bot_token.get_secret_value())

    @property
    def has_channels(self) -> bool:
        return self.has_telegram or self.has_zalo_oa or self.has_zalo_bot

    @property
    def has_telegram(self) -> bool:
        return self.telegram_bot_token is not None and bool(
            self.telegram_bot_token.get_secret_value()
        )


def load_settings(**overrides: object) -> Settings:
    """Read settings; turn pydantic's report into one line naming the first bad setting."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        error = exc.errors()[0]
        message = str(error["msg"])
        if not error["loc"]:  # a cross-field rule names its setting in the message itself
            raise ConfigError(
                f"Configuration error: {message.removeprefix('Value error, ')}"
            ) from None
        name = str(error["loc"][0]).upper()
        # Never echo the input: it may be a secret.
        raise ConfigError(
            f"Configuration error: {name}: {message.removeprefix('Value error, ')}"
        ) from None

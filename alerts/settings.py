"""Settings read from the environment (prefix ``ALERTS_``), as DESIGN.md's contract lists them."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlsplit

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from alerts import logredact
from alerts.store.jsoncodec import clean_text


def _default_user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): fall back to the uid
        return f"uid{os.getuid()}" if hasattr(os, "getuid") else "user"


class Settings(BaseSettings):
    """Everything configurable, read from ``ALERTS_*`` environment variables.

    Secrets are :class:`~pydantic.SecretStr`, so printing a ``Settings`` never shows them.
    """

    model_config = SettingsConfigDict(env_prefix="ALERTS_", extra="ignore")

    dir: Path = Field(default=Path(".alerts"), description="Folder of the embedded store.")
    database_url: Optional[SecretStr] = Field(default=None, description="SQLAlchemy URL (may hold a password); default SQLite in DIR.")
    rules: Path = Path("rules")
    channels: Path = Path("channels")
    user: str = Field(default_factory=_default_user, validate_default=True,
                      description="Owner of runs in embedded mode.")

    @field_validator("user")
    @classmethod
    def _storable_user(cls, value: str) -> str:
        # A login name that is not UTF-8 (LOGNAME=jos\xe9) arrives with a lone surrogate, which no
        # database stores: repaired here, once, so every run, label and route sees the same owner.
        return clean_text(value)

    url: Optional[str] = None
    api_key: Optional[SecretStr] = None
    slack_api_url: str = "https://slack.com/api/"
    slack_bot_token: Optional[SecretStr] = None
    slack_webhook_hosts: str = "hooks.slack.com"
    smtp_host: Optional[str] = None
    smtp_port: int = 25
    smtp_username: Optional[str] = None
    smtp_password: Optional[SecretStr] = None
    # Unset (the default): upgrade with STARTTLS whenever the server offers it; true: require it;
    # false: never (then a username and password need smtp_allow_plaintext_auth).
    smtp_starttls: Optional[bool] = None
    smtp_ssl: bool = False
    # The SMTP username and password cross only an encrypted connection, unless this is true.
    smtp_allow_plaintext_auth: bool = False
    smtp_from: str = "alerts@localhost"
    smtp_ca_file: Optional[str] = Field(default=None, description="CA bundle to verify the SMTP server's TLS certificate")
    server_url: Optional[str] = Field(default=None, description="Public URL of the web page, for links in messages")
    # Whether a logging process sends its own alerts (a relay thread). Off: they wait in the outbox
    # for `alerts relay` or a server.
    relay: bool = True
    # Seconds between two messages of one group to one destination (Alertmanager's group_interval):
    # alerts of a group within it wait and go together in the next message.
    group_interval: float = Field(default=30.0, ge=0, le=24 * 3600)
    # How often the background writer commits queued points: what a kill -9 can lose at most.
    flush_interval: float = Field(default=0.2, gt=0, le=5)
    # How long sent and suppressed outbox rows (and dead ones) are kept before a relay deletes them:
    # a duration (30m, 12h, 7d, 2w). Pending rows are never deleted.
    retention: str = "7d"
    # Remote mode: the most bytes one run's spool folder (ALERTS_DIR/spool/<run>) may hold while the
    # server is unreachable; past it the oldest history rows are dropped (counted, with a warning).
    spool_max_bytes: int = Field(default=1 << 30, gt=0)
    # How long history points are kept (the server's retention job deletes older ones): a duration
    # (90d, 26w). Unset: kept for ever.
    history_retention: Optional[str] = None
    # Whether `alerts serve` runs the scheduled jobs (relay, crashed runs, stalled rules, silence
    # expiry, retention). Off: an API-only replica (another replica, or the scripts, do that work).
    jobs: bool = True
    # How long the server remembers an API key it found valid (seconds): a key revoked, or a user
    # disabled, is still accepted for at most this long by a server that saw it lately. 0: every
    # request looks its key up.
    key_cache_seconds: float = Field(default=5.0, ge=0, le=60)

    @field_validator("retention", "history_retention")
    @classmethod
    def _retention(cls, value: Optional[str], info) -> Optional[str]:
        from alerts.rules.durations import parse_duration

        if value is not None and parse_duration(value) <= 0:
            raise ValueError(f"ALERTS_{info.field_name.upper()} must be longer than 0s")
        return value

    def retention_seconds(self) -> float:
        """``retention`` in seconds."""
        from alerts.rules.durations import parse_duration

        return parse_duration(self.retention)

    def history_retention_seconds(self) -> Optional[float]:
        """``history_retention`` in seconds (None: points are kept for ever)."""
        from alerts.rules.durations import parse_duration

        return parse_duration(self.history_retention) if self.history_retention else None

    def model_post_init(self, context) -> None:
        """Register this process's secrets with the log redaction, so no log line prints them."""
        logredact.install()
        logredact.register(*(s.get_secret_value() for s in (self.slack_bot_token, self.smtp_password, self.api_key)
                             if s is not None))
        if self.database_url is not None:
            logredact.register(*_url_password(self.database_url.get_secret_value()))

    def resolved_database_url(self) -> str:
        """The database URL: ``DATABASE_URL`` if set, else ``sqlite:///DIR/alerts.db``."""
        if self.database_url:
            return self.database_url.get_secret_value()
        return f"sqlite:///{(self.dir / 'alerts.db').resolve()}"

    def media_dir(self) -> Path:
        """Where media files (tables, images) are written, beside the database."""
        return self.dir / "media"


def _url_password(url: str) -> tuple[str, ...]:
    """The password in a URL, as written and percent-decoded (either may turn up in a message)."""
    try:
        password = urlsplit(url).password
    except ValueError:
        return ()
    return (password, unquote(password)) if password else ()


def load_settings(**overrides) -> Settings:
    """Read settings from the environment, with explicit keyword overrides winning.

    Folders are made absolute now: a script that changes directory after ``init()`` keeps writing
    (media, the rules reload marker) where its run began.
    """
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})
    for name in ("dir", "rules", "channels"):
        setattr(settings, name, getattr(settings, name).absolute())
    return settings

"""One Settings object, read from the environment.

Every setting has a default that is safe for the one-machine mode (`broker run`
on SQLite). Production overrides them through environment variables; the README
lists each one.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import secrets
from collections.abc import Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from broker.grammar import GrammarError, Origin, parse_host, parse_origin
from broker.settlement.scope import parse_shard


class ConfigError(ValueError):
    """A setting has a value Broker cannot use."""


def _default_database_url() -> str:
    return "sqlite:///" + os.path.join(os.getcwd(), "broker.db")


@dataclasses.dataclass(frozen=True)
class Settings:
    database_url: str = dataclasses.field(default_factory=_default_database_url)
    # Empty means "no operator token": operator endpoints refuse every call.
    admin_token: str = ""
    secret_key: str = dataclasses.field(default_factory=lambda: secrets.token_hex(32))
    min_board_hours: float = 12.0
    # The board counts a retailer's listings exactly up to this many; past it the
    # total is given as "at least" this (0: always exact, however many).
    board_count_limit: int = 10_000
    ship_within_hours: float = 48.0
    # A store's stock feed older than this counts as unknown (broker.stock).
    stock_max_age_hours: float = 72.0
    settle_cron: str = "0 2 * * *"
    timezone: str = "UTC"
    # "offline" resolves US ZIP codes from the bundled `zipcodes` data; any other
    # value names a geopy geocoder ("nominatim", "googlev3", ...).
    geocoder: str = "offline"
    geocoder_options: Mapping[str, str] = dataclasses.field(default_factory=dict)
    settle_batch_size: int = 500
    # A pause between settlement batches, to spare a busy database (0: none).
    settle_batch_pause_ms: int = 0
    # The scheduler settles only this shard of the manufacturers, "K/N" (see
    # broker/settlement/scope.py); empty: every due listing.
    settle_shard: str = ""
    # Retry a failed scheduled job this many minutes later (up to three times).
    job_retry_minutes: float = 10.0
    # Warn a winner this many hours before its shipping window closes.
    lapse_warning_hours: float = 6.0
    log_format: str = "text"  # or "json": one object per line, for a log pipeline
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    # For Stripe's Payment Element in the storefront (pk_live_... / pk_test_...).
    stripe_publishable_key: str = ""
    # Another Stripe-compatible server (tests, staging); empty: Stripe itself.
    stripe_api_base: str = ""
    # "table" (the manufacturer's own rates, offline) or "stripe" (Stripe Tax's
    # calculation API, with STRIPE_SECRET_KEY).
    tax_provider: str = "table"
    # Card holds expire: about 7 days, Visa merchant-initiated after 4 days 18 hours.
    # Broker captures early rather than let an order outlive its hold.
    auth_hold_hours: float = 114.0
    # Platform fee in basis points of the captured amount (1000 = 10%).
    platform_fee_bps: int = 1000
    # This Broker's address as people reach it, `scheme://host[:port]`: the base of
    # every absolute URL it builds (links in emails, the embed script, Stripe's
    # return URLs), and the host requests must name (with allowed_hosts and the
    # stores' verified custom domains). `broker run` and `broker serve` default it
    # to the address they serve.
    public_url: str = "http://127.0.0.1:8000"
    # More host names requests may use (a balancer's own name, an internal one);
    # never used to build a URL.
    allowed_hosts: tuple[str, ...] = ()
    payout_cron: str = "0 4 * * *"
    # A pickup order not collected this long after it is awarded is cancelled and refunded.
    pickup_within_hours: float = 72.0
    # A shipped order its customer has not confirmed is taken as delivered this
    # many days after the shipment (the hourly `delivered` job).
    delivered_after_days: float = 10.0
    # Personal requests: how long they stay open by default, and at most.
    request_default_hours: float = 168.0
    request_max_hours: float = 720.0
    # Callbacks to private or loopback addresses (a LAN agent, tests); off by default.
    allow_private_callbacks: bool = False
    # Signs callbacks; default: derived from BROKER_SECRET_KEY (set one of them in production).
    callback_secret: str = ""
    # Email: SMTP when set (smtp://user:pass@host:587, smtps://...), else .eml files in mail_dir.
    smtp_url: str = ""
    mail_dir: str = dataclasses.field(default_factory=lambda: os.path.join(os.getcwd(), "var", "mail"))
    mail_from: str = "Broker <no-reply@broker.invalid>"
    # When the opt-in digest of new listings goes out (in BROKER_TIMEZONE).
    digest_cron: str = "0 7 * * *"
    # Rate limits (flask-limiter) are shared between processes through Redis when set.
    redis_url: str = ""
    # Cookies only over HTTPS; on by default whenever BROKER_PUBLIC_URL is https.
    secure_cookies: bool | None = None
    # Load balancers in front of the web processes: trust this many X-Forwarded-* hops
    # (rate limits count the client's address, not the balancer's). 0: none.
    trusted_proxies: int = 0
    # Customers' personal data is erased this many days after an order or request is
    # complete (a shipped order: after its return window closes); money records stay.
    pii_retention_days: float = 90.0
    # Each web process keeps the storefront's rendered catalog and product pages this
    # many seconds (0: off), and at most this many of them. A change made in the process
    # shows at once; one made in another process shows within these seconds.
    storefront_cache_seconds: float = 5.0
    storefront_cache_entries: int = 1000
    # A signed-in session ends after this long without a request, and this long
    # after sign-in whatever happens (NIST SP 800-63B's AAL2: 30 minutes, 12 hours).
    session_idle_minutes: float = 30.0
    session_hours: float = 12.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "Settings":
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}

        def text(name: str, field: str) -> None:
            if env.get(name):
                values[field] = env[name]

        def number(name: str, field: str, kind=float) -> None:
            raw = env.get(name)
            if raw:
                try:
                    values[field] = kind(raw)
                except ValueError:
                    raise ConfigError(f"{name} must be a number, got {raw!r}") from None

        text("DATABASE_URL", "database_url")
        text("BROKER_ADMIN_TOKEN", "admin_token")
        text("BROKER_SECRET_KEY", "secret_key")
        number("BROKER_MIN_BOARD_HOURS", "min_board_hours")
        number("BROKER_BOARD_COUNT_LIMIT", "board_count_limit", int)
        number("BROKER_SHIP_WITHIN_HOURS", "ship_within_hours")
        number("BROKER_STOCK_MAX_AGE_HOURS", "stock_max_age_hours")
        text("BROKER_SETTLE_CRON", "settle_cron")
        text("BROKER_TIMEZONE", "timezone")
        text("BROKER_GEOCODER", "geocoder")
        number("BROKER_SETTLE_BATCH_SIZE", "settle_batch_size", int)
        number("BROKER_SETTLE_BATCH_PAUSE_MS", "settle_batch_pause_ms", int)
        text("BROKER_SETTLE_SHARD", "settle_shard")
        number("BROKER_JOB_RETRY_MINUTES", "job_retry_minutes")
        number("BROKER_LAPSE_WARNING_HOURS", "lapse_warning_hours")
        text("BROKER_LOG_FORMAT", "log_format")
        text("STRIPE_SECRET_KEY", "stripe_secret_key")
        text("STRIPE_WEBHOOK_SECRET", "stripe_webhook_secret")
        text("STRIPE_PUBLISHABLE_KEY", "stripe_publishable_key")
        text("STRIPE_API_BASE", "stripe_api_base")
        text("BROKER_TAX_PROVIDER", "tax_provider")
        number("BROKER_AUTH_HOLD_HOURS", "auth_hold_hours")
        number("BROKER_PLATFORM_FEE_BPS", "platform_fee_bps", int)
        text("BROKER_PUBLIC_URL", "public_url")
        if env.get("BROKER_ALLOWED_HOSTS"):
            values["allowed_hosts"] = tuple(h.strip() for h in env["BROKER_ALLOWED_HOSTS"].split(",") if h.strip())
        text("BROKER_PAYOUT_CRON", "payout_cron")
        number("BROKER_PICKUP_WITHIN_HOURS", "pickup_within_hours")
        number("BROKER_DELIVERED_AFTER_DAYS", "delivered_after_days")
        number("BROKER_REQUEST_DEFAULT_HOURS", "request_default_hours")
        number("BROKER_REQUEST_MAX_HOURS", "request_max_hours")
        text("BROKER_CALLBACK_SECRET", "callback_secret")
        text("BROKER_SMTP_URL", "smtp_url")
        text("BROKER_MAIL_DIR", "mail_dir")
        text("BROKER_MAIL_FROM", "mail_from")
        text("BROKER_DIGEST_CRON", "digest_cron")
        text("BROKER_REDIS_URL", "redis_url")
        number("BROKER_TRUSTED_PROXIES", "trusted_proxies", int)
        number("BROKER_PII_RETENTION_DAYS", "pii_retention_days")
        number("BROKER_STOREFRONT_CACHE_SECONDS", "storefront_cache_seconds")
        number("BROKER_STOREFRONT_CACHE_ENTRIES", "storefront_cache_entries", int)
        number("BROKER_SESSION_IDLE_MINUTES", "session_idle_minutes")
        number("BROKER_SESSION_HOURS", "session_hours")
        if env.get("BROKER_SECURE_COOKIES"):
            values["secure_cookies"] = env["BROKER_SECURE_COOKIES"].lower() in ("1", "true", "yes")
        if env.get("BROKER_ALLOW_PRIVATE_CALLBACKS"):
            values["allow_private_callbacks"] = env["BROKER_ALLOW_PRIVATE_CALLBACKS"].lower() in ("1", "true", "yes")
        options = {
            key[len("BROKER_GEOCODER_"):].lower(): value
            for key, value in env.items()
            if key.startswith("BROKER_GEOCODER_") and value
        }
        if options:
            values["geocoder_options"] = options
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
        settings.validate()
        return settings

    def validate(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"BROKER_TIMEZONE {self.timezone!r} is not a known time zone") from None
        if self.min_board_hours < 0 or self.ship_within_hours <= 0:
            raise ConfigError("BROKER_MIN_BOARD_HOURS must be >= 0 and BROKER_SHIP_WITHIN_HOURS > 0")
        if not self.stock_max_age_hours > 0:
            raise ConfigError("BROKER_STOCK_MAX_AGE_HOURS must be more than 0")
        if self.stripe_secret_key and not self.stripe_webhook_secret:
            raise ConfigError("STRIPE_SECRET_KEY is set without STRIPE_WEBHOOK_SECRET: Broker could not verify "
                              "Stripe's webhooks, and orders would never leave awaiting_payment")
        if self.tax_provider not in ("table", "stripe"):
            raise ConfigError("BROKER_TAX_PROVIDER must be table or stripe")
        if self.tax_provider == "stripe" and not self.stripe_secret_key:
            raise ConfigError("BROKER_TAX_PROVIDER=stripe needs STRIPE_SECRET_KEY")
        if not (0 <= self.platform_fee_bps <= 10_000):
            raise ConfigError("BROKER_PLATFORM_FEE_BPS must be between 0 and 10000")
        if self.auth_hold_hours <= 0:
            raise ConfigError("BROKER_AUTH_HOLD_HOURS must be more than 0")
        if self.log_format not in ("text", "json"):
            raise ConfigError("BROKER_LOG_FORMAT must be text or json")
        if not (0 < self.delivered_after_days <= 365):
            raise ConfigError("BROKER_DELIVERED_AFTER_DAYS must be more than 0 and at most 365")
        if self.pii_retention_days < 1:
            raise ConfigError("BROKER_PII_RETENTION_DAYS must be at least 1")
        if self.board_count_limit < 0:
            raise ConfigError("BROKER_BOARD_COUNT_LIMIT must be 0 (always exact) or more")
        if not (0 <= self.storefront_cache_seconds <= 3600):
            raise ConfigError("BROKER_STOREFRONT_CACHE_SECONDS must be between 0 (off) and 3600")
        if self.storefront_cache_entries < 1:
            raise ConfigError("BROKER_STOREFRONT_CACHE_ENTRIES must be at least 1")
        if not (1 <= self.session_idle_minutes <= 30 * 24 * 60) or not (0 < self.session_hours <= 30 * 24):
            raise ConfigError("BROKER_SESSION_IDLE_MINUTES must be between 1 and 43200 (30 days), "
                              "and BROKER_SESSION_HOURS more than 0 and at most 720 (30 days)")
        if self.settle_batch_size < 1:
            raise ConfigError("BROKER_SETTLE_BATCH_SIZE must be at least 1")
        if len(self.digest_cron.split()) != 5:
            raise ConfigError(f"BROKER_DIGEST_CRON must have five fields, got {self.digest_cron!r}")
        if self.smtp_url and not self.smtp_url.startswith(("smtp://", "smtps://")):
            raise ConfigError("BROKER_SMTP_URL must start with smtp:// or smtps://")
        if self.settle_shard:
            try:
                parse_shard(self.settle_shard)
            except ValueError as exc:
                raise ConfigError(f"BROKER_SETTLE_SHARD {exc}") from None
        # Each raises ConfigError when BROKER_PUBLIC_URL or BROKER_ALLOWED_HOSTS does not parse.
        _ = (self.public_origin, self.trusted_hosts)
        if len(self.settle_cron.split()) != 5:
            raise ConfigError(
                f"BROKER_SETTLE_CRON must have five fields (minute hour day month weekday), got {self.settle_cron!r}"
            )

    @functools.cached_property
    def public_origin(self) -> Origin:
        """BROKER_PUBLIC_URL, parsed: every absolute URL is built from this."""
        try:
            return parse_origin(self.public_url, allow_ipv6=True, what="BROKER_PUBLIC_URL")
        except GrammarError as exc:
            raise ConfigError(f"{exc} (scheme://host[:port], nothing else)") from None

    @functools.cached_property
    def trusted_hosts(self) -> tuple[str, ...]:
        """The host names requests may use besides the stores' verified domains:
        BROKER_PUBLIC_URL's and BROKER_ALLOWED_HOSTS."""
        hosts = [self.public_origin.host]
        for name in self.allowed_hosts:
            try:
                host = parse_host(name, allow_ip=True, allow_local=True, what="BROKER_ALLOWED_HOSTS")
            except GrammarError as exc:
                raise ConfigError(f"{exc} (comma-separated host names, without scheme or port)") from None
            if host not in hosts:
                hosts.append(host)
        return tuple(hosts)

    @property
    def https(self) -> bool:
        """Served over HTTPS: then images must be https too, and cookies are Secure."""
        return self.public_origin.secure

    @property
    def cookies_secure(self) -> bool:
        if self.secure_cookies is not None:
            return self.secure_cookies
        return self.public_origin.secure

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

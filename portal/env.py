"""Strict reading of settings from the environment.

Every reader takes the environment mapping explicitly so it can be tested without touching
os.environ, and raises ImproperlyConfigured naming the variable when a value is unusable:
a portal that starts with a half-understood configuration is worse than one that refuses.
"""

from __future__ import annotations

import logging
import zoneinfo
from collections.abc import Mapping
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}
DATABASE_SCHEMES = {"sqlite", "postgres", "postgresql", "pgsql"}


def read_bool(environ: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean: use true or false.")


def read_int(environ: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a whole number.") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}.")
    return value


def read_list(environ: Mapping[str, str], name: str, default: list[str]) -> list[str]:
    raw = environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def read_time_zone(environ: Mapping[str, str], name: str, default: str) -> str:
    """An IANA time zone name (Europe/Paris, UTC), checked against the zone database."""
    raw = environ.get(name, "").strip() or default
    try:
        zoneinfo.ZoneInfo(raw)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        message = f"{name}={raw!r} is not a time zone: use an IANA name such as UTC or Europe/Paris."
        raise ImproperlyConfigured(message) from None
    return raw


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def read_log_level(environ: Mapping[str, str], name: str, default: str) -> str:
    raw = environ.get(name, "").strip() or default
    level = raw.upper()
    if level not in LOG_LEVELS or not isinstance(logging.getLevelName(level), int):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a log level: use one of {', '.join(LOG_LEVELS)}.")
    return level


def read_url(environ: Mapping[str, str], name: str, *, schemes: set[str]) -> str:
    """An optional URL: empty when unset, refused when it is not an absolute URL of a known scheme."""
    raw = environ.get(name, "").strip()
    if not raw:
        return ""
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme.lower() not in schemes or not rest:
        allowed = ", ".join(sorted(schemes))
        raise ImproperlyConfigured(f"{name}={raw!r} is not a URL ({allowed}).")
    return raw.rstrip("/")


def read_secret_key(environ: Mapping[str, str], *, debug: bool) -> str:
    key = environ.get("SECRET_KEY", "").strip()
    if key:
        if len(key) < 32 and not debug:
            raise ImproperlyConfigured("SECRET_KEY is too short: use at least 32 random characters.")
        return key
    if debug:
        # Development only: sessions do not survive a restart, which is the point.
        return "insecure-development-key-set-SECRET_KEY-in-production"
    raise ImproperlyConfigured(
        "SECRET_KEY is not set. Set it to a long random string (make run writes one to var/secret_key), "
        "or set DEBUG=true for local development."
    )


def read_database(environ: Mapping[str, str], *, default_sqlite_path: Path) -> dict:
    """DATABASE_URL as Django's DATABASES entry; SQLite under var/ when unset.

    On PostgreSQL, parameters are bound on the server so that psycopg prepares the statements a connection runs
    again and again (every callback runs the same few): PostgreSQL then stops parsing and planning them each
    time. Behind PgBouncer in transaction mode prepared statements break: set DATABASE_PREPARED_STATEMENTS=false.
    """
    raw = environ.get("DATABASE_URL", "").strip()
    if not raw:
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(default_sqlite_path),
            "OPTIONS": sqlite_options(),
        }
    scheme = raw.partition("://")[0].lower()
    if "://" not in raw or scheme not in DATABASE_SCHEMES:
        raise ImproperlyConfigured(
            f"DATABASE_URL={redact_url(raw)!r} is not understood: use sqlite:///path/to/file.sqlite3 "
            "or postgres://user:password@host:5432/name."
        )
    try:
        config = dj_database_url.parse(raw, conn_max_age=60)
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL={redact_url(raw)!r} is invalid: {exc}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = sqlite_options()
        config["CONN_MAX_AGE"] = 0
    elif not config.get("NAME"):
        raise ImproperlyConfigured(f"DATABASE_URL={redact_url(raw)!r} names no database.")
    elif read_bool(environ, "DATABASE_PREPARED_STATEMENTS", default=True):
        config.setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=2)
    return config


def sqlite_options() -> dict:
    # WAL and IMMEDIATE transactions let the web server and the qcluster worker share the file
    # without "database is locked" on every concurrent write.
    return {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }


def redact_url(url: str) -> str:
    """The URL with any password replaced, for error messages and logs."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else url


LOCKOUT_PARAMETERS = {"username", "ip_address"}


def read_lockout_parameters(environ: Mapping[str, str], name: str, default: str) -> list:
    """django-axes' AXES_LOCKOUT_PARAMETERS from a comma-separated list: `username` locks the account
    whatever the address, `ip_address` the address whatever the account, `username+ip_address` the pair."""
    raw = environ.get(name, "").strip() or default
    parameters = []
    for item in raw.split(","):
        parts = [part.strip() for part in item.split("+")]
        if not all(part in LOCKOUT_PARAMETERS for part in parts):
            raise ImproperlyConfigured(
                f"{name}={raw!r} is not understood: use username, ip_address or username+ip_address, "
                "comma-separated."
            )
        parameters.append(parts[0] if len(parts) == 1 else parts)
    return parameters


RATE_PERIODS = {"s", "sec", "second", "m", "min", "minute", "h", "hour", "d", "day"}


def read_rate(environ: Mapping[str, str], name: str, default: str) -> str | None:
    """A DRF throttle rate (`6000/min`, `100/s`), or None for `off`."""
    raw = environ.get(name, "").strip() or default
    if raw.lower() in {"off", "none"}:
        return None
    count, sep, period = raw.partition("/")
    if not sep or not count.isascii() or not count.isdigit() or int(count) < 1 or period not in RATE_PERIODS:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a rate: use requests/period, e.g. 6000/min, or off.")
    return f"{int(count)}/{period}"


def read_proxy_ssl_header(environ: Mapping[str, str], name: str) -> tuple[str, str] | None:
    """Django's SECURE_PROXY_SSL_HEADER from a header name (`X-Forwarded-Proto`): requests whose header says
    `https` are secure. Only for a proxy that sets the header and drops the client's own."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    if not all(char.isascii() and (char.isalnum() or char == "-") for char in raw):
        raise ImproperlyConfigured(f"{name}={raw!r} is not a header name (e.g. X-Forwarded-Proto).")
    return "HTTP_" + raw.upper().replace("-", "_"), "https"


def cache_config(*, redis_url: str) -> dict:
    """Django's CACHES: Redis when the portal has one (shared by every process), else each process's memory."""
    if redis_url:
        return {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url,
                            "KEY_PREFIX": "portal"}}
    return {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

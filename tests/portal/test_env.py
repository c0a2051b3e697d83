import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal import env

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_it_defaults_to_a_sqlite_file(tmp_path):
    config = env.read_database({}, default_sqlite_path=tmp_path / "portal.sqlite3")
    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(tmp_path / "portal.sqlite3")


def test_it_reads_a_postgres_url(tmp_path):
    config = env.read_database(
        {"DATABASE_URL": "postgres://portal:s3cret@db.internal:5433/portal"}, default_sqlite_path=tmp_path / "x"
    )
    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["HOST"], config["PORT"], config["NAME"], config["USER"]) == ("db.internal", 5433, "portal", "portal")


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost/portal", "not a url", "postgres://user@host:5432/", "postgres://host:notaport/db"]
)
def test_it_refuses_a_bad_database_url_naming_the_variable(url, tmp_path):
    with pytest.raises(ImproperlyConfigured, match="DATABASE_URL"):
        env.read_database({"DATABASE_URL": url}, default_sqlite_path=tmp_path / "x")


def test_it_never_puts_the_database_password_in_the_error(tmp_path):
    with pytest.raises(ImproperlyConfigured) as caught:
        env.read_database({"DATABASE_URL": "mysql://root:hunter2@localhost/portal"}, default_sqlite_path=tmp_path)
    assert "hunter2" not in str(caught.value)


def test_it_requires_a_secret_key_unless_debug():
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is not set"):
        env.read_secret_key({}, debug=False)
    assert env.read_secret_key({}, debug=True)


def test_it_refuses_a_short_secret_key_in_production():
    with pytest.raises(ImproperlyConfigured, match="SECRET_KEY is too short"):
        env.read_secret_key({"SECRET_KEY": "short"}, debug=False)


@pytest.mark.parametrize("raw,expected", [("true", True), ("1", True), ("off", False), ("", False)])
def test_it_reads_booleans(raw, expected):
    assert env.read_bool({"DEBUG": raw}, "DEBUG") is expected


def test_it_refuses_a_word_that_is_not_a_boolean():
    with pytest.raises(ImproperlyConfigured, match="DEBUG='maybe'"):
        env.read_bool({"DEBUG": "maybe"}, "DEBUG")


def test_it_refuses_a_url_of_the_wrong_scheme():
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        env.read_url({"REDIS_URL": "http://localhost:6379"}, "REDIS_URL", schemes={"redis"})


def start_portal(extra_env: dict) -> subprocess.CompletedProcess:
    """`manage.py check` in a fresh process with only the given settings."""
    clean = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "SECRET_KEY", "DEBUG"}}
    clean.update({"DJANGO_SETTINGS_MODULE": "portal.settings", **extra_env})
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO_ROOT, env=clean, capture_output=True, text=True, timeout=60
    )


def test_the_portal_refuses_to_start_without_a_secret_key():
    finished = start_portal({})
    assert finished.returncode != 0
    assert "SECRET_KEY is not set" in finished.stderr


def test_the_portal_refuses_to_start_with_a_bad_database_url():
    finished = start_portal({"SECRET_KEY": "x" * 50, "DATABASE_URL": "oracle://scott:tiger@db/orcl"})
    assert finished.returncode != 0
    assert "DATABASE_URL" in finished.stderr
    assert "tiger" not in finished.stderr


def test_the_portal_starts_with_good_settings(tmp_path):
    finished = start_portal({"SECRET_KEY": "x" * 50, "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3"})
    assert finished.returncode == 0, finished.stderr


def test_it_prepares_statements_on_postgres_unless_told_not_to(tmp_path):
    url = {"DATABASE_URL": "postgres://portal@db/portal"}
    config = env.read_database(url, default_sqlite_path=tmp_path / "x")
    assert config["OPTIONS"] == {"server_side_binding": True, "prepare_threshold": 2}
    config = env.read_database({**url, "DATABASE_PREPARED_STATEMENTS": "false"}, default_sqlite_path=tmp_path / "x")
    assert "server_side_binding" not in config.get("OPTIONS", {})


@pytest.mark.parametrize(("raw", "expected"), [("", "UTC"), ("Europe/Paris", "Europe/Paris"), ("UTC", "UTC")])
def test_it_reads_a_time_zone(raw, expected):
    assert env.read_time_zone({"TIME_ZONE": raw}, "TIME_ZONE", "UTC") == expected


@pytest.mark.parametrize("raw", ["Mars/Olympus", "CEST+2", "../../etc/passwd"])
def test_it_refuses_an_unknown_time_zone_naming_the_variable(raw):
    with pytest.raises(ImproperlyConfigured, match="TIME_ZONE"):
        env.read_time_zone({"TIME_ZONE": raw}, "TIME_ZONE", "UTC")


@pytest.mark.parametrize(("raw", "expected"), [("", "INFO"), ("debug", "DEBUG"), ("WARNING", "WARNING")])
def test_it_reads_a_log_level(raw, expected):
    assert env.read_log_level({"LOG_LEVEL": raw}, "LOG_LEVEL", "INFO") == expected


@pytest.mark.parametrize("raw", ["LOUD", "5", "WARN x"])
def test_it_refuses_an_unknown_log_level_naming_the_variable(raw):
    with pytest.raises(ImproperlyConfigured, match="LOG_LEVEL"):
        env.read_log_level({"LOG_LEVEL": raw}, "LOG_LEVEL", "INFO")


@pytest.mark.parametrize(("name", "value"), [("TIME_ZONE", "Mars/Olympus"), ("LOG_LEVEL", "LOUD")])
def test_the_portal_refuses_to_start_with_a_bad_time_zone_or_log_level(name, value, tmp_path):
    finished = start_portal({"SECRET_KEY": "x" * 50, "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite3", name: value})
    assert finished.returncode != 0
    assert name in finished.stderr

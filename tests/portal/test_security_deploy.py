"""A production configuration, checked the way it runs: settings read from a fresh environment in a process of
their own, `check --deploy`, and gunicorn and runserver serving a migrated database with DEBUG=false."""

import gzip
import json
import os
import re
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from portal import env

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "a-production-secret-key-" + "0123456789abcdefghijklmnopqrstuvwxyz"
TOKEN = "dp_0123abcd_s3cr3tS3CR3Ts3cr3tS3CR3Ts3cr3tS3CR3Ts3c"
HOOK = f"/api/v1/hooks/jenkins-notification/?token={TOKEN}"


def production_environ(var_dir: Path, **overrides) -> dict[str, str]:
    """A fresh environment as an operator would set it: nothing from the test run's own."""
    environ = {
        "PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(REPO_ROOT),
        "DJANGO_SETTINGS_MODULE": "portal.settings", "PORTAL_VAR_DIR": str(var_dir), "DEBUG": "false",
        "SECRET_KEY": SECRET_KEY, "SITE_URL": "https://portal.example.com", "ALLOWED_HOSTS": "portal.example.com",
    }
    return {**environ, **overrides}


def manage(environ, *args, timeout=300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=environ, capture_output=True,
                          text=True, timeout=timeout)


def settings_in(environ, *names) -> dict:
    code = ("import django, json; django.setup(); from django.conf import settings; "
            f"print(json.dumps({{name: getattr(settings, name) for name in {list(names)!r}}}, default=str))")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=environ, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- HTTPS settings and check --deploy ------------------------------------------------------------------------

def test_check_deploy_finds_nothing_to_warn_about_when_the_site_is_https(tmp_path):
    done = manage(production_environ(tmp_path / "var"), "check", "--deploy", "--fail-level", "WARNING")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_an_https_site_gets_hsts_the_ssl_redirect_and_secure_cookies_by_default(tmp_path):
    values = settings_in(production_environ(tmp_path / "var"), "SECURE_HSTS_SECONDS", "SECURE_SSL_REDIRECT",
                         "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_PROXY_SSL_HEADER")
    assert values == {"SECURE_HSTS_SECONDS": 31536000, "SECURE_SSL_REDIRECT": True, "SESSION_COOKIE_SECURE": True,
                      "CSRF_COOKIE_SECURE": True, "SECURE_PROXY_SSL_HEADER": None}


def test_https_settings_come_from_the_environment(tmp_path):
    environ = production_environ(tmp_path / "var", SECURE_HSTS_SECONDS="600", SECURE_SSL_REDIRECT="false",
                                 SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto", SECURE_HSTS_PRELOAD="true")
    values = settings_in(environ, "SECURE_HSTS_SECONDS", "SECURE_SSL_REDIRECT", "SECURE_PROXY_SSL_HEADER",
                         "SECURE_HSTS_PRELOAD", "SILENCED_SYSTEM_CHECKS")
    assert values == {"SECURE_HSTS_SECONDS": 600, "SECURE_SSL_REDIRECT": False,
                      "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"], "SECURE_HSTS_PRELOAD": True,
                      "SILENCED_SYSTEM_CHECKS": []}


def test_plain_http_development_gets_no_https_settings(tmp_path):
    environ = production_environ(tmp_path / "var", SITE_URL="http://127.0.0.1:8000", DEBUG="true")
    values = settings_in(environ, "SECURE_HSTS_SECONDS", "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE")
    assert values == {"SECURE_HSTS_SECONDS": 0, "SECURE_SSL_REDIRECT": False, "SESSION_COOKIE_SECURE": False}


def test_login_and_api_limits_come_from_the_environment(tmp_path):
    environ = production_environ(tmp_path / "var", LOGIN_FAILURE_LIMIT="10", LOGIN_COOLOFF_MINUTES="60",
                                 LOGIN_LOCKOUT_BY="username", API_RATE_LIMIT="100/s", REDIS_URL="redis://cache:6379/1")
    values = settings_in(environ, "AXES_FAILURE_LIMIT", "AXES_COOLOFF_TIME", "AXES_LOCKOUT_PARAMETERS",
                         "REST_FRAMEWORK", "CACHES")
    assert values["AXES_FAILURE_LIMIT"] == 10 and values["AXES_COOLOFF_TIME"] == "1:00:00"
    assert values["AXES_LOCKOUT_PARAMETERS"] == ["username"]
    assert values["REST_FRAMEWORK"]["DEFAULT_THROTTLE_RATES"]["project_token"] == "100/s"
    assert values["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert values["CACHES"]["default"]["LOCATION"] == "redis://cache:6379/1"


def test_the_api_rate_limit_can_be_turned_off(tmp_path):
    values = settings_in(production_environ(tmp_path / "var", API_RATE_LIMIT="off"), "REST_FRAMEWORK")
    assert values["REST_FRAMEWORK"]["DEFAULT_THROTTLE_CLASSES"] == []


@pytest.mark.parametrize("value", ["6000", "6000/fortnight", "-5/min", "0/min", "²/min", "lots/min"])
def test_it_refuses_a_rate_it_cannot_read_naming_the_variable(value):
    with pytest.raises(ImproperlyConfigured, match="API_RATE_LIMIT"):
        env.read_rate({"API_RATE_LIMIT": value}, "API_RATE_LIMIT", "6000/min")


@pytest.mark.parametrize("value", ["user", "username+password", "username,,ip_address"])
def test_it_refuses_lockout_parameters_it_does_not_know(value):
    with pytest.raises(ImproperlyConfigured, match="LOGIN_LOCKOUT_BY"):
        env.read_lockout_parameters({"LOGIN_LOCKOUT_BY": value}, "LOGIN_LOCKOUT_BY", "username")


def test_it_reads_lockout_parameters_and_their_combinations():
    read = env.read_lockout_parameters({"LOGIN_LOCKOUT_BY": "ip_address, username+ip_address"},
                                      "LOGIN_LOCKOUT_BY", "username")
    assert read == ["ip_address", ["username", "ip_address"]]


@pytest.mark.parametrize("value", ["X-Forwarded-Proto: https", "X_Forwarded_Proto\n", "Fórwarded"])
def test_it_refuses_a_proxy_header_that_is_no_header_name(value):
    with pytest.raises(ImproperlyConfigured, match="SECURE_PROXY_SSL_HEADER"):
        env.read_proxy_ssl_header({"SECURE_PROXY_SSL_HEADER": value}, "SECURE_PROXY_SSL_HEADER")


# --- Served as in production: permissions, static files, access logs -------------------------------------------

@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A fresh var/ with a migrated SQLite database and collected static files, as an operator deploys it."""
    var_dir = tmp_path_factory.mktemp("deployed") / "var"
    environ = production_environ(var_dir, SITE_URL="http://127.0.0.1", ALLOWED_HOSTS="127.0.0.1")
    for command in (["migrate", "--no-input", "-v0"], ["collectstatic", "--no-input", "-v0"]):
        done = manage(environ, *command)
        assert done.returncode == 0, done.stderr
    return var_dir, environ


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str, **kwargs):
    request = urllib.request.Request(url, **kwargs)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def wait_until_serving(base: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server stopped"
        try:
            if get(base + "/healthz")[0] == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError("the server did not answer within a minute")


def serve(command: list[str], environ, log: Path):
    with log.open("w") as output:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=environ, stdout=output, stderr=subprocess.STDOUT)
    return process


def wait_for_access_line(log: Path, path: str) -> None:
    """Servers write the access line after the answer: wait for it before stopping them."""
    deadline = time.monotonic() + 20
    while path not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_var_and_the_sqlite_database_are_readable_by_their_owner_only(deployed):
    var_dir, _ = deployed
    assert mode(var_dir) == 0o700
    database = var_dir / "portal.sqlite3"
    assert mode(database) == 0o600
    for companion in (Path(f"{database}-wal"), Path(f"{database}-shm")):
        if companion.exists():
            assert mode(companion) == 0o600, companion


def test_an_existing_looser_var_and_database_are_tightened_at_start(tmp_path):
    var_dir = tmp_path / "var"
    var_dir.mkdir()
    (var_dir / "portal.sqlite3").touch()
    os.chmod(var_dir, 0o755)  # noqa: S103 - the looser mode an older portal (or a umask of 022) left
    os.chmod(var_dir / "portal.sqlite3", 0o644)
    settings_in(production_environ(var_dir), "VAR_DIR")
    assert (mode(var_dir), mode(var_dir / "portal.sqlite3")) == (0o700, 0o600)


def test_gunicorn_serves_styled_pages_and_the_api_docs_with_long_cached_compressed_static_files(deployed, tmp_path):
    var_dir, environ = deployed
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "gunicorn.log"
    gunicorn = serve([sys.executable, "-m", "gunicorn", "-c", "python:portal.gunicorn_conf", "--bind",
                      f"127.0.0.1:{port}", "--workers", "1", "portal.wsgi"], environ, log)
    try:
        wait_until_serving(base, gunicorn)
        status, _, page = get(base + "/accounts/login/")
        assert status == 200
        [css] = re.findall(r'href="([^"]+\.css)"', page.decode())
        assert css.startswith("/static/portal/portal.") and css != "/static/portal/portal.css"  # a hashed name
        status, headers, body = get(base + css)
        assert status == 200 and b"{" in body
        assert "max-age=315360000" in headers["Cache-Control"] and "immutable" in headers["Cache-Control"]
        status, headers, zipped = get(base + css, headers={"Accept-Encoding": "gzip"})  # compressed at collectstatic
        assert headers["Content-Encoding"] == "gzip" and gzip.decompress(zipped) == body
        status, headers, zipped = get(base + "/accounts/login/", headers={"Accept-Encoding": "gzip"})
        assert headers["Content-Encoding"] == "gzip" and b'<html lang="en">' in gzip.decompress(zipped)
        status, _, docs = get(base + "/api/docs/")
        assert status == 200
        assets = [url for url in re.findall(r'(?:src|href)="([^"]+)"', docs.decode()) if url.startswith("/static/")]
        assert {url.rsplit(".", 1)[1] for url in assets} >= {"css", "js"}
        for url in assets:
            assert get(base + url)[0] == 200, url
        status, _, _ = get(base + HOOK, data=b"{}", headers={"Content-Type": "application/json"}, method="POST")
        assert status == 401
        wait_for_access_line(log, "jenkins-notification")
    finally:
        stop(gunicorn)
    written = log.read_text()
    assert "jenkins-notification/?token=dp_0123abcd_***" in written  # the access log has the request, not the token
    assert "s3cr3t" not in written


def test_runserver_logs_the_hook_without_its_token(deployed, tmp_path):
    _, environ = deployed
    port = free_port()
    log = tmp_path / "runserver.log"
    runserver = serve([sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"], environ, log)
    try:
        wait_until_serving(f"http://127.0.0.1:{port}", runserver)
        get(f"http://127.0.0.1:{port}{HOOK}", data=b"{}", headers={"Content-Type": "application/json"}, method="POST")
        wait_for_access_line(log, "POST /api/v1/hooks/jenkins-notification")
    finally:
        stop(runserver)
    written = log.read_text()
    assert "jenkins-notification/?token=dp_0123abcd_***" in written
    assert "s3cr3t" not in written

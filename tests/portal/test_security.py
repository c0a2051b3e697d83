"""Abuse and production hardening: login lockout, API rate limits, headers, file permissions, tokens in logs."""

import io
import logging
import re
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from portal.throttles import FailedAuthenticationThrottle, ProjectTokenRateThrottle
from scanners.models import Report
from tests.factories import ProjectFactory, RunFactory, UserFactory, issue_project_token

pytestmark = pytest.mark.django_db

REPO_ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "right-password-123"


# --- Login throttling and lockout ---------------------------------------------------------------------------

@pytest.fixture
def dana():
    return UserFactory(username="dana", password=PASSWORD, is_staff=True, is_superuser=True)


def sign_in(client, username, password, *, url="/accounts/login/"):
    return client.post(url, {"username": username, "password": password})


def fail_until_locked(client, username, *, url="/accounts/login/"):
    answers = [sign_in(client, username, "wrong", url=url).status_code for _ in range(settings.AXES_FAILURE_LIMIT)]
    assert answers[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again, saying it did not match
    assert answers[-1] == 429


def test_after_the_failure_limit_even_the_right_password_is_refused(client, dana):
    fail_until_locked(client, "dana")
    response = sign_in(client, "dana", PASSWORD)
    assert response.status_code == 429
    assert "Sign-in locked" in response.content.decode()
    assert "_auth_user_id" not in client.session
    assert client.get("/").status_code == 302  # still signed out


def test_the_admin_login_is_locked_too(client, dana):
    fail_until_locked(client, "dana", url="/admin/login/")
    response = sign_in(client, "dana", PASSWORD, url="/admin/login/")
    assert response.status_code == 429
    assert "_auth_user_id" not in client.session


def test_failures_on_the_portal_and_the_admin_add_up(client, dana):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "dana", "wrong", url="/admin/login/")
    assert sign_in(client, "dana", "wrong").status_code == 429


def test_a_lockout_ends_after_the_cool_off(client, dana):
    from axes.models import AccessAttempt

    fail_until_locked(client, "dana")
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    response = sign_in(client, "dana", PASSWORD)
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(dana.pk)


def test_a_lockout_does_not_stop_other_users(client, dana):
    UserFactory(username="tom", password=PASSWORD)
    fail_until_locked(client, "dana")
    assert sign_in(client, "tom", PASSWORD).status_code == 302


def test_an_attacker_cannot_lock_the_owner_out_from_another_address(client, dana):
    """LOGIN_LOCKOUT_BY's default, username+ip_address: the username is locked from the address that failed."""
    fail_until_locked(client, "dana")
    response = client.post("/accounts/login/", {"username": "dana", "password": PASSWORD}, REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 302


def test_a_success_before_the_limit_starts_the_count_again(client, dana):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        sign_in(client, "dana", "wrong")
    assert sign_in(client, "dana", PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert sign_in(client, "dana", "wrong").status_code == 200
    assert sign_in(client, "dana", PASSWORD).status_code == 302


# --- API rate limits per token --------------------------------------------------------------------------------

@pytest.fixture
def three_a_minute(monkeypatch):
    monkeypatch.setitem(ProjectTokenRateThrottle.THROTTLE_RATES, "project_token", "3/min")


def stage(client, token, slug):
    return client.post(f"/api/v1/projects/{slug}/runs/7/stages/", {"name": "Build", "status": "running"},
                       content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_the_default_rate_is_generous_enough_for_a_jenkins_farm():
    assert ProjectTokenRateThrottle.THROTTLE_RATES["project_token"] == "6000/min"


def test_over_the_rate_a_token_gets_429_with_retry_after(client, three_a_minute):
    project, _, token = issue_project_token(ProjectFactory(slug="shop"))
    RunFactory(project=project, build_number=7)
    assert [stage(client, token, "shop").status_code for _ in range(3)] == [201, 200, 200]
    response = stage(client, token, "shop")
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 60
    assert "throttled" in response.json()["detail"]


def test_the_rate_is_counted_per_token_not_per_address(client, three_a_minute):
    project, _, busy = issue_project_token(ProjectFactory(slug="shop"))
    _, _, other_of_same_project = issue_project_token(project)
    RunFactory(project=project, build_number=7)
    for _ in range(3):
        stage(client, busy, "shop")
    assert stage(client, busy, "shop").status_code == 429
    assert stage(client, other_of_same_project, "shop").status_code == 200  # same address, another token


def test_the_notification_hook_is_rate_limited_too(client, three_a_minute):
    _, _, token = issue_project_token(ProjectFactory(slug="shop"))
    answers = [client.post(f"/api/v1/hooks/jenkins-notification/?token={token}", {"build": {"number": 1}},
                           content_type="application/json").status_code for _ in range(4)]
    assert answers[-1] == 429


# --- Refused tokens on the hooks, per address -----------------------------------------------------------------

NOTIFICATION_HOOK = "/api/v1/hooks/jenkins-notification/"


@pytest.fixture
def three_failures_a_minute(monkeypatch):
    monkeypatch.setitem(FailedAuthenticationThrottle.THROTTLE_RATES, "failed_authentication", "3/min")


def notify(client, token, address):
    return client.post(f"{NOTIFICATION_HOOK}?token={token}", {"build": {"number": 1, "phase": "STARTED"}},
                       content_type="application/json", REMOTE_ADDR=address)


def gitlab_hook(client, secret, address):
    return client.post("/api/v1/hooks/gitlab/", {"object_kind": "push", "project": {"path_with_namespace": "g/s"}},
                       content_type="application/json", HTTP_X_GITLAB_TOKEN=secret, HTTP_X_GITLAB_EVENT="Push Hook",
                       REMOTE_ADDR=address)


def test_past_the_refused_tokens_allowed_an_address_gets_429_even_with_the_right_token(client,
                                                                                      three_failures_a_minute):
    _, _, token = issue_project_token(ProjectFactory(slug="shop", jenkins_job_path=""))
    wrong = token[:-4] + "xxxx"
    assert [notify(client, wrong, "10.0.0.9").status_code for _ in range(3)] == [401, 401, 401]
    refused = notify(client, token, "10.0.0.9")
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60 and "throttled" in refused.json()["detail"]
    assert notify(client, wrong, "10.0.0.9").status_code == 429
    assert notify(client, token, "10.0.0.10").status_code == 200  # another address


def test_a_good_token_is_never_counted(client, three_failures_a_minute):
    _, _, token = issue_project_token(ProjectFactory(slug="shop", jenkins_job_path=""))
    assert {notify(client, token, "10.0.0.11").status_code for _ in range(6)} == {200}


def test_the_gitlab_hook_counts_wrong_secrets_the_same_way(client, three_failures_a_minute):
    assert [gitlab_hook(client, "wrong", "10.0.0.12").status_code for _ in range(4)] == [401, 401, 401, 429]
    assert notify(client, "dp_00000000_wrong", "10.0.0.12").status_code == 429  # one count for both hooks


def test_the_refused_tokens_limit_can_be_turned_off(client, monkeypatch):
    monkeypatch.setitem(FailedAuthenticationThrottle.THROTTLE_RATES, "failed_authentication", None)
    assert {notify(client, "dp_00000000_wrong", "10.0.0.13").status_code for _ in range(30)} == {401}


# --- Headers -------------------------------------------------------------------------------------------------

def directives(response) -> dict[str, list[str]]:
    policy = response["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in policy.split(";") if part.strip())}


def test_pages_get_a_strict_content_security_policy(client, dana):
    client.force_login(dana)
    for url in ("/", "/accounts/login/", reverse("admin:index")):
        policy = directives(client.get(url))
        assert policy["default-src"] == ["'self'"], url
        assert policy["script-src"] == ["'self'"], url  # no inline script, no eval, nothing from elsewhere
        assert "'unsafe-inline'" not in policy["style-src"], url
        assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"], url


def test_the_policy_built_once_is_django_csps_and_follows_the_settings(client, settings):
    from csp.utils import build_policy

    assert client.get("/accounts/login/")["Content-Security-Policy"] == build_policy()
    settings.CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": ["'none'"]}}
    assert client.get("/accounts/login/")["Content-Security-Policy"] == "default-src 'none'"


def test_the_api_docs_load_their_script_from_a_url_not_inline(client):
    response = client.get("/api/docs/")
    html = response.content.decode()
    assert directives(response)["script-src"] == ["'self'"]
    assert re.findall(r"<script>", html) == []
    script = re.search(r'<script src="([^"]+\?[^"]*script=[^"]*)"', html).group(1).replace("&amp;", "&")
    answer = client.get(script)
    assert answer.status_code == 200 and "SwaggerUIBundle" in answer.content.decode()


TEMPLATE_DIRS = [path for path in REPO_ROOT.glob("*/templates") if path.parent.name != "tests"]
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|javascript:", re.IGNORECASE)


def test_no_template_has_inline_script():
    """The policy refuses inline script: a template that needs one breaks in the browser, so it is caught here."""
    offenders = [
        f"{path.relative_to(REPO_ROOT)}: {match.group(0)}"
        for directory in TEMPLATE_DIRS for path in directory.rglob("*.html")
        for match in INLINE_SCRIPT.finditer(path.read_text())
    ]
    assert offenders == []


# --- Permissions -----------------------------------------------------------------------------------------------

def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_raw_reports_and_their_directories_are_readable_by_their_owner_only(client):
    project, _, token = issue_project_token(ProjectFactory(slug="shop"))
    RunFactory(project=project, build_number=7)
    response = client.post("/api/v1/projects/shop/runs/7/reports/",
                           {"file": SimpleUploadedFile("trivy.json", b"null"), "kind": "trivy"},
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 202
    stored = Path(Report.objects.get().file.path)
    assert mode(stored) == 0o600
    for directory in stored.relative_to(settings.MEDIA_ROOT).parents:
        if directory != Path("."):
            assert mode(Path(settings.MEDIA_ROOT) / directory) == 0o700, directory


# --- Tokens never reach a log ----------------------------------------------------------------------------------

TOKEN = "dp_0123abcd_s3cr3tS3CR3Ts3cr3tS3CR3Ts3cr3tS3CR3Ts3c"


def written_by(logger_name: str, message: str, *args, **extra) -> str:
    """What the configured handlers of a logger (or, when it has none, of the root) write for one record."""
    logger = logging.getLogger(logger_name)
    configured = [handler for handler in logger.handlers or logging.getLogger().handlers
                  if type(handler) is logging.StreamHandler]  # settings.LOGGING's, not pytest's
    assert configured
    streams = [(handler, handler.setStream(io.StringIO())) for handler in configured]
    try:
        logger.warning(message, *args, extra=extra)
        return "".join(handler.stream.getvalue() for handler, _ in streams)
    finally:
        for handler, previous in streams:
            handler.setStream(previous)


def test_runserver_request_lines_show_no_token():
    # What django.core.servers.basehttp.WSGIRequestHandler.log_message sends for each request.
    line = f"POST /api/v1/hooks/jenkins-notification/?token={TOKEN}&x=1 HTTP/1.1"
    written = written_by("django.server", '"%s" %s %s', line, "200", "41", status_code=200,
                         server_time="01/May/2026 10:00:00")
    assert "jenkins-notification/?token=dp_0123abcd_***&x=1" in written
    assert "s3cr3t" not in written


def test_django_request_and_other_loggers_show_no_token():
    written = written_by("django.request", "Unauthorized: %s", f"/api/v1/hooks/?token={TOKEN}")
    written += written_by("deliveries", "called with %s", TOKEN)
    assert "s3cr3t" not in written
    assert written.count("dp_0123abcd_***") == 2

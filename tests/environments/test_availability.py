"""Availability checks against a real loopback HTTP server: what is probed, what is stored, how the board reads it."""

from __future__ import annotations

import socket
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone
from django_q.models import Schedule

from environments import availability, selectors, tasks
from environments.models import AvailabilityCheck, CheckSource, validate_health_url
from tests.factories import DeploymentFactory, EnvironmentFactory, ProjectFactory

pytestmark = pytest.mark.django_db


class HealthServer:
    """Answers GET with the status set per path (200 by default), and records the paths asked."""

    def __init__(self):
        self.status = {}
        self.paths = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.paths.append(self.path)
                code = server.status.get(self.path, 200)
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def health_server():
    server = HealthServer()
    yield server
    server.stop()


@pytest.fixture
def closed_url():
    with socket.socket() as bound:  # bound, never listening: connections are refused
        bound.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{bound.getsockname()[1]}/healthz"


def test_it_records_status_code_and_latency_of_a_healthy_service(health_server):
    environment = EnvironmentFactory(health_url=f"{health_server.url}/healthz")
    deployment = DeploymentFactory(environment=environment)
    (check,) = availability.check_environment(environment=environment)
    assert (check.ok, check.status_code, check.error, check.failures_in_a_row) == (True, 200, "", 0)
    assert check.latency_ms is not None and check.latency_ms >= 0
    assert (check.project, check.deployment, check.source) == (deployment.project, deployment, CheckSource.OPERATOR)
    assert health_server.paths == ["/healthz"]


def test_a_failing_answer_and_no_answer_are_failures_counted_in_a_row(health_server, closed_url):
    environment = EnvironmentFactory(health_url=f"{health_server.url}/healthz")
    DeploymentFactory(environment=environment)
    health_server.status["/healthz"] = 503
    (first,) = availability.check_environment(environment=environment)
    assert (first.ok, first.status_code, first.error, first.failures_in_a_row) == (
        False, 503, "HTTP 503 Service Unavailable", 1)
    environment.health_url = closed_url
    environment.save()
    (second,) = availability.check_environment(environment=environment)
    assert (second.ok, second.status_code, second.latency_ms) == (False, None, None)
    assert "ConnectionError" in second.error and second.failures_in_a_row == 2
    environment.health_url = f"{health_server.url}/healthz"
    environment.save()
    health_server.status["/healthz"] = 200
    (third,) = availability.check_environment(environment=environment)
    assert (third.ok, third.failures_in_a_row) == (True, 0)


def test_a_health_url_per_project_probes_each_project_deployed(health_server):
    environment = EnvironmentFactory(health_url=f"{health_server.url}/{{project}}/healthz")
    shop, blog = ProjectFactory(slug="shop"), ProjectFactory(slug="blog")
    DeploymentFactory(source_run__project=shop, environment=environment)
    DeploymentFactory(source_run__project=blog, environment=environment)
    health_server.status["/blog/healthz"] = 500
    checks = availability.check_environment(environment=environment)
    assert {(c.project.slug, c.url.removeprefix(health_server.url), c.ok) for c in checks} == {
        ("shop", "/shop/healthz", True), ("blog", "/blog/healthz", False)}


def test_the_schedule_probes_only_what_was_not_checked_within_the_interval(health_server, settings):
    settings.AVAILABILITY_CHECK_INTERVAL_MINUTES = 5
    fresh = EnvironmentFactory(slug="fresh", health_url=f"{health_server.url}/fresh")
    stale = EnvironmentFactory(slug="stale", health_url=f"{health_server.url}/stale")
    EnvironmentFactory(slug="no-url", health_url="")
    fresh_deployment = DeploymentFactory(environment=fresh)
    stale_deployment = DeploymentFactory(environment=stale)
    AvailabilityCheck.objects.create(environment=fresh, project=fresh_deployment.project, url="x", ok=True,
                                     checked_at=timezone.now() - timedelta(minutes=2))
    AvailabilityCheck.objects.create(environment=stale, project=stale_deployment.project, url="x", ok=True,
                                     checked_at=timezone.now() - timedelta(minutes=6))
    assert tasks.check_availability_due() == 1
    assert health_server.paths == ["/stale"]
    assert AvailabilityCheck.objects.get(url=f"{health_server.url}/stale").source == CheckSource.SCHEDULE


def test_the_schedule_exists_and_runs_every_minute():
    schedule = Schedule.objects.get(name="Check availability")
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "environments.tasks.check_availability_due", Schedule.MINUTES, 1)


def test_a_check_older_than_twice_the_interval_reads_unknown_never_healthy(settings):
    settings.AVAILABILITY_CHECK_INTERVAL_MINUTES = 5
    now = timezone.now()
    assert selectors.health_state(True, now - timedelta(minutes=9), now=now) == "healthy"
    assert selectors.health_state(True, now - timedelta(minutes=11), now=now) == "unknown"
    assert selectors.health_state(False, now - timedelta(minutes=11), now=now) == "unknown"
    assert selectors.health_state(False, now - timedelta(minutes=1), now=now) == "failing"
    assert selectors.health_state(None, None, now=now) == "unknown"


def test_the_board_shows_each_cell_health_with_its_age_and_failures_in_a_row(client, users, settings):
    settings.AVAILABILITY_CHECK_INTERVAL_MINUTES = 5
    staging = EnvironmentFactory(slug="staging", order=1)
    production = EnvironmentFactory(slug="production", tier="production", order=2)
    project = ProjectFactory(name="Shop")
    DeploymentFactory(source_run__project=project, environment=staging)
    DeploymentFactory(source_run__project=project, environment=production)
    for minutes, ok, in_a_row in ((3, False, 1), (2, False, 2), (1, False, 3)):
        AvailabilityCheck.objects.create(environment=staging, project=project, url="x", ok=ok, status_code=502,
                                         failures_in_a_row=in_a_row,
                                         checked_at=timezone.now() - timedelta(minutes=minutes))
    AvailabilityCheck.objects.create(environment=production, project=project, url="x", ok=True, status_code=200,
                                     checked_at=timezone.now() - timedelta(hours=1))
    client.force_login(users.developer)
    body = client.get("/").content.decode()
    assert 'class="health health-failing"' in body and "3 failures in a row" in body
    assert 'class="health health-unknown"' in body, "an hour-old check says nothing about now"
    assert "health-healthy" not in body
    assert "checked 1\xa0hour ago" in body


def test_a_deployment_that_ends_is_checked_at_once(health_server):
    environment = EnvironmentFactory(health_url=f"{health_server.url}/healthz")
    deployment = DeploymentFactory(environment=environment)
    assert tasks.check_after_deployment(deployment.pk) == 1
    check = AvailabilityCheck.objects.get()
    assert (check.source, check.deployment, check.ok) == (CheckSource.DEPLOYMENT, deployment, True)


@pytest.mark.parametrize("url", ["https://staging.example.com/healthz", "https://{project}.staging.example.com/healthz",
                                 "http://127.0.0.1:8080/{project}/healthz"])
def test_a_health_url_may_name_the_project(url):
    validate_health_url(url)
    environment = EnvironmentFactory.build(health_url=url)
    assert environment.health_url_for(ProjectFactory.build(slug="shop")) == url.replace("{project}", "shop")


@pytest.mark.parametrize("url", ["ftp://staging.example.com/", "staging", "https://{team}.example.com/"])
def test_a_health_url_that_is_not_http_is_refused_clearly(url):
    with pytest.raises(ValidationError, match="Enter an http or https URL; {project} may stand for"):
        validate_health_url(url)

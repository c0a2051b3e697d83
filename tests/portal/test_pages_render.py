"""Every kind of page, rendered on a small but complete history: no page shows template syntax, and every page
writes moments one way, with the time zone.

Django's `{# … #}` comments cannot span lines: a multi-line one is printed as text. This crawl opens each page type
(delivery pages, a run in every state, the dashboards, reports, login, every admin changelist and form, the API
docs) and fails on any `{#`, `{%` or `{{` left in what a user sees.
"""

import io
import re
from datetime import timedelta

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from deliveries.models import (
    AuditEvent,
    GateCondition,
    GitLabHookDelivery,
    Promotion,
    QualityGate,
    RunStatus,
    StageStatus,
    Waiver,
)
from environments.models import AvailabilityCheck, Deployment, Environment, FreezeWindow, Host, Stack
from scanners import services
from tests.factories import (
    ArtifactFactory,
    DeploymentFactory,
    EnvironmentFactory,
    ProjectFactory,
    RunFactory,
    StageFactory,
    UserFactory,
    issue_project_token,
)
from tests.scanners import samples

pytestmark = pytest.mark.django_db

TEMPLATE_SYNTAX = ("{#", "{%", "{{")
# A date with a time must be followed by the time zone ("2026-11-27 08:15 UTC"); no locale format ("Nov. 27, 2026,
# 8:15 a.m."), no bare clock time in a table cell.
MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(?::\d{2})?(?! UTC)(?::|\+|\.|\b)")
LOCALE_MOMENT = re.compile(r"\b(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)[a-z]*\.? \d{1,2}, \d{4}|[ap]\.m\.")
CLOCK_CELL = re.compile(r"<td>\d{2}:\d{2}(?::\d{2})?</td>")
PORTAL_APPS = {"deliveries", "environments", "scanners"}
NOW = timezone.now()


def ingest(run, content: bytes, name: str):
    report, _ = services.receive_report(run=run, file=io.BytesIO(content), original_name=name, queue=False)
    return services.ingest_report(report_id=report.pk)


def complete_history(requester):
    """One project with staging and production, runs in every state, reports of every kind, and one row of every
    model the admin shows."""
    project = ProjectFactory(slug="shop", name="Shop")
    staging = EnvironmentFactory(slug="staging", tier="staging", order=2)
    production = EnvironmentFactory(slug="production", tier="production", order=3)
    released = RunFactory(project=project, branch="master", created_at=NOW - timedelta(days=3))
    DeploymentFactory(source_run=released, environment=production, finished_at=NOW - timedelta(days=3))
    ingest(released, samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001")]), "prod.json")
    previous = RunFactory(project=project, created_at=NOW - timedelta(days=2))
    ingest(previous, samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0002")]), "before.json")
    scanned = RunFactory(project=project, created_at=NOW - timedelta(days=1), status=RunStatus.UNSTABLE)
    StageFactory(run=scanned, name="Build images", order=1, started_at=NOW - timedelta(days=1),
                 finished_at=NOW - timedelta(days=1) + timedelta(minutes=3))
    StageFactory(run=scanned, name="Gauntlt attacks", order=2, status=StageStatus.UNSTABLE, log_excerpt="1 failed")
    ArtifactFactory(run=scanned)
    DeploymentFactory(source_run=scanned, environment=staging, finished_at=NOW - timedelta(hours=20))
    reports = [
        ingest(scanned, samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001", severity="CRITICAL")]),
               "app.json"),
        ingest(scanned, samples.cucumber_report([("nmap", "failed", "port 23 is open"), ("tls", "passed", "")]),
               "attacks.json"),
        ingest(scanned, samples.jtl_csv([(1_700_000_000_000 + i * 500, 10 + i, "home", i % 4 > 0)
                                         for i in range(20)]), "load.jtl"),
        ingest(scanned, b"\x00\x01garbage", "mystery.bin"),
    ]
    runs = [released, previous, scanned]
    for status in (RunStatus.FAILED, RunStatus.ABORTED, RunStatus.RUNNING):
        run = RunFactory(project=project, status=status, finished_at=None if status == RunStatus.RUNNING else NOW)
        StageFactory(run=run, name="Checkout", order=1, started_at=NOW - timedelta(minutes=5), finished_at=NOW,
                     status=StageStatus.FAILED if status == RunStatus.FAILED else StageStatus.SUCCESS,
                     log_excerpt="error: exit 1")
        runs.append(run)
    runs.append(RunFactory(project=project, build_number=None, status=RunStatus.QUEUED, started_at=None,
                           finished_at=None, queue_id=17))
    runs.append(RunFactory(project=project, build_number=None, status=RunStatus.TRIGGER_FAILED, started_at=None,
                           finished_at=None, status_reason="Jenkins answered 500"))
    AvailabilityCheck.objects.create(environment=production, url="https://shop", ok=True, status_code=200)
    Promotion.objects.create(project=project, source_run=scanned, requested_by=requester)
    gate = QualityGate.objects.get(project=project)  # every project has one from the start (the default gate)
    GateCondition.objects.create(gate=gate, metric="critical_vulnerabilities", threshold=0)
    Waiver.objects.create(project=project, kind="vulnerability", identifier="CVE-2024-0001", owner=requester,
                          reason="Not reachable", expires_at=NOW + timedelta(days=30))
    Host.objects.create(environment=production, name="web-1", address="10.0.0.1", ec2_instance_id="i-0abc",
                        ec2_state="running", ec2_state_checked_at=NOW)
    stack = Stack.objects.create(environment=production, stack_id="arn:aws:cloudformation:eu-west-1:1:stack/p/1",
                                 status="UPDATE_COMPLETE", outputs={"InstanceIds": "i-0abc"}, operation="update",
                                 requested_by=requester, requested_at=NOW, refreshed_at=NOW)
    stack.events.create(event_id="e-1", timestamp=NOW, logical_resource_id="WebInstance1",
                        resource_type="AWS::EC2::Instance", resource_status="UPDATE_COMPLETE")
    FreezeWindow.objects.create(environment=production, starts_at=NOW + timedelta(days=1),
                                ends_at=NOW + timedelta(days=2), reason="Sales weekend")
    issue_project_token(project)
    AuditEvent.objects.create(actor=requester, project=project, action="promotion.requested")
    GitLabHookDelivery.objects.create(project=project, key="5f3c-uuid", event="Push Hook", outcome="run requested")
    return project, runs, scanned, reports


def portal_pages(project, runs, scanned, reports) -> list[str]:
    slug = project.slug
    pages = [reverse("home"), reverse("project-detail", args=[slug]), reverse("project-dora", args=[slug])]
    pages += [reverse(f"project-{view}", args=[slug]) for view in ("security", "performance", "attacks")]
    pages += [reverse("run-detail", args=[slug, run.pk]) for run in runs]
    pages += [reverse("run-live", args=[slug, runs[-3].pk])]
    for run in (scanned, runs[-1]):  # with every report, and with none
        pages += [reverse(f"run-{view}", args=[slug, run.pk]) for view in ("security", "performance", "attacks")]
    pages += [reverse("report-detail", args=[report.pk]) for report in reports]
    pages += [reverse(f"project-{view}", args=[slug]) for view in ("waivers", "gate", "audit")]
    pages += [reverse("promotion-list", args=[slug])]
    pages += [reverse("promotion-detail", args=[slug, p.pk]) for p in Promotion.objects.filter(project=project)]
    pages += [reverse("environment-list"), *(e.get_absolute_url() for e in Environment.objects.all())]
    deployment = Deployment.objects.filter(project=project).latest("pk")
    pages += [deployment.get_absolute_url(), reverse("deployment-live", args=[deployment.pk])]
    pages += [reverse("environment-stack", args=[stack.environment.slug]) for stack in Stack.objects.all()]
    return pages


def admin_pages(user) -> list[str]:
    """The admin's index, and each registered model's changelist, add form and change form of its first row."""
    request = RequestFactory().get("/")
    request.user = user
    pages = [reverse("admin:index")]
    for model, model_admin in admin.site._registry.items():
        name = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        pages.append(reverse(f"{name}_changelist"))
        if model_admin.has_add_permission(request):
            pages.append(reverse(f"{name}_add"))
        first = model.objects.order_by("pk").first()
        if first is not None:
            pages.append(reverse(f"{name}_change", args=[first.pk]))
    return pages


def leaked_syntax(body: str) -> list[str]:
    return [f"{mark}: …{body[max(0, at - 60):at + 60]}…" for mark in TEMPLATE_SYNTAX
            if (at := body.find(mark)) >= 0]


def test_no_page_shows_template_syntax_and_every_page_writes_moments_with_their_zone(client, users):
    project, runs, scanned, reports = complete_history(users.developer)
    client.force_login(users.developer)
    pages = portal_pages(project, runs, scanned, reports)
    answers = {url: client.get(url) for url in pages}
    answers["404"] = client.get("/projects/no-such-project/")
    portal_models = [m for m in admin.site._registry if m._meta.app_label in PORTAL_APPS]
    assert [m.__name__ for m in portal_models if not m.objects.exists()] == []  # every change form is opened
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(root)
    answers.update({url: client.get(url) for url in admin_pages(root)})
    client.logout()
    answers[reverse("login")] = client.get(reverse("login"))
    answers[reverse("api-docs")] = client.get(reverse("api-docs"))
    client.force_login(users.outsider)
    answers["403"] = client.get(reverse("home"))
    statuses = {url: answer.status_code for url, answer in answers.items()}
    assert statuses == {url: {"403": 403, "404": 404}.get(url, 200) for url in answers}
    leaks = {url: leaked_syntax(answer.content.decode()) for url, answer in answers.items()}
    assert {url: found for url, found in leaks.items() if found} == {}
    # django-axes' admin writes its own raw timestamps: sign-in attempts, not the portal's history.
    other_formats = {url: moments_without_zone(answer.content.decode()) for url, answer in answers.items()
                     if not url.startswith("/admin/axes/")}
    assert {url: found for url, found in other_formats.items() if found} == {}
    run_page = answers[reverse("run-detail", args=[project.slug, scanned.pk])].content.decode()
    assert f"<dt>Started</dt><dd>{timezone.localtime(scanned.started_at):%Y-%m-%d %H:%M} UTC</dd>" in run_page


def moments_without_zone(body: str) -> list[str]:
    return [match.group(0) for pattern in (MOMENT, LOCALE_MOMENT, CLOCK_CELL) for match in pattern.finditer(body)]

"""The environment pages and the operators' actions: who may do what, the confirmation step, refusals that say why.

No engine here: a request only creates a pending deployment and queues its task once the transaction commits, which
these (rolled back) tests never do. tests/environments/test_operations_e2e.py runs the same actions on the engine."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from deliveries.models import AuditEvent
from environments.models import (
    AUTOMATIC_ROLLBACK_LABEL,
    AvailabilityCheck,
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    FreezeWindow,
    Host,
)
from tests.environments.test_availability import HealthServer
from tests.factories import ArtifactFactory, DeploymentFactory, EnvironmentFactory, ProjectFactory, RunFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staging():
    return EnvironmentFactory(slug="staging", docker_host_url="unix:///nonexistent/docker.sock",
                              health_url="http://127.0.0.1:9/healthz")


@pytest.fixture
def project():
    return ProjectFactory(slug="shop", name="Shop")


def green_run(project, **kwargs):
    run = RunFactory(project=project, status="success", **kwargs)
    ArtifactFactory(run=run)
    return run


def deployed(project, environment, **kwargs):
    run = green_run(project)
    deployment = DeploymentFactory(source_run=run, environment=environment, image_digests=[run.artifacts.get().digest],
                                   **kwargs)
    deployment.artifacts.set(run.artifacts.all())
    return deployment


def action_urls(staging, deployment, run):
    return [
        reverse("environment-deploy", args=[staging.slug]) + f"?run={run.pk}",
        reverse("deployment-redeploy", args=[deployment.pk]),
        reverse("deployment-rollback", args=[deployment.pk]),
        reverse("environment-check", args=[staging.slug]),
    ]


def test_every_role_reads_the_environment_pages_and_an_outsider_none(client, users, staging, project):
    deployment = deployed(project, staging)
    pages = [reverse("environment-list"), staging.get_absolute_url(), deployment.get_absolute_url(),
             reverse("deployment-live", args=[deployment.pk])]
    for user in (users.developer, users.techlead, users.operator):
        client.force_login(user)
        assert [client.get(page).status_code for page in pages] == [200] * 4
    client.force_login(users.outsider)
    assert [client.get(page).status_code for page in pages] == [403] * 4
    client.logout()
    assert client.get(pages[0]).status_code == 302


def test_developers_and_tech_leads_cannot_act_nor_see_the_buttons(client, users, staging, project):
    deployment = deployed(project, staging)
    run = green_run(project)
    for user in (users.developer, users.techlead):
        client.force_login(user)
        body = client.get(staging.get_absolute_url()).content.decode()
        assert "Deploy…" not in body and "Redeploy…" not in body and "Check now…" not in body
        for url in action_urls(staging, deployment, run):
            assert client.get(url).status_code == 403
            assert client.post(url, {"run": run.pk}).status_code == 403
    assert Deployment.objects.count() == 1


def test_the_environment_page_shows_what_runs_history_freezes_hosts_and_health(client, users, staging, project):
    current = deployed(project, staging)
    failed = deployed(project, staging, status=DeploymentStatus.ROLLED_BACK)
    Deployment.objects.create(project=project, environment=staging, source_run=current.source_run,
                              kind=DeploymentKind.ROLLBACK, status=DeploymentStatus.SUCCESS, replaced=failed,
                              deployed_by_label=AUTOMATIC_ROLLBACK_LABEL, finished_at=timezone.now())
    now = timezone.now()
    FreezeWindow.objects.create(environment=staging, starts_at=now - timedelta(hours=1),
                                ends_at=now + timedelta(hours=1), reason="Black Friday")
    FreezeWindow.objects.create(environment=staging, starts_at=now + timedelta(days=20),
                                ends_at=now + timedelta(days=21), reason="Year-end closing")
    FreezeWindow.objects.create(environment=staging, starts_at=now - timedelta(days=3),
                                ends_at=now - timedelta(days=2), reason="Long gone")
    Host.objects.create(environment=staging, name="web-1", address="10.0.0.5", ec2_instance_id="i-0abc")
    AvailabilityCheck.objects.create(environment=staging, project=project, url="x", ok=False, status_code=502,
                                     latency_ms=12, error="HTTP 502 Bad Gateway", failures_in_a_row=1)
    client.force_login(users.developer)
    body = client.get(staging.get_absolute_url()).content.decode()
    assert body.count("<h1>") == 1
    assert "Frozen until" in body and "Black Friday" in body and "Year-end closing" in body
    assert "Long gone" not in body
    assert "web-1" in body and "i-0abc" in body
    assert "Rollback <strong>(automatic)</strong>" in body
    assert 'role="img"' in body and "HTTP 502 Bad Gateway" in body
    assert "health health-failing" in body


def test_the_environment_page_costs_the_same_queries_whatever_the_history(client, users, staging, project):
    client.force_login(users.operator)
    deployed(project, staging)
    AvailabilityCheck.objects.create(environment=staging, project=project, url="x", ok=True)
    client.get(staging.get_absolute_url())
    with CaptureQueriesContext(connection) as small:
        assert client.get(staging.get_absolute_url()).status_code == 200
    for _ in range(5):
        deployed(ProjectFactory(), staging)
        AvailabilityCheck.objects.create(environment=staging, project=project, url="x", ok=True)
    with CaptureQueriesContext(connection) as large:
        assert client.get(staging.get_absolute_url()).status_code == 200
    assert len(large) == len(small)


def test_the_environment_page_counts_its_deployments_up_to_a_cap(client, users, staging, project, monkeypatch):
    from portal.pagination import CappedCountPaginator

    monkeypatch.setattr(CappedCountPaginator, "COUNT_CAP", 3)
    client.force_login(users.operator)
    for _ in range(4):
        deployed(project, staging)
    with CaptureQueriesContext(connection) as queries:
        body = client.get(staging.get_absolute_url()).content.decode()
    counts = [q["sql"] for q in queries if "COUNT(*)" in q["sql"] and "environments_deployment" in q["sql"]]
    assert counts and all("LIMIT 4" in sql for sql in counts), counts  # the cap, and one more
    assert "Page 1 of 1+ · 3+ deployments: the newest are paged, the admin lists older ones" in body


def test_deploying_a_run_asks_for_confirmation_then_queues_it(client, users, staging, project):
    deployed(project, staging)
    run = green_run(project)
    client.force_login(users.operator)
    url = reverse("environment-deploy", args=[staging.slug])
    confirmation = client.get(url, {"run": run.pk})
    assert confirmation.status_code == 200
    body = confirmation.content.decode()
    assert "Deploy to staging?" in body and "Confirm" in body and f'name="run" value="{run.pk}"' in body
    assert Deployment.objects.count() == 1, "nothing happens before the confirmation"
    response = client.post(url, {"run": run.pk})
    deployment = Deployment.objects.latest("pk")
    assert response.status_code == 302 and response.url == deployment.get_absolute_url()
    assert (deployment.kind, deployment.status, deployment.deployed_by) == (
        DeploymentKind.DEPLOY, DeploymentStatus.PENDING, users.operator)
    page = client.get(deployment.get_absolute_url()).content.decode()
    assert "queued" in page and 'data-finished="false"' in page


def test_a_run_that_cannot_be_deployed_is_refused_with_a_clear_error(client, users, staging, project):
    client.force_login(users.operator)
    url = reverse("environment-deploy", args=[staging.slug])
    failed = RunFactory(project=project, status="failed")
    ArtifactFactory(run=failed)
    no_digest = RunFactory(project=project, status="success")
    ArtifactFactory(run=no_digest, digest="")
    for run in (failed.pk, no_digest.pk, "nonsense", ""):
        response = client.post(url, {"run": run})
        assert response.status_code == 400
        assert ("Choose a successful run whose images all have a digest." in response.content.decode()
                or "Choose the run to deploy." in response.content.decode())
    assert not Deployment.objects.exists()


def test_a_second_deployment_is_refused_naming_the_running_one(client, users, staging, project):
    running = deployed(project, staging, status=DeploymentStatus.RUNNING, finished_at=None)
    client.force_login(users.operator)
    response = client.post(reverse("environment-deploy", args=[staging.slug]), {"run": green_run(project).pk})
    assert response.status_code == 409
    assert f"Deployment #{running.pk} of Shop to staging" in response.content.decode()
    assert Deployment.objects.count() == 1


def test_a_deploy_during_a_freeze_is_refused_with_its_reason_and_an_override_is_audited(
        client, users, staging, project):
    now = timezone.now()
    FreezeWindow.objects.create(environment=staging, starts_at=now - timedelta(hours=1),
                                ends_at=now + timedelta(hours=1), reason="Black Friday")
    run = green_run(project)
    client.force_login(users.operator)
    url = reverse("environment-deploy", args=[staging.slug])
    confirmation = client.get(url, {"run": run.pk}).content.decode()
    assert "is frozen until" in confirmation and "Reason to override the freeze" in confirmation
    refused = client.post(url, {"run": run.pk, "freeze_override_reason": "   "})
    assert refused.status_code == 409
    assert "staging is frozen until" in refused.content.decode() and "Black Friday" in refused.content.decode()
    assert not Deployment.objects.exists()
    client.post(url, {"run": run.pk, "freeze_override_reason": "Hotfix for the payment outage"})
    deployment = Deployment.objects.get()
    assert deployment.freeze_override_reason == "Hotfix for the payment outage"
    event = AuditEvent.objects.get(action="deployment.freeze_overridden")
    assert (event.actor, event.data["freeze_reason"], event.data["override_reason"]) == (
        users.operator, "Black Friday", "Hotfix for the payment outage")
    page = client.get(deployment.get_absolute_url()).content.decode()
    assert "Freeze overridden" in page and "Hotfix for the payment outage" in page


def test_an_operator_rolls_back_to_an_earlier_successful_deployment(client, users, staging, project):
    earlier = deployed(project, staging)
    current = deployed(project, staging)
    client.force_login(users.operator)
    assert "Roll back to this deployment" in client.get(earlier.get_absolute_url()).content.decode()
    assert "Roll back to this deployment" not in client.get(current.get_absolute_url()).content.decode()
    url = reverse("deployment-rollback", args=[earlier.pk])
    assert "Confirm" in client.get(url).content.decode()
    client.post(url)
    rollback = Deployment.objects.latest("pk")
    assert (rollback.kind, rollback.status, rollback.image_digests, rollback.replaced) == (
        DeploymentKind.ROLLBACK, DeploymentStatus.PENDING, earlier.image_digests, current)


def test_a_rollback_to_a_failed_deployment_is_refused(client, users, staging, project):
    deployed(project, staging)
    failed = deployed(project, staging, status=DeploymentStatus.FAILED)
    client.force_login(users.operator)
    response = client.post(reverse("deployment-rollback", args=[failed.pk]))
    assert response.status_code == 409
    assert "only rolls back to one that did" in response.content.decode()


def test_an_operator_redeploys_what_runs_now(client, users, staging, project):
    current = deployed(project, staging)
    client.force_login(users.operator)
    client.post(reverse("deployment-redeploy", args=[current.pk]))
    redeploy = Deployment.objects.latest("pk")
    assert (redeploy.kind, redeploy.source_run, redeploy.image_digests) == (
        DeploymentKind.REDEPLOY, current.source_run, current.image_digests)


def test_check_now_probes_the_health_url_and_shows_the_result(client, users, project):
    server = HealthServer()
    try:
        environment = EnvironmentFactory(slug="qa", health_url=f"{server.url}/healthz")
        deployed(project, environment)
        client.force_login(users.operator)
        url = reverse("environment-check", args=["qa"])
        assert "Confirm" in client.get(url).content.decode()
        assert not AvailabilityCheck.objects.exists()
        response = client.post(url, follow=True)  # the test settings run django-q2 tasks inline
    finally:
        server.stop()
    check = AvailabilityCheck.objects.get()
    assert (check.ok, check.status_code, check.project) == (True, 200, project)
    assert "health health-healthy" in response.content.decode()


def test_check_now_without_a_health_url_says_there_is_nothing_to_check(client, users):
    EnvironmentFactory(slug="bare", health_url="")
    client.force_login(users.operator)
    response = client.post(reverse("environment-check", args=["bare"]))
    assert response.status_code == 409 and "has no health URL" in response.content.decode()


def test_the_deployment_page_is_live_while_it_runs(client, users, staging, project):
    running = deployed(project, staging, status=DeploymentStatus.RUNNING, finished_at=None,
                       step_log="11:00:00 pull registry/app@sha256:abc\n")
    client.force_login(users.developer)
    page = client.get(running.get_absolute_url()).content.decode()
    assert f'data-live-url="{reverse("deployment-live", args=[running.pk])}"' in page and "live.js" in page
    fragment = client.get(reverse("deployment-live", args=[running.pk]))
    assert fragment["Cache-Control"].startswith("max-age=0")
    assert "pull registry/app@sha256:abc" in fragment.content.decode()
    # what the status region (outside the fragment) says: the status, not every step
    region = '<p id="deployment-announcer" data-live-announcer class="visually-hidden" role="status"></p>'
    assert region in page and region not in fragment.content.decode()
    assert 'data-announce="Running"' in fragment.content.decode()
    Deployment.objects.filter(pk=running.pk).update(status=DeploymentStatus.SUCCESS, finished_at=timezone.now())
    client.force_login(users.operator)
    body = client.get(reverse("deployment-live", args=[running.pk])).content.decode()
    assert 'data-finished="true"' in body and 'data-announce="Success"' in body
    # the operator's controls in a part of their own: live.js leaves them, and the focus on them, alone
    actions = body.split('data-live-part="actions"')[1].split("data-live-part=")[0]
    assert reverse("deployment-redeploy", args=[running.pk]) in actions and "sha256:abc" not in actions
    page = client.get(running.get_absolute_url()).content.decode()
    assert "live.js" not in page and "deployment-announcer" not in page


def test_the_nav_links_to_the_environments(client, users):
    client.force_login(users.developer)
    assert f'href="{reverse("environment-list")}"' in client.get("/").content.decode()

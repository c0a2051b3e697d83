"""Issue 11's "done when", in order, through the pages an operator uses and the django-q2 tasks they queue, against
the real engine and registry (tests/services/container_engine.sh), checked over HTTP:

1. deploy v1;  2. deploy v2: v1's containers are gone, v2 serves;  3. deploy v3: it fails, v2 still serves, and it is
recorded failed with an automatic rollback;  4. roll back by hand to v1;  5. a deploy during a freeze is refused, an
operator's override goes through, audited;  6. the availability history is recorded and the board shows it.

The test settings run django-q2 tasks inline; a request queues its task once its transaction commits, which
`django_capture_on_commit_callbacks(execute=True)` does when the response has been made (the request never waits).
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import pytest
from django.urls import reverse
from django.utils import timezone

from deliveries.models import AuditEvent
from environments import deployer
from environments.models import (
    AUTOMATIC_ROLLBACK_LABEL,
    AvailabilityCheck,
    CheckSource,
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    FreezeWindow,
)

pytestmark = pytest.mark.django_db

QUICK = 4.0  # seconds: the probe deadline for v3, which never becomes healthy


@pytest.fixture
def operator_client(client, users):
    client.force_login(users.operator)
    return client


def act(client, capture, url, data=None):
    """POST an action the way its confirmation page does, then let the queued task run (after the response)."""
    with capture(execute=True):
        response = client.post(url, data or {})
    return response


def newest_deployment(stage, **filters):
    return Deployment.objects.filter(project=stage.project, environment=stage.environment, **filters).latest("pk")


def deploy_run(client, capture, stage, run, **data):
    url = reverse("environment-deploy", args=[stage.environment.slug])
    confirmation = client.get(url, {"run": run.pk})
    assert confirmation.status_code == 200 and "Confirm" in confirmation.content.decode()
    return act(client, capture, url, {"run": run.pk, **data})


def test_an_operator_deploys_rolls_back_and_overrides_a_freeze_from_the_pages(
        operator_client, users, stage, django_capture_on_commit_callbacks, monkeypatch):
    client, capture = operator_client, django_capture_on_commit_callbacks

    # 1. deploy v1
    response = deploy_run(client, capture, stage, stage.release("v1"))
    v1 = newest_deployment(stage)
    assert response.status_code == 302 and response.url == v1.get_absolute_url()
    assert (v1.status, v1.deployed_by) == (DeploymentStatus.SUCCESS, users.operator), v1.step_log
    assert stage.serving() == "app v1"
    page = client.get(v1.get_absolute_url()).content.decode()
    assert "probe http://127.0.0.1:" in page and 'data-finished="true"' in page

    # 2. deploy v2: the old containers are gone and v2 serves
    deploy_run(client, capture, stage, stage.release("v2"))
    v2 = newest_deployment(stage)
    assert v2.status == DeploymentStatus.SUCCESS, v2.step_log
    assert stage.serving() == "app v2"
    assert {c.labels["portal.deployment"] for c in stage.containers()} == {str(v2.pk)}

    # 3. deploy v3: it fails, v2 still serves, recorded failed with an automatic rollback
    monkeypatch.setattr(deployer, "run_deployment", partial(deployer.run_deployment, probe_deadline=QUICK))
    deploy_run(client, capture, stage, stage.release("v3"))
    monkeypatch.undo()
    v3 = newest_deployment(stage, kind=DeploymentKind.DEPLOY)
    assert v3.status == DeploymentStatus.ROLLED_BACK, v3.step_log
    assert "was not healthy within 4 s (last answer: HTTP 404)" in v3.step_log
    automatic = Deployment.objects.get(replaced=v3, kind=DeploymentKind.ROLLBACK)
    assert (automatic.deployed_by_label, automatic.image_digests) == (AUTOMATIC_ROLLBACK_LABEL, v2.image_digests)
    assert stage.serving() == "app v2"
    environment_page = client.get(stage.environment.get_absolute_url()).content.decode()
    assert "Rollback <strong>(automatic)</strong>" in environment_page
    assert "automatic rollback #" in client.get(v3.get_absolute_url()).content.decode()

    # 4. roll back by hand to v1
    assert "Roll back to this deployment" in client.get(v1.get_absolute_url()).content.decode()
    act(client, capture, reverse("deployment-rollback", args=[v1.pk]))
    by_hand = newest_deployment(stage)
    assert (by_hand.kind, by_hand.status, by_hand.deployed_by) == (
        DeploymentKind.ROLLBACK, DeploymentStatus.SUCCESS, users.operator), by_hand.step_log
    assert stage.serving() == "app v1"
    assert {c.labels["portal.deployment"] for c in stage.containers()} == {str(by_hand.pk)}

    # 5. a deploy during a freeze is refused with the window's reason; an operator's override goes through, audited
    now = timezone.now()
    FreezeWindow.objects.create(environment=stage.environment, starts_at=now - timedelta(minutes=5),
                                ends_at=now + timedelta(hours=2), reason="Quarter-end closing")
    again = stage.release("v2")
    refused = deploy_run(client, capture, stage, again)
    assert refused.status_code == 409 and "Quarter-end closing" in refused.content.decode()
    assert newest_deployment(stage) == by_hand and stage.serving() == "app v1"
    deploy_run(client, capture, stage, again, freeze_override_reason="Security fix CVE-2026-1234")
    overridden = newest_deployment(stage)
    assert (overridden.status, overridden.freeze_override_reason) == (
        DeploymentStatus.SUCCESS, "Security fix CVE-2026-1234"), overridden.step_log
    assert stage.serving() == "app v2"
    event = AuditEvent.objects.get(action="deployment.freeze_overridden", target_id=str(overridden.pk))
    assert (event.actor, event.data["freeze_reason"]) == (users.operator, "Quarter-end closing")
    assert "Security fix CVE-2026-1234" in client.get(overridden.get_absolute_url()).content.decode()

    # 6. the availability history is recorded (after every deployment, and on "Check now"), and the board shows it
    after_deployments = AvailabilityCheck.objects.filter(project=stage.project, source=CheckSource.DEPLOYMENT)
    assert after_deployments.count() == 5, "one check after each deployment that left something serving"
    assert all(check.ok and check.status_code == 200 for check in after_deployments)
    with capture(execute=True):
        client.post(reverse("environment-check", args=[stage.environment.slug]))
    now_check = AvailabilityCheck.objects.filter(source=CheckSource.OPERATOR).get()
    assert (now_check.ok, now_check.deployment, now_check.url) == (
        True, overridden, f"http://127.0.0.1:{stage.port}/healthz")
    board = client.get(reverse("home")).content.decode()
    assert "health health-healthy" in board and "checked 0\xa0minutes ago" in board
    environment_page = client.get(stage.environment.get_absolute_url()).content.decode()
    assert environment_page.count('class="health health-healthy">ok</span>') == 6
    assert "No data" not in environment_page
    for container in stage.containers():  # the service stops: the next check fails, and the board says so
        container.stop(timeout=0)
    with capture(execute=True):
        client.post(reverse("environment-check", args=[stage.environment.slug]))
    failed = AvailabilityCheck.objects.latest("checked_at")
    assert (failed.ok, failed.status_code, failed.failures_in_a_row) == (False, None, 1)
    assert "health health-failing" in client.get(reverse("home")).content.decode()

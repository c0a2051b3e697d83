"""The whole loop: a developer presses Run pipeline, the portal triggers (imitation) Jenkins, whose build plays
the pipeline's callbacks over real HTTP against the running portal, until the run page shows it all."""

import time

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from deliveries.models import PipelineRun, ProjectToken, RunStatus, RunTrigger
from environments.models import AvailabilityCheck, DeploymentStatus
from portal.roles import Role
from scanners.models import ReportStatus
from simulators.jenkins import DEV_STAGES, PortalTarget, SimulatedJenkins
from tests.factories import EnvironmentFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

USER, TOKEN = "portal", "api-token"
JOB = "delivery/shop"
DEADLINE_SECONDS = 60


def wait_until_finished(run: PipelineRun) -> PipelineRun:
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        run.refresh_from_db()
        reports_done = not run.reports.exclude(status__in=[ReportStatus.PARSED, ReportStatus.FAILED]).exists()
        if run.is_finished and reports_done:
            return run
        time.sleep(0.1)
    raise AssertionError(f"run still {run.status} after {DEADLINE_SECONDS}s: {list(run.stages.values_list())}")


def test_a_run_pressed_in_the_ui_is_played_by_jenkins_to_the_end(live_server, client, settings):
    for role in Role:  # a transactional test before this one may have flushed the groups the migration made
        Group.objects.get_or_create(name=role)
    developer = UserFactory(username="dana", roles=[Role.DEVELOPER])
    project = ProjectFactory(slug="shop", name="Shop", jenkins_job_path=JOB)
    EnvironmentFactory(slug="staging")
    _, token = ProjectToken.issue(project=project)

    with SimulatedJenkins(users={USER: TOKEN}, queue_seconds=0.1, speed=0.03, callback_backoff=0.1) as fake:
        fake.add_job(JOB, portal=PortalTarget(live_server.url, project.slug, token,
                                              staging_health_url="https://shop.staging.example.com/healthz"))
        settings.JENKINS_URL = fake.url
        settings.JENKINS_USER, settings.JENKINS_TOKEN = USER, TOKEN
        settings.SITE_URL = live_server.url

        # 1. A developer triggers a run from the UI.
        client.force_login(developer)
        response = client.post(reverse("run-pipeline", args=["shop"]), {"branch": "dev"})
        run = PipelineRun.objects.get(project=project)
        assert response.status_code == 302 and response.url == run.get_absolute_url()

        # 2. Jenkins plays the pipeline against the live portal; 3. the run ends.
        run = wait_until_finished(run)
        assert fake.wait_for_builds(10)

    failed_callbacks = [call for call in fake.callbacks if not (call[2] and 200 <= call[2] < 300)]
    assert failed_callbacks == []
    assert PipelineRun.objects.filter(project=project).count() == 1  # the build was attached, not duplicated
    assert (run.status, run.trigger, run.triggered_by, run.branch) == (
        RunStatus.SUCCESS, RunTrigger.PORTAL, developer, "dev")
    assert (run.build_number, run.queue_id) == (1, 100)
    assert run.build_url == f"{fake.url}job/delivery/job/shop/1/"
    assert run.started_at and run.finished_at and run.commit_sha

    stages = list(run.stages.order_by("order").values_list("name", "status"))
    assert stages == [(name, "success") for name in DEV_STAGES]
    assert sorted(a.repository.rsplit("/", 1)[-1] for a in run.artifacts.all()) == ["app", "nginx"]
    assert all(a.digest.startswith("sha256:") for a in run.artifacts.all())

    reports = list(run.reports.all())
    assert sorted(r.kind for r in reports) == ["gauntlt", "jmeter", "trivy", "trivy"]
    assert [r.error for r in reports if r.status != ReportStatus.PARSED] == []
    assert run.findings.exists() and run.scenarios.count() == 4 and run.load_stats.filter(is_total=True).exists()

    (deployment,) = run.deployments.all()
    assert (deployment.environment.slug, deployment.status) == ("staging", DeploymentStatus.SUCCESS)
    assert sorted(deployment.image_digests) == sorted(a.digest for a in run.artifacts.all())
    (check,) = AvailabilityCheck.objects.filter(project=project)  # the availability stage's, kept with the portal's
    assert (check.environment.slug, check.ok, check.url, check.deployment) == (
        "staging", True, "https://shop.staging.example.com/healthz", deployment)

    # The run page shows it all, finished: no more polling.
    page = client.get(run.get_absolute_url()).content.decode()
    assert all(name in page for name in DEV_STAGES) and "JMeter load test" in page  # the stages, the report kind
    assert "portal/live.js" not in page

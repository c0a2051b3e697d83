"""record_deployment: what Jenkins deployed where, idempotent and order-tolerant."""

from datetime import UTC, datetime, timedelta

import pytest

from deliveries.models import AuditEvent
from environments.models import Deployment, DeploymentKind, DeploymentStatus
from environments.services import record_deployment
from tests.factories import ArtifactFactory, DeploymentFactory, EnvironmentFactory, RunFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
APP, NGINX = "registry.example.com/shop/app", "registry.example.com/shop/nginx"
ACTOR = "jenkins (dp_12345678)"


@pytest.fixture
def setting():
    run = RunFactory(build_number=42)
    staging = EnvironmentFactory(slug="staging")
    app = ArtifactFactory(run=run, repository=APP, tag="abc", digest="sha256:" + "a" * 64)
    nginx = ArtifactFactory(run=run, repository=NGINX, tag="abc", digest="sha256:" + "b" * 64)
    return run, staging, app, nginx


def record(run, environment, status="running", images=None, **kwargs):
    return record_deployment(project=run.project, run=run, environment=environment, status=status,
                             images=images or [], started_at=kwargs.pop("started_at", None),
                             finished_at=kwargs.pop("finished_at", None), log=kwargs.pop("log", ""),
                             actor_label=ACTOR)


def test_it_records_a_deployment_linking_the_runs_images(setting):
    run, staging, app, nginx = setting
    other_run_image = ArtifactFactory(repository=APP, tag="abc")  # same name, another run: not linked
    images = [{"repository": APP, "tag": "abc", "digest": app.digest}, {"repository": NGINX, "tag": "abc"}]
    deployment, created = record(run, staging, "success", images, started_at=T0, finished_at=T0 + timedelta(minutes=2))
    assert created
    assert (deployment.kind, deployment.status, deployment.deployed_by_label) == (
        DeploymentKind.DEPLOY, DeploymentStatus.SUCCESS, ACTOR)
    assert set(deployment.artifacts.all()) == {app, nginx}
    assert other_run_image not in deployment.artifacts.all()
    assert deployment.image_digests == [app.digest, nginx.digest]  # nginx's digest known from its artifact
    assert (deployment.started_at, deployment.finished_at) == (T0, T0 + timedelta(minutes=2))
    assert AuditEvent.objects.get().action == "deployment.recorded"


def test_it_links_an_image_by_digest_when_the_tag_differs(setting):
    run, staging, app, nginx = setting
    deployment, _ = record(run, staging, images=[{"repository": APP, "tag": "latest", "digest": app.digest}])
    assert list(deployment.artifacts.all()) == [app]


def test_the_same_report_twice_is_one_deployment_and_changes_nothing(setting):
    run, staging, app, nginx = setting
    images = [{"repository": APP, "tag": "abc", "digest": app.digest}]
    first, created = record(run, staging, "running", images, started_at=T0)
    again, created_again = record(run, staging, "running", images, started_at=T0)
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assert Deployment.objects.count() == 1 and AuditEvent.objects.count() == 1


def test_it_replaces_the_previous_successful_deployment_of_the_environment(setting):
    run, staging, app, nginx = setting
    good = DeploymentFactory(source_run=RunFactory(project=run.project), environment=staging)
    DeploymentFactory(source_run=RunFactory(project=run.project), environment=staging,
                      status=DeploymentStatus.FAILED)
    DeploymentFactory(environment=staging)  # another project's
    DeploymentFactory(source_run=RunFactory(project=run.project), environment=EnvironmentFactory(slug="dev"))
    deployment, _ = record(run, staging)
    assert deployment.replaced == good


def test_its_status_only_moves_forward(setting):
    run, staging, app, nginx = setting
    record(run, staging, "success", finished_at=T0 + timedelta(minutes=3))
    deployment, _ = record(run, staging, "running", started_at=T0)  # late
    assert deployment.status == DeploymentStatus.SUCCESS
    assert (deployment.started_at, deployment.finished_at) == (T0, T0 + timedelta(minutes=3))
    deployment, _ = record(run, staging, "failed")  # a correction
    assert deployment.status == DeploymentStatus.FAILED


def test_a_deployment_the_portal_rolled_back_stays_rolled_back(setting):
    run, staging, app, nginx = setting
    deployment, _ = record(run, staging, "success")
    Deployment.objects.filter(pk=deployment.pk).update(status=DeploymentStatus.ROLLED_BACK)
    deployment, _ = record(run, staging, "success")
    assert deployment.status == DeploymentStatus.ROLLED_BACK


def test_a_finished_deployment_without_a_finish_time_gets_the_time_it_was_reported(setting):
    run, staging, app, nginx = setting
    deployment, _ = record(run, staging, "failed")
    assert deployment.finished_at is not None


def test_each_environment_gets_its_own_deployment(setting):
    run, staging, app, nginx = setting
    record(run, staging, "success")
    record(run, EnvironmentFactory(slug="production", tier="production"), "success")
    assert Deployment.objects.filter(source_run=run).count() == 2


def test_record_deployment_takes_keyword_arguments_only(setting):
    run, staging, app, nginx = setting
    with pytest.raises(TypeError):
        record_deployment(run.project, run, staging, "running", [], None, None, "", ACTOR)

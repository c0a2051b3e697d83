"""The deployer against the real engine and registry (podman's Docker API, Distribution on loopback), checked over
HTTP: what serves after each deployment, and that every fault leaves the previous version serving."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from datetime import timedelta

import pytest
from django.utils import timezone

import tests.portal.test_worker as worker_test
from deliveries.models import AuditEvent
from environments import deployer, deployments
from environments.deployments import DeploymentRefused, request_deployment, request_rollback
from environments.models import Deployment, DeploymentKind, DeploymentStatus

pytestmark = pytest.mark.django_db

QUICK = 4.0  # seconds: the probe deadline where a version is expected to fail


def deploy(stage, version, *, probe_deadline=20.0, **release):
    """Request a deployment of a new run of the app in `version` and run it as the worker would."""
    run = stage.release(version, **release)
    requested = request_deployment(project=stage.project, environment=stage.environment, run=run,
                                   actor_label="tests")
    return deployer.run_deployment(requested.pk, probe_deadline=probe_deadline)


def rollbacks_of(deployment):
    return Deployment.objects.filter(kind=DeploymentKind.ROLLBACK, replaced=deployment)


def assert_rolled_back(stage, failed, *, restored, reason):
    """Recorded rolled back with the reason and a rollback of its own; `restored`'s containers alone serve."""
    failed.refresh_from_db()
    assert failed.status == DeploymentStatus.ROLLED_BACK, failed.step_log
    assert reason in failed.step_log
    rollback = rollbacks_of(failed).get()
    assert (rollback.status, rollback.image_digests) == (DeploymentStatus.SUCCESS, restored.image_digests)
    assert [c.labels["portal.deployment"] for c in stage.containers()] == [str(restored.pk)]
    assert stage.serving() == f"app {restored.artifacts.get().tag}"


def test_it_deploys_v1_then_v2_then_refuses_v3_then_rolls_back_to_v1(stage):
    v1 = deploy(stage, "v1")
    assert v1.status == DeploymentStatus.SUCCESS, v1.step_log
    assert stage.serving() == "app v1"
    for step in ("pull ", "start ", "probe ", "healthy", "switch"):
        assert step in v1.step_log

    v2 = deploy(stage, "v2")
    assert v2.status == DeploymentStatus.SUCCESS, v2.step_log
    assert v2.replaced == v1
    assert stage.serving() == "app v2"
    containers = stage.containers()
    assert [c.labels["portal.deployment"] for c in containers] == [str(v2.pk)], "v1 and the trials are gone"
    assert containers[0].labels["portal.digest"] == stage.engine.digests["v2"]
    assert containers[0].labels["portal.project"] == stage.project.slug

    v3 = deploy(stage, "v3", probe_deadline=QUICK)
    assert_rolled_back(stage, v3, restored=v2, reason="was not healthy within 4 s (last answer: HTTP 404)")
    assert stage.serving() == "app v2"
    assert AuditEvent.objects.filter(action="deployment.rolled_back", target_id=str(v3.pk)).exists()

    by_hand = request_rollback(to=v1, actor_label="olga.ops")
    assert by_hand.kind == DeploymentKind.ROLLBACK
    by_hand = deployer.run_deployment(by_hand.pk)
    assert by_hand.status == DeploymentStatus.SUCCESS, by_hand.step_log
    assert stage.serving() == "app v1"
    assert [c.labels["portal.deployment"] for c in stage.containers()] == [str(by_hand.pk)]


def test_a_second_deployment_is_refused_while_one_runs_naming_it(stage):
    first = request_deployment(project=stage.project, environment=stage.environment, run=stage.release("v1"),
                               actor_label="tests")
    with pytest.raises(DeploymentRefused, match=f"Deployment #{first.pk} .* is pending since"):
        request_deployment(project=stage.project, environment=stage.environment, run=stage.release("v2"),
                           actor_label="tests")


def test_it_refuses_an_image_without_digest(stage):
    with pytest.raises(DeploymentRefused, match="deploys images by digest only"):
        deploy(stage, "v1", digest="")


def test_a_task_handed_out_twice_deploys_once(stage):
    v1 = deploy(stage, "v1")
    again = deployer.run_deployment(v1.pk)
    assert again.status == DeploymentStatus.SUCCESS
    assert again.step_log == v1.step_log


@pytest.fixture
def v1_serving(stage):
    v1 = deploy(stage, "v1")
    assert stage.serving() == "app v1", v1.step_log
    return v1


@pytest.mark.parametrize("fault, release, reason", [
    ("registry unreachable", {"repository": "127.0.0.1:9/portal-test/app"}, "connection refused"),
    ("digest missing", {"digest": "sha256:" + "0" * 64}, "manifest unknown"),
    ("container exits at once", {}, "exit code 3"),
])
def test_a_fault_before_the_switch_leaves_the_previous_version_serving(stage, v1_serving, fault, release, reason):
    version = "crash" if fault == "container exits at once" else "v2"
    failed = deploy(stage, version, probe_deadline=QUICK, **release)
    assert_rolled_back(stage, failed, restored=v1_serving, reason=reason)


def test_wrong_registry_credentials_fail_the_deployment(stage, v1_serving):
    stage.environment.registry_password = "wrong"
    stage.environment.save()
    failed = deploy(stage, "v2")
    assert_rolled_back(stage, failed, restored=v1_serving, reason="unauthorized: authentication required")


def test_a_service_port_taken_by_something_else_fails_the_switch(stage, v1_serving):
    import socket

    from tests.environments.conftest import free_port

    taken = free_port()
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", taken))
        squatter.listen()
        stage.environment.health_url = f"http://127.0.0.1:{taken}/healthz"
        stage.environment.save()
        failed = deploy(stage, "v2")
    assert_rolled_back(stage, failed, restored=v1_serving, reason="address already in use")
    assert f"healthy: http://127.0.0.1:{stage.port}/healthz" in failed.step_log, "the old version was probed"


def test_an_unreachable_docker_host_fails_without_touching_anything(stage, v1_serving):
    stage.environment.docker_host_url = "unix:///nonexistent/docker.sock"
    stage.environment.save()
    failed = deploy(stage, "v2")
    assert failed.status == DeploymentStatus.FAILED
    assert "the Docker host unix:///nonexistent/docker.sock cannot be reached" in failed.step_log
    assert stage.serving() == "app v1"
    assert not rollbacks_of(failed).exists()


def test_a_deployment_left_running_by_a_dead_worker_is_given_up_by_the_next_request(stage, v1_serving):
    stuck = request_deployment(project=stage.project, environment=stage.environment, run=stage.release("v2"),
                               actor_label="tests")
    Deployment.objects.filter(pk=stuck.pk).update(status=DeploymentStatus.RUNNING,
                                                  started_at=timezone.now() - timedelta(hours=1))
    v2 = deploy(stage, "v2")
    assert v2.status == DeploymentStatus.SUCCESS, v2.step_log
    stuck.refresh_from_db()
    assert stuck.status == DeploymentStatus.FAILED
    assert "its worker stopped before it finished" in stuck.step_log


KILLER = textwrap.dedent("""
    import os, signal, sys
    import django
    django.setup()
    from environments import deployer, deployments
    step = sys.argv[2]
    original = getattr(deployer.Deployer, step)
    def die(self, *args, **kwargs):
        if step == "switch":   # die in the gap: the old version stopped, the new one not started yet
            for container in self.containers():
                if container.labels.get(deployer.ROLE) == deployer.SERVICE:
                    container.stop(timeout=0)
        os.kill(os.getpid(), signal.SIGKILL)
    setattr(deployer.Deployer, step, die)
    deployer.run_deployment(int(sys.argv[1]), probe_deadline=20)
""")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("step, serving_while_dead", [("probe", "app v1"), ("switch", None)])
def test_a_worker_killed_mid_deployment_is_recovered_by_the_next_attempt(stage, step, serving_while_dead,
                                                                         monkeypatch):
    v1 = deploy(stage, "v1")
    assert stage.serving() == "app v1", v1.step_log
    monkeypatch.setattr(deployments, "queue_deployment", lambda deployment_id: None)  # the worker below takes it
    v2 = request_deployment(project=stage.project, environment=stage.environment, run=stage.release("v2"),
                            actor_label="tests")
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.settings",
                   "DATABASE_URL": worker_test.database_url(), "SECRET_KEY": "deployer-test-secret-key-0123456789abcd"}
    died = subprocess.run([sys.executable, "-c", KILLER, str(v2.pk), step], cwd=worker_test.REPO_ROOT,
                          env=environment, capture_output=True, text=True, timeout=120)
    assert died.returncode == -signal.SIGKILL, died.stderr
    v2.refresh_from_db()
    assert v2.status == DeploymentStatus.RUNNING
    assert stage.serving() == serving_while_dead
    with pytest.raises(DeploymentRefused, match=f"Deployment #{v2.pk} .* is running"):
        request_deployment(project=stage.project, environment=stage.environment, run=stage.release("v3"),
                           actor_label="tests")

    again = deployer.run_deployment(v2.pk)  # django-q2 hands the task out again after its retry delay
    assert again.status == DeploymentStatus.SUCCESS, again.step_log
    assert "an earlier attempt stopped mid-deployment" in again.step_log
    assert stage.serving() == "app v2"
    assert {c.labels["portal.deployment"] for c in stage.containers()} == {str(v2.pk)}


@pytest.mark.django_db(transaction=True)
def test_a_request_queues_the_task_that_deploys_once_the_request_commits(stage):
    requested = request_deployment(project=stage.project, environment=stage.environment, run=stage.release("v1"),
                                   actor_label="tests")  # the test settings run django-q2 tasks inline
    requested.refresh_from_db()
    assert requested.status == DeploymentStatus.SUCCESS, requested.step_log
    assert stage.serving() == "app v1"

"""Writes for the deployments the portal performs itself (environments/deployer.py runs them on the engine).

A request creates a pending Deployment and queues its task once the transaction commits: a web request never waits
on the engine. Only one deployment per project and environment is pending or running at a time; the rule is the
database's (the environment's row is locked while it is checked), so two requests cannot both pass.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from deliveries.audit import audit
from deliveries.models import Artifact, PipelineRun, Project
from environments.models import (
    AUTOMATIC_ROLLBACK_LABEL,
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    Environment,
)
from environments.selectors import active_freeze
from environments.services import STEP_LOG_CHARS, previous_success
from environments.signals import deployment_succeeded
from portal.formats import moment
from portal.queries import first

IN_FLIGHT = (DeploymentStatus.PENDING, DeploymentStatus.RUNNING)


class DeploymentRefused(Exception):
    """A deployment that cannot be requested; the message says why, for the person who asked."""


def abandoned_after() -> timedelta:
    """django-q2 kills a task that runs longer than its timeout: a deployment in flight for longer is dead."""
    return timedelta(seconds=settings.Q_CLUSTER["timeout"])


def request_deployment(
    *, project: Project, environment: Environment, run: PipelineRun, kind: str = DeploymentKind.DEPLOY,
    user=None, actor_label: str = "", artifacts: list[Artifact] | None = None, freeze_override_reason: str = "",
) -> Deployment:
    """Create a pending deployment of the run's images (or of `artifacts`) and queue it. Raises DeploymentRefused
    when the environment cannot be deployed to, an image has no digest, another deployment is in flight, or a
    freeze window is in force and no override reason is given (an override is audited and kept on the
    deployment)."""
    if not environment.docker_host_url:
        raise DeploymentRefused(f"{environment} has no Docker host URL: the portal cannot deploy there.")
    if not environment.health_url:
        raise DeploymentRefused(f"{environment} has no health URL: the portal could not tell the new version works.")
    images = list(artifacts if artifacts is not None else run.artifacts.order_by("pk"))
    if not images:
        raise DeploymentRefused(f"Run {run.label} of {project} has no images to deploy.")
    undigested = [str(image) for image in images if not image.digest]
    if undigested:
        raise DeploymentRefused(f"No digest for {', '.join(undigested)}: the portal deploys images by digest only.")
    now = timezone.now()
    with transaction.atomic():
        list(Environment.objects.select_for_update().filter(pk=environment.pk).values_list("pk"))
        in_flight = first(Deployment.objects.filter(project=project, environment=environment, status__in=IN_FLIGHT)
                          .select_related("source_run").order_by("-id"))
        if in_flight is not None:
            if in_flight.started_at > now - abandoned_after():
                raise DeploymentRefused(
                    f"Deployment #{in_flight.pk} of {project} to {environment} "
                    f"(run {in_flight.source_run.label if in_flight.source_run else '?'}, "
                    f"{in_flight.get_kind_display().lower()}) is {in_flight.get_status_display().lower()} since "
                    f"{moment(in_flight.started_at)}: wait for it to finish.")
            give_up(in_flight, reason="its worker stopped before it finished (no end within the task timeout); "
                                      "the next deployment recovers the host")
        freeze = active_freeze(environment_id=environment.pk, at=now)
        freeze_override_reason = freeze_override_reason.strip()
        if freeze is not None and not freeze_override_reason:
            raise DeploymentRefused(
                f"{environment} is frozen until {moment(freeze.ends_at)}: {freeze.reason}. An operator may "
                "override the freeze, giving a reason.")
        deployment = Deployment.objects.create(
            project=project, environment=environment, source_run=run, kind=kind, status=DeploymentStatus.PENDING,
            deployed_by=user, deployed_by_label="" if user else actor_label[:150], started_at=now,
            image_digests=list(dict.fromkeys(image.digest for image in images)),
            replaced=previous_success(project=project, environment=environment),
            freeze_override_reason=freeze_override_reason[:300] if freeze is not None else "",
        )
        deployment.artifacts.set(images)
        if freeze is not None:
            audit(project=project, actor=user, actor_label=user.get_username() if user else actor_label,
                  action="deployment.freeze_overridden", target=deployment,
                  data={"environment": environment.slug, "freeze": freeze.pk, "freeze_reason": freeze.reason,
                        "override_reason": deployment.freeze_override_reason})
        audit(project=project, actor=user, actor_label=user.get_username() if user else actor_label,
              action="deployment.requested", target=deployment,
              data={"environment": environment.slug, "kind": kind, "build_number": run.build_number,
                    "image_digests": deployment.image_digests})
        transaction.on_commit(partial(queue_deployment, deployment.pk))
    return deployment


def request_rollback(
    *, to: Deployment, user=None, actor_label: str = "", freeze_override_reason: str = "",
) -> Deployment:
    """Deploy again the images of an earlier successful deployment, recorded as a rollback."""
    if to.status != DeploymentStatus.SUCCESS:
        raise DeploymentRefused(f"Deployment #{to.pk} did not succeed: the portal only rolls back to one that did.")
    if to.source_run is None:
        raise DeploymentRefused(f"Deployment #{to.pk} has lost its run: its images are not known.")
    return request_deployment(project=to.project, environment=to.environment, run=to.source_run,
                              kind=DeploymentKind.ROLLBACK, user=user, actor_label=actor_label,
                              artifacts=list(to.artifacts.order_by("pk")),
                              freeze_override_reason=freeze_override_reason)


def queue_deployment(deployment_id: int) -> None:
    async_task("environments.tasks.run_deployment", deployment_id, task_name=f"deployment {deployment_id}")


def claim(deployment_id: int) -> tuple[Deployment | None, bool]:
    """Mark the deployment running, for the worker that runs it: (deployment, interrupted). The deployment is None
    when it has finished already (a task handed out twice); interrupted when it was running already, left by a
    worker that died (the task is handed out again): the caller recovers the host first."""
    with transaction.atomic():
        deployment = first(Deployment.objects.select_for_update(of=("self",))
                           .filter(pk=deployment_id, status__in=IN_FLIGHT)
                           .select_related("project", "environment", "source_run", "replaced"))
        if deployment is None:
            return None, False
        interrupted = deployment.status == DeploymentStatus.RUNNING
        deployment.status = DeploymentStatus.RUNNING
        deployment.started_at = timezone.now()
        deployment.save(update_fields=["status", "started_at"])
    return deployment, interrupted


def log_step(deployment: Deployment, message: str) -> None:
    """Append a line to the deployment's step log, saved at once so the page shows progress live."""
    append_log(deployment, f"{timezone.localtime():%H:%M:%S} {message}")
    Deployment.objects.filter(pk=deployment.pk).update(step_log=deployment.step_log)


def append_log(deployment: Deployment, line: str) -> None:
    # The log keeps its end: the failure, the last thing that happened, is what a reader needs.
    deployment.step_log = (deployment.step_log + line + "\n")[-STEP_LOG_CHARS:]


def succeed(deployment: Deployment) -> None:
    with transaction.atomic():
        finish(deployment, status=DeploymentStatus.SUCCESS)
        audit(project=deployment.project, actor_label=deployment.deployer or "portal",
              action="deployment.succeeded", target=deployment,
              data={"environment": deployment.environment.slug, "image_digests": deployment.image_digests})
        deployment_succeeded.send(sender=Deployment, deployment=deployment)


def give_up(deployment: Deployment, *, reason: str) -> None:
    """Failed, and nothing was rolled back: nothing had changed on the host, or nothing ran there before."""
    with transaction.atomic():
        append_log(deployment, f"failed: {reason}")
        finish(deployment, status=DeploymentStatus.FAILED, fields=["step_log"])
        audit(project=deployment.project, actor_label="portal", action="deployment.failed", target=deployment,
              data={"environment": deployment.environment.slug, "reason": reason})


def roll_back_automatically(deployment: Deployment, *, reason: str, restored: Deployment) -> Deployment:
    """The deployment failed and `restored`'s containers serve again: the failed one is recorded rolled back, and
    the rollback as a deployment of its own (kind rollback), as DORA counts it."""
    with transaction.atomic():
        append_log(deployment, f"failed: {reason}")
        finish(deployment, status=DeploymentStatus.ROLLED_BACK, fields=["step_log"])
        now = deployment.finished_at  # the restore ends with the failure, never before it (DORA's time to restore)
        rollback = Deployment.objects.create(
            project=deployment.project, environment=deployment.environment, source_run=restored.source_run,
            image_digests=restored.image_digests, kind=DeploymentKind.ROLLBACK, status=DeploymentStatus.SUCCESS,
            deployed_by_label=AUTOMATIC_ROLLBACK_LABEL, replaced=deployment, started_at=now, finished_at=now,
            step_log=f"automatic rollback of deployment #{deployment.pk}: {reason}\n"
                     f"deployment #{restored.pk}'s containers serve again\n",
        )
        rollback.artifacts.set(restored.artifacts.all())
        audit(project=deployment.project, actor_label="portal", action="deployment.rolled_back", target=deployment,
              data={"environment": deployment.environment.slug, "reason": reason, "restored": restored.pk,
                    "rollback": rollback.pk})
    return rollback


def finish(deployment: Deployment, *, status: str, fields: list[str] = ()) -> None:
    deployment.status = status
    deployment.finished_at = timezone.now()
    deployment.save(update_fields=["status", "finished_at", *fields])

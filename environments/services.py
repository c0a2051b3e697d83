"""Writes of the environments app."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from deliveries.audit import audit
from deliveries.models import Artifact, PipelineRun, Project
from deliveries.services import Changes, locked_run
from deliveries.statuses import StatusOrder
from environments.models import Deployment, DeploymentKind, DeploymentStatus, Environment
from environments.signals import deployment_succeeded
from portal.queries import first

# The one ordering rule (deliveries.statuses), with one step more: the portal's rollback is final.
DEPLOYMENT_ORDER = StatusOrder(
    [DeploymentStatus.PENDING], [DeploymentStatus.RUNNING], [DeploymentStatus.SUCCESS, DeploymentStatus.FAILED],
    [DeploymentStatus.ROLLED_BACK],
)
FINISHED = {DeploymentStatus.SUCCESS, DeploymentStatus.FAILED, DeploymentStatus.ROLLED_BACK}
STEP_LOG_CHARS = 100_000


def record_run_deployment(
    *, project: Project, build_number: int, environment: Environment, status: str, images: list[dict],
    started_at: datetime | None, finished_at: datetime | None, log: str, actor_label: str,
) -> tuple[Deployment, bool]:
    """Record what Jenkins deployed from the run of a build number (created if new) to an environment. Returns
    (deployment, created); see `record_deployment`. Raises CallbackError for an impossible build number."""
    with transaction.atomic():
        run, _ = locked_run(project=project, build_number=build_number)
        return record_deployment(
            project=project, run=run, environment=environment, status=status, images=images,
            started_at=started_at, finished_at=finished_at, log=log, actor_label=actor_label,
        )


def record_deployment(
    *,
    project: Project,
    run: PipelineRun,
    environment: Environment,
    status: str,
    images: list[dict],
    started_at: datetime | None = None,
    finished_at: datetime | None = None,
    log: str = "",
    actor_label: str = "",
) -> tuple[Deployment, bool]:
    """Create or update the deployment of a run to an environment, as Jenkins reports it. Returns
    (deployment, created).

    Idempotent: the same report twice is one deployment, and the second changes nothing. `images` are
    `{repository, tag, digest}`: the run's artifacts matching them (by repository and tag, or by digest) are
    linked, and their digests kept in `image_digests`. A new deployment `replaced` the project's previous
    successful deployment in that environment. Concurrent reports for the same run are serialised on the
    run's row lock.
    """
    now = timezone.now()
    with transaction.atomic():
        list(PipelineRun.objects.select_for_update().filter(pk=run.pk).values_list("pk"))
        deployment = first(
            Deployment.objects.filter(
                project=project, source_run=run, environment=environment, kind=DeploymentKind.DEPLOY
            ).order_by("-id")
        )
        artifacts, digests = match_images(run, images)
        created = deployment is None
        if created:
            deployment = Deployment(
                project=project,
                environment=environment,
                source_run=run,
                kind=DeploymentKind.DEPLOY,
                status=status,
                deployed_by_label=actor_label[:150],
                started_at=started_at or now,
                finished_at=finished_at,
                step_log=log[-STEP_LOG_CHARS:],
                image_digests=digests,
                replaced=previous_success(project=project, environment=environment),
            )
            if deployment.status in FINISHED and deployment.finished_at is None:
                deployment.finished_at = now
            deployment.save(force_insert=True)
            deployment.artifacts.set(artifacts)
            changed = ["created"]
        else:
            changed = merge_deployment(deployment, status=status, started_at=started_at, finished_at=finished_at,
                                       log=log, digests=digests if images else None, now=now)
            if deployment.replaced_id is None:
                replaced = previous_success(project=project, environment=environment, before=deployment)
                if replaced is not None:
                    deployment.replaced = replaced
                    changed.append("replaced")
            if changed:
                deployment.save(update_fields=changed)
            if images and set(deployment.artifacts.values_list("pk", flat=True)) != {a.pk for a in artifacts}:
                deployment.artifacts.set(artifacts)
                changed.append("artifacts")
        if changed:
            audit(project=project, actor_label=actor_label,
                  action="deployment.recorded" if created else "deployment.updated", target=deployment,
                  data={"build_number": run.build_number, "environment": environment.slug,
                        "status": deployment.status, "image_digests": deployment.image_digests,
                        "changed": changed})
        if deployment.status == DeploymentStatus.SUCCESS and ("created" in changed or "status" in changed):
            deployment_succeeded.send(sender=Deployment, deployment=deployment)
    return deployment, created


def match_images(run: PipelineRun, images: list[dict]) -> tuple[list[Artifact], list[str]]:
    """The run's artifacts matching the images, and the digests deployed (given, or known from the artifact)."""
    if not images:
        return [], []
    condition = Q()
    for image in images:
        condition |= Q(repository=image["repository"], tag=image["tag"])
        if image.get("digest"):
            condition |= Q(digest=image["digest"])
    artifacts = list(Artifact.objects.filter(condition, run=run).order_by("pk"))
    by_image = {(a.repository, a.tag): a for a in artifacts}
    digests: list[str] = []
    for image in images:
        known = by_image.get((image["repository"], image["tag"]))
        digest = image.get("digest") or (known.digest if known else "")
        if digest and digest not in digests:
            digests.append(digest)
    return artifacts, digests


def previous_success(*, project: Project, environment: Environment, before: Deployment | None = None):
    """The newest successful deployment of the project in the environment (older than `before`)."""
    deployments = Deployment.objects.filter(project=project, environment=environment,
                                            status=DeploymentStatus.SUCCESS)
    if before is not None:
        deployments = deployments.filter(pk__lt=before.pk)
    return first(deployments.order_by("-id"))


def merge_deployment(deployment: Deployment, *, status, started_at, finished_at, log, digests, now) -> list[str]:
    changes = Changes(deployment)
    put = changes.put
    if status and DEPLOYMENT_ORDER.allows(deployment.status, status):
        put("status", status)
    if started_at and started_at < deployment.started_at:
        put("started_at", started_at)
    if finished_at and deployment.status in FINISHED:
        put("finished_at", finished_at)
    if deployment.status in FINISHED and deployment.finished_at is None:
        put("finished_at", now)
    if log:
        put("step_log", log[-STEP_LOG_CHARS:])
    if digests is not None:
        put("image_digests", digests)
    return list(changes)

"""The demo's promotions waiting for approval, requested through the promotion flow itself.

seed_demo calls it once the history is made: the newest green dev run of each project that was not promoted yet
is requested by the demo's developer (in the first such project, an older one is requested and rejected by the
tech lead before it), so its gate evaluation, its audit trail and (once the worker runs, against
the simulated GitLab) its merge request come from the code users run.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from deliveries.models import PipelineRun, Project, RunStatus
from promotions import selectors, services

REQUESTER, DECIDER = "dana.dev", "tom.lead"  # seed_demo's developer and tech lead
SUPERSEDED = "Superseded by a newer green run of dev: promote that one instead."


def request_waiting_promotions(*, projects: list[Project]) -> int:
    """Request the newest green dev run deployed to staging of each project, when it is newer than the project's
    last release run and nothing else is open. Returns how many were requested (none on a second seed)."""
    users = get_user_model().objects
    requester, decider = users.get(username=REQUESTER), users.get(username=DECIDER)
    requested = 0
    for project in projects:
        run = selectors.candidate_run(project)
        if run is None or selectors.refusal(run):
            continue
        released = (PipelineRun.objects.filter(project=project, branch=project.release_branch)
                    .order_by("-created_at", "-id").first())
        if released is not None and released.created_at > run.created_at:
            continue  # promoted in the history already
        older = older_unpromoted_run(project, before=run) if requested == 0 else None
        if older is not None:  # one rejection in the demo, decided before the request that waits
            rejected = services.request_promotion(run=older, user=requester)
            services.reject_promotion(promotion=rejected, user=decider, comment=SUPERSEDED)
        services.request_promotion(run=run, user=requester)
        requested += 1
    return requested


def older_unpromoted_run(project: Project, *, before: PipelineRun) -> PipelineRun | None:
    """The newest green dev run on staging older than `before` that was never requested."""
    runs = (PipelineRun.objects.filter(project=project, branch=project.dev_branch, status=RunStatus.SUCCESS,
                                       created_at__lt=before.created_at, promotions__isnull=True)
            .select_related("project").order_by("-created_at", "-id")[:20])
    return next((run for run in runs if not selectors.refusal(run)), None)

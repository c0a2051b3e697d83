"""The demo's promotions waiting for approval, requested through the promotion flow itself.

seed_demo calls it once the history is made: the newest green dev run of each project that was not promoted yet
is requested by the demo's developer, so its gate evaluation, its audit trail and (once the worker runs, against
the simulated GitLab) its merge request come from the code users run.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model

from deliveries.models import PipelineRun, Project
from promotions import selectors, services

REQUESTER = "dana.dev"  # seed_demo's developer


def request_waiting_promotions(*, projects: list[Project]) -> int:
    """Request the newest green dev run deployed to staging of each project, when it is newer than the project's
    last release run and nothing else is open. Returns how many were requested (none on a second seed)."""
    requester = get_user_model().objects.get(username=REQUESTER)
    requested = 0
    for project in projects:
        run = selectors.candidate_run(project)
        if run is None or selectors.refusal(run):
            continue
        released = (PipelineRun.objects.filter(project=project, branch=project.release_branch)
                    .order_by("-created_at", "-id").first())
        if released is not None and released.created_at > run.created_at:
            continue  # promoted in the history already
        services.request_promotion(run=run, user=requester)
        requested += 1
    return requested

"""The demo's promotions waiting for approval, requested through the promotion flow itself, and the rule by which
the demo's developer picks what to promote (simulators.history uses it for the past too).

seed_demo calls it once the history is made: in each project whose dev head is green on staging, with a gate the
tech lead can pass, that run is requested by the demo's developer (in the first such project, an older one is
requested and rejected by the tech lead before it), so its gate evaluation, its audit trail and (once the worker runs,
against the simulated GitLab) its merge request come from the code users run.
"""

from __future__ import annotations

from datetime import datetime

from django.contrib.auth import get_user_model

from deliveries.models import PipelineRun, Project, RunStatus
from promotions import gates, selectors, services

REQUESTER, DECIDER = "dana.dev", "tom.lead"  # seed_demo's developer and tech lead
SUPERSEDED = "Superseded by a newer green run of dev: promote that one instead."
CANDIDATES = 5  # the newest green dev runs a developer looks at before asking


def request_waiting_promotions(*, projects: list[Project]) -> int:
    """Request, in each project, the newest green dev run on staging when it is dev's head (so that GitLab can
    merge it), a tech lead could approve it (with waivers at most), it is newer than the project's last release
    run and nothing else is open. Returns how many were requested (none on a second seed)."""
    users = get_user_model().objects
    requester, decider = users.get(username=REQUESTER), users.get(username=DECIDER)
    requested = 0
    for project in projects:
        run = selectors.candidate_run(project)
        if run is None or not is_dev_head(run) or selectors.refusal(run):
            continue  # dev has moved on (GitLab would refuse to merge it), or it cannot be requested (open already)
        if not passable(services.evaluate_gate(run)):
            continue  # nothing a tech lead could approve: the project page offers the request, the gate says why
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


def is_dev_head(run: PipelineRun) -> bool:
    """The run is the newest of its project's dev branch, whatever their outcomes: what dev's head is."""
    return PipelineRun.objects.latest_per_branch(run.project).filter(branch=run.project.dev_branch, pk=run.pk).exists()


def choose_run(project: Project, *, finished_by: datetime | None = None) -> PipelineRun | None:
    """What the demo's developer asks to promote: of the newest green dev runs on staging never requested (that
    finished by `finished_by`), the newest whose gate the tech lead can pass (it passes, or fails only on what a
    waiver excuses); the newest of them when none can (the tech lead will reject it)."""
    runs = PipelineRun.objects.filter(project=project, branch=project.dev_branch, status=RunStatus.SUCCESS,
                                      promotions__isnull=True)
    if finished_by is not None:
        runs = runs.filter(finished_at__lte=finished_by)
    candidates = [run for run in runs.select_related("project").order_by("-created_at", "-id")[:CANDIDATES]
                  if not selectors.refusal(run)]
    return next((run for run in candidates if passable(services.evaluate_gate(run))),
                candidates[0] if candidates else None)


def passable(judged: dict) -> bool:
    """The gate passes, or fails only on items a waiver can excuse (vulnerabilities, scenarios)."""
    return all(line.get("item_kind") and line.get("items")
               for line in judged["conditions"] if line["verdict"] == gates.FAILED)


def older_unpromoted_run(project: Project, *, before: PipelineRun) -> PipelineRun | None:
    """The newest green dev run on staging older than `before` that was never requested."""
    runs = (PipelineRun.objects.filter(project=project, branch=project.dev_branch, status=RunStatus.SUCCESS,
                                       created_at__lt=before.created_at, promotions__isnull=True)
            .select_related("project").order_by("-created_at", "-id")[:20])
    return next((run for run in runs if not selectors.refusal(run)), None)

"""The demo's past, replayed through the code paths people and Jenkins use, on a clock moved to each moment.

deliveries.demo makes the runs Jenkins recorded (and scanners.demo ingests their reports); this module replays,
in time order, what happened around them, each through the service its real author calls:

- Jenkins' deployment callbacks: `record_run_deployment`, then the deploy rules the API checks
  (`flag_rule_violations`), for dev (feature branches), staging and production;
- Jenkins' checks (`record_reported_check`): its "Availability test" stage's of staging, and its "Deploy
  production" stage's of what production serves once Ansible is done (the Jenkinsfile's portalCheck);
- before every release run, a promotion: the developer requests the newest green dev run on staging whose gate
  the tech lead can pass; its merge request opens in GitLab (a SimulatedGitLab in this process); the tech lead
  waives the failing vulnerabilities or scenarios, if that is all that fails, and approves (or rejects, saying
  why); the portal merges the tested sha; the release run builds the merge commit, and its production deployment
  releases the promotion. A release run with no approved promotion for its commit is refused by the portal at its
  "Deploy production" stage (the Jenkinsfile's portalGate): the stage and the run fail, nothing is deployed.

time-machine moves the clock to each moment, so every row, audit event and merge request carries the time it
would have had. Tasks run in this process as they are queued (django-q2's sync mode), as the worker would run
them then; the portal has no Jenkins meanwhile (the release runs are already there), and mail goes nowhere.
Rollbacks are not replayed: only the portal's deployer makes them, on a Docker host the demo does not have.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import time_machine
from django.contrib.auth import get_user_model
from django.test import override_settings
from django.utils import timezone
from django_q.conf import Conf

from deliveries import demo
from deliveries.models import Artifact, PipelineRun, PromotionState, RunStatus, Stage, StageStatus, WaiverKind
from environments import availability
from environments import services as environment_services
from environments.models import DeploymentStatus, Environment
from promotions import demo as promotions_demo
from promotions import gates, selectors
from promotions import services as promotion_services
from promotions import tasks as promotion_tasks
from simulators.gitlab import SimulatedGitLab

JENKINS = "jenkins (demo history)"
# The address `make run` serves its simulated GitLab on, so that the history's merge requests have the addresses
# they have there (simulated_gitlab restores them); another one when it is taken.
GITLAB_PORT = int(os.environ.get("GITLAB_SIM_PORT") or 8082)
REQUEST_BEFORE_RELEASE = timedelta(minutes=50)  # the developer asks this long before the release run starts
DECIDE_BEFORE_RELEASE = timedelta(minutes=20)
PRODUCTION_STAGE = "Deploy production"  # the Jenkinsfile's stage that asks the portal's permission (portalGate)
CHECK_AFTER_DEPLOY = timedelta(seconds=20)  # the production stage's health check, once Ansible is done
WAIVER_DAYS = 30
WAIVER_REASONS = [
    "Not reachable from the web tier: the vulnerable function is not called. Fix planned with the next base image.",
    "Accepted by security for one sprint; the fix is scheduled.",
]


def seed(*, scale: str = "normal", password: str | None = None) -> demo.SeedResult:
    """The whole demo: users, environments, runs and reports (deliveries.demo), then their past replayed."""
    result = demo.seed(scale=scale, password=password)
    if result.seeded:
        with replaying(result.seeded) as gitlab:
            for seeded in result.seeded:
                result.deployments += replay(seeded, environments=result.environments, gitlab=gitlab)
    return result


@contextlib.contextmanager
def replaying(seeded: list[demo.SeededRuns]) -> Iterator[SimulatedGitLab]:
    """A GitLab holding the projects, tasks run as they are queued, no Jenkins to trigger, mail to nowhere."""
    token = secrets.token_urlsafe(24)  # this process's GitLab only
    try:
        gitlab = SimulatedGitLab(tokens={token: "portal-bot"}, port=GITLAB_PORT)
    except OSError:  # `make run`'s simulated GitLab is up: this history's MR addresses will not be its
        gitlab = SimulatedGitLab(tokens={token: "portal-bot"})
    for username in (promotions_demo.REQUESTER, promotions_demo.DECIDER):
        gitlab.add_user(username)
    for item in seeded:
        project = item.project
        first = min(item.runs, key=lambda run: run.created_at)
        gitlab.add_project(project.gitlab_project_path, default_branch=project.release_branch,
                           author_can_approve=True, branches={project.dev_branch: first.commit_sha,
                                                              project.release_branch: None})
    sync, loggers = Conf.SYNC, [logging.getLogger("django-q"), logging.getLogger("promotions.services")]
    levels = [logger.level for logger in loggers]
    Conf.SYNC = True
    for logger in loggers:  # not a line per task of the past, nor "no Jenkins to trigger" per release
        logger.setLevel(logging.ERROR)
    try:
        with gitlab, override_settings(GITLAB_URL=gitlab.url, GITLAB_TOKEN=token, JENKINS_URL="",
                                       EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend"):
            yield gitlab
    finally:
        Conf.SYNC = sync
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


@dataclass(frozen=True)
class Event:
    at: datetime
    order: int  # ties at one moment: deployments, then checks, then promotions
    kind: str
    run: PipelineRun
    stage: Stage | None = None
    environment: str = ""
    ok: bool = True  # a check's verdict


def replay(seeded: demo.SeededRuns, *, environments: dict[str, Environment], gitlab: SimulatedGitLab) -> int:
    """Replay a project's new runs' surroundings in time order. Returns how many deployments were recorded."""
    users = get_user_model().objects
    people = {"developer": users.get(username=promotions_demo.REQUESTER),
              "techlead": users.get(username=promotions_demo.DECIDER)}
    deployments = 0
    for event in sorted(events(seeded), key=lambda e: (e.at, e.order, e.run.build_number)):
        with time_machine.travel(event.at, tick=False):
            if event.kind == "deploy":
                deployments += deploy(event, environments[event.environment])
            elif event.kind == "check":
                report_check(event, environments[event.environment])
            else:
                promote(event.run, people=people, gitlab=gitlab)
    return deployments


def events(seeded: demo.SeededRuns) -> list[Event]:
    """What Jenkins reported around each run, and a promotion before each release run."""
    project, found = seeded.project, []
    for run, stages in zip(seeded.runs, seeded.stages, strict=True):
        by_name = {stage.name: stage for stage in stages}
        ran = (StageStatus.SUCCESS, StageStatus.FAILED)
        if run.branch == project.release_branch:
            found.append(Event(run.created_at - REQUEST_BEFORE_RELEASE, 2, "promote", run))
            targets = [("production", by_name.get(PRODUCTION_STAGE))]
        elif run.branch == project.dev_branch:
            targets = [("staging", by_name["Deploy staging"])]
        else:  # a feature branch goes to dev once its images are pushed, and to staging
            push = by_name["Push images"]
            targets = [("dev", push if push.status == StageStatus.SUCCESS else None),
                       ("staging", by_name["Deploy staging"])]
        for environment, stage in targets:
            if stage is not None and stage.status in ran:
                found.append(Event(stage.finished_at, 0, "deploy", run, stage, environment))
        if run.branch == project.release_branch:
            # once Ansible is done, what production serves answers: the new version, or the previous one put back
            stage = by_name.get(PRODUCTION_STAGE)
            if stage is not None and stage.status in ran:
                found.append(Event(stage.finished_at + CHECK_AFTER_DEPLOY, 1, "check", run, stage, "production"))
        elif by_name["Availability test"].status in ran:
            check = by_name["Availability test"]
            found.append(Event(check.finished_at, 1, "check", run, check, "staging",
                               ok=check.status == StageStatus.SUCCESS))
    return found


def images_of(run: PipelineRun) -> list[dict]:
    return [{"repository": a.repository, "tag": a.tag, "digest": a.digest}
            for a in Artifact.objects.filter(run=run).order_by("pk")]


def deploy(event: Event, environment: Environment) -> int:
    """Jenkins' deployment callback, as the API handles it; in production, once the portal allowed it (the
    Jenkinsfile's portalGate). Returns how many deployments were recorded."""
    run, stage = event.run, event.stage
    if stage.name == PRODUCTION_STAGE:
        _, refusal = selectors.deploy_refusal(project=run.project, environment=environment, commit_sha=run.commit_sha)
        if refusal:
            refused_by_portal(run, stage, refusal)
            return 0
    images = images_of(run)
    log = f"pull {run.project.slug} {run.commit_sha[:8]}\nstart new containers\nprobe /healthz\n" + (
        "switch\n" if stage.status == StageStatus.SUCCESS else f"{stage.log_excerpt or 'health check failed'}\n")
    deployment, _ = environment_services.record_run_deployment(
        project=run.project, build_number=run.build_number, environment=environment,
        status=DeploymentStatus(stage.status), images=images, started_at=stage.started_at,
        finished_at=stage.finished_at, log=log, actor_label=JENKINS)
    promotion_services.flag_rule_violations(deployment=deployment, images=images, actor_label=JENKINS)
    return 1


def refused_by_portal(run: PipelineRun, stage: Stage, refusal: str) -> None:
    """portalGate failed the stage, and so the run: what Jenkins then recorded instead of the planned deploy."""
    Stage.objects.filter(run=run, name=stage.name).update(
        status=StageStatus.FAILED,
        log_excerpt=f"delivery portal refused GET deploy-permission/ (HTTP 403): {refusal}"[:2000])
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)


def report_check(event: Event, environment: Environment) -> None:
    """Jenkins reporting a check (the Jenkinsfile's portalCheck): of staging, its availability stage's verdict; of
    production, once its deployment is over, what serves there, the new version or the previous one put back."""
    run, ok = event.run, event.ok
    rng = random.Random(f"{run.project.slug}:{run.build_number}:{environment.slug}:check")
    result = availability.Probe(ok=ok, status_code=200 if ok else 502, latency_ms=round(rng.uniform(35, 140), 1),
                                error="" if ok else "HTTP 502 Bad Gateway")
    availability.record_reported_check(project=run.project, environment=environment,
                                       url=environment.health_url_for(run.project), result=result)


def promote(release: PipelineRun, *, people: dict, gitlab: SimulatedGitLab) -> None:
    """The promotion that led to `release`: requested, decided, merged; the release run then builds the merge."""
    source = promotions_demo.choose_run(release.project, finished_by=release.created_at - REQUEST_BEFORE_RELEASE)
    if source is None:
        return  # nothing green on staging to promote: the portal refuses the release's production stage
    project = release.project
    gitlab.push(project.gitlab_project_path, project.dev_branch, source.commit_sha)  # dev is at the tested commit
    promotion = promotion_services.request_promotion(run=source, user=people["developer"])
    # The tasks it queued ran already when it committed (sync mode); called again in case the seed runs inside a
    # transaction (tests), which defers them: they do nothing twice.
    promotion_tasks.open_merge_request(promotion.pk)
    with time_machine.travel(release.created_at - DECIDE_BEFORE_RELEASE, tick=False):
        promotion.refresh_from_db()
        judged = promotion_services.current_gate(promotion)
        if not judged["passed"] and promotions_demo.passable(judged):
            grant_waivers(project, judged, techlead=people["techlead"])
            judged = promotion_services.current_gate(promotion)
        if not judged["passed"]:
            promotion_services.reject_promotion(
                promotion=promotion, user=people["techlead"],
                comment="The gate fails: " + "; ".join(gates.failures(judged)) + ". A new run is needed.")
            return
        promotion = promotion_services.approve_promotion(promotion=promotion, user=people["techlead"],
                                                         comment="Evidence reviewed, go.")
        promotion_tasks.merge_promotion(promotion.pk)
    promotion.refresh_from_db()
    if promotion.state == PromotionState.MERGED:
        builds_merge_commit(release, promotion.merge_commit_sha)


def grant_waivers(project, judged: dict, *, techlead) -> None:
    expires_at = timezone.now() + timedelta(days=WAIVER_DAYS)
    for line in judged["conditions"]:
        if line["verdict"] != gates.FAILED:
            continue
        for index, identifier in enumerate(line["items"]):
            promotion_services.create_waiver(
                project=project, user=techlead, kind=WaiverKind(line["item_kind"]), identifier=identifier,
                reason=WAIVER_REASONS[index % len(WAIVER_REASONS)], expires_at=expires_at)


def builds_merge_commit(release: PipelineRun, merge_sha: str) -> None:
    """The release run Jenkins started on GitLab's push built the merge commit: its commit and image tags say so."""
    PipelineRun.objects.filter(pk=release.pk).update(commit_sha=merge_sha)
    Artifact.objects.filter(run=release).update(tag=merge_sha[:8])
    release.commit_sha = merge_sha

"""Availability checks: probe an environment's health URL over HTTP and record what it answered.

What is probed: every environment with a health URL; where the URL names {project}, each project deployed there has
its own; otherwise the one service the environment runs (the deployer runs one per environment), recorded against the
project deployed there last. The schedule probes what has not been checked for AVAILABILITY_CHECK_INTERVAL_MINUTES;
a deployment is checked as soon as it ends; an operator's "Check now" and Jenkins' availability stage add theirs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import requests
from django.db import transaction
from django.utils import timezone

from deliveries.models import Project
from environments.models import AvailabilityCheck, CheckSource, Deployment, DeploymentStatus, Environment
from environments.selectors import check_interval
from portal.queries import first

PROBE_TIMEOUT = (3.0, 5.0)  # seconds to connect, then to read: a health URL answers fast or counts as down
ERROR_CHARS = 500


@dataclass(frozen=True)
class Target:
    environment: Environment
    project: Project | None
    url: str
    deployment: Deployment | None


@dataclass(frozen=True)
class Probe:
    ok: bool
    status_code: int | None
    latency_ms: float | None
    error: str


def probe(url: str) -> Probe:
    """GET the URL once, without following redirects: healthy when it answers below 400."""
    started = time.perf_counter()
    try:
        answer = requests.get(url, timeout=PROBE_TIMEOUT, allow_redirects=False)
    except requests.RequestException as error:
        return Probe(ok=False, status_code=None, latency_ms=None, error=f"{type(error).__name__}: {error}")
    latency = round((time.perf_counter() - started) * 1000, 1)
    ok = answer.status_code < 400
    return Probe(ok=ok, status_code=answer.status_code, latency_ms=latency,
                 error="" if ok else f"HTTP {answer.status_code} {answer.reason or ''}".strip())


def targets(environment: Environment, *, project: Project | None = None) -> list[Target]:
    """What to probe in the environment (only the project's when given)."""
    if not environment.health_url:
        return []
    serving = (Deployment.objects.current_per_environment().filter(environment=environment)
               .select_related("project").order_by("-finished_at", "-id"))
    if environment.health_url_per_project:
        if project is not None:
            serving = serving.filter(project=project)
        return [Target(environment, d.project, environment.health_url_for(d.project), d) for d in serving]
    newest = first(serving)
    if project is not None and (newest is None or newest.project_id != project.pk):
        return []
    return [Target(environment, newest.project if newest else None, environment.health_url, newest)]


def check(target: Target, *, source: str) -> AvailabilityCheck:
    return record_check(environment=target.environment, project=target.project, deployment=target.deployment,
                        url=target.url, result=probe(target.url), source=source)


def record_check(*, environment: Environment, project: Project | None, url: str, result: Probe, source: str,
                 deployment: Deployment | None = None, checked_at: datetime | None = None) -> AvailabilityCheck:
    """Store a check, counting the failures in a row for its project and environment."""
    with transaction.atomic():
        # one writer at a time per environment, so that the count in a row follows the previous check
        list(Environment.objects.select_for_update().filter(pk=environment.pk).values_list("pk"))
        previous = first(AvailabilityCheck.objects.filter(environment=environment, project=project)
                         .order_by("-checked_at", "-id").only("failures_in_a_row"))
        return AvailabilityCheck.objects.create(
            environment=environment, project=project, deployment=deployment, url=url[:500], ok=result.ok,
            status_code=result.status_code, latency_ms=result.latency_ms, error=result.error[:ERROR_CHARS],
            source=source, checked_at=checked_at or timezone.now(),
            failures_in_a_row=0 if result.ok else (previous.failures_in_a_row if previous else 0) + 1,
        )


def record_reported_check(*, project: Project, environment: Environment, url: str, result: Probe) -> AvailabilityCheck:
    """A check Jenkins made (its availability stage), kept against what the project runs there now."""
    serving = first(Deployment.objects.current_per_environment(project).filter(environment=environment))
    return record_check(environment=environment, project=project, deployment=serving, url=url, result=result,
                        source=CheckSource.JENKINS)


def check_environment(*, environment: Environment, project: Project | None = None,
                      source: str = CheckSource.OPERATOR) -> list[AvailabilityCheck]:
    return [check(target, source=source) for target in targets(environment, project=project)]


def check_after_deployment(deployment: Deployment) -> list[AvailabilityCheck]:
    """A deployment has ended: probe what serves now for its project (the new version, or the one restored)."""
    if deployment.status not in (DeploymentStatus.SUCCESS, DeploymentStatus.ROLLED_BACK):
        return []
    return check_environment(environment=deployment.environment, project=deployment.project,
                             source=CheckSource.DEPLOYMENT)


def check_due(*, now: datetime | None = None) -> list[AvailabilityCheck]:
    """The schedule's pass: probe every target not checked within the interval (a little slack, so that a target
    checked one interval ago by the previous pass is due again now)."""
    now = now or timezone.now()
    recent = set(AvailabilityCheck.objects.filter(checked_at__gt=now - check_interval() + timedelta(seconds=30))
                 .values_list("environment_id", "project_id").distinct())
    checks = []
    for environment in Environment.objects.exclude(health_url=""):
        for target in targets(environment):
            key = (environment.pk, target.project.pk if target.project else None)
            if key not in recent:
                checks.append(check(target, source=CheckSource.SCHEDULE))
    return checks

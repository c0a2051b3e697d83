"""The whole promotion over real HTTP: a developer's green dev run (played by the imitation Jenkins against the
live portal) is requested for promotion, approved by a tech lead, merged in the imitation GitLab with the tested
sha; the master run the portal triggers asks the deploy permission, deploys production and releases it."""

import time
from contextlib import contextmanager

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from deliveries.models import (
    AuditEvent,
    GateCondition,
    PipelineRun,
    ProjectToken,
    Promotion,
    PromotionState,
    QualityGate,
    RunStatus,
)
from environments import selectors as environment_selectors
from environments.models import Deployment, Tier
from portal.roles import Role
from simulators.gitlab import SimulatedGitLab
from simulators.jenkins import PortalTarget, SimulatedJenkins
from tests.deliveries.test_jenkins_loop_e2e import wait_until_finished
from tests.factories import EnvironmentFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db(transaction=True)

USER, TOKEN = "portal", "api-token"
GITLAB_TOKEN = "glpat-e2e-0123456789"
JOB, PATH = "delivery/shop", "delivery/shop"
DEADLINE_SECONDS = 60


def wait_for(what, check):
    deadline = time.monotonic() + DEADLINE_SECONDS
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"{what}: not after {DEADLINE_SECONDS}s")


@contextmanager
def promotion_flow(live_server, settings, monkeypatch):
    """A project ready to be promoted for real: dana (developer) and tom (tech lead), staging and production, the
    imitation Jenkins playing its pipeline against the live portal and the imitation GitLab holding it. Yields
    (project, dana, tom, jenkins, gitlab)."""
    for role in Role:  # a transactional test before this one may have flushed the groups the migration made
        Group.objects.get_or_create(name=role)
    dana = UserFactory(username="dana", roles=[Role.DEVELOPER])
    tom = UserFactory(username="tom", roles=[Role.TECHLEAD])
    project = ProjectFactory(slug="shop", name="Shop", jenkins_job_path=JOB, gitlab_project_path=PATH)
    EnvironmentFactory(slug="staging", tier=Tier.STAGING, order=2)
    EnvironmentFactory(slug="production", tier=Tier.PRODUCTION, order=3)
    # The gate asks what the imitation's runs can prove on a first release (nothing in production to compare with).
    gate = QualityGate.objects.get(project=project)
    gate.conditions.all().delete()
    GateCondition.objects.create(gate=gate, metric="failed_scenarios", comparator="lte", threshold=0)
    _, token = ProjectToken.issue(project=project)

    with SimulatedJenkins(users={USER: TOKEN}, queue_seconds=0.1, speed=0.02, callback_backoff=0.1) as jenkins, \
            SimulatedGitLab(tokens={GITLAB_TOKEN: "portal-bot"}) as gitlab:
        jenkins.add_job(JOB, portal=PortalTarget(live_server.url, project.slug, token))
        gitlab.add_project(PATH, branches={"dev": None, "master": None}, author_can_approve=True)
        settings.JENKINS_URL, settings.JENKINS_USER, settings.JENKINS_TOKEN = jenkins.url, USER, TOKEN
        settings.GITLAB_URL, settings.GITLAB_TOKEN = gitlab.url, GITLAB_TOKEN
        settings.SITE_URL = live_server.url
        yield project, dana, tom, jenkins, gitlab


def green_dev_run(client, project, user, gitlab) -> PipelineRun:
    """A dev run pressed in the UI, played to a green end (deployed to staging); GitLab's dev head is its commit."""
    client.force_login(user)
    client.post(reverse("run-pipeline", args=[project.slug]), {"branch": "dev"})
    dev = wait_until_finished(PipelineRun.objects.get(project=project, branch="dev"))
    assert dev.status == RunStatus.SUCCESS
    gitlab.push(PATH, "dev", dev.commit_sha)
    return dev


def test_a_green_dev_run_goes_to_production_through_gitlab_and_jenkins(live_server, client, settings, monkeypatch):
    with promotion_flow(live_server, settings, monkeypatch) as (project, dana, tom, jenkins, gitlab):
        # 1. A green dev run, deployed to staging by Jenkins.
        dev = green_dev_run(client, project, dana, gitlab)

        # 2. Dana requests; the merge request is opened in GitLab.
        client.post(reverse("promotion-request", args=["shop", dev.pk]))
        promotion = Promotion.objects.get(project=project)
        assert promotion.mr_iid and promotion.gate_snapshot["passed"] is True

        # 3. Tom approves: merged with the tested sha, the master run triggered, played, production deployed.
        client.force_login(tom)
        client.post(reverse("promotion-approve", args=["shop", promotion.pk]), {"comment": "ship it", "confirm": "on"})
        promotion = wait_for("the release", lambda: Promotion.objects.filter(
            pk=promotion.pk, state=PromotionState.RELEASED).first())
        assert jenkins.wait_for_builds(10)

    refused = [call for call in jenkins.callbacks if not (call[2] and 200 <= call[2] < 300)]
    assert refused == []
    gates = [call for call in jenkins.callbacks if call[0] == "GET"]
    assert len(gates) == 1 and gates[0][2] == 200  # the deploy permission, granted
    master = promotion.master_run
    assert master.branch == "master" and master.commit_sha == promotion.merge_commit_sha
    production = environment_selectors.production_run(project.pk)
    assert production == master
    deployment = Deployment.objects.get(environment__tier=Tier.PRODUCTION)
    assert deployment.rule_violations == [] and promotion.production_deployment == deployment

    actions = list(AuditEvent.objects.filter(target_type="promotion", target_id=str(promotion.pk))
                   .order_by("created_at", "id").values_list("action", flat=True))
    for action in ("promotion.requested", "promotion.mr_opened", "promotion.approved", "promotion.merged",
                   "promotion.released"):
        assert action in actions, actions
    assert actions.index("promotion.approved") < actions.index("promotion.merged") < actions.index(
        "promotion.released")

    evidence = client.get(reverse("promotion-evidence", args=["shop", promotion.pk]) + "?format=json").json()
    assert evidence["dev_run"]["commit_sha"] == dev.commit_sha
    assert evidence["master_run"]["id"] == master.pk
    assert evidence["commits"]["from"] is None  # a first release: nothing ran in production before it
    assert evidence["findings"]["compared_with"] is None
    assert evidence["approvals"]["decided_by"] == "tom" and evidence["approvals"]["requested_by"] == "dana"
    page = client.get(reverse("promotion-evidence", args=["shop", promotion.pk]))
    assert page.status_code == 200 and "ship it" in page.content.decode()

"""A project ready to promote: production runs a released master run, a green dev run with its reports is on
staging; the imitation GitLab holds the project over real HTTP."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries.models import Promotion, StageStatus
from environments.models import Tier
from promotions import services
from scanners import services as scanner_services
from simulators.gitlab import SimulatedGitLab
from tests.factories import (
    DeploymentFactory,
    EnvironmentFactory,
    ProjectFactory,
    RunFactory,
    StageFactory,
    UserFactory,
)
from tests.scanners import samples

TOKEN = "glpat-portal-secret-0123456789"
PATH = "delivery/shop"
T0 = 1_700_000_000_000


def load_rows(latencies: dict[str, int], *, count: int = 20, failures: int = 0) -> list:
    return [(T0 + index * 500, elapsed, label, index >= failures)
            for index in range(count) for label, elapsed in latencies.items()]


def ingest(run, kind: str, content: bytes, name: str):
    report = scanner_services.ingest_content(run=run, content=content, original_name=name, kind=kind)
    assert report.status == "parsed", report.error
    return report


class World:
    """Builds runs with evidence for one project."""

    def __init__(self, project, staging, production):
        self.project, self.staging, self.production = project, staging, production
        self.minutes = 0

    def run(self, *, branch="dev", **fields):
        self.minutes += 10
        moment = timezone.now() - timedelta(days=1) + timedelta(minutes=self.minutes)
        return RunFactory(project=self.project, branch=branch, created_at=moment, started_at=moment, **fields)

    def green_run(self, *, vulns=(), failed_scenarios=(), latencies=None, reports=("trivy", "gauntlt", "jmeter"),
                  available=True, staged=True, **fields):
        run = self.run(**fields)
        if "trivy" in reports:
            ingest(run, "trivy", samples.trivy_report(list(vulns)), "trivy.json")
        if "gauntlt" in reports:
            scenarios = [("nmap", "passed", "")] + [(name, "failed", "boom") for name in failed_scenarios]
            ingest(run, "gauntlt", samples.cucumber_report(scenarios), "gauntlt.json")
        if "jmeter" in reports:
            ingest(run, "jmeter", samples.jtl_csv(load_rows(latencies or {"home": 105, "cart": 200})), "load.jtl")
        StageFactory(run=run, name="Availability test", status=StageStatus.SUCCESS if available else StageStatus.FAILED,
                     started_at=run.started_at, finished_at=run.started_at + timedelta(minutes=1))
        if staged:
            DeploymentFactory(source_run=run, environment=self.staging)
        return run


@pytest.fixture
def world(db):
    project = ProjectFactory(slug="shop", name="Shop", gitlab_project_path=PATH)
    staging = EnvironmentFactory(slug="staging", tier=Tier.STAGING, order=2)
    production = EnvironmentFactory(slug="production", tier=Tier.PRODUCTION, order=3)
    world = World(project, staging, production)
    released = world.run(branch="master")
    ingest(released, "trivy", samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001", severity="CRITICAL")]),
           "prod.json")
    ingest(released, "jmeter", samples.jtl_csv(load_rows({"home": 100, "cart": 200})), "prod.jtl")
    DeploymentFactory(source_run=released, environment=production)
    return world


@pytest.fixture
def dana(db):
    return UserFactory(username="dana", roles=["developer"])


@pytest.fixture
def tom(db):
    return UserFactory(username="tom", roles=["techlead"])


@pytest.fixture
def gitlab_server(settings, world):
    with SimulatedGitLab(tokens={TOKEN: "portal-bot"}) as simulated:
        simulated.add_project(PATH, branches={"dev": None, "master": None}, author_can_approve=True)
        settings.GITLAB_URL = simulated.url
        settings.GITLAB_TOKEN = TOKEN
        settings.JENKINS_URL = "http://jenkins.invalid"  # the master run is queued on commit: never called here
        yield simulated


def requested(world, user, **run_fields) -> Promotion:
    """A promotion of a green run at the GitLab dev head, its MR opened by the task."""
    return services.request_promotion(run=world.green_run(**run_fields), user=user)

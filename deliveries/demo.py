"""A realistic, deterministic delivery history for demos and benchmarks: the runs Jenkins recorded.

Every run is derived from (project slug, build number) alone, so seeding twice, or seeding
after a partial seed, creates exactly the runs that are missing and changes none that exist. Their reports are
ingested by scanners.demo; what happened around them (deployments, checks, promotions) is replayed through the
services by simulators.history, which calls `seed` first.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from datetime import timedelta

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.utils import timezone

from deliveries.models import (
    DELIVERY_CHAIN,
    Artifact,
    PipelineRun,
    Project,
    RunStatus,
    RunTrigger,
    Stage,
    StageStatus,
)
from environments.models import Environment, Host, Tier
from portal.roles import Role
from scanners.demo import seed_reports

HISTORY_DAYS = 60
REGISTRY = "registry.gitlab.example.com"

CHAIN_STAGES = list(DELIVERY_CHAIN)  # the last one runs on the release branch only


@dataclass(frozen=True)
class DemoProject:
    name: str
    slug: str
    gitlab_path: str
    runs: int
    days: int = HISTORY_DAYS  # the span of its history, ending now
    scale: str = "normal"  # scanners.demo's plan of its reports


NORMAL_PROJECTS = [
    DemoProject("Storefront", "storefront", "shop/storefront", 70),
    DemoProject("Payments API", "payments-api", "shop/payments-api", 66),
    DemoProject("Inventory Service", "inventory", "shop/inventory", 64),
]
LARGE_PROJECTS = [
    DemoProject("Catalog Search", "catalog-search", "shop/catalog-search", 3334, scale="large"),
    DemoProject("Checkout Gateway", "checkout-gateway", "shop/checkout-gateway", 3333, scale="large"),
    DemoProject("Customer Accounts", "customer-accounts", "shop/customer-accounts", 3333, scale="large"),
]
# Ten times the large history, spread over two years as a real one would be (so a 90-day window holds what a
# busy project makes in 90 days, not ten times it): ~100,000 runs and ~5 million findings. Seed it into an
# empty database: on top of --scale large, the large projects' first runs would keep their 60-day dates.
HUGE_PROJECTS = [DemoProject(demo.name, demo.slug, demo.gitlab_path, demo.runs * 10, days=730, scale="huge")
                 for demo in LARGE_PROJECTS]
SCALE_PROJECTS = {
    "normal": NORMAL_PROJECTS,
    "large": NORMAL_PROJECTS + LARGE_PROJECTS,
    "huge": NORMAL_PROJECTS + HUGE_PROJECTS,
}
ENVIRONMENTS = [
    # name, tier, order, requires approval
    ("dev", Tier.DEVELOPMENT, 1, False),
    ("staging", Tier.STAGING, 2, False),
    ("production", Tier.PRODUCTION, 3, True),
]
DEMO_USERS = [("dana.dev", Role.DEVELOPER), ("tom.lead", Role.TECHLEAD), ("olga.ops", Role.OPERATOR)]
AUTHORS = ["Dana Developer", "Ali Hassan", "Mei Chen", "Jonas Berg", "Priya Nair", "Tom Lead"]
COMMIT_TITLES = [
    "Add pagination to the order list",
    "Fix rounding of VAT on invoices",
    "Bump Django to the latest patch release",
    "Cache product images at the edge",
    "Refactor the checkout form validation",
    "Harden nginx headers (CSP, HSTS)",
    "Add health endpoint for the load balancer",
    "Upgrade base image to Alpine 3.20",
    "Retry payment provider calls with backoff",
    "Remove unused feature flag",
    "Speed up the search query with an index",
    "Log request ids for tracing",
]
FEATURE_BRANCHES = ["feature/search-filters", "feature/new-checkout", "fix/session-timeout"]


@dataclass
class SeededRuns:
    """The runs a seed created for a project, in build order, each with its stages."""

    project: Project
    runs: list[PipelineRun]
    stages: list[list[Stage]]


@dataclass
class SeedResult:
    projects: int = 0
    runs: int = 0
    deployments: int = 0
    environments: dict[str, Environment] = field(default_factory=dict)  # by slug
    seeded: list[SeededRuns] = field(default_factory=list)


def seed(*, scale: str = "normal", password: str | None = None) -> SeedResult:
    result = SeedResult()
    with transaction.atomic():
        result.environments = ensure_environments()
        ensure_users(password)
        anchor = timezone.now().replace(minute=0, second=0, microsecond=0)
        for demo in SCALE_PROJECTS[scale]:
            project, created = Project.objects.get_or_create(
                slug=demo.slug,
                defaults={
                    "name": demo.name,
                    "gitlab_project_path": demo.gitlab_path,
                    "repository_url": f"https://gitlab.example.com/{demo.gitlab_path}",
                    "jenkins_job_path": f"delivery/{demo.slug}",
                    # the project's creation anchors its history, so a later seed finds the same timeline
                    "created_at": anchor - timedelta(days=demo.days),
                },
            )
            result.projects += int(created)
            seeded = seed_runs(project, demo)
            result.runs += len(seeded.runs)
            if seeded.runs:
                result.seeded.append(seeded)
    return result


def ensure_environments() -> dict[str, Environment]:
    environments = {}
    for name, tier, order, requires_approval in ENVIRONMENTS:
        environment, _ = Environment.objects.get_or_create(
            slug=name,
            defaults={
                "name": name,
                "tier": tier,
                "order": order,
                "requires_approval": requires_approval,
                "health_url": f"https://{{project}}.{name}.shop.example.com/healthz",  # one service per project
                "docker_host_url": f"ssh://deploy@{name}-1.shop.example.com",
                "registry": REGISTRY,
                "aws_region": "eu-west-1",
                "cloudformation_stack": f"shop-{name}",
                # deploy_assets/cloudformation/environment.yaml makes staging and production, not development
                "cloudformation_template": "" if tier == Tier.DEVELOPMENT else "environment.yaml",
                "cloudformation_parameters": (
                    {} if tier == Tier.DEVELOPMENT else {"Tier": str(tier), "EnvironmentName": name}),
            },
        )
        for index in (1, 2) if tier == Tier.PRODUCTION else (1,):
            Host.objects.get_or_create(
                environment=environment,
                name=f"{name}-{index}",
                defaults={"address": f"{name}-{index}.shop.example.com", "ec2_instance_id": f"i-0{order}{index:015x}"},
            )
        environments[name] = environment
    return environments


def ensure_users(password: str | None) -> None:
    User = get_user_model()
    for username, role in DEMO_USERS:
        user, created = User.objects.get_or_create(username=username, defaults={"email": f"{username}@example.com"})
        if created:
            if password:
                user.set_password(password)
            else:
                user.set_unusable_password()
            user.save()
        user.groups.add(Group.objects.get(name=role))
        if role == Role.OPERATOR and not user.is_staff:
            user.is_staff = True  # operators configure environments in the admin
            user.save(update_fields=["is_staff"])


def seed_runs(project: Project, demo: DemoProject) -> SeededRuns:
    existing = set(PipelineRun.objects.filter(project=project).values_list("build_number", flat=True))
    missing = [number for number in range(1, demo.runs + 1) if number not in existing]
    if not missing:
        return SeededRuns(project, [], [])
    window_start = project.created_at
    step = timedelta(days=demo.days) / (demo.runs + 1)
    runs, stages, artifacts, plans = [], [], [], []
    for number in missing:
        rng = random.Random(f"{project.slug}:{number}")
        run, run_stages, failed_stage = plan_run(project, number, window_start + step * number, rng)
        runs.append(run)
        stages.append(run_stages)
        plans.append((number, failed_stage))
    PipelineRun.objects.bulk_create(runs, batch_size=1000)
    by_number = dict(PipelineRun.objects.filter(project=project).values_list("build_number", "id"))
    stage_rows = []
    for run, run_stages in zip(runs, stages, strict=True):
        run.pk = by_number[run.build_number]
        for stage in run_stages:
            stage.run_id = run.pk
            stage_rows.append(stage)
        if "Build images" in {s.name for s in run_stages if s.status == StageStatus.SUCCESS}:
            artifacts.extend(image_artifacts(project, run))
    Stage.objects.bulk_create(stage_rows, batch_size=2000)
    Artifact.objects.bulk_create(artifacts, batch_size=2000)
    # what the security, performance and attack pages show
    seed_reports(project=project, runs=runs, scale=demo.scale)
    return SeededRuns(project, runs, stages)


def plan_run(project: Project, number: int, created_at, rng: random.Random):
    roll = rng.random()
    if roll < 0.15:
        branch = project.release_branch
    elif roll < 0.25:
        branch = rng.choice(FEATURE_BRANCHES)
    else:
        branch = project.dev_branch
    sha = hashlib.sha1(f"{project.slug}:{number}".encode()).hexdigest()  # noqa: S324 - an id, not security
    outcome = rng.random()
    if outcome < 0.12:
        status = RunStatus.FAILED
    elif outcome < 0.16:
        status = RunStatus.UNSTABLE
    elif outcome < 0.18:
        status = RunStatus.ABORTED
    else:
        status = RunStatus.SUCCESS
    names = CHAIN_STAGES if branch == project.release_branch else CHAIN_STAGES[:-1]
    failed_stage = rng.randrange(1, len(names)) if status in (RunStatus.FAILED, RunStatus.ABORTED) else None
    unstable_stage = names.index("Gauntlt attacks") if status == RunStatus.UNSTABLE else None
    started_at = created_at + timedelta(seconds=rng.randint(5, 90))
    clock = started_at
    run_stages = []
    for order, name in enumerate(names, start=1):
        if failed_stage is not None and order - 1 > failed_stage:
            run_stages.append(Stage(name=name, order=order, status=StageStatus.SKIPPED))
            continue
        seconds = max(2, int(rng.gauss(DELIVERY_CHAIN[name], DELIVERY_CHAIN[name] * 0.2)))
        stage_status = StageStatus.SUCCESS
        log = ""
        if failed_stage == order - 1:
            stage_status = StageStatus.FAILED if status == RunStatus.FAILED else StageStatus.ABORTED
            seconds = max(2, seconds // 2)
            log = failure_log(name) if status == RunStatus.FAILED else "Aborted by user"
        elif unstable_stage == order - 1:
            stage_status = StageStatus.UNSTABLE
            log = "2 of 9 attack scenarios failed"
        finished = clock + timedelta(seconds=seconds)
        run_stages.append(
            Stage(name=name, order=order, status=stage_status, started_at=clock, finished_at=finished, log_excerpt=log)
        )
        clock = finished + timedelta(seconds=rng.randint(1, 4))
    run = PipelineRun(
        project=project,
        branch=branch,
        commit_sha=sha,
        commit_title=rng.choice(COMMIT_TITLES),
        commit_author=rng.choice(AUTHORS),
        committed_at=created_at - timedelta(minutes=rng.randint(3, 240)),
        trigger=rng.choice([RunTrigger.WEBHOOK, RunTrigger.WEBHOOK, RunTrigger.JENKINS, RunTrigger.PORTAL]),
        queue_id=10_000 + number,
        build_number=number,
        build_url="",  # no Jenkins built this history: a link would open nothing (runs of `make run` get real ones)
        status=status,
        created_at=created_at,
        started_at=started_at,
        finished_at=clock,
    )
    return run, run_stages, failed_stage


def failure_log(stage_name: str) -> str:
    return {
        "App checks": "tests/test_cart.py::test_vat_rounding FAILED\nE   assert Decimal('10.01') == Decimal('10.00')",
        "Infrastructure checks": "cfn-lint: E3012 Resources/WebServer/Properties/InstanceType should be String",
        "Build images": "ERROR: failed to solve: process \"/bin/sh -c pip install -r requirements.txt\" exit code: 1",
        "Trivy scan": "Total: 3 (CRITICAL: 1, HIGH: 2) — gate: no CRITICAL allowed",
        "Push images": "denied: requested access to the resource is denied",
        "Deploy staging": "ansible: fatal: [staging-1]: UNREACHABLE! => ssh: connect to host port 22: timed out",
        "Availability test": "curl: (22) The requested URL returned error: 502",
        "Gauntlt attacks": "Scenario: Verify server is not vulnerable to XSS ... failed",
        "Load test": "p95 1840 ms above the 800 ms budget",
        "Deploy production": "ansible: health check on production-2 failed after 5 attempts",
    }.get(stage_name, "Step failed")


def image_artifacts(project: Project, run: PipelineRun) -> list[Artifact]:
    items = []
    for image in ("app", "nginx"):
        digest = hashlib.sha256(f"{project.slug}:{run.build_number}:{image}".encode()).hexdigest()
        items.append(
            Artifact(
                run_id=run.pk,
                repository=f"{REGISTRY}/{project.gitlab_project_path}/{image}",
                tag=run.commit_sha[:8],
                digest=f"sha256:{digest}",
                registry=REGISTRY,
                created_at=run.started_at,
            )
        )
    return items

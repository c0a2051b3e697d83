"""Every page kind for everyone: axe-core finds no serious or critical WCAG 2.1 A/AA violation, at a laptop's
1280 px and a phone's 375 px, and the page itself never scrolls sideways (wide tables and charts scroll inside
their own focusable box). Screenshots at both widths go to var/screenshots."""

from datetime import timedelta

import pytest
from django.utils import timezone

from deliveries.models import (
    Comparator,
    GateMetric,
    PipelineRun,
    Promotion,
    PromotionState,
    RunStatus,
    StageStatus,
    WaiverKind,
)
from environments.models import (
    AUTOMATIC_ROLLBACK_LABEL,
    Deployment,
    DeploymentKind,
    DeploymentStatus,
    Environment,
    FreezeWindow,
)
from environments.selectors import deployable_runs
from promotions import services as promotions
from scanners.models import Report, ReportKind

pytestmark = pytest.mark.django_db(transaction=True)

WIDTHS = [(1280, 800), (375, 740)]

# What sticks out past the right edge of the window, outside the boxes that scroll on purpose; and the charts
# drawn smaller than 80% of their size (their 10 px labels below 8 px).
OVERFLOW = """() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
    wide: [...document.querySelectorAll('body *')]
      .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
      .filter(el => !el.closest('.table-scroll, .chart-scroll'))
      .slice(0, 5).map(el => el.tagName + '.' + el.className + ' ' + (el.textContent || '').slice(0, 40)),
    shrunk: [...document.querySelectorAll('svg.chart')]
      .filter(svg => svg.getBoundingClientRect().width < 0.79 * svg.width.baseVal.value)
      .map(svg => svg.getAttribute('aria-label'))})"""


@pytest.fixture
def page(browser):
    # axe is added as an inline script, which the Content-Security-Policy refuses: this context bypasses it
    # (tests/browser/test_security_csp.py checks the pages under the policy).
    context = browser.new_context(viewport={"width": 1280, "height": 800}, bypass_csp=True)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


@pytest.fixture
def page_kinds(demo):
    """Every kind of page a signed-in user opens, on the demo history, with a queued and a running run."""
    project, run = demo
    queued = PipelineRun.objects.create(project=project, branch="dev", status=RunStatus.QUEUED)
    running = PipelineRun.objects.create(project=project, branch="dev", build_number=9001, status=RunStatus.RUNNING,
                                         commit_sha="0123456789abcdef0123456789abcdef01234567",
                                         started_at=timezone.now())
    running.stages.create(name="Lint", order=1, status=StageStatus.SUCCESS, started_at=running.started_at,
                          finished_at=timezone.now())
    running.stages.create(name="Build images", order=2, status=StageStatus.RUNNING, started_at=timezone.now())
    slug = project.slug
    pages = {
        "home": "/",
        "project": f"/projects/{slug}/",
        "run-queued": queued.get_absolute_url(),
        "run-running": running.get_absolute_url(),
        "run-finished": run.get_absolute_url(),
        "run-security": f"{run.get_absolute_url()}security/",
        "run-performance": f"{run.get_absolute_url()}performance/",
        "run-attacks": f"{run.get_absolute_url()}attacks/",
        "project-security": f"/projects/{slug}/security/",
        "project-performance": f"/projects/{slug}/performance/",
        "project-attacks": f"/projects/{slug}/attacks/",
        "dora": f"/projects/{slug}/dora/?days=90",
        "not-found": f"/projects/{slug}/runs/999999/",
    }
    for kind in ReportKind.values:
        report = Report.objects.filter(run=run, kind=kind).first()
        pages[f"report-{kind}"] = report.get_absolute_url()
    return pages


@pytest.fixture
def promotion_pages(demo, users):
    """The promotion pages, as a tech lead deciding on another's request: its gate frozen with failures, one of
    them waived."""
    project, run = demo
    gate = promotions.ensure_default_gate(project=project)
    high = gate.conditions.create(metric=GateMetric.HIGH_VULNERABILITIES, comparator=Comparator.LTE, threshold=0)
    row = next(row for row in promotions.evaluate_gate(run)["conditions"] if row["metric"] == high.metric)
    high.threshold = len(row["items"]) - 1  # failing by one, which the waiver excuses
    high.save()
    snapshot = promotions.evaluate_gate(run)
    vulnerability = row["items"][0]
    promotions.create_waiver(project=project, user=users.techlead, kind=WaiverKind.VULNERABILITY,
                             identifier=vulnerability, reason="Not reachable: the package is only used at build time.",
                             expires_at=timezone.now() + timedelta(days=30))
    Promotion.objects.filter(project=project, state=PromotionState.REQUESTED).delete()
    promotion = Promotion.objects.create(project=project, source_run=run, requested_by=users.developer,
                                         gate_snapshot=snapshot)
    slug = project.slug
    return {
        "promotion-list": f"/projects/{slug}/promotions/",
        "promotion-detail": promotion.get_absolute_url(),
        "promotion-evidence": f"{promotion.get_absolute_url()}evidence/",
        "waivers": f"/projects/{slug}/waivers/",
        "gate": f"/projects/{slug}/gate/",
        "audit": f"/projects/{slug}/audit/",
    }


@pytest.fixture
def environment_pages(demo):
    """The environment pages, as an operator: production frozen, an automatic rollback, a deployment running."""
    project, run = demo
    production = Environment.objects.get(slug="production")
    now = timezone.now()
    FreezeWindow.objects.create(environment=production, starts_at=now - timedelta(hours=1),
                                ends_at=now + timedelta(days=1), reason="Black Friday sales")
    FreezeWindow.objects.create(environment=production, starts_at=now + timedelta(days=7),
                                ends_at=now + timedelta(days=8), reason="Year-end closing")
    current = Deployment.objects.current_per_environment().get(project=project, environment=production)
    earlier = (Deployment.objects.filter(project=project, environment=production, status=DeploymentStatus.SUCCESS,
                                         source_run__isnull=False).exclude(pk=current.pk).first())
    failed = Deployment.objects.create(
        project=project, environment=production, source_run=run, image_digests=current.image_digests,
        kind=DeploymentKind.DEPLOY, status=DeploymentStatus.ROLLED_BACK, deployed_by_label="olga.ops",
        replaced=current, started_at=now - timedelta(minutes=10), finished_at=now - timedelta(minutes=8),
        freeze_override_reason="Hotfix for the checkout outage", step_log="pull\nstart trial\nprobe: 404\n")
    Deployment.objects.create(
        project=project, environment=production, source_run=current.source_run, image_digests=current.image_digests,
        kind=DeploymentKind.ROLLBACK, status=DeploymentStatus.SUCCESS, deployed_by_label=AUTOMATIC_ROLLBACK_LABEL,
        replaced=failed, started_at=now - timedelta(minutes=8), finished_at=now - timedelta(minutes=7),
        step_log="put back the previous containers\n")
    running = Deployment.objects.create(
        project=project, environment=Environment.objects.get(slug="staging"), source_run=run,
        image_digests=current.image_digests, status=DeploymentStatus.RUNNING, deployed_by_label="olga.ops",
        started_at=now, step_log="pull images by digest\n")
    return {
        "environment-list": "/environments/",
        "environment-detail": production.get_absolute_url(),
        "deployment-rolled-back": failed.get_absolute_url(),
        "deployment-running": running.get_absolute_url(),
        "confirm-deploy": f"/environments/production/deploy/?run={deployable_runs().filter(project=project)[0].pk}",
        "confirm-redeploy": f"{current.get_absolute_url()}redeploy/",
        "confirm-rollback": f"{earlier.get_absolute_url()}rollback/",
        "confirm-check": "/environments/production/check/",
        "environment-stack": "/environments/production/stack/",
        "confirm-stack-apply": "/environments/production/stack/apply/",
    }


def audit(page, axe, name: str, width: int, screenshot) -> list[str]:
    problems = [f"{name}: {violation}" for violation in axe(page)]
    overflow = page.evaluate(OVERFLOW)
    if overflow["scroll"] > overflow["inner"]:
        problems.append(f"{name}: scrolls sideways ({overflow['scroll']} > {overflow['inner']} px): {overflow['wide']}")
    problems += [f"{name}: chart too small to read: {label}" for label in overflow["shrunk"]]
    screenshot(f"{name}-{width}")
    return problems


@pytest.mark.parametrize("width,height", WIDTHS, ids=["laptop", "phone"])
def test_every_page_kind_is_accessible_and_fits_the_window(
    page, live_server, users, signed_in, page_kinds, promotion_pages, environment_pages, axe, screenshot, width, height
):
    page.set_viewport_size({"width": width, "height": height})
    problems = []
    page.goto(f"{live_server.url}/api/docs/")
    page.wait_for_selector(".opblock")
    problems += audit(page, axe, "api-docs", width, screenshot)
    page.goto(f"{live_server.url}/accounts/login/")
    problems += audit(page, axe, "login", width, screenshot)
    for user, pages in ((users.developer, page_kinds), (users.techlead, promotion_pages),
                        (users.operator, environment_pages)):
        page.context.clear_cookies()  # signed out, to sign in as the next role
        signed_in(user)
        for name, path in pages.items():
            page.goto(live_server.url + path)
            assert page.locator("h1").count() == 1, name
            problems += audit(page, axe, name, width, screenshot)
    assert not problems, "\n".join(problems)

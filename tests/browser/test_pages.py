"""Every page in a real browser, on the demo history: sign in, open it, follow its main links, see its charts
drawn, filter a table, and leave a screenshot in var/screenshots for review."""

import pytest

from environments.models import Deployment, DeploymentStatus

pytestmark = pytest.mark.django_db(transaction=True)


def drawn_charts(page) -> int:
    """Charts that hold at least one drawn data element (not the "No data" placeholder)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('svg[role=img]')].filter(
            svg => svg.querySelectorAll('rect.bar, path, polyline, circle').length > 0).length"""
    )


def test_home_shows_the_environment_board_and_leads_to_a_project(signed_in, live_server, demo, screenshot):
    project, _ = demo
    page = signed_in()
    board = page.locator("table.board")
    header = board.locator("thead").inner_text().lower()
    assert "staging" in header and "production" in header
    assert board.locator("tbody tr").count() == 3
    assert page.locator("table.recent-runs tbody tr").count() >= 10
    assert "Nothing waits" not in page.locator("table.promotions").inner_text()
    screenshot("home")
    board.get_by_role("link", name=project.name).click()
    page.wait_for_url(f"{live_server.url}/projects/{project.slug}/")


def test_project_page_charts_and_filters_its_run_history(signed_in, live_server, demo, screenshot):
    project, _ = demo
    page = signed_in()
    page.goto(f"{live_server.url}/projects/{project.slug}/")
    assert drawn_charts(page) >= 1
    page.select_option("#run-filters select[name=status]", "failed")
    page.click("#run-filters button[type=submit]")
    page.wait_for_url("**status=failed**")
    statuses = page.locator("table.runs tbody .status").all_inner_texts()
    assert statuses and set(statuses) == {"Failed"}
    screenshot("project")
    page.locator("table.runs tbody a").first.click()
    page.wait_for_url("**/runs/**")
    assert "What went wrong" in page.content()


def test_run_page_shows_the_stage_timeline_and_its_views(signed_in, live_server, demo, screenshot):
    project, run = demo
    page = signed_in()
    page.goto(f"{live_server.url}/projects/{project.slug}/runs/{run.pk}/")
    assert page.locator(".timeline .bar").count() == run.stages.count()
    assert page.locator("table.artifacts tbody tr").count() == 2
    screenshot("run")
    for tab, name in (("Security", "run-security"), ("Performance", "run-performance"), ("Attacks", "run-attacks")):
        page.locator("nav.tabs").get_by_role("link", name=tab).click()
        page.wait_for_url(f"**/{tab.lower()}/")
        assert drawn_charts(page) >= 1, tab
        screenshot(name)
        page.go_back()


def test_security_page_filters_findings(signed_in, live_server, demo):
    project, run = demo
    page = signed_in()
    page.goto(f"{live_server.url}/projects/{project.slug}/runs/{run.pk}/security/")
    page.select_option("select[name=severity]", "CRITICAL")
    page.locator("form.filters button[type=submit]").first.click()
    page.wait_for_url("**severity=CRITICAL**")
    severities = page.locator("table.findings:not(.fixed) tbody .sev").all_inner_texts()
    assert severities and set(severities) == {"CRITICAL"}


def test_project_views_and_dora_render(signed_in, live_server, demo, screenshot):
    project, _ = demo
    page = signed_in()
    for path, name in (("security/", "project-security"), ("attacks/", "project-attacks"),
                       ("performance/", "project-performance"), ("dora/?days=90", "project-dora")):
        page.goto(f"{live_server.url}/projects/{project.slug}/{path}")
        assert page.locator("h1").count() == 1
        assert drawn_charts(page) >= 1, name
        screenshot(name)
    assert "Lead time for changes" in page.locator(".kpis").inner_text()
    # every key has its band where production failed once (time to restore needs a failure to restore from)
    failed = Deployment.objects.filter(environment__slug="production", status=DeploymentStatus.FAILED).first()
    page.goto(f"{live_server.url}/projects/{failed.project.slug}/dora/?days=90")
    assert page.locator(".kpi .band").count() == 4


def test_environment_pages_show_health_history_and_a_deployment(signed_in, live_server, demo, users, screenshot):
    page = signed_in(users.operator)
    page.get_by_role("link", name="Environments").click()
    page.wait_for_url(f"{live_server.url}/environments/")
    screenshot("environments")
    page.get_by_role("link", name="staging", exact=True).click()  # checked by Jenkins' availability stage
    page.wait_for_url(f"{live_server.url}/environments/staging/")
    assert page.locator("h1").count() == 1
    assert drawn_charts(page) >= 1, "the health chart"
    assert page.locator("table.deployments tbody tr").count() >= 1
    assert page.get_by_role("button", name="Check now…").count() == 1
    screenshot("environment")
    page.locator("table.deployments tbody a").first.click()
    page.wait_for_url("**/deployments/**")
    assert page.locator("h1").count() == 1 and "Steps" in page.content()
    screenshot("deployment")


def test_a_script_in_a_report_does_not_run(signed_in, live_server, users):
    import io

    from scanners import services
    from tests.factories import RunFactory
    from tests.scanners import samples

    run = RunFactory()
    content = samples.trivy_report([samples.trivy_vulnerability(
        "CVE-2024-6666", title='<script>window.pwned = true</script><img src=x onerror="window.pwned=true">')])
    report, _ = services.receive_report(run=run, file=io.BytesIO(content), original_name="evil.json", queue=False)
    services.ingest_report(report_id=report.pk)
    page = signed_in()
    for url in (f"/reports/{report.pk}/", f"/projects/{run.project.slug}/runs/{run.pk}/security/"):
        page.goto(live_server.url + url)
        assert page.evaluate("() => window.pwned === undefined")
        assert "<script>window.pwned" in page.locator("table.findings").inner_text()


@pytest.mark.parametrize("width,height", [(1280, 800), (375, 740)], ids=["laptop", "phone"])
def test_home_does_not_scroll_sideways(signed_in, live_server, demo, screenshot, width, height):
    page = signed_in()
    page.set_viewport_size({"width": width, "height": height})
    page.goto(f"{live_server.url}/")
    overflow = page.evaluate(
        """() => ({scroll: document.documentElement.scrollWidth, inner: window.innerWidth,
                   wide: [...document.querySelectorAll('body *')]
                     .filter(el => el.getBoundingClientRect().right > window.innerWidth + 1)
                     .filter(el => !el.closest('.table-scroll'))
                     .slice(0, 5).map(el => el.tagName + '.' + el.className + ' ' + el.textContent.slice(0, 40))})"""
    )
    screenshot(f"home-{width}")
    assert overflow["scroll"] <= overflow["inner"], overflow["wide"]

"""The security, performance and attack pages of a run and of a project."""

import io
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from environments.models import Environment, Tier
from scanners import services
from scanners.models import Finding, Report
from tests.factories import DeploymentFactory, EnvironmentFactory, ProjectFactory, RunFactory
from tests.scanners import samples

pytestmark = pytest.mark.django_db

T0 = 1_700_000_000_000
XSS = "<script>alert('pwned')</script>"


def ingest(run, content: bytes, name: str) -> Report:
    report, _ = services.receive_report(run=run, file=io.BytesIO(content), original_name=name, queue=False)
    report = services.ingest_report(report_id=report.pk)
    assert report.status == "parsed", report.error
    return report


def vuln(cve, **kwargs):
    return samples.trivy_vulnerability(cve, **kwargs)


def load_rows(latencies: dict[str, int], *, count: int = 20, failures: int = 0) -> list:
    """`count` samples per label, one every 500 ms, with a fixed elapsed time per label."""
    rows = []
    for index in range(count):
        for label, elapsed in latencies.items():
            rows.append((T0 + index * 500, elapsed, label, index >= failures))
    return rows


def make_run(project, *, minutes: int, branch: str = "dev", **kwargs):
    moment = timezone.now() - timedelta(days=1) + timedelta(minutes=minutes)
    return RunFactory(project=project, branch=branch, created_at=moment, started_at=moment, **kwargs)


@pytest.fixture
def history():
    """A dev branch with two scanned, attacked and load-tested runs, and a master run in production."""
    project = ProjectFactory(slug="shop", name="Shop")
    production = EnvironmentFactory(slug="production", tier=Tier.PRODUCTION, order=3)
    released = make_run(project, minutes=0, branch="master")
    ingest(released, samples.trivy_report([vuln("CVE-2024-0001", severity="CRITICAL")]), "prod.json")
    ingest(released, samples.jtl_csv(load_rows({"home": 100, "cart": 200})), "prod.jtl")
    DeploymentFactory(source_run=released, environment=production)

    first = make_run(project, minutes=10)
    ingest(first, samples.trivy_report([
        vuln("CVE-2024-0001", severity="CRITICAL"),
        vuln("CVE-2024-0002", package="zlib", severity="LOW"),
    ]), "app.json")
    ingest(first, samples.trivy_report([vuln("CVE-2024-0006", package="pcre2", severity="LOW")],
                                       image="registry.example.com/shop/nginx:abc122"), "nginx.json")
    ingest(first, samples.cucumber_report([("nmap", "passed", ""), ("xss", "passed", "")]), "attacks.json")
    ingest(first, samples.jtl_csv(load_rows({"home": 120, "cart": 210})), "load.jtl")

    current = make_run(project, minutes=20)
    ingest(current, samples.trivy_report([
        vuln("CVE-2024-0001", severity="CRITICAL"),
        vuln("CVE-2024-0003", package="busybox", severity="HIGH", title=XSS),
        vuln("CVE-2024-0004", package="curl", severity="MEDIUM"),
    ]), "app.json")
    ingest(current, samples.trivy_report([vuln("CVE-2024-0005", package="nginx", severity="HIGH")],
                                         image="registry.example.com/shop/nginx:abc123"), "nginx.json")
    ingest(current, samples.cucumber_report([
        ("nmap", "passed", ""),
        (f"xss {XSS}", "failed", f"found {XSS} in the page"),
        ("sqlmap", "skipped", ""),
    ]), "attacks.json")
    ingest(current, samples.jtl_csv(load_rows({"home": 150, "cart": 180, XSS: 50}, failures=2)), "load.jtl")
    return type("History", (), {"project": project, "released": released, "first": first, "current": current})


def page_text(response) -> str:
    return " ".join(strip_tags(response.content.decode()).split())


def run_urls(run):
    names = ("run-security", "run-performance", "run-attacks")
    return [reverse(name, args=[run.project.slug, run.pk]) for name in names]


def project_urls(project):
    return [reverse(name, args=[project.slug]) for name in ("project-security", "project-performance",
                                                             "project-attacks")]


# --- access ----------------------------------------------------------------------------------------------------


def test_it_shows_every_page_to_every_role(client, users, history):
    for user in (users.developer, users.techlead, users.operator):
        client.force_login(user)
        for url in run_urls(history.current) + project_urls(history.project):
            assert client.get(url).status_code == 200, url


def test_it_refuses_outsiders_and_sends_anonymous_users_to_login(client, users, history):
    urls = run_urls(history.current) + project_urls(history.project)
    for url in urls:
        response = client.get(url)
        assert response.status_code == 302 and reverse("login") in response["Location"], url
    client.force_login(users.outsider)
    for url in urls:
        assert client.get(url).status_code == 403, url


def test_it_404s_for_another_projects_run_and_unknown_projects(client, users, history):
    other = ProjectFactory(slug="other")
    client.force_login(users.developer)
    for name in ("run-security", "run-performance", "run-attacks"):
        assert client.get(reverse(name, args=[other.slug, history.current.pk])).status_code == 404
        assert client.get(reverse(name, args=[history.project.slug, 999999])).status_code == 404
    for name in ("project-security", "project-performance", "project-attacks"):
        assert client.get(reverse(name, args=["nope"])).status_code == 404


def test_it_refuses_post(client, users, history):
    client.force_login(users.developer)
    for url in run_urls(history.current) + project_urls(history.project):
        assert client.post(url).status_code == 405, url


# --- security --------------------------------------------------------------------------------------------------


def test_the_security_page_sums_the_runs_reports(client, users, history):
    client.force_login(users.developer)
    response = client.get(reverse("run-security", args=["shop", history.current.pk]))
    summary = response.context["summary"]
    assert summary.findings == 4
    assert summary.by_severity == {"CRITICAL": 1, "HIGH": 2, "MEDIUM": 1, "LOW": 0, "UNKNOWN": 0}
    assert summary.by_class["vulnerability"] == 4
    assert (summary.new, summary.persisting, summary.fixed) == (3, 1, 2)
    assert summary.compared_with_run == history.first
    assert summary.production_run == history.released
    assert summary.new_vs_production == 3
    body = response.content.decode()
    assert reverse("run-security", args=["shop", history.first.pk]) in body
    assert reverse("run-security", args=["shop", history.released.pk]) in body


def test_the_pages_compare_with_what_production_runs_now(client, users, history):
    client.force_login(users.developer)
    security = reverse("run-security", args=["shop", history.current.pk])
    app_report = Report.objects.get(run=history.current, original_name="app.json")
    report_page = reverse("report-detail", args=[app_report.pk])
    assert "3 not in what production runs now" in page_text(client.get(security))
    assert "2 not in what production runs now" in page_text(client.get(report_page))

    DeploymentFactory(source_run=history.current, environment=Environment.objects.get(slug="production"))
    for url in (security, report_page):
        body = client.get(url).content.decode()
        assert "this run is what production runs now" in body, url
        assert "not in what production runs now" not in body and "flag-prod" not in body, url
    assert client.get(security).context["summary"].new_vs_production == 0


def test_the_security_page_says_what_new_persisting_and_fixed_are_judged_against(client, users, history):
    client.force_login(users.developer)
    body = client.get(reverse("run-security", args=["shop", history.current.pk])).content.decode()
    assert "latest earlier build of the branch that scanned it" in body


def test_it_lists_what_was_fixed_since_the_previous_run(client, users, history):
    client.force_login(users.developer)
    response = client.get(reverse("run-security", args=["shop", history.current.pk]))
    assert [f.identifier for f in response.context["fixed_page"]] == ["CVE-2024-0002", "CVE-2024-0006"]


def test_it_filters_sorts_and_searches_findings(client, users, history):
    client.force_login(users.developer)
    url = reverse("run-security", args=["shop", history.current.pk])

    def identifiers(**params):
        return [f.identifier for f in client.get(url, params).context["page"]]

    assert identifiers() == ["CVE-2024-0001", "CVE-2024-0003", "CVE-2024-0005", "CVE-2024-0004"]
    assert identifiers(severity="HIGH") == ["CVE-2024-0003", "CVE-2024-0005"]
    assert identifiers(q="curl") == ["CVE-2024-0004"]
    assert identifiers(q="nginx") == ["CVE-2024-0005"]  # the target (image) is searched too
    assert identifiers(sort="package") == ["CVE-2024-0003", "CVE-2024-0004", "CVE-2024-0005", "CVE-2024-0001"]
    assert identifiers(sort="identifier")[0] == "CVE-2024-0001"
    assert identifiers(new="branch") == ["CVE-2024-0003", "CVE-2024-0005", "CVE-2024-0004"]
    assert identifiers(new="production") == ["CVE-2024-0003", "CVE-2024-0005", "CVE-2024-0004"]
    assert identifiers(**{"class": "secret"}) == []
    assert identifiers(severity="bogus", sort="bogus", new="bogus") == identifiers()


def test_it_paginates_findings_by_100(client, users):
    run = RunFactory()
    ingest(run, samples.trivy_report([vuln(f"CVE-2024-{n:04d}", severity="LOW") for n in range(250)]), "big.json")
    client.force_login(users.developer)
    url = reverse("run-security", args=[run.project.slug, run.pk])
    first = client.get(url).context["page"]
    assert len(first) == 100 and first.paginator.num_pages == 3
    last = client.get(url, {"page": 3, "severity": "LOW"})
    assert len(last.context["page"]) == 50
    assert "severity=LOW" in last.content.decode()  # pagination keeps the filters


def test_finding_links_do_not_leak_the_referrer(client, users, history):
    client.force_login(users.developer)
    body = client.get(reverse("run-security", args=["shop", history.current.pk])).content.decode()
    assert 'href="https://avd.aquasec.com/nvd/cve-2024-0003" rel="noopener noreferrer"' in body


def test_the_project_security_page_shows_the_latest_scanned_run_of_dev(client, users, history):
    make_run(history.project, minutes=30)  # newer, but not scanned
    client.force_login(users.developer)
    response = client.get(reverse("project-security", args=["shop"]))
    assert response.context["run"] == history.current
    assert response.context["summary"].findings == 4
    response = client.get(reverse("project-security", args=["shop"]), {"branch": "master"})
    assert response.context["run"] == history.released


def test_the_project_security_page_says_when_nothing_was_scanned(client, users):
    project = ProjectFactory(slug="empty")
    RunFactory(project=project)
    client.force_login(users.developer)
    body = client.get(reverse("project-security", args=["empty"])).content.decode()
    assert "Nothing has been scanned on dev yet" in body


def test_a_run_without_scan_says_so(client, users, history):
    run = make_run(history.project, minutes=30)
    client.force_login(users.developer)
    body = client.get(reverse("run-security", args=["shop", run.pk])).content.decode()
    assert "This run has no parsed Trivy report" in body


def test_the_security_trend_is_drawn_from_the_branchs_scanned_runs(client, users, history):
    client.force_login(users.developer)
    response = client.get(reverse("run-security", args=["shop", history.current.pk]))
    chart = str(response.context["trend_chart"])
    # run 1: CRITICAL, LOW; run 2: CRITICAL, HIGH, MEDIUM
    assert chart.startswith("<svg") and chart.count('class="bar"') == 5
    assert f"#{history.first.build_number}" in chart and f"#{history.released.build_number}" not in chart


# --- performance -----------------------------------------------------------------------------------------------


def test_the_performance_page_compares_each_label_with_production(client, users, history):
    client.force_login(users.developer)
    response = client.get(reverse("run-performance", args=["shop", history.current.pk]))
    rows = {row.label: row for row in response.context["rows"]}
    columns = ["samples", "error", "mean", "p50", "p90", "p95", "p99", "throughput"]
    home = dict(zip(columns, rows["home"].cells, strict=True))
    cart = dict(zip(columns, rows["cart"].cells, strict=True))
    assert home["p95"].value == "150.0" and home["p95"].change.text == "+50.0%"
    assert home["p95"].change.css == "worse"
    assert cart["mean"].change.text == "\N{MINUS SIGN}10.0%" and cart["mean"].change.css == "better"
    assert home["error"].value == "10.00" and home["error"].change.text == "+10.00 pt"
    assert all(cell.change is None for cell in rows[XSS].cells)  # production has no such label: "—"
    body = response.content.decode()
    assert "+50.0%" in body and "\N{MINUS SIGN}10.0%" in body and "—" in body


def test_the_performance_page_draws_the_test_and_the_trend(client, users, history):
    client.force_login(users.developer)
    context = client.get(reverse("run-performance", args=["shop", history.current.pk])).context
    assert str(context["response_chart"]).count('class="series"') == 2  # mean and p95
    assert 'class="bar"' in str(context["throughput_chart"])
    trend = str(context["trend_chart"])
    assert trend.count('class="series"') == 4  # cart, home, the <script> label, and the total
    assert f"#{history.first.build_number}" in trend


def test_the_performance_page_says_when_production_has_no_run(client, users):
    run = RunFactory()
    ingest(run, samples.jtl_csv(load_rows({"home": 100})), "load.jtl")
    client.force_login(users.developer)
    response = client.get(reverse("run-performance", args=[run.project.slug, run.pk]))
    assert "Nothing runs in production yet" in response.content.decode()


def transaction_load(latencies: dict[str, int], checkout: int) -> bytes:
    """load_rows plus a "checkout" Transaction Controller row (elapsed `checkout`) after each round of requests."""
    rows = load_rows(latencies)
    rows += [(stamp, checkout, "checkout", True) for stamp in sorted({row[0] for row in rows})]
    return samples.jtl_csv_with_transactions(rows, ("checkout",))


@pytest.mark.parametrize("page", ["run-performance", "project-performance"])
def test_the_performance_page_marks_transaction_rows_keeps_them_out_of_the_total_and_compares_them(
    client, users, page
):
    project = ProjectFactory(slug="shop")
    released = make_run(project, minutes=0, branch="master")
    ingest(released, transaction_load({"home": 100, "cart": 200}, checkout=300), "prod.jtl")
    DeploymentFactory(source_run=released, environment=EnvironmentFactory(tier=Tier.PRODUCTION, order=3))
    current = make_run(project, minutes=10)
    ingest(current, transaction_load({"home": 100, "cart": 200}, checkout=600), "load.jtl")
    client.force_login(users.developer)

    args = ["shop", current.pk] if page == "run-performance" else ["shop"]
    response = client.get(reverse(page, args=args))

    rows = {row.label: row for row in response.context["rows"]}
    assert [label for label, row in rows.items() if row.is_transaction] == ["checkout"]
    samples_cell, mean = rows["checkout"].cells[0], rows["checkout"].cells[2]
    assert (samples_cell.value, mean.value, mean.change.text, mean.change.css) == ("20", "600.0", "+100.0%", "worse")
    total = next(row for row in rows.values() if row.is_total)
    assert total.cells[0].value == "40"  # home and cart, 20 each: not the 20 checkout samples
    assert total.cells[2].value == "150.0" and total.cells[2].change.text == "±0%"  # their mean, unchanged
    body = response.content.decode()
    assert 'checkout\n          <span class="status status-transaction">transaction</span>' in body
    assert "left out of the Total, as in JMeter's dashboard" in body


def test_the_performance_page_shows_figures_it_cannot_know_as_not_available_with_the_reason(client, users):
    project = ProjectFactory(slug="shop")
    released = make_run(project, minutes=0, branch="master")
    ingest(released, samples.jtl_csv(load_rows({"home": 100})), "prod.jtl")
    DeploymentFactory(source_run=released, environment=EnvironmentFactory(tier=Tier.PRODUCTION, order=3))
    current = make_run(project, minutes=10)
    ingest(current, samples.jtl_xml_without_timing([("home", True), ("home", False)]), "untimed.jtl")
    client.force_login(users.developer)

    response = client.get(reverse("run-performance", args=["shop", current.pk]))

    home = next(row for row in response.context["rows"] if row.label == "home")
    samples_cell, error, *timing = home.cells
    assert (samples_cell.value, error.value) == ("2", "50.00")
    assert [(cell.value, cell.change) for cell in timing] == [("n/a", None)] * 6  # not 0, and no "-100%"
    body = response.content.decode()
    assert "n/a: the samples have no elapsed time (XML attribute t)" in body
    assert "No time series: the samples have no elapsed time (XML attribute t)" in body
    assert response.context["response_chart"] not in body


# --- attacks ---------------------------------------------------------------------------------------------------


def test_the_attacks_page_lists_failed_scenarios_first(client, users, history):
    client.force_login(users.developer)
    response = client.get(reverse("run-attacks", args=["shop", history.current.pk]))
    assert [s.status for s in response.context["scenarios"]] == ["failed", "skipped", "passed"]
    summary = response.context["summary"]
    assert (summary.scenarios, summary.passed, summary.failed, summary.other) == (3, 1, 1, 1)
    body = response.content.decode()
    assert "<details>" in body and "found &lt;script&gt;" in body
    chart = str(response.context["trend_chart"])
    assert chart.count('class="bar"') == 4  # run 1: passed; run 2: passed, failed, other


def test_the_project_attacks_page_shows_the_latest_attacked_run(client, users, history):
    client.force_login(users.developer)
    response = client.get(reverse("project-attacks", args=["shop"]))
    assert response.context["run"] == history.current
    body = client.get(reverse("project-attacks", args=["shop"]), {"branch": "master"}).content.decode()
    assert "Nothing has been attacked on master yet" in body


# --- escaping --------------------------------------------------------------------------------------------------


def test_report_text_is_escaped_everywhere(client, users, history):
    client.force_login(users.developer)
    for url in run_urls(history.current) + project_urls(history.project):
        body = client.get(url).content.decode()
        assert "<script>alert" not in body, url
    security = client.get(reverse("run-security", args=["shop", history.current.pk])).content.decode()
    assert "&lt;script&gt;alert" in security
    attacks = client.get(reverse("run-attacks", args=["shop", history.current.pk])).content.decode()
    assert "xss &lt;script&gt;alert" in attacks
    performance = client.get(reverse("run-performance", args=["shop", history.current.pk])).content.decode()
    assert "&lt;script&gt;alert" in performance


# --- the report page -------------------------------------------------------------------------------------------


def test_the_report_page_links_to_the_run_views(client, users, history):
    report = Report.objects.filter(run=history.current, kind="trivy").first()
    client.force_login(users.developer)
    body = client.get(reverse("report-detail", args=[report.pk])).content.decode()
    assert "Security view of this run" in body
    for url in run_urls(history.current):
        assert url in body


def test_the_report_page_tells_when_the_raw_file_was_not_kept(client, users):
    run = RunFactory()
    report = Report.objects.create(run=run, kind="trivy", status="parsed", sha256="0" * 64,
                                   summary={"findings": 0, "by_severity": {}, "by_class": {}})
    client.force_login(users.developer)
    response = client.get(reverse("report-detail", args=[report.pk]))
    assert response.status_code == 200
    assert "raw file not kept (demo data" in response.content.decode()


# --- query counts ----------------------------------------------------------------------------------------------


def queries(client, url, params=None) -> int:
    with CaptureQueriesContext(connection) as context:
        response = client.get(url, params or {})
    assert response.status_code == 200
    return len(context.captured_queries)


def build_branch(runs: int, *, findings: int = 3):
    """A project whose dev branch has `runs` runs, each scanned, attacked and load-tested; production runs the first."""
    project = ProjectFactory()
    production = EnvironmentFactory(slug="production", tier=Tier.PRODUCTION, order=3)
    last = None
    for index in range(runs):
        run = make_run(project, minutes=index)
        is_last = index == runs - 1
        count = findings if is_last else 3
        ingest(run, samples.trivy_report([vuln(f"CVE-2024-{(n + index) % 9999:04d}") for n in range(count)]), "t.json")
        ingest(run, samples.cucumber_report([("nmap", "passed" if index % 2 else "failed", "open")]), "g.json")
        ingest(run, samples.jtl_csv(load_rows({"home": 100 + index, "cart": 150})), "l.jtl")
        if index == 0:
            DeploymentFactory(source_run=run, environment=production)
        last = run
    return last


def test_the_pages_make_as_many_queries_for_10_runs_as_for_100(client, users):
    client.force_login(users.developer)
    few, many = build_branch(10), build_branch(100)
    for name in ("run-security", "run-performance", "run-attacks"):
        assert queries(client, reverse(name, args=[few.project.slug, few.pk])) == queries(
            client, reverse(name, args=[many.project.slug, many.pk])), name
    for name in ("project-security", "project-performance", "project-attacks"):
        assert queries(client, reverse(name, args=[few.project.slug])) == queries(
            client, reverse(name, args=[many.project.slug])), name


def test_the_security_page_makes_as_many_queries_for_few_findings_as_for_many(client, users):
    client.force_login(users.developer)
    few = build_branch(3, findings=5)
    many = build_branch(3, findings=1500)
    assert Finding.objects.filter(run=many).count() == 1500
    for params in ({}, {"page": 2, "sort": "package"}, {"q": "CVE", "severity": "HIGH", "new": "branch"}):
        assert queries(client, reverse("run-security", args=[few.project.slug, few.pk]), params) == queries(
            client, reverse("run-security", args=[many.project.slug, many.pk]), params), params

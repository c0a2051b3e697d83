from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import escape

from deliveries.models import Promotion, RunStatus
from environments.selectors import RUNS_AHEAD_DEFINITION
from tests.factories import (
    ArtifactFactory,
    DeploymentFactory,
    EnvironmentFactory,
    ProjectFactory,
    RunFactory,
    StageFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def run():
    run = RunFactory(project=ProjectFactory(slug="shop", name="Shop"), build_number=42, commit_title="Add basket")
    StageFactory(run=run, name="Build images", order=1)
    StageFactory(run=run, name="Trivy scan", order=2, status="failed", log_excerpt="CRITICAL: 1")
    ArtifactFactory(run=run, repository="registry.example.com/shop/app", digest="sha256:" + "ab" * 32)
    return run


def page_urls(run):
    return [
        reverse("home"),
        reverse("project-detail", args=[run.project.slug]),
        reverse("run-detail", args=[run.project.slug, run.pk]),
        reverse("project-dora", args=[run.project.slug]),
    ]


def test_it_sends_anonymous_visitors_to_the_login_page(client, run):
    for url in page_urls(run):
        response = client.get(url)
        assert response.status_code == 302
        assert response.url.startswith(reverse("login"))


def test_it_refuses_signed_in_users_without_a_role(client, users, run):
    client.force_login(users.outsider)
    for url in page_urls(run):
        assert client.get(url).status_code == 403, url


@pytest.mark.parametrize("role", ["developer", "techlead", "operator"])
def test_every_role_can_read_the_pages(client, users, run, role):
    client.force_login(getattr(users, role))
    for url in page_urls(run):
        assert client.get(url).status_code == 200, url


def test_the_pages_refuse_post(client, users, run):
    client.force_login(users.developer)
    assert client.post(reverse("home")).status_code == 405


def test_the_health_endpoint_needs_no_login(client):
    response = client.get(reverse("health"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "up"}


def test_home_shows_the_latest_run_of_each_branch(client, users, run):
    older_master = RunFactory(project=run.project, branch="master", build_number=40)
    RunFactory(project=run.project, branch="master", build_number=43, status=RunStatus.FAILED)
    client.force_login(users.developer)
    response = client.get(reverse("home"))
    latest = {r.branch: r.build_number for r in response.context["projects"][0].latest_runs}
    assert latest == {"dev": 42, "master": 43}
    assert older_master.build_number not in latest.values()
    assert b"Shop" in response.content


def test_project_page_filters_runs_by_branch_and_status(client, users, run):
    RunFactory(project=run.project, branch="master", build_number=50, status=RunStatus.FAILED)
    RunFactory(project=run.project, branch="dev", build_number=51, status=RunStatus.FAILED)
    client.force_login(users.developer)
    url = reverse("project-detail", args=["shop"])
    numbers = [r.build_number for r in client.get(url, {"branch": "dev", "status": "failed"}).context["page"]]
    assert numbers == [51]
    assert len(client.get(url).context["page"]) == 3


def test_project_page_ignores_an_unknown_status(client, users, run):
    client.force_login(users.developer)
    response = client.get(reverse("project-detail", args=["shop"]), {"status": "<bogus>"})
    assert response.status_code == 200
    assert response.context["status"] == ""


def test_project_page_shows_what_is_deployed(client, users, run):
    DeploymentFactory(source_run=run)
    client.force_login(users.operator)
    response = client.get(reverse("project-detail", args=["shop"]))
    assert [d.environment.slug for d in response.context["deployments"]] == ["staging"]


def test_run_page_shows_stages_and_artifacts(client, users, run):
    client.force_login(users.developer)
    response = client.get(reverse("run-detail", args=["shop", run.pk]))
    body = response.content.decode()
    assert "Build images" in body and "Trivy scan" in body
    assert "CRITICAL: 1" in body
    assert "abababababab" in body


def test_run_page_is_404_for_a_run_of_another_project(client, users, run):
    other = RunFactory()
    client.force_login(users.developer)
    assert client.get(reverse("run-detail", args=["shop", other.pk])).status_code == 404


def create_history(project, count, start):
    """Runs with stages, images and deployments to staging and production: what every page shows."""
    from environments.models import AvailabilityCheck

    staging = EnvironmentFactory(slug="staging", tier="staging", order=2)
    production = EnvironmentFactory(slug="production", tier="production", order=3)
    last = start + count - 1
    for number in range(start, start + count):
        # every third run goes to production; the newest is always on staging, ahead of production
        branch = "master" if number % 3 == 0 and number != last else "dev"
        run = RunFactory(project=project, build_number=number, branch=branch,
                         committed_at=timezone.now() - timedelta(hours=2))
        StageFactory(run=run, name="Push images", order=1)
        StageFactory(run=run, name="Deploy", order=2, status="failed" if number % 5 == 0 else "success")
        ArtifactFactory(run=run)
        deployment = DeploymentFactory(source_run=run, environment=production if run.branch == "master" else staging)
        AvailabilityCheck.objects.create(environment=deployment.environment, deployment=deployment, url="https://x",
                                         ok=number % 7 != 0, status_code=200)
    Promotion.objects.filter(project=project, state="requested").update(state="rejected")  # one open per project
    Promotion.objects.create(project=project, source_run=run, requested_by=UserFactory(), state="requested")
    return run


@pytest.mark.parametrize("name", ["home", "project-detail", "run-detail", "run-live", "project-dora"])
def test_page_queries_do_not_grow_with_the_number_of_runs(client, users, name):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    project = ProjectFactory(slug="shop")
    client.force_login(users.developer)

    def url(run):
        if name == "home":
            return reverse(name)
        return reverse(name, args=["shop", run.pk]) if name.startswith("run") else reverse(name, args=["shop"])

    run = create_history(project, 10, 1)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url(run)).status_code == 200
    run = create_history(project, 90, 100)
    with CaptureQueriesContext(connection) as large:
        assert client.get(url(run)).status_code == 200
    assert len(large) == len(small)


def test_home_shows_what_runs_where_and_what_waits(client, users):
    project = ProjectFactory(slug="shop", name="Shop")
    create_history(project, 6, 1)
    client.force_login(users.techlead)
    response = client.get(reverse("home"))
    (row,) = response.context["board"]
    cells = {env.slug: cell for env, cell in zip(response.context["environments"], row.cells, strict=True)}
    assert cells["production"].source_run.build_number == 3
    assert cells["staging"].source_run.build_number == 6
    assert row.drift == [("staging", "production", 3)]
    assert f'title="{escape(RUNS_AHEAD_DEFINITION)}">staging is 3 runs ahead of production' in response.content.decode()
    assert [p.source_run.build_number for p in response.context["waiting_promotions"]] == [6]
    assert len(response.context["recent_runs"]) == 6


def test_project_page_filters_runs_by_date_and_charts_durations(client, users):
    project = ProjectFactory(slug="shop")
    old = RunFactory(project=project, build_number=1, created_at=timezone.now() - timedelta(days=20))
    RunFactory(project=project, build_number=2, status="failed")
    client.force_login(users.developer)
    url = reverse("project-detail", args=["shop"])
    since = (timezone.now() - timedelta(days=2)).date().isoformat()
    response = client.get(url, {"since": since})
    assert [r.build_number for r in response.context["page"]] == [2]
    assert response.context["history"]["success_rate"] == 0
    response = client.get(url, {"until": old.created_at.date().isoformat()})
    assert [r.build_number for r in response.context["page"]] == [1]
    assert client.get(url, {"since": "not-a-date"}).status_code == 200
    chart = str(client.get(url).context["duration_chart"])
    assert "<svg" in chart
    assert f'<th scope="row"><a href="{old.get_absolute_url()}">#1</a></th><td class="num">12</td>' in chart  # data


def test_dora_page_states_the_keys_and_their_bands(client, users):
    project = ProjectFactory(slug="shop")
    create_history(project, 12, 1)
    client.force_login(users.operator)
    response = client.get(reverse("project-dora", args=["shop"]), {"days": "7"})
    body = response.content.decode()
    assert response.context["days"] == 7
    assert response.context["keys"].deployments == 3  # builds 3, 6 and 9 went to production
    for words in ("Deployment frequency", "Lead time for changes", "Change failure rate", "Time to restore",
                  "Elite", "2021 Accelerate State of DevOps"):
        assert words in body
    assert client.get(reverse("project-dora", args=["shop"]), {"days": "9999"}).context["days"] == 30


def breadcrumb_and_heading(body: str) -> tuple[str, str]:
    """The last crumb of the page's breadcrumbs, and its heading, as text."""
    import re

    def text(html):
        return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", html)).strip()

    crumbs = re.search(r'<div class="breadcrumbs">(.*?)</div>', body, re.S).group(1)
    heading = re.search(r"<h1>(.*?)</h1>", body, re.S).group(1)
    return text(crumbs).split(" / ")[-1], text(heading)


def test_a_run_pages_breadcrumb_names_the_run_as_its_heading_does_while_it_changes(client, users):
    run = RunFactory(project=ProjectFactory(slug="shop", name="Shop"), build_number=None, status=RunStatus.QUEUED)
    client.force_login(users.developer)
    crumb, heading = breadcrumb_and_heading(client.get(reverse("run-detail", args=["shop", run.pk])).content.decode())
    assert crumb == f"run {run.pk}" and heading.startswith(f"Shop run {run.pk} ")
    run.build_number, run.status = 57, RunStatus.RUNNING  # Jenkins started it: live.js swaps in the fragment
    run.save()
    crumb, heading = breadcrumb_and_heading(client.get(reverse("run-live", args=["shop", run.pk])).content.decode())
    assert crumb == "#57" and heading.startswith("Shop #57 ")


def test_project_page_rates_success_over_the_last_30_days_of_the_filtered_runs(client, users):
    project = ProjectFactory(slug="shop")
    RunFactory.create_batch(3, project=project, created_at=timezone.now() - timedelta(days=31), status="failed")
    RunFactory(project=project, created_at=timezone.now() - timedelta(days=29), status="failed")
    RunFactory.create_batch(3, project=project, status="success")
    RunFactory(project=project, branch="master", status="failed")
    client.force_login(users.developer)
    url = reverse("project-detail", args=["shop"])
    history = client.get(url).context["history"]
    assert (history["finished"], history["succeeded"], history["success_rate"]) == (5, 3, 60.0)
    assert client.get(url, {"branch": "dev"}).context["history"]["success_rate"] == 75.0  # the filters apply
    assert "succeeded in the last 30 days" in client.get(url).content.decode()


def test_project_page_pages_a_long_history_without_counting_it_all(client, users, monkeypatch):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from deliveries import views
    from portal.pagination import CappedCountPaginator

    monkeypatch.setattr(CappedCountPaginator, "COUNT_CAP", 4)
    monkeypatch.setattr(views, "RUNS_PER_PAGE", 2)
    project = ProjectFactory(slug="shop")
    for number in range(1, 8):
        RunFactory(project=project, build_number=number, created_at=timezone.now() - timedelta(days=number))
    client.force_login(users.developer)
    url = reverse("project-detail", args=["shop"])
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    counts = [q["sql"] for q in queries if "COUNT(*)" in q["sql"].upper() and "pipelinerun" in q["sql"]]
    assert len(counts) == 1 and "LIMIT 5" in counts[0]  # the cap, and one more to know there are more
    body = response.content.decode()
    assert "Page 1 of 2+ · 4+ runs" in body and 'href="?branch=&amp;status=&amp;since=&amp;until=&page=2"' in body
    page = client.get(url, {"page": "2"}).context["page"]
    assert [run.build_number for run in page] == [3, 4] and page.has_previous() and not page.has_next()
    assert [run.build_number for run in client.get(url, {"page": "9"}).context["page"]] == [3, 4]  # the last page
    # a date filter reaches the runs past the cap, and counts them exactly
    response = client.get(url, {"until": (timezone.now() - timedelta(days=6)).date().isoformat()})
    assert [run.build_number for run in response.context["page"]] == [6, 7]
    assert "Page 1 of 1 · 2 runs</span>" in response.content.decode()


def test_project_page_reads_its_success_rate_from_an_index_range_and_counts_up_to_the_cap(client, users,
                                                                                         long_history, monkeypatch):
    from portal.pagination import CappedCountPaginator
    from tests.plans import Executed, plan_of, range_reads, scans

    monkeypatch.setattr(CappedCountPaginator, "COUNT_CAP", 100)  # well below the project's runs, as on a history
    project = ProjectFactory(slug="shop")
    long_history(project, other_projects=[ProjectFactory()])
    client.force_login(users.developer)
    for filters in ({}, {"status": "failed"}, {"branch": "dev"}):
        with Executed() as executed:
            assert client.get(reverse("project-detail", args=["shop"]), filters).status_code == 200
        (rate,) = [(sql, params) for sql, params in executed.reading("deliveries_pipelinerun") if "succeeded" in sql]
        (counted,) = [(sql, params) for sql, params in executed.statements if "COUNT(*)" in sql.upper()
                      and "deliveries_pipelinerun" in sql]
        plan = plan_of(*rate)
        assert range_reads(plan, "created_at") and not scans(plan, "pipelinerun"), (filters, plan)  # the 30 days
        # the count stops at the cap, and one more row, however the database reads them
        assert counted[0].endswith("LIMIT 101) subquery"), counted


def test_home_reads_the_newest_runs_by_their_ids_not_every_run_of_the_projects(client, users, long_history):
    from tests.plans import Executed, plan_of, scans

    project = ProjectFactory(slug="shop")
    long_history(project, other_projects=[ProjectFactory()])
    client.force_login(users.developer)
    with Executed() as executed:
        page = client.get(reverse("home"))
    assert page.status_code == 200 and b"feature/b" in page.content  # each project's newest run of each branch
    (newest,) = [(sql, params) for sql, params in executed.reading("deliveries_pipelinerun") if "newest" in sql
                 and '"deliveries_pipelinerun"."commit_sha"' in sql]
    plan = plan_of(*newest)
    # the few newest ids looked up by primary key: no read of a project's runs through run_project_created
    assert "run_project_created" not in plan and not scans(plan, "pipelinerun"), plan
    # Not narrowed by project afterwards: with that, SQLite without statistics (Django never gathers them) read every
    # run of the projects through run_project_created (measured on the huge demo history by benchmarks/pages.py)
    assert '"deliveries_pipelinerun"."project_id" IN' not in newest[0]

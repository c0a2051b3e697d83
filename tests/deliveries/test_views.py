import pytest
from django.urls import reverse

from deliveries.models import RunStatus
from tests.factories import ArtifactFactory, DeploymentFactory, ProjectFactory, RunFactory, StageFactory

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


def create_runs(project, count, start):
    for number in range(start, start + count):
        run = RunFactory(project=project, build_number=number, branch="dev" if number % 3 else "master")
        StageFactory(run=run, name="Build", order=1)


@pytest.mark.parametrize("name", ["home", "project-detail"])
def test_page_queries_do_not_grow_with_the_number_of_runs(client, users, django_assert_max_num_queries, name):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    project = ProjectFactory(slug="shop")
    client.force_login(users.developer)
    url = reverse(name) if name == "home" else reverse(name, args=["shop"])
    create_runs(project, 10, 1)
    with CaptureQueriesContext(connection) as small:
        client.get(url)
    create_runs(project, 90, 100)
    with CaptureQueriesContext(connection) as large:
        client.get(url)
    assert len(large) == len(small)

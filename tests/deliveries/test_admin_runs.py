"""The admin's list of runs on a history that only grows: no page counts the whole table, filters read indexes."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deliveries.models import PipelineRun
from portal.pagination import CappedCountPaginator
from tests.factories import ProjectFactory, RunFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def run_counts(queries) -> list[str]:
    return [q["sql"] for q in queries if "COUNT(" in q["sql"].upper() and "pipelinerun" in q["sql"]]


def test_it_never_counts_the_whole_runs_table(admin_client, monkeypatch):
    monkeypatch.setattr(CappedCountPaginator, "COUNT_CAP", 3)
    project = ProjectFactory()
    RunFactory.create_batch(5, project=project)
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse("admin:deliveries_pipelinerun_changelist"))
    assert response.status_code == 200
    counts = run_counts(queries)
    assert counts, "the list says how many runs it holds, up to the cap"
    assert all("LIMIT 4" in sql for sql in counts), counts  # the cap, and one more to know there are more
    assert response.content.decode().count("/change/") >= 3  # the runs are listed all the same


def test_it_lists_a_filtered_page_and_its_count(admin_client):
    project = ProjectFactory()
    RunFactory.create_batch(2, project=project, trigger="manual")
    RunFactory(project=project, trigger="push")
    response = admin_client.get(reverse("admin:deliveries_pipelinerun_changelist"), {"trigger__exact": "manual"})
    assert response.status_code == 200
    assert response.context["cl"].result_count == 2


def plan(queryset) -> str:
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a test table is small: ask which index fits
        return queryset.explain()


@pytest.mark.parametrize(
    ("lookup", "index"),
    [({"status": "success"}, "run_status_created"), ({"trigger": "manual"}, "run_trigger_created"),
     ({"branch": "main"}, "run_branch_created"), ({"project_id": 1}, "run_project_created")],
)
def test_each_filter_of_the_list_reads_an_index(lookup, index):
    assert index in plan(PipelineRun.objects.filter(**lookup).order_by("-created_at")[:100])


def test_the_list_of_branches_offers_each_branch_once_from_the_newest_run_of_each(admin_client):
    for project in (ProjectFactory(), ProjectFactory()):
        for branch in ("master", "dev", "dev"):
            RunFactory(project=project, branch=branch)
    response = admin_client.get(reverse("admin:deliveries_pipelinerun_changelist"))
    (branches,) = [spec for spec in response.context["cl"].filter_specs if spec.title == "branch"]
    assert list(branches.lookup_choices) == ["dev", "master"]
    assert "run_project_branch_id" in plan(branches.lookup_choices)


def test_its_query_count_does_not_grow_with_the_runs(admin_client):
    project = ProjectFactory()
    url = reverse("admin:deliveries_pipelinerun_changelist")
    RunFactory.create_batch(2, project=project)
    with CaptureQueriesContext(connection) as few:
        admin_client.get(url)
    RunFactory.create_batch(30, project=project, branch="main")
    with CaptureQueriesContext(connection) as many:
        admin_client.get(url)
    assert len(many) == len(few) == 6

"""The runs API takes when the commit was made (`git log -1 --format=%cI`), where lead time starts."""

import json
from datetime import UTC, datetime

import pytest

from deliveries.models import PipelineRun
from tests.factories import ProjectFactory, issue_project_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def post_run(client):
    _, _, token = issue_project_token(ProjectFactory(slug="shop"))

    def post_run(body):
        return client.post("/api/v1/projects/shop/runs/", json.dumps(body), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")

    return post_run


def test_it_stores_the_commit_time_git_gives_with_its_offset(post_run):
    answer = post_run({"build_number": 3, "commit_sha": "a" * 40, "committed_at": "2026-11-27T10:15:00+01:00"})
    assert answer.status_code == 201
    assert answer.json()["committed_at"] == "2026-11-27T09:15:00Z"
    assert PipelineRun.objects.get().committed_at == datetime(2026, 11, 27, 9, 15, tzinfo=UTC)
    assert post_run({"build_number": 3, "status": "success"}).json()["committed_at"] == "2026-11-27T09:15:00Z"


@pytest.mark.parametrize("value", ["yesterday", "27/11/2026 10:15", 1_700_000_000_000, "2026-13-01T00:00:00Z"])
def test_it_refuses_a_commit_time_that_is_not_iso_8601_and_records_nothing(post_run, value):
    answer = post_run({"build_number": 4, "committed_at": value})
    assert answer.status_code == 400
    assert "committed_at" in answer.json()
    assert not PipelineRun.objects.exists()

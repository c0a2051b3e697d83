"""Jenkins asks before deploying production: 200 with the promotion approved for exactly that commit and no
freeze in force; otherwise 403 saying why; 400 for a missing or malformed parameter."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deliveries.models import Promotion
from environments.models import FreezeWindow
from promotions import services
from tests.factories import ProjectFactory, issue_project_token
from tests.promotions.conftest import PATH, requested

OTHER_SHA = "f" * 40


@pytest.fixture
def ask(client, world):
    _, _, token = issue_project_token(world.project)

    def ask(params, *, slug="shop", auth=f"Bearer {token}"):
        headers = {"HTTP_AUTHORIZATION": auth} if auth else {}
        return client.get(reverse("api-deploy-permission", args=[slug]), params, **headers)

    return ask


@pytest.fixture
def approved(gitlab_server, world, dana, tom):
    promotion = requested(world, dana)
    gitlab_server.push(PATH, "dev", promotion.source_run.commit_sha)
    return services.approve_promotion(promotion=promotion, user=tom, comment="ship it")


def test_it_allows_the_commit_of_an_approved_promotion(ask, approved):
    answer = ask({"environment": "production", "commit": approved.source_run.commit_sha})
    assert answer.status_code == 200, answer.json()
    body = answer.json()
    assert body["allowed"] is True
    assert body["promotion"]["id"] == approved.pk
    assert body["promotion"]["state"] == "approved"
    assert body["promotion"]["approved_by"] == "tom"
    assert body["promotion"]["tested_sha"] == approved.source_run.commit_sha
    assert body["promotion"]["source_run"] == approved.source_run.build_number
    assert body["promotion"]["approved_at"].endswith("Z")


def test_it_allows_the_merge_commit_gitlab_made_from_the_tested_one(ask, approved):
    merge_sha = "a" * 40
    Promotion.objects.filter(pk=approved.pk).update(state="merged", merge_commit_sha=merge_sha)
    answer = ask({"environment": "production", "commit": merge_sha.upper()})
    assert answer.status_code == 200
    assert answer.json()["promotion"]["merge_commit_sha"] == merge_sha


def test_it_refuses_a_commit_no_promotion_approved(ask, approved):
    answer = ask({"environment": "production", "commit": OTHER_SHA})
    assert answer.status_code == 403
    assert "No promotion of Shop approved for commit ffffffffffff" in answer.json()["detail"]


def test_it_refuses_a_commit_only_requested(ask, world, dana):
    promotion = requested(world, dana)
    answer = ask({"environment": "production", "commit": promotion.source_run.commit_sha})
    assert answer.status_code == 403
    assert "No promotion" in answer.json()["detail"]


def test_it_refuses_a_rejected_or_failed_promotion(ask, approved):
    for state in ("rejected", "failed"):
        Promotion.objects.filter(pk=approved.pk).update(state=state)
        assert ask({"environment": "production", "commit": approved.source_run.commit_sha}).status_code == 403


def test_it_refuses_during_a_freeze_even_an_approved_commit(ask, approved, world):
    now = timezone.now()
    FreezeWindow.objects.create(environment=world.production, starts_at=now - timedelta(hours=1),
                                ends_at=now + timedelta(hours=2), reason="Black Friday")
    answer = ask({"environment": "production", "commit": approved.source_run.commit_sha})
    assert answer.status_code == 403
    assert "production is frozen until" in answer.json()["detail"]
    assert "Black Friday" in answer.json()["detail"]


def test_it_allows_an_environment_that_needs_no_approval_out_of_a_freeze(ask):
    answer = ask({"environment": "staging", "commit": OTHER_SHA})
    assert answer.status_code == 200
    assert answer.json()["promotion"] is None


@pytest.mark.parametrize("params, field", [
    ({"commit": OTHER_SHA}, "environment"),
    ({"environment": "production"}, "commit"),
    ({"environment": "production", "commit": "abc123"}, "commit"),
    ({"environment": "production", "commit": "z" * 40}, "commit"),
    ({"environment": "nowhere", "commit": OTHER_SHA}, "environment"),
])
def test_it_answers_400_naming_a_missing_or_bad_parameter(ask, params, field):
    answer = ask(params)
    assert answer.status_code == 400
    assert field in answer.json()


def test_it_needs_a_token_of_that_project(ask, db):
    ProjectFactory(slug="other")
    assert ask({"environment": "production", "commit": OTHER_SHA}, auth="").status_code == 401
    assert ask({"environment": "production", "commit": OTHER_SHA}, slug="other").status_code == 404

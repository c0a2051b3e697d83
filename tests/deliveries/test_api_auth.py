"""Project tokens on the API: remembered per process for API_TOKEN_CACHE_SECONDS, forgotten when revoked."""

import json
from datetime import timedelta
from unittest import mock

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from deliveries import services
from deliveries.models import AuditEvent, PipelineRun, ProjectToken
from tests.factories import ProjectFactory, issue_project_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    project, row, token = issue_project_token(ProjectFactory(slug="shop", name="Shop"))
    return row, token


def post_run(client, token, build_number=1):
    return client.post("/api/v1/projects/shop/runs/", data=json.dumps({"build_number": build_number}),
                       content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_token_revoked_in_the_admin_is_refused_at_once(client, admin_user, shop):
    row, token = shop
    assert post_run(client, token).status_code == 201  # verified, and remembered
    admin = client.__class__()
    admin.force_login(admin_user)
    response = admin.post(reverse("admin:deliveries_projecttoken_changelist"),
                          {"action": "revoke", "_selected_action": [row.pk]})
    assert response.status_code == 302
    assert post_run(client, token, 2).status_code == 401


def test_a_token_edited_and_saved_is_forgotten_at_once(client, shop):
    row, token = shop
    assert post_run(client, token).status_code == 201
    row.revoked_at = timezone.now()
    row.save()  # as the admin's change form does
    assert post_run(client, token, 2).status_code == 401


def test_a_token_revoked_by_another_process_is_refused_at_once(client, shop):
    row, token = shop
    assert post_run(client, token).status_code == 201  # verified, and remembered by this process
    # Another process revokes it: this one's memory is not told, only the database is.
    ProjectToken.objects.filter(pk=row.pk).update(revoked_at=timezone.now())
    assert services.VERIFIED_TOKENS != {}
    assert post_run(client, token, 2).status_code == 401
    assert PipelineRun.objects.filter(build_number=2).exists() is False
    assert services.VERIFIED_TOKENS == {}


def test_a_token_deleted_by_another_process_is_refused_at_once(client, shop):
    row, token = shop
    assert post_run(client, token).status_code == 201
    ProjectToken.objects.filter(pk=row.pk)._raw_delete(ProjectToken.objects.db)  # no signal in this process
    assert post_run(client, token, 2).status_code == 401


def test_revoking_tokens_is_audited_with_who_did_it(client, admin_user, shop):
    row, _ = shop
    admin = client.__class__()
    admin.force_login(admin_user)
    for _ in range(2):  # the second time, the token is no longer live: nothing more is recorded
        admin.post(reverse("admin:deliveries_projecttoken_changelist"),
                   {"action": "revoke", "_selected_action": [row.pk]})
    events = AuditEvent.objects.filter(action="token.revoked")
    assert [(event.actor, event.target_id, event.data) for event in events] == [
        (admin_user, str(row.pk), {"name": row.name, "prefix": row.prefix})]
    assert ProjectToken.objects.get(pk=row.pk).revoked_at is not None


def test_the_admin_revokes_tokens_only_through_its_audited_action(client, admin_user, shop):
    row, _ = shop
    admin = client.__class__()
    admin.force_login(admin_user)
    admin.post(reverse("admin:deliveries_projecttoken_change", args=[row.pk]),
               {"name": "renamed", "revoked_at_0": "2024-01-01", "revoked_at_1": "10:00:00"})
    row.refresh_from_db()
    assert (row.name, row.revoked_at) == ("renamed", None)


@override_settings(API_TOKEN_CACHE_SECONDS=0)
def test_without_the_cache_a_revoked_token_is_refused_at_once(client, shop):
    row, token = shop
    assert post_run(client, token).status_code == 201
    ProjectToken.objects.filter(pk=row.pk).update(revoked_at=timezone.now())
    assert post_run(client, token, 2).status_code == 401
    assert services.VERIFIED_TOKENS == {}


def test_only_tokens_that_match_are_remembered(client, shop):
    _, token = shop
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert post_run(client, forged).status_code == 401
    assert services.VERIFIED_TOKENS == {}
    assert post_run(client, token).status_code == 201
    assert list(services.VERIFIED_TOKENS) == [ProjectToken.hash_token(token)]


def test_last_use_is_recorded_at_most_once_a_minute_even_when_remembered(client, shop):
    row, token = shop
    post_run(client, token)
    first_use = ProjectToken.objects.get(pk=row.pk).last_used_at
    assert first_use is not None
    post_run(client, token, 2)
    assert ProjectToken.objects.get(pk=row.pk).last_used_at == first_use
    with mock.patch.object(timezone, "now", return_value=first_use + timedelta(minutes=2)):
        post_run(client, token, 3)
    assert ProjectToken.objects.get(pk=row.pk).last_used_at == first_use + timedelta(minutes=2)


def test_the_api_accepts_the_tokens_the_models_one_look_up_accepts(client, shop):
    _, token = shop
    with mock.patch.object(ProjectToken, "find", wraps=ProjectToken.find) as find:
        assert post_run(client, token).status_code == 201
    find.assert_called_once_with(token)
    services.forget_verified_tokens()
    with mock.patch.object(ProjectToken, "find", return_value=None):  # say, a rule the model adds one day
        assert post_run(client, token, 2).status_code == 401

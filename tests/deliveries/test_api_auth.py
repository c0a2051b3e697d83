"""Project tokens on the API: remembered per process for API_TOKEN_CACHE_SECONDS, forgotten when revoked."""

import json
from datetime import timedelta
from unittest import mock

import pytest
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from deliveries import services
from deliveries.models import ProjectToken
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


def test_a_token_revoked_by_another_process_is_refused_once_its_entry_expires(client, shop, settings):
    row, token = shop
    assert post_run(client, token).status_code == 201
    ProjectToken.objects.filter(pk=row.pk).update(revoked_at=timezone.now())  # this process is not told
    assert post_run(client, token, 2).status_code == 201  # still remembered
    later = services.time.monotonic() + settings.API_TOKEN_CACHE_SECONDS + 1
    with mock.patch.object(services.time, "monotonic", return_value=later):
        assert post_run(client, token, 3).status_code == 401


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

import pytest
from django.contrib import admin
from django.urls import reverse

from deliveries.models import ProjectToken
from tests.factories import DeploymentFactory, ProjectFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def test_every_model_has_a_working_admin_list(admin_client):
    from django.apps import apps

    DeploymentFactory()
    for app_label in ("deliveries", "environments", "scanners"):
        for model in apps.get_app_config(app_label).get_models():
            assert model in admin.site._registry, f"{model.__name__} has no admin"
            url = reverse(f"admin:{app_label}_{model._meta.model_name}_changelist")
            assert admin_client.get(url).status_code == 200, url


def test_the_environments_list_shows_what_is_deployed_and_health(admin_client):
    from environments.models import AvailabilityCheck

    deployment = DeploymentFactory()
    AvailabilityCheck.objects.create(
        environment=deployment.environment, url="https://s/healthz", status_code=200, ok=True
    )
    body = admin_client.get(reverse("admin:environments_environment_changelist")).content.decode()
    assert deployment.project.slug in body
    assert "healthy (200)" in body


def test_issuing_a_token_shows_it_once_and_stores_only_its_hash(admin_client):
    project = ProjectFactory()
    response = admin_client.post(
        reverse("admin:deliveries_project_changelist"), {"action": "issue_token", "_selected_action": [project.pk]}
    )
    assert response.status_code == 200  # the page that answers the POST shows it: no redirect, no message
    [(shown_for, token)] = response.context["issued"]
    assert shown_for == project and token in response.content.decode()
    row = ProjectToken.find(token)
    assert row is not None and row.project == project
    assert token not in row.token_hash
    assert "no-store" in response["Cache-Control"]


def test_an_issued_token_is_kept_in_no_cookie_and_no_session(admin_client):
    """The messages cookie is signed, not encrypted: the token must not travel in it, nor sit in the session."""
    project = ProjectFactory()
    response = admin_client.post(
        reverse("admin:deliveries_project_changelist"), {"action": "issue_token", "_selected_action": [project.pk]}
    )
    [(_, token)] = response.context["issued"]
    secret = token.rsplit("_", 1)[1]
    assert all(secret not in morsel.value for morsel in response.cookies.values())
    assert all(secret not in morsel.value for morsel in admin_client.cookies.values())
    assert secret not in str(dict(admin_client.session))
    changelist = admin_client.get(reverse("admin:deliveries_project_changelist")).content.decode()
    assert secret not in changelist  # shown once: not again on the next page

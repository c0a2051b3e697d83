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


def test_an_operator_with_staff_status_manages_environments_but_cannot_rewrite_deployments(client):
    from environments.models import Environment
    from portal.roles import Role

    deployment = DeploymentFactory()
    client.force_login(UserFactory(username="olga", is_staff=True, roles=[Role.OPERATOR]))
    assert client.get(reverse("admin:environments_environment_changelist")).status_code == 200
    response = client.post(reverse("admin:environments_environment_add"), {
        "name": "qa", "slug": "qa", "tier": "staging", "order": 5,
        "hosts-TOTAL_FORMS": 0, "hosts-INITIAL_FORMS": 0, "freeze_windows-TOTAL_FORMS": 0,
        "freeze_windows-INITIAL_FORMS": 0,
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Environment.objects.filter(slug="qa").exists()
    change = reverse("admin:environments_deployment_change", args=[deployment.pk])
    assert client.get(change).status_code == 200  # history can be read, not deleted
    delete = reverse("admin:environments_deployment_delete", args=[deployment.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403


def test_a_developer_with_staff_status_cannot_touch_environments(client):
    from portal.roles import Role

    client.force_login(UserFactory(username="dana", is_staff=True, roles=[Role.DEVELOPER]))
    assert client.get(reverse("admin:environments_environment_changelist")).status_code == 403


def test_the_registry_password_is_never_shown_and_an_empty_field_keeps_it(admin_client):
    from environments.models import Environment
    from tests.factories import EnvironmentFactory

    environment = EnvironmentFactory(slug="staging", registry_username="deployer", registry_password="s3cret-registry")
    url = reverse("admin:environments_environment_change", args=[environment.pk])
    assert "s3cret-registry" not in admin_client.get(url).content.decode()
    form = {
        "name": environment.name, "slug": "staging", "tier": environment.tier, "order": environment.order,
        "registry_username": "deployer", "registry_password": "",
        "hosts-TOTAL_FORMS": 0, "hosts-INITIAL_FORMS": 0, "freeze_windows-TOTAL_FORMS": 0,
        "freeze_windows-INITIAL_FORMS": 0,
    }
    assert admin_client.post(url, form).status_code == 302
    assert Environment.objects.get(pk=environment.pk).registry_password == "s3cret-registry"
    assert admin_client.post(url, {**form, "registry_password": "rotated"}).status_code == 302
    assert Environment.objects.get(pk=environment.pk).registry_password == "rotated"

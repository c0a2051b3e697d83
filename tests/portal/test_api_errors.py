"""Every answer under /api/ is JSON, errors included: programs call it, and an HTML error page is noise to them."""

import pytest
from django.test import override_settings

from tests.factories import ProjectFactory, issue_project_token

pytestmark = pytest.mark.django_db

RAISING = override_settings(ROOT_URLCONF="tests.portal.urls_raising", DEBUG=False)


def is_json(response) -> bool:
    return response["Content-Type"].startswith("application/json") and isinstance(response.json(), dict)


@pytest.mark.parametrize("path", ["/api/nothing-here/", "/api/v1/projects/shop/nothing/", "/api/v2/"])
def test_an_unknown_api_path_is_a_json_404(client, path):
    response = client.get(path)
    assert response.status_code == 404
    assert is_json(response) and response.json() == {"detail": "Not found."}


def test_an_unknown_page_elsewhere_is_still_djangos_html_404(client, users):
    client.force_login(users.developer)
    response = client.get("/nothing-here/")
    assert response.status_code == 404 and response["Content-Type"].startswith("text/html")


@RAISING
@pytest.mark.parametrize("path", ["/api/v1/test-raising/", "/api/v1/test-raising-django/"])
def test_an_exception_under_api_is_a_json_500(client, path):
    client.raise_request_exception = False
    response = client.get(path)
    assert response.status_code == 500
    assert is_json(response) and response.json() == {"detail": "Server error."}
    assert "a bug" not in response.content.decode()


@RAISING
def test_an_exception_elsewhere_is_still_djangos_html_500(client):
    client.raise_request_exception = False
    response = client.get("/test-raising/")
    assert response.status_code == 500 and response["Content-Type"].startswith("text/html")


def test_a_body_django_refuses_before_drf_reads_it_is_a_json_400(client, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1024
    _, _, token = issue_project_token(ProjectFactory(slug="shop"))
    response = client.post("/api/v1/projects/shop/runs/", data='{"build_number": 7, "branch": "' + "x" * 2048 + '"}',
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400 and is_json(response)


def test_a_wrong_method_on_the_api_is_a_json_405(client):
    response = client.delete("/api/v1/hooks/gitlab/")
    assert response.status_code == 405 and is_json(response)


def test_a_disallowed_host_under_api_is_a_json_400_that_names_no_setting(client):
    response = client.get("/api/v1/hooks/gitlab/", HTTP_HOST="evil.example.com")
    assert response.status_code == 400 and response.json() == {"detail": "Bad request."}

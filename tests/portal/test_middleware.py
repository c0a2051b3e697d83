"""The token API goes past the middleware that only pages need; pages and the session API keep all of it."""

import json

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.authentication import SessionAuthentication

from deliveries.api_auth import ProjectTokenAuthentication
from portal.middleware import TOKEN_API_PATHS
from tests.factories import ProjectFactory, issue_project_token

pytestmark = pytest.mark.django_db


def views_under(patterns, prefix=""):
    """(path, view) of every URL pattern, the path as Django matches it from the site's root."""
    for pattern in patterns:
        path = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from views_under(pattern.url_patterns, path)
        elif isinstance(pattern, URLPattern):
            yield path, pattern.callback


def test_every_view_under_the_token_api_paths_authenticates_without_a_session():
    found = [(path, view) for path, view in views_under(get_resolver().url_patterns)
             if ("/" + path).startswith(TOKEN_API_PATHS)]
    assert len(found) >= 10  # the callbacks, the hooks and the deploy permission
    for path, view in found:
        classes = view.view_class.authentication_classes
        assert not any(issubclass(cls, SessionAuthentication) for cls in classes), path
        assert all(issubclass(cls, ProjectTokenAuthentication) for cls in classes), path  # or none: the GitLab hook


def post_stage(client, token, **headers):
    return client.post("/api/v1/projects/shop/runs/7/stages/", data=json.dumps({"name": "Build", "status": "running"}),
                       content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}", **headers)


def test_a_callback_neither_reads_a_session_nor_sets_a_cookie(client):
    _, _, token = issue_project_token(ProjectFactory(slug="shop"))
    client.cookies["sessionid"] = "a-session-a-browser-might-send"
    response = post_stage(client, token)
    assert response.status_code == 201
    assert "Cookie" not in response.get("Vary", "")  # nothing in the answer depends on a session
    assert not response.cookies


def test_a_callback_answers_json_whatever_the_accept_header_asks(client):
    _, _, token = issue_project_token(ProjectFactory(slug="shop"))
    response = post_stage(client, token, HTTP_ACCEPT="text/html")
    assert response.status_code == 201
    assert response["Content-Type"] == "application/json"
    assert response.json()["name"] == "Build"


def test_a_callback_still_needs_a_json_body(client):
    _, _, token = issue_project_token(ProjectFactory(slug="shop"))
    response = client.post("/api/v1/projects/shop/runs/7/stages/", data={"name": "Build", "status": "running"},
                           HTTP_AUTHORIZATION=f"Bearer {token}")  # a form, not JSON
    assert response.status_code == 415


def test_pages_keep_their_session_sign_in_and_csrf(django_user_model):
    from django.test import Client

    browser = Client(enforce_csrf_checks=True)
    assert browser.get("/")["Location"].startswith("/accounts/login/")
    django_user_model.objects.create_user("erin", password="a-long-password-1")
    form = {"username": "erin", "password": "a-long-password-1"}
    assert browser.post("/accounts/login/", form).status_code == 403  # no CSRF token
    browser.get("/accounts/login/")
    form["csrfmiddlewaretoken"] = browser.cookies["csrftoken"].value
    assert browser.post("/accounts/login/", form).status_code == 302
    assert "sessionid" in browser.cookies
    assert browser.get("/").status_code == 403  # signed in, with no role yet: no longer sent to sign in

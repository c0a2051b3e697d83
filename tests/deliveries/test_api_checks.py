"""Availability checks reported by Jenkins' availability stage through the API."""

import json

import pytest

from environments.models import AvailabilityCheck, CheckSource
from tests.factories import DeploymentFactory, EnvironmentFactory, ProjectFactory, issue_project_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop(client):
    project, _, token = issue_project_token(ProjectFactory(slug="shop", name="Shop"))
    staging = EnvironmentFactory(slug="staging")

    def post(body):
        return client.post("/api/v1/projects/shop/checks/", data=json.dumps(body), content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {token}")

    return project, staging, post


def test_it_records_a_check_against_what_the_project_runs_there(shop):
    project, staging, post = shop
    serving = DeploymentFactory(source_run__project=project, environment=staging)
    response = post({"environment": "staging", "url": "https://staging.example.com/healthz", "ok": True,
                     "status_code": 200, "latency_ms": 42.5})
    assert response.status_code == 201
    check = AvailabilityCheck.objects.get()
    assert response.json()["id"] == check.pk and response.json()["deployment"] == serving.pk
    assert (check.project, check.environment, check.ok, check.status_code, check.latency_ms, check.source) == (
        project, staging, True, 200, 42.5, CheckSource.JENKINS)


def test_failures_reported_in_a_row_are_counted(shop):
    project, staging, post = shop
    body = {"environment": "staging", "url": "https://staging.example.com/healthz", "ok": False,
            "error": "not available after 20 attempts"}
    assert post(body).json()["failures_in_a_row"] == 1
    assert post(body).json()["failures_in_a_row"] == 2
    assert post({**body, "ok": True, "error": ""}).json()["failures_in_a_row"] == 0


def test_a_long_error_is_cut_not_refused(shop):
    project, staging, post = shop
    response = post({"environment": "staging", "url": "https://s.example.com/", "ok": False, "error": "x" * 2000})
    assert response.status_code == 201 and len(AvailabilityCheck.objects.get().error) == 500


@pytest.mark.parametrize(("body", "fields"), [
    ({}, {"environment", "url", "ok"}),
    ({"environment": "moon", "url": "https://s.example.com/", "ok": True}, {"environment"}),
    ({"environment": "staging", "url": "not a url", "ok": True}, {"url"}),
    ({"environment": "staging", "url": "https://s.example.com/", "ok": "perhaps"}, {"ok"}),
    ({"environment": "staging", "url": "https://s.example.com/", "ok": True, "status_code": 999}, {"status_code"}),
    ({"environment": "staging", "url": "https://s.example.com/", "ok": True, "latency_ms": -1}, {"latency_ms"}),
    ({"environment": "staging", "url": "https://s.example.com/", "ok": True, "colour": "green"}, {"colour"}),
])
def test_it_refuses_a_bad_check_naming_each_field_and_stores_nothing(shop, body, fields):
    project, staging, post = shop
    response = post(body)
    assert response.status_code == 400
    assert set(response.json()) == fields
    assert not AvailabilityCheck.objects.exists()

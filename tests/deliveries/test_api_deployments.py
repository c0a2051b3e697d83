"""Deployments reported by Jenkins through the API."""

import json

import pytest

from deliveries.models import PipelineRun
from environments.models import Deployment, DeploymentStatus
from tests.factories import (
    ArtifactFactory,
    DeploymentFactory,
    EnvironmentFactory,
    ProjectFactory,
    RunFactory,
    issue_project_token,
)

pytestmark = pytest.mark.django_db

APP = "registry.example.com/shop/app"
DIGEST = "sha256:" + "cd" * 32


@pytest.fixture
def shop(client):
    project, _, token = issue_project_token(ProjectFactory(slug="shop", name="Shop"))
    staging = EnvironmentFactory(slug="staging")

    def post(build_number, body):
        return client.post(f"/api/v1/projects/shop/runs/{build_number}/deployments/", data=json.dumps(body),
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")

    return project, staging, post


def test_it_records_a_deployment_then_updates_it(shop):
    project, staging, post = shop
    run = RunFactory(project=project, build_number=42)
    app = ArtifactFactory(run=run, repository=APP, tag="abc123", digest=DIGEST)
    previous = DeploymentFactory(source_run=RunFactory(project=project), environment=staging)
    images = [{"repository": APP, "tag": "abc123", "digest": DIGEST}]
    body = {"environment": "staging", "status": "running", "images": images, "started_at": "2024-05-01T10:00:00Z"}

    response = post(42, body)
    assert response.status_code == 201
    created = response.json()
    deployment = Deployment.objects.get(source_run=run)
    assert created["id"] == deployment.pk
    assert (created["environment"], created["status"], created["kind"]) == ("staging", "running", "deploy")
    assert created["image_digests"] == [DIGEST] and created["artifacts"] == [app.pk]
    assert created["replaced"] == previous.pk

    response = post(42, {"environment": "staging", "status": "SUCCESS", "finished_at": "2024-05-01T10:03:00Z",
                         "log": "switched"})
    assert response.status_code == 200
    deployment.refresh_from_db()
    assert deployment.status == DeploymentStatus.SUCCESS and deployment.step_log == "switched"
    assert deployment.image_digests == [DIGEST]  # kept from the first callback


def test_the_same_deployment_callback_twice_is_one_deployment(shop):
    project, staging, post = shop
    body = {"environment": "staging", "status": "success", "images": [{"repository": APP, "tag": "t"}]}
    assert post(7, body).status_code == 201
    assert post(7, body).status_code == 200
    assert Deployment.objects.count() == 1
    assert PipelineRun.objects.get(project=project, build_number=7).branch == ""  # the run was made for it


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"environment": "moon", "status": "running"}, "environment"),
        ({"status": "running"}, "environment"),
        ({"environment": "staging", "status": "exploded"}, "status"),
        ({"environment": "staging", "status": "running", "images": [{"repository": APP}]}, "images"),
        ({"environment": "staging", "status": "running", "images": [{"repository": APP, "tag": "t",
                                                                     "digest": "sha256:zz"}]}, "images"),
        ({"environment": "staging", "status": "running", "images": [{"repository": APP, "tag": "t",
                                                                     "size": 3}]}, "images"),
        ({"environment": "staging", "status": "running", "started_at": "2024-05-01T10:00:00Z",
          "finished_at": "2024-05-01T09:00:00Z"}, "finished_at"),
    ],
)
def test_it_refuses_a_bad_deployment_naming_the_field(shop, body, field):
    project, staging, post = shop
    response = post(7, body)
    assert response.status_code == 400
    assert field in response.json()
    assert not Deployment.objects.exists() and not PipelineRun.objects.exists()


def test_an_unknown_environment_is_named_in_the_answer(shop):
    project, staging, post = shop
    response = post(7, {"environment": "moon", "status": "running"})
    assert "moon" in response.json()["environment"][0]

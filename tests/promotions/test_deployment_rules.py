"""A deployment callback that breaks a deploy rule is kept (it happened: 201) but flagged on the deployment, in the
answer and on the home page, and audited once: a production deployment without a promotion approved for its
commit, one during a freeze window, one whose images are not its run's artifacts."""

import json
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from deliveries.models import AuditEvent
from environments.models import Deployment, FreezeWindow
from promotions import services
from tests.factories import ArtifactFactory, RunFactory, issue_project_token
from tests.promotions.conftest import PATH, requested

APP = "registry.example.com/shop/app"


@pytest.fixture
def post(client, world):
    _, _, token = issue_project_token(world.project)

    def post(build_number, body):
        return client.post(reverse("api-deployments", args=["shop", build_number]), json.dumps(body),
                           content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}")

    return post


def test_it_flags_a_running_dev_run_deployed_to_production_during_a_freeze(post, world, client, users):
    now = timezone.now()
    FreezeWindow.objects.create(environment=world.production, starts_at=now - timedelta(hours=1),
                                ends_at=now + timedelta(hours=1), reason="Release night")
    run = RunFactory(project=world.project, branch="dev", build_number=77, status="running")
    answer = post(77, {"environment": "production", "status": "success"})
    assert answer.status_code == 201  # recorded: it happened
    violations = answer.json()["rule_violations"]
    assert len(violations) == 2
    assert "production is frozen until" in violations[0] and "Release night" in violations[0]
    assert f"No promotion of Shop approved for commit {run.commit_sha[:12]}" in violations[1]
    deployment = Deployment.objects.get(source_run=run)
    assert deployment.rule_violations == violations
    (event,) = AuditEvent.objects.filter(action="deployment.rule_broken")
    assert event.data["violations"] == violations and event.target_id == str(deployment.pk)

    assert post(77, {"environment": "production", "status": "success"}).json()["rule_violations"] == violations
    assert AuditEvent.objects.filter(action="deployment.rule_broken").count() == 1  # a retry audits nothing new

    client.force_login(users.developer)
    page = client.get(reverse("home")).content.decode()
    assert "Deployments that broke the rules" in page
    assert "Release night" in page


def test_it_flags_images_that_are_not_the_runs_artifacts(post, world):
    run = RunFactory(project=world.project, branch="dev", build_number=78)
    ArtifactFactory(run=run, repository=APP, tag="v1", digest="sha256:" + "a" * 64)
    answer = post(78, {"environment": "staging", "status": "success", "images": [
        {"repository": APP, "tag": "v1", "digest": "sha256:" + "a" * 64},
        {"repository": APP, "tag": "v1", "digest": "sha256:" + "b" * 64},
        {"repository": "registry.example.com/evil/app", "tag": "latest"},
    ]})
    assert answer.status_code == 201
    assert answer.json()["rule_violations"] == [
        f"Images not built by build 78: {APP}@sha256:{'b' * 64}, registry.example.com/evil/app:latest."
    ]


def test_it_flags_nothing_for_the_approved_commit_with_its_own_images(post, world, gitlab_server, dana, tom, client,
                                                                     users):
    promotion = requested(world, dana)
    gitlab_server.push(PATH, "dev", promotion.source_run.commit_sha)
    services.approve_promotion(promotion=promotion, user=tom)
    master = RunFactory(project=world.project, branch="master", build_number=900,
                        commit_sha=promotion.source_run.commit_sha)
    ArtifactFactory(run=master, repository=APP, tag="v2", digest="sha256:" + "c" * 64)
    answer = post(900, {"environment": "production", "status": "success",
                        "images": [{"repository": APP, "tag": "v2"}]})
    assert answer.status_code == 201
    assert answer.json()["rule_violations"] == []
    assert not AuditEvent.objects.filter(action="deployment.rule_broken").exists()
    client.force_login(users.developer)
    assert "Deployments that broke the rules" not in client.get(reverse("home")).content.decode()

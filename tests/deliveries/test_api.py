"""The REST API v1 for Jenkins callbacks: runs, stages, artifacts, and what every endpoint refuses."""

import json
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import override_settings

from deliveries.models import AuditEvent, PipelineRun, RunStatus, RunTrigger, Stage
from tests.factories import (
    ArtifactFactory,
    EnvironmentFactory,
    ProjectFactory,
    RunFactory,
    StageFactory,
    issue_project_token,
)

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")


class Api:
    """A Jenkins holding the token of the `shop` project."""

    def __init__(self, client, project, token):
        self.client, self.project, self.token = client, project, token

    def headers(self, token=None):
        return {"HTTP_AUTHORIZATION": f"Bearer {token or self.token}"}

    def post(self, path, body, *, token=None, slug="shop", content_type="application/json"):
        data = body if isinstance(body, str | bytes) else json.dumps(body)
        return self.client.post(f"/api/v1/projects/{slug}/{path}", data=data, content_type=content_type,
                                **self.headers(token))

    def get(self, path, *, token=None, slug="shop"):
        return self.client.get(f"/api/v1/projects/{slug}/{path}", **self.headers(token))

    def run(self, body, **kwargs):
        return self.post("runs/", body, **kwargs)

    def stage(self, build_number, body, **kwargs):
        return self.post(f"runs/{build_number}/stages/", body, **kwargs)

    def artifact(self, build_number, body, **kwargs):
        return self.post(f"runs/{build_number}/artifacts/", body, **kwargs)


@pytest.fixture
def api(client):
    project, _, token = issue_project_token(ProjectFactory(slug="shop", name="Shop"))
    return Api(client, project, token)


@pytest.fixture
def other_token():
    _, _, token = issue_project_token(ProjectFactory(slug="other", name="Other"))
    return token


def the_run(api, build_number) -> PipelineRun:
    return PipelineRun.objects.get(project=api.project, build_number=build_number)


def audit_count(api) -> int:
    return AuditEvent.objects.filter(project=api.project).count()


JSON_ENDPOINTS = ["runs/", "runs/7/stages/", "runs/7/artifacts/", "runs/7/deployments/", "checks/"]
VALID_BODIES = {
    "runs/": {"build_number": 7},
    "runs/7/stages/": {"name": "Build", "status": "running"},
    "runs/7/artifacts/": {"repository": "registry.example.com/shop/app", "tag": "abc"},
    "runs/7/deployments/": {"environment": "staging", "status": "running"},
    "checks/": {"environment": "staging", "url": "https://staging.example.com/healthz", "ok": True},
}
ALL_POST_ENDPOINTS = [*JSON_ENDPOINTS, "runs/7/reports/"]


# --- Runs ------------------------------------------------------------------------------------------


def test_it_creates_a_run_then_updates_it(api):
    body = {
        "build_number": 42, "branch": "dev", "commit_sha": "a" * 40, "commit_title": "Add basket",
        "commit_author": "Dana", "status": "running", "started_at": at(0),
        "build_url": "https://jenkins.example.com/job/shop/42/", "queue_id": 612,
    }
    response = api.run(body)
    assert response.status_code == 201
    created = response.json()
    run = the_run(api, 42)
    assert created["id"] == run.pk
    assert created["url"] == f"http://127.0.0.1:8000/projects/shop/runs/{run.pk}/"
    assert (created["status"], created["branch"], created["started_at"]) == ("running", "dev", at(0))
    assert run.trigger == RunTrigger.JENKINS and run.queue_id == 612

    response = api.run({"build_number": 42, "status": "SUCCESS", "finished_at": at(12)})
    assert response.status_code == 200
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESS
    assert (run.started_at, run.finished_at) == (T0, T0 + timedelta(minutes=12))
    assert run.branch == "dev" and run.commit_title == "Add basket"  # not blanked by a callback that omits them
    assert list(AuditEvent.objects.filter(project=api.project).values_list("action", flat=True)) == [
        "run.updated", "run.created"
    ]
    event = AuditEvent.objects.filter(project=api.project).first()
    assert event.actor_label == f"jenkins (dp_{api.token.split('_')[1]})"


@override_settings(SITE_URL="https://portal.example.com")
def test_it_answers_the_portal_page_of_the_run_with_the_site_url(api):
    response = api.run({"build_number": 1})
    assert response.json()["url"].startswith("https://portal.example.com/projects/shop/runs/")


def test_it_answers_the_same_run_callback_twice_with_200_and_writes_nothing_more(api):
    body = {"build_number": 5, "branch": "dev", "status": "running", "started_at": at(0)}
    assert api.run(body).status_code == 201
    runs, events = PipelineRun.objects.count(), audit_count(api)
    second = api.run(body)
    assert second.status_code == 200
    assert (PipelineRun.objects.count(), audit_count(api)) == (runs, events)


@pytest.mark.parametrize(
    ("word", "status"),
    [("SUCCESS", "success"), ("FAILURE", "failed"), ("unstable", "unstable"), ("Aborted", "aborted"),
     ("NOT_BUILT", "aborted"), ("failed", "failed"), ("queued", "queued")],
)
def test_it_accepts_the_portal_and_jenkins_words_for_a_run_status(api, word, status):
    assert api.run({"build_number": 9, "status": word}).json()["status"] == status


def test_it_normalises_the_branch_jenkins_reports(api):
    assert api.run({"build_number": 1, "branch": "origin/dev"}).json()["branch"] == "dev"
    assert api.run({"build_number": 2, "branch": "refs/heads/feature/x"}).json()["branch"] == "feature/x"


def test_it_does_not_reopen_a_finished_run(api):
    api.run({"build_number": 3, "status": "success", "started_at": at(0), "finished_at": at(10)})
    response = api.run({"build_number": 3, "status": "running", "started_at": at(0)})
    assert response.status_code == 200
    run = the_run(api, 3)
    assert run.status == RunStatus.SUCCESS and run.finished_at == T0 + timedelta(minutes=10)


def test_it_lets_a_finished_status_be_corrected_by_another(api):
    api.run({"build_number": 3, "status": "success", "finished_at": at(10)})
    api.run({"build_number": 3, "status": "FAILURE"})
    run = the_run(api, 3)
    assert run.status == RunStatus.FAILED and run.finished_at == T0 + timedelta(minutes=10)


def test_it_keeps_the_earliest_start_and_never_blanks_a_known_time(api):
    api.run({"build_number": 3, "status": "running", "started_at": at(5)})
    api.run({"build_number": 3, "started_at": at(2)})
    api.run({"build_number": 3, "started_at": at(9), "finished_at": None})
    assert the_run(api, 3).started_at == T0 + timedelta(minutes=2)


def test_it_keeps_a_finished_run_status_when_its_last_stage_reports_late(api):
    api.run({"build_number": 8, "status": "failed", "finished_at": at(10)})
    response = api.stage(8, {"name": "Deploy", "status": "running", "started_at": at(8)})
    assert response.status_code == 201 and response.json()["run_status"] == "failed"
    assert the_run(api, 8).status == RunStatus.FAILED


FINISHED = {"build_number": 3, "status": "success", "branch": "dev", "commit_sha": "a" * 40,
            "build_url": "https://jenkins.example.com/job/shop/3/", "finished_at": at(10)}


@pytest.mark.parametrize(("name", "value"), [("branch", "origin/master"), ("commit_sha", "b" * 40),
                                             ("build_url", "https://jenkins.example.com/job/asgard/3/")])
def test_it_refuses_to_rewrite_a_finished_runs_identity_with_409_and_audits_it(api, name, value):
    api.run(FINISHED)
    events = audit_count(api)
    response = api.run({"build_number": 3, "status": "failed", "commit_title": "rewritten", name: value})
    assert response.status_code == 409
    assert list(response.json()) == [name]
    run = the_run(api, 3)
    assert (run.branch, run.commit_sha, run.build_url, run.status, run.commit_title) == (
        "dev", "a" * 40, FINISHED["build_url"], RunStatus.SUCCESS, "")
    assert audit_count(api) == events + 1
    event = AuditEvent.objects.filter(project=api.project).latest("pk")
    assert (event.action, event.target_id, event.actor_label) == ("run.identity_refused", str(run.pk),
                                                                  f"jenkins (dp_{api.token[3:11]})")
    assert list(event.data["refused"]) == [name]


def test_it_fills_in_a_finished_runs_unknown_identity_and_takes_the_same_again(api):
    api.run({"build_number": 3, "status": "success"})
    assert api.run(FINISHED).status_code == 200
    assert api.run({**FINISHED, "branch": "origin/dev", "commit_sha": "A" * 40}).status_code == 200
    assert the_run(api, 3).branch == "dev"


def test_a_running_run_may_still_learn_its_identity(api):
    api.run({**FINISHED, "status": "running"})
    assert api.run({**FINISHED, "branch": "feature/x"}).status_code == 200
    assert the_run(api, 3).branch == "feature/x"


def test_it_refuses_to_attach_a_build_that_contradicts_a_finished_portal_run_and_changes_nothing(api, users):
    portal_run = RunFactory(project=api.project, build_number=None, status=RunStatus.ABORTED, branch="dev",
                            trigger=RunTrigger.PORTAL, triggered_by=users.developer)
    api.stage(77, {"name": "Lint", "status": "success"})
    response = api.run({"build_number": 77, "portal_run_id": portal_run.pk, "branch": "master"})
    assert response.status_code == 409
    portal_run.refresh_from_db()
    assert portal_run.build_number is None
    assert the_run(api, 77).stages.get().name == "Lint"


def test_it_attaches_a_build_to_the_run_the_portal_triggered(api, users):
    portal_run = RunFactory(project=api.project, build_number=None, status=RunStatus.QUEUED,
                            trigger=RunTrigger.PORTAL, triggered_by=users.developer, started_at=None,
                            finished_at=None)
    response = api.run({"build_number": 77, "portal_run_id": portal_run.pk, "status": "running"})
    assert response.status_code == 200
    assert response.json()["id"] == portal_run.pk
    portal_run.refresh_from_db()
    assert (portal_run.build_number, portal_run.status, portal_run.trigger) == (77, "running", "portal")
    assert PipelineRun.objects.filter(project=api.project).count() == 1
    assert api.run({"build_number": 77, "portal_run_id": portal_run.pk}).status_code == 200  # retried: same run


def test_it_folds_a_run_made_by_early_callbacks_into_the_run_the_portal_triggered(api, users):
    portal_run = RunFactory(project=api.project, build_number=None, status=RunStatus.QUEUED,
                            trigger=RunTrigger.PORTAL, triggered_by=users.developer, started_at=None,
                            finished_at=None, branch="dev")
    api.stage(77, {"name": "Lint", "status": "success", "started_at": at(0), "finished_at": at(1)})
    api.artifact(77, {"repository": "registry.example.com/shop/app", "tag": "abc", "digest": DIGEST})
    early = the_run(api, 77)
    assert early.pk != portal_run.pk

    response = api.run({"build_number": 77, "portal_run_id": portal_run.pk, "status": "running"})
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == portal_run.pk
    assert [stage["name"] for stage in body["stages"]] == ["Lint"]
    assert [artifact["digest"] for artifact in body["artifacts"]] == [DIGEST]
    assert not PipelineRun.objects.filter(pk=early.pk).exists()
    assert the_run(api, 77).pk == portal_run.pk


def test_it_gives_a_replayed_build_its_own_run_although_it_names_the_portal_run(api):
    portal_run = RunFactory(project=api.project, build_number=10, trigger=RunTrigger.PORTAL)
    response = api.run({"build_number": 11, "portal_run_id": portal_run.pk})
    assert response.status_code == 201
    assert response.json()["id"] != portal_run.pk


def test_it_ignores_a_portal_run_id_of_another_project(api):
    elsewhere = RunFactory(build_number=None)
    response = api.run({"build_number": 12, "portal_run_id": elsewhere.pk})
    assert response.status_code == 201
    elsewhere.refresh_from_db()
    assert elsewhere.build_number is None


def test_it_answers_a_run_with_its_stages_artifacts_and_reports(api):
    run = RunFactory(project=api.project, build_number=42)
    StageFactory(run=run, name="Build", order=1)
    ArtifactFactory(run=run, repository="registry.example.com/shop/app", tag="abc", digest=DIGEST)
    response = api.get("runs/42/")
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == run.pk and body["build_number"] == 42
    assert [stage["name"] for stage in body["stages"]] == ["Build"]
    assert body["artifacts"][0] == {"id": run.artifacts.get().pk, "repository": "registry.example.com/shop/app",
                                    "tag": "abc", "digest": DIGEST, "registry": ""}
    assert body["reports"] == []


def test_it_answers_404_for_a_run_it_does_not_know(api):
    assert api.get("runs/42/").status_code == 404
    assert api.get("runs/0/").status_code == 404
    assert api.get("runs/99999999999/").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "build_number"),
        ({"build_number": 0}, "build_number"),
        ({"build_number": "seven"}, "build_number"),
        ({"build_number": 2**31}, "build_number"),
        ({"build_number": 1, "status": "exploded"}, "status"),
        ({"build_number": 1, "started_at": "yesterday"}, "started_at"),
        ({"build_number": 1, "build_url": "not a url"}, "build_url"),
        ({"build_number": 1, "queue_id": -1}, "queue_id"),
        ({"build_number": 1, "commit_sha": "a" * 65}, "commit_sha"),
    ],
)
def test_it_refuses_a_bad_run_naming_the_field(api, body, field):
    response = api.run(body)
    assert response.status_code == 400
    assert field in response.json()
    assert not PipelineRun.objects.exists()


# --- Stages ----------------------------------------------------------------------------------------


def test_it_creates_a_stage_then_updates_it(api):
    RunFactory(project=api.project, build_number=4, status=RunStatus.RUNNING, finished_at=None)
    response = api.stage(4, {"name": "Build images", "status": "running", "order": 2, "started_at": at(1)})
    assert response.status_code == 201
    assert response.json() == {
        "id": Stage.objects.get().pk, "name": "Build images", "order": 2, "status": "running",
        "started_at": at(1), "finished_at": None, "duration_ms": None, "build_number": 4, "run_status": "running",
    }
    response = api.stage(4, {"name": "Build images", "status": "SUCCESS", "finished_at": at(3),
                             "log_excerpt": "pushed"})
    assert response.status_code == 200
    assert response.json()["duration_ms"] == 120_000
    stage = Stage.objects.get()
    assert (stage.status, stage.order, stage.log_excerpt) == ("success", 2, "pushed")


def test_it_answers_the_same_stage_callback_twice_with_200_and_writes_nothing_more(api):
    body = {"name": "Build", "status": "running", "started_at": at(0)}
    assert api.stage(4, body).status_code == 201
    events = audit_count(api)
    assert api.stage(4, body).status_code == 200
    assert (Stage.objects.count(), PipelineRun.objects.count(), audit_count(api)) == (1, 1, events)


def test_it_creates_the_run_of_a_stage_for_a_build_it_has_not_seen(api):
    response = api.stage(15, {"name": "Checkout", "status": "running"})
    assert response.status_code == 201
    run = the_run(api, 15)
    assert (run.branch, run.status, run.trigger) == ("", RunStatus.RUNNING, RunTrigger.JENKINS)
    event = AuditEvent.objects.get(project=api.project)
    assert event.action == "stage.upserted" and event.data["run_created"] is True
    api.run({"build_number": 15, "branch": "dev"})
    assert the_run(api, 15).branch == "dev"


def test_it_keeps_a_finished_stage_when_its_start_arrives_late(api):
    api.stage(4, {"name": "Trivy", "status": "failed", "started_at": at(2), "finished_at": at(5)})
    response = api.stage(4, {"name": "Trivy", "status": "running", "started_at": at(2)})
    assert response.status_code == 200
    stage = Stage.objects.get()
    assert (stage.status, stage.started_at, stage.finished_at) == ("failed", T0 + timedelta(minutes=2),
                                                                  T0 + timedelta(minutes=5))


def test_it_takes_the_start_that_arrives_after_the_finish(api):
    api.stage(4, {"name": "Trivy", "status": "success", "finished_at": at(5)})
    api.stage(4, {"name": "Trivy", "status": "running", "started_at": at(1), "finished_at": None})
    stage = Stage.objects.get()
    assert (stage.status, stage.started_at, stage.finished_at) == ("success", T0 + timedelta(minutes=1),
                                                                   T0 + timedelta(minutes=5))


def test_it_puts_a_queued_run_to_running_when_a_stage_starts(api):
    RunFactory(project=api.project, build_number=4, status=RunStatus.QUEUED, started_at=None, finished_at=None)
    assert api.stage(4, {"name": "Checkout", "status": "running"}).json()["run_status"] == "running"


def test_it_computes_the_finish_from_the_start_and_the_duration(api):
    api.stage(4, {"name": "JMeter", "status": "success", "started_at": at(0), "duration_ms": 90_000})
    assert Stage.objects.get().finished_at == T0 + timedelta(seconds=90)


def test_it_keeps_the_last_10000_characters_of_a_stage_log(api):
    log = "x" * 5_000 + "y" * 10_000
    api.stage(4, {"name": "Build", "status": "failed", "log_excerpt": log})
    assert Stage.objects.get().log_excerpt == "y" * 10_000


@pytest.mark.parametrize(("word", "status"), [("SUCCESS", "success"), ("FAILURE", "failed"),
                                              ("NOT_BUILT", "aborted"), ("skipped", "skipped"),
                                              ("Pending", "pending")])
def test_it_accepts_the_portal_and_jenkins_words_for_a_stage_status(api, word, status):
    assert api.stage(4, {"name": "Build", "status": word}).json()["status"] == status


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Build", "status": "exploded"}, "status"),
        ({"name": "Build"}, "status"),
        ({"status": "running"}, "name"),
        ({"name": "x" * 201, "status": "running"}, "name"),
        ({"name": "Build", "status": "running", "order": -1}, "order"),
        ({"name": "Build", "status": "running", "order": 40_000}, "order"),
        ({"name": "Build", "status": "running", "duration_ms": "long"}, "duration_ms"),
        ({"name": "Build", "status": "running", "finished_at": "2024-13-45"}, "finished_at"),
    ],
)
def test_it_refuses_a_bad_stage_naming_the_field(api, body, field):
    response = api.stage(4, body)
    assert response.status_code == 400
    assert field in response.json()
    assert not PipelineRun.objects.exists() and not Stage.objects.exists()


def test_it_answers_404_for_a_stage_of_an_impossible_build_number(api):
    assert api.stage(0, {"name": "Build", "status": "running"}).status_code == 404
    assert api.stage(2**31, {"name": "Build", "status": "running"}).status_code == 404
    assert not PipelineRun.objects.exists()


def test_it_updates_an_existing_stage_with_its_run_and_itself_locked_in_one_statement(api, django_assert_num_queries):
    api.stage(4, {"name": "Build", "status": "running"})  # creates the run and the stage, verifies the token
    # The same statements on every database: whether the remembered token is still live, then read the stage
    # with its run, both locked, update it, append the audit event, in a savepoint (the test's own transaction
    # stands for BEGIN and COMMIT).
    with django_assert_num_queries(6) as captured:
        response = api.stage(4, {"name": "Build", "status": "success"})
    assert response.status_code == 200
    assert "deliveries_projecttoken" in captured.captured_queries[0]["sql"]
    locking = captured.captured_queries[2]["sql"]
    if connection.features.has_select_for_update_of:  # PostgreSQL; SQLite serialises writers anyway
        # The run's row first, as every other write locks them: no two callbacks wait for each other in a circle.
        assert locking.startswith("SELECT") and locking.endswith("FOR UPDATE OF r, s")
    assert Stage.objects.get().status == "success"
    assert AuditEvent.objects.filter(action="stage.upserted").count() == 2


# --- Artifacts -------------------------------------------------------------------------------------


def test_it_creates_an_artifact_then_updates_it(api):
    body = {"repository": "registry.example.com/shop/app", "tag": "abc123"}
    response = api.artifact(4, body)
    assert response.status_code == 201
    assert response.json()["digest"] == ""
    response = api.artifact(4, {**body, "digest": DIGEST, "registry": "registry.example.com"})
    assert response.status_code == 200
    assert (response.json()["digest"], response.json()["registry"]) == (DIGEST, "registry.example.com")
    events = audit_count(api)
    assert api.artifact(4, body).json()["digest"] == DIGEST  # not blanked by a callback without it
    assert audit_count(api) == events
    assert the_run(api, 4).artifacts.count() == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"repository": "r", "tag": "t", "digest": "sha256:abc"}, "digest"),
        ({"repository": "r", "tag": "t", "digest": "md5:" + "a" * 64}, "digest"),
        ({"repository": "r", "tag": "t", "digest": "sha256:" + "G" * 64}, "digest"),
        ({"tag": "t"}, "repository"),
        ({"repository": "r"}, "tag"),
        ({"repository": "r", "tag": "t" * 129}, "tag"),
    ],
)
def test_it_refuses_a_bad_artifact_naming_the_field(api, body, field):
    response = api.artifact(4, body)
    assert response.status_code == 400
    assert field in response.json()
    assert not PipelineRun.objects.exists()


# --- What every endpoint refuses -------------------------------------------------------------------


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
def test_it_refuses_unknown_fields_naming_them(api, path):
    EnvironmentFactory(slug="staging")
    response = api.post(path, {**VALID_BODIES[path], "stauts": "running", "colour": "red"})
    assert response.status_code == 400
    body = response.json()
    assert body["stauts"] == ["Unknown field."] and body["colour"] == ["Unknown field."]
    assert not PipelineRun.objects.exists()


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
def test_it_accepts_each_valid_body(api, path):
    EnvironmentFactory(slug="staging")
    assert api.post(path, VALID_BODIES[path]).status_code == 201


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
@pytest.mark.parametrize("body", ['{"build_number": 7,', "not json", "[1, 2]", "null", '"text"'])
def test_it_refuses_malformed_json(api, path, body):
    response = api.post(path, body)
    assert response.status_code == 400
    assert not PipelineRun.objects.exists()


@pytest.mark.parametrize("path", JSON_ENDPOINTS)
def test_it_refuses_a_body_that_is_not_json(api, path):
    response = api.post(path, "build_number=7", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


@pytest.mark.parametrize("path", [*ALL_POST_ENDPOINTS, "runs/7/"])
def test_it_refuses_a_missing_token_with_401(client, api, path):
    response = client.post(f"/api/v1/projects/shop/{path}", data="{}", content_type="application/json")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "header",
    ["Bearer dp_12345678_nope", "Bearer nonsense", "Bearer ", "Token abc", "Basic dXNlcjpwYXNz"],
)
def test_it_refuses_an_invalid_token_with_401(client, api, header):
    response = client.post("/api/v1/projects/shop/runs/", data=json.dumps({"build_number": 1}),
                           content_type="application/json", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert not PipelineRun.objects.exists()


def test_it_refuses_a_revoked_token_with_401(api):
    from django.utils import timezone

    api.project.tokens.update(revoked_at=timezone.now())
    assert api.run({"build_number": 1}).status_code == 401


def test_it_refuses_a_token_whose_secret_is_wrong(api):
    forged = api.token[:-4] + ("AAAA" if not api.token.endswith("AAAA") else "BBBB")
    assert api.run({"build_number": 1}, token=forged).status_code == 401


@pytest.mark.parametrize("path", [*ALL_POST_ENDPOINTS])
def test_it_answers_404_to_the_token_of_another_project(api, other_token, path):
    EnvironmentFactory(slug="staging")
    response = api.post(path, VALID_BODIES.get(path, {}), token=other_token)
    assert response.status_code == 404
    assert not PipelineRun.objects.exists()


def test_it_answers_404_to_another_projects_token_reading_a_run(api, other_token):
    RunFactory(project=api.project, build_number=42)
    assert api.get("runs/42/", token=other_token).status_code == 404


def test_it_answers_404_for_an_unknown_project(api):
    assert api.run({"build_number": 1}, slug="nowhere").status_code == 404
    assert api.get("runs/1/", slug="nowhere").status_code == 404


@pytest.mark.parametrize("path", ALL_POST_ENDPOINTS)
def test_it_answers_405_to_get_on_a_post_only_endpoint(api, path):
    assert api.get(path).status_code == 405


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_it_answers_405_to_other_methods(client, api, method):
    for path in ["runs/", "runs/7/", "runs/7/stages/"]:
        response = getattr(client, method)(f"/api/v1/projects/shop/{path}", **api.headers())
        assert response.status_code == 405, path


def test_it_answers_405_to_post_on_a_run(api):
    assert api.post("runs/7/", {"build_number": 7}).status_code == 405


def test_it_does_not_send_api_callers_to_the_login_page(client, api):
    # No session: the site's LoginRequiredMiddleware must leave the API to its token authentication.
    for path in [*ALL_POST_ENDPOINTS, "runs/7/"]:
        response = client.post(f"/api/v1/projects/shop/{path}", data="{}", content_type="application/json")
        assert response.status_code == 401, path
        assert "Location" not in response.headers
    assert api.run({"build_number": 1}).status_code == 201


def test_a_signed_in_user_without_a_token_is_refused(client, users, api):
    client.force_login(users.operator)
    response = client.post("/api/v1/projects/shop/runs/", data=json.dumps({"build_number": 1}),
                           content_type="application/json")
    assert response.status_code == 401

"""Bad input to the API gets a 400 naming the field, never a 500, and writes nothing: on SQLite and on
PostgreSQL (which refuses NUL in text), for the callbacks and both hooks."""

import json

import pytest

from deliveries.models import AuditEvent, PipelineRun, Project, Stage
from tests.factories import EnvironmentFactory, ProjectFactory, RunFactory, issue_project_token

pytestmark = pytest.mark.django_db

HOOK = "/api/v1/hooks/jenkins-notification/"
GITLAB_HOOK = "/api/v1/hooks/gitlab/"
RUNS = "/api/v1/projects/shop/runs/"
STAGES = "/api/v1/projects/shop/runs/3/stages/"
DEPLOYMENTS = "/api/v1/projects/shop/runs/3/deployments/"
MS0 = 1_714_557_600_000  # 2024-05-01 10:00 UTC


@pytest.fixture
def token():
    _, _, token = issue_project_token(ProjectFactory(slug="shop", jenkins_job_path="delivery/shop"))
    return token


def post(client, url, body, token):
    client.raise_request_exception = False  # a 500 is an answer here, not an exception in the test
    data = body if isinstance(body, str) else json.dumps(body)
    return client.post(url, data=data, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {token}",
                       HTTP_X_GITLAB_TOKEN="not-the-secret", HTTP_X_GITLAB_EVENT="Push Hook")


def notification(**build) -> dict:
    return {"name": "shop", "url": "job/delivery/job/shop/", "build": {
        "number": 18, "phase": "STARTED", "full_url": "https://jenkins.example.com/job/delivery/job/shop/18/",
        "scm": {"branch": "origin/dev", "commit": "a" * 40}, **build}}


def nothing_written():
    return not PipelineRun.objects.exists() and not Stage.objects.exists() and not AuditEvent.objects.exists()


# --- JSON nested too deep ------------------------------------------------------------------------------

DEEP_BODIES = {
    "lists": "[" * 5000 + "]" * 5000,
    "objects": '{"a": ' * 3000 + "1" + "}" * 3000,
    "a field": '{"build_number": 3, "branch": ' + "[" * 2000 + "]" * 2000 + "}",
    "past the limit": '{"build": ' + "[" * 100 + "]" * 100 + "}",
}


@pytest.mark.parametrize("url", [RUNS, STAGES, DEPLOYMENTS, HOOK, GITLAB_HOOK])
@pytest.mark.parametrize("shape", list(DEEP_BODIES))
def test_it_refuses_json_nested_too_deep_with_400(client, token, url, shape):
    response = post(client, url, DEEP_BODIES[shape], token)
    assert response.status_code == 400
    assert response.json() == {"body": ["JSON nested deeper than 64 levels."]}
    assert nothing_written()


def test_it_takes_json_nested_as_deep_as_payloads_go(client, token):
    payload = notification(test_summary={"a": [[[[[{"b": [1]}]]]]]})
    assert post(client, f"{HOOK}?token={token}", payload, token).status_code == 200


# --- NUL characters --------------------------------------------------------------------------------


@pytest.mark.parametrize(("url", "body", "field"), [
    (HOOK, notification(scm={"branch": "de\x00v"}), "build.scm.branch"),
    (HOOK, notification(full_url="https://jenkins.example.com/job/delivery/job/shop/18/\x00"), "build.full_url"),
    (HOOK, {**notification(), "name": "sh\x00op"}, "name"),
    (HOOK, notification(parameters={"PORTAL_RUN_ID\x00": "1"}), "build.parameters"),
    (RUNS, {"build_number": 3, "branch": "de\x00v"}, "branch"),
    (RUNS, {"build_number": 3, "commit_title": "fix\x00"}, "commit_title"),
    (STAGES, {"name": "Bu\x00ild", "status": "running"}, "name"),
    (STAGES, {"name": "Build", "status": "running", "log_excerpt": "ok\x00"}, "log_excerpt"),
    (DEPLOYMENTS, {"environment": "staging\x00", "status": "success"}, "environment"),
    (DEPLOYMENTS, {"environment": "staging", "status": "success", "images": [{"repository": "a\x00", "tag": "1"}]},
     "images.0.repository"),
    (GITLAB_HOOK, {"object_kind": "push", "ref": "refs/heads/dev\x00", "project": {"path_with_namespace": "g/s"}},
     "ref"),
])
def test_it_refuses_nul_in_any_text_field_with_400_naming_it(client, token, url, body, field):
    EnvironmentFactory(slug="staging")
    response = post(client, f"{url}?token={token}" if url == HOOK else url, body, token)
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert nothing_written()


@pytest.mark.parametrize("bad", ["dp_1234\x00678_secret", "dp_" + "\x00" * 8 + "_secret", "dp_zzzzzzzz_s"])
def test_a_token_with_nul_or_not_hex_is_refused_with_401(client, token, bad):
    client.raise_request_exception = False
    response = client.post(HOOK, data=json.dumps(notification()), content_type="application/json",
                           HTTP_X_PORTAL_TOKEN=bad)
    assert response.status_code == 401
    assert nothing_written()


def test_a_nul_in_the_query_string_is_a_json_400(client, token):
    client.raise_request_exception = False
    response = client.post(f"{HOOK}?token=dp_1234%00678_secret", data=json.dumps(notification()),
                           content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"detail": "NUL characters are not allowed in the query string."}
    assert nothing_written()


# --- Numbers: ASCII digits only ----------------------------------------------------------------------


@pytest.mark.parametrize("number", ["²", "٣", "３", "1²"])
def test_the_hook_refuses_a_build_number_not_in_ascii_digits(client, token, number):
    response = post(client, f"{HOOK}?token={token}", notification(number=number), token)
    assert response.status_code == 400
    assert list(response.json()) == ["build.number"]
    assert nothing_written()


@pytest.mark.parametrize("number", ["²", "٣", "３"])
def test_the_runs_api_refuses_a_build_number_not_in_ascii_digits(client, token, number):
    response = post(client, RUNS, {"build_number": number}, token)
    assert response.status_code == 400
    assert list(response.json()) == ["build_number"]
    assert nothing_written()


def test_the_runs_api_still_takes_a_build_number_as_ascii_text(client, token):
    assert post(client, RUNS, {"build_number": " 7 "}, token).status_code == 201


def test_the_hook_does_not_attach_a_build_to_a_run_named_in_other_digits(client, token):
    portal_run = RunFactory(project=Project.objects.get(slug="shop"), build_number=None, status="queued")
    digits = "".join(chr(0x0660 + int(digit)) for digit in str(portal_run.pk))  # Arabic-Indic digits
    response = post(client, f"{HOOK}?token={token}", notification(parameters={"PORTAL_RUN_ID": digits}), token)
    assert response.status_code == 200
    assert response.json()["run"] != portal_run.pk
    portal_run.refresh_from_db()
    assert portal_run.build_number is None


# --- Moments and durations that would overflow ---------------------------------------------------------


@pytest.mark.parametrize(("build", "field"), [
    ({"phase": "COMPLETED", "status": "SUCCESS", "timestamp": MS0, "duration": 10**18}, "build.duration"),
    ({"phase": "COMPLETED", "status": "SUCCESS", "timestamp": MS0, "duration": -5}, "build.duration"),
    ({"phase": "COMPLETED", "status": "SUCCESS", "timestamp": 253_402_300_799_000, "duration": 10**10},
     "build.timestamp"),
    ({"phase": "COMPLETED", "status": "SUCCESS", "timestamp": "9999-12-31T23:59:59+00:00", "duration": 10**10},
     "build.timestamp"),
    ({"phase": "STARTED", "timestamp": 10**20}, "build.timestamp"),
])
def test_the_hook_refuses_moments_and_durations_out_of_range_with_400(client, token, build, field):
    response = post(client, f"{HOOK}?token={token}", notification(**build), token)
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert nothing_written()


@pytest.mark.parametrize(("body", "field"), [
    ({"started_at": "2024-01-01T00:00:00Z", "duration_ms": 10**18}, "duration_ms"),
    ({"started_at": "9999-12-31T23:00:00Z", "duration_ms": 10**10}, "started_at"),
    ({"finished_at": "9999-12-31T23:59:59Z", "duration_ms": 10**10}, "finished_at"),
    ({"started_at": 253_402_300_799_000}, "started_at"),
    ({"started_at": "1900-01-01T00:00:00Z"}, "started_at"),
    ({"started_at": "2024-01-01T00:00:00Z", "duration_ms": "٣"}, "duration_ms"),
])
def test_a_stage_callback_refuses_moments_and_durations_out_of_range_with_400(client, token, body, field):
    response = post(client, STAGES, {"name": "Build", "status": "success", **body}, token)
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert nothing_written()


@pytest.mark.parametrize("url", [RUNS, DEPLOYMENTS])
def test_runs_and_deployments_refuse_moments_out_of_range_with_400(client, token, url):
    EnvironmentFactory(slug="staging")
    body = {"build_number": 3} if url == RUNS else {"environment": "staging", "status": "success"}
    response = post(client, url, {**body, "started_at": "9999-12-31T23:59:59Z"}, token)
    assert response.status_code == 400
    assert list(response.json()) == ["started_at"]
    assert nothing_written()

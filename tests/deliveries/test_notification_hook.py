"""The Jenkins Notification plugin endpoint: the plugin's JSON as it sends it, real payloads replayed."""

import copy
import json
from datetime import UTC, datetime, timedelta

import pytest

from deliveries.models import AuditEvent, PipelineRun, RunStatus, RunTrigger
from tests.factories import ProjectFactory, RunFactory, issue_project_token

pytestmark = pytest.mark.django_db

URL = "/api/v1/hooks/jenkins-notification/"
CONTENT_TYPE = "application/json;charset=UTF-8"  # what the plugin sends
T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
MS0 = int(T0.timestamp() * 1000)
SHA = "72aef114ab1201f5a5cd734220c9ec738c4e2910"


@pytest.fixture
def shop():
    project, _, token = issue_project_token(ProjectFactory(slug="shop", name="Shop"))
    return project, token


def notify(client, token, payload, *, how="query"):
    body = payload if isinstance(payload, str | bytes) else json.dumps(payload)
    if how == "query":
        return client.post(f"{URL}?token={token}", data=body, content_type=CONTENT_TYPE)
    if how == "header":
        return client.post(URL, data=body, content_type=CONTENT_TYPE, HTTP_X_PORTAL_TOKEN=token)
    return client.post(URL, data=body, content_type=CONTENT_TYPE, HTTP_AUTHORIZATION=f"Bearer {token}")


def message(phase, *, number=18, status=None, timestamp=None, duration=None, **build):
    """A message shaped as the plugin (1.17+) makes it: snake_case, nulls omitted, `timestamp` and `duration`
    in ms as the JobListener sets them (STARTED: the start; COMPLETED: start + duration; FINALIZED: now)."""
    payload = {
        "name": "shop",  # the job's own name; `url` has its folders (the factory's job path is delivery/shop)
        "display_name": "shop",
        "url": "job/delivery/job/shop/",
        "build": {
            "full_url": f"https://jenkins.example.com/job/delivery/job/shop/{number}/",
            "number": number,
            "queue_id": 612,
            "phase": phase,
            "url": f"job/delivery/job/shop/{number}/",
            "scm": {"url": "git@gitlab.example.com:group/shop.git", "branch": "origin/dev", "commit": SHA,
                    "changes": ["app/views.py"], "culprits": ["dana"]},
            "log": "",
            "artifacts": {},
            **build,
        },
    }
    if status:
        payload["build"]["status"] = status
    if timestamp is not None:
        payload["build"]["timestamp"] = timestamp
    if duration is not None:
        payload["build"]["duration"] = duration
    return payload


def the_run(project, number=18) -> PipelineRun:
    return PipelineRun.objects.get(project=project, build_number=number)


# --- Real payloads ---------------------------------------------------------------------------------


@pytest.fixture
def job_of(shop):
    """The shop project, its Jenkins job path set to `job` (a real payload's)."""

    def set_job(job: str):
        project, token = shop
        project.jenkins_job_path = job
        project.save(update_fields=["jenkins_job_path"])
        return project, token

    return set_job


def test_it_records_the_real_completed_payload_of_the_plugins_example(client, job_of, shared_fixture):
    project, token = job_of("asgard")
    payload = json.loads(shared_fixture("jenkins/notification_plugin_payload.gist-modcab.json").read_bytes())
    response = notify(client, token, payload)
    assert response.status_code == 200
    run = the_run(project, 18)
    assert response.json() == {"run": run.pk, "build_number": 18, "status": "success"}
    assert (run.status, run.branch, run.commit_sha) == ("success", "master", "c6d86dc654b12425e706bcf951adfe5a8627a517")
    assert run.build_url == "http://localhost:8080/job/asgard/18/"
    assert run.trigger == RunTrigger.JENKINS
    assert run.finished_at is not None  # that plugin version sent no timestamp: the time it was received
    event = AuditEvent.objects.get(project=project)
    assert event.action == "run.created" and event.actor_label.startswith("jenkins (dp_")


def test_it_records_the_real_finalized_payload_of_a_matrix_bot(client, job_of, shared_fixture):
    project, token = job_of("Synapse")
    path = shared_fixture("jenkins/notification_plugin_payload.finalized.matrix-neb-comment.json")
    response = notify(client, token, path.read_bytes(), how="header")
    assert response.status_code == 200
    run = the_run(project, 8)
    assert (run.status, run.branch, run.commit_sha) == ("success", "develop", SHA)
    assert run.build_url == "http://localhost:9009/job/Synapse/8/"


def test_the_real_payloads_twice_change_nothing_the_second_time(client, job_of, shared_fixture):
    project, token = job_of("asgard")
    body = shared_fixture("jenkins/notification_plugin_payload.gist-modcab.json").read_bytes()
    notify(client, token, body)
    events = AuditEvent.objects.count()
    assert notify(client, token, body).status_code == 200
    assert PipelineRun.objects.count() == 1 and AuditEvent.objects.count() == events


def test_a_project_without_a_job_path_takes_any_job(client, job_of, shared_fixture):
    project, token = job_of("")
    payload = json.loads(shared_fixture("jenkins/notification_plugin_payload.gist-modcab.json").read_bytes())
    assert notify(client, token, payload).status_code == 200
    assert the_run(project, 18).build_url == "http://localhost:8080/job/asgard/18/"


# --- The job and the run's identity ----------------------------------------------------------------


def test_it_refuses_another_jobs_payload_with_409_and_changes_nothing(client, shop, shared_fixture):
    project, token = shop  # job path delivery/shop; the payload is job asgard's build 18
    run = RunFactory(project=project, build_number=18, status=RunStatus.SUCCESS, branch="dev", commit_sha=SHA,
                     build_url="https://jenkins.example.com/job/delivery/job/shop/18/")
    events = AuditEvent.objects.count()
    payload = json.loads(shared_fixture("jenkins/notification_plugin_payload.gist-modcab.json").read_bytes())
    response = notify(client, token, payload)
    assert response.status_code == 409
    assert "asgard" in response.json()["name"][0] and "delivery/shop" in response.json()["name"][0]
    fresh = the_run(project, 18)
    assert (fresh.branch, fresh.commit_sha, fresh.build_url, fresh.status) == (
        "dev", SHA, run.build_url, RunStatus.SUCCESS)
    assert AuditEvent.objects.count() == events


@pytest.mark.parametrize(("where", "value"), [
    ("url", "job/other/job/shop/"),
    ("build.url", "job/asgard/18/"),
    ("build.full_url", "https://jenkins.example.com/jenkins/job/asgard/18/"),
    ("name", "asgard"),
])
def test_it_refuses_a_payload_naming_another_job_anywhere(client, shop, where, value):
    project, token = shop
    payload = message("STARTED")
    if where.startswith("build."):
        payload["build"][where.removeprefix("build.")] = value
    else:
        payload[where] = value
    response = notify(client, token, payload)
    assert response.status_code == 409
    assert not PipelineRun.objects.exists()


def test_it_takes_the_job_by_name_alone_when_the_payload_has_no_url(client, shop):
    project, token = shop
    payload = message("STARTED")
    del payload["url"], payload["build"]["url"], payload["build"]["full_url"]
    assert notify(client, token, payload).status_code == 200
    payload["name"] = "asgard"
    assert notify(client, token, payload).status_code == 409


def test_it_takes_a_job_path_with_escaped_characters(client, shop):
    project, token = shop
    project.jenkins_job_path = "delivery/my shop"
    project.save(update_fields=["jenkins_job_path"])
    payload = message("STARTED", full_url="https://jenkins.example.com/job/delivery/job/my%20shop/18/",
                      url="job/delivery/job/my%20shop/18/")
    payload.update(name="my shop", url="job/delivery/job/my%20shop/")
    assert notify(client, token, payload).status_code == 200


def test_it_refuses_to_rewrite_a_finished_runs_identity_with_409_and_audits_it(client, shop):
    project, token = shop
    notify(client, token, message("COMPLETED", status="SUCCESS", timestamp=MS0 + 600_000, duration=600_000))
    before = the_run(project)
    hostile = message("FINALIZED", status="FAILURE", timestamp=MS0 + 660_000, duration=600_000,
                      full_url="https://jenkins.example.com/job/delivery/job/shop/18/rewritten/")
    hostile["build"]["scm"].update(branch="origin/master", commit="f" * 40)
    response = notify(client, token, hostile)
    assert response.status_code == 409
    assert set(response.json()) == {"branch", "commit_sha", "build_url"}
    after = the_run(project)
    assert (after.branch, after.commit_sha, after.build_url, after.status) == (
        before.branch, before.commit_sha, before.build_url, RunStatus.SUCCESS)
    event = AuditEvent.objects.filter(project=project).latest("pk")
    assert event.action == "run.identity_refused"
    assert event.data["refused"]["branch"] == {"kept": "dev", "refused": "master"}


def test_the_same_identity_again_is_no_conflict(client, shop):
    project, token = shop
    notify(client, token, message("COMPLETED", status="SUCCESS", timestamp=MS0 + 600_000, duration=600_000))
    again = message("FINALIZED", status="SUCCESS", timestamp=MS0 + 660_000, duration=600_000)
    again["build"]["scm"]["commit"] = SHA.upper()
    assert notify(client, token, again).status_code == 200


# --- A whole build, in order and out of order ------------------------------------------------------


def test_it_follows_a_build_through_its_phases(client, shop):
    project, token = shop
    queued = message("QUEUED", timestamp=MS0 - 5_000)
    started = message("STARTED", timestamp=MS0)
    completed = message("COMPLETED", status="UNSTABLE", timestamp=MS0 + 600_000, duration=600_000)
    finalized = message("FINALIZED", status="UNSTABLE", timestamp=MS0 + 660_000, duration=600_000)

    assert notify(client, token, queued).json()["status"] == "queued"
    run = the_run(project)
    assert (run.status, run.queue_id, run.branch, run.commit_sha) == ("queued", 612, "dev", SHA)
    assert notify(client, token, started).json()["status"] == "running"
    assert the_run(project).started_at == T0
    assert notify(client, token, completed).json()["status"] == "unstable"
    assert notify(client, token, finalized).json()["status"] == "unstable"
    run = the_run(project)
    assert (run.started_at, run.finished_at) == (T0, T0 + timedelta(minutes=10))
    assert PipelineRun.objects.count() == 1


def test_finalized_before_completed_ends_in_the_same_state(client, shop):
    project, token = shop
    notify(client, token, message("STARTED", timestamp=MS0))
    notify(client, token, message("FINALIZED", status="FAILURE", timestamp=MS0 + 660_000, duration=600_000))
    notify(client, token, message("COMPLETED", status="FAILURE", timestamp=MS0 + 600_000, duration=600_000))
    run = the_run(project)
    assert (run.status, run.started_at, run.finished_at) == ("failed", T0, T0 + timedelta(minutes=10))


def test_completed_without_started_gives_the_start_from_the_duration(client, shop):
    project, token = shop
    notify(client, token, message("COMPLETED", status="SUCCESS", timestamp=MS0 + 600_000, duration=600_000))
    notify(client, token, message("STARTED", timestamp=MS0))  # late: must not reopen the run
    notify(client, token, message("QUEUED", timestamp=MS0 - 5_000))
    run = the_run(project)
    assert (run.status, run.started_at, run.finished_at) == ("success", T0, T0 + timedelta(minutes=10))


def test_a_finalized_result_corrects_the_completed_one(client, shop):
    project, token = shop
    notify(client, token, message("COMPLETED", status="SUCCESS", timestamp=MS0 + 600_000, duration=600_000))
    notify(client, token, message("FINALIZED", status="ABORTED", timestamp=MS0 + 660_000, duration=600_000))
    assert the_run(project).status == RunStatus.ABORTED


def test_not_built_is_recorded_as_aborted(client, shop):
    project, token = shop
    assert notify(client, token, message("COMPLETED", status="NOT_BUILT")).json()["status"] == "aborted"


@pytest.mark.parametrize(("branch", "expected"), [("origin/dev", "dev"), ("refs/heads/dev", "dev"),
                                                   ("refs/remotes/origin/feature/x", "feature/x"),
                                                   ("master", "master")])
def test_it_takes_the_branch_name_out_of_what_git_reports(client, shop, branch, expected):
    project, token = shop
    payload = message("STARTED")
    payload["build"]["scm"]["branch"] = branch
    notify(client, token, payload)
    assert the_run(project).branch == expected


def test_it_attaches_the_build_to_the_run_the_portal_triggered(client, shop, users):
    project, token = shop
    portal_run = RunFactory(project=project, build_number=None, status=RunStatus.QUEUED, trigger=RunTrigger.PORTAL,
                            triggered_by=users.developer, started_at=None, finished_at=None)
    payload = message("STARTED", timestamp=MS0, parameters={"PORTAL_RUN_ID": str(portal_run.pk), "BRANCH": "dev"})
    response = notify(client, token, payload)
    assert response.json()["run"] == portal_run.pk
    portal_run.refresh_from_db()
    assert (portal_run.build_number, portal_run.status, portal_run.started_at) == (18, "running", T0)
    assert PipelineRun.objects.count() == 1


# --- What it ignores and what it refuses ----------------------------------------------------------


def test_it_ignores_fields_it_does_not_know(client, shop):
    project, token = shop
    payload = message("STARTED", timestamp=MS0, future_field={"a": 1})
    payload["build"]["test_summary"] = {"total": 3, "failed": 0, "skipped": 0, "passed": 3, "failed_tests": []}
    payload["build"]["notes"] = "deployed"
    payload["something_new"] = True
    assert notify(client, token, payload).status_code == 200


def test_it_ignores_known_fields_of_the_wrong_type(client, shop):
    project, token = shop
    payload = message("STARTED", timestamp="yesterday", duration="long", queue_id=[1])
    payload["build"]["scm"] = "git"
    payload["build"]["parameters"] = ["PORTAL_RUN_ID=1"]
    assert notify(client, token, payload).status_code == 200
    run = the_run(project)
    assert (run.status, run.queue_id, run.branch) == ("running", None, "")


def test_it_accepts_the_timestamp_as_iso_text_as_old_plugin_versions_send_it(client, shop):
    project, token = shop
    notify(client, token, message("STARTED", timestamp="2024-05-01T10:00:00.0+00:00"))
    assert the_run(project).started_at == T0


@pytest.mark.parametrize("how", ["query", "header", "bearer"])
def test_it_takes_the_token_from_the_query_a_header_or_bearer(client, shop, how):
    project, token = shop
    assert notify(client, token, message("STARTED"), how=how).status_code == 200


@pytest.mark.parametrize("token", ["", "dp_12345678_wrong", "garbage"])
def test_it_refuses_a_missing_or_invalid_token_with_401(client, shop, token):
    response = notify(client, token, message("STARTED")) if token else client.post(
        URL, data=json.dumps(message("STARTED")), content_type=CONTENT_TYPE)
    assert response.status_code == 401
    assert not PipelineRun.objects.exists()


def test_the_run_goes_to_the_tokens_project(client, shop):
    project, token = shop
    _, _, other = issue_project_token(ProjectFactory(slug="other", jenkins_job_path=""))
    notify(client, other, message("STARTED"))
    assert not PipelineRun.objects.filter(project=project).exists()
    assert PipelineRun.objects.get().project.slug == "other"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ('{"build": {"number": 1,', None),
        ("[1, 2, 3]", "body"),
        ('{"name": "shop"}', "build"),
        ('{"build": {"phase": "STARTED"}}', "build.number"),
        ('{"build": {"number": 0, "phase": "STARTED"}}', "build.number"),
        ('{"build": {"number": "x", "phase": "STARTED"}}', "build.number"),
        ('{"build": {"number": 3}}', "build.phase"),
        ('{"build": {"number": 3, "phase": "EXPLODED"}}', "build.phase"),
    ],
)
def test_it_refuses_a_message_it_cannot_understand_with_400(client, shop, body, field):
    project, token = shop
    response = notify(client, token, body)
    assert response.status_code == 400
    if field:
        assert field in response.json()
    assert not PipelineRun.objects.exists()


def test_it_refuses_a_body_that_is_not_json_with_415(client, shop):
    project, token = shop
    response = client.post(f"{URL}?token={token}", data="phase=STARTED", content_type="text/plain")
    assert response.status_code == 415


def test_it_answers_405_to_get(client, shop):
    project, token = shop
    assert client.get(f"{URL}?token={token}").status_code == 405


def test_it_needs_no_session(client, shop):
    project, token = shop
    response = client.post(URL, data=json.dumps(message("STARTED")), content_type=CONTENT_TYPE)
    assert response.status_code == 401 and "Location" not in response.headers


def test_the_message_builder_matches_the_real_payload_shape(shared_fixture):
    # Keep the builder honest: every key of the real payload is one the builder also sends.
    real = json.loads(shared_fixture("jenkins/notification_plugin_payload.gist-modcab.json").read_bytes())
    built = message("COMPLETED", status="SUCCESS")
    assert set(real) <= set(built)
    assert set(real["build"]) <= set(copy.deepcopy(built["build"]))
    assert set(real["build"]["scm"]) <= set(built["build"]["scm"])

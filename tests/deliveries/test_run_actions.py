"""The run actions of the UI: Run pipeline, Abort, and the live fragment of the run page."""

from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from deliveries.models import AuditEvent, PipelineRun, RunStatus, RunTrigger, Stage
from simulators.jenkins import Scenario, SimulatedJenkins
from tests.deliveries.test_triggers import take_scheduled_looks
from tests.factories import ProjectFactory, RunFactory, StageFactory, UserFactory

pytestmark = pytest.mark.django_db

USER, TOKEN = "portal", "api-token"
JOB = "delivery/shop"


@pytest.fixture
def project():
    return ProjectFactory(slug="shop", name="Shop", jenkins_job_path=JOB)


@pytest.fixture
def jenkins_settings(settings):
    """Jenkins configured, at an address nothing listens on: these tests never reach it."""
    settings.JENKINS_URL = "http://127.0.0.1:9"
    settings.JENKINS_USER, settings.JENKINS_TOKEN = USER, TOKEN
    return settings


@pytest.fixture
def fake(settings):
    with SimulatedJenkins(users={USER: TOKEN}, queue_seconds=0.05, speed=0.02) as fake:
        fake.add_job(JOB)
        settings.JENKINS_URL = fake.url
        settings.JENKINS_USER, settings.JENKINS_TOKEN = USER, TOKEN
        yield fake


def trigger_url(slug="shop"):
    return reverse("run-pipeline", args=[slug])


def running_run(project):
    return RunFactory(project=project, status=RunStatus.RUNNING, finished_at=None)


# --- Run pipeline --------------------------------------------------------------------------------------


def test_it_queues_a_run_for_a_developer(client, users, project, jenkins_settings,
                                         django_capture_on_commit_callbacks):
    client.force_login(users.developer)
    with mock.patch("deliveries.triggers.async_task") as async_task:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = client.post(trigger_url(), {"branch": "feature/search", "commit": "ABCDEF1"})
    run = PipelineRun.objects.get()
    assert response.status_code == 302
    assert response.url == reverse("run-detail", args=["shop", run.pk])
    assert (run.status, run.trigger, run.branch, run.commit_sha) == (
        RunStatus.QUEUED, RunTrigger.PORTAL, "feature/search", "abcdef1")
    assert run.triggered_by == users.developer
    assert len(callbacks) == 1
    async_task.assert_called_once_with("deliveries.tasks.trigger_run", run.pk, task_name=f"trigger run {run.pk}")
    page = client.get(response.url)
    assert "Run of feature/search requested" in page.content.decode()


@pytest.mark.parametrize("role", ["outsider", "techlead", "operator"])
def test_only_developers_may_run_the_pipeline(client, users, project, jenkins_settings, role):
    client.force_login(getattr(users, role))
    assert client.post(trigger_url(), {"branch": "dev"}).status_code == 403
    assert not PipelineRun.objects.exists()


def test_running_the_pipeline_needs_a_post(client, users, project, jenkins_settings):
    client.force_login(users.developer)
    assert client.get(trigger_url()).status_code == 405


def test_anonymous_visitors_are_sent_to_the_login_page(client, project, jenkins_settings):
    response = client.post(trigger_url(), {"branch": "dev"})
    assert response.status_code == 302 and response.url.startswith(reverse("login"))


def test_it_is_404_for_an_unknown_project(client, users, jenkins_settings):
    client.force_login(users.developer)
    assert client.post(trigger_url("nope"), {"branch": "dev"}).status_code == 404


@pytest.mark.parametrize("data, error", [
    ({"branch": "dev..x"}, "not a valid git branch name"),
    ({"branch": "feature/bad name"}, "not a valid git branch name"),
    ({"branch": "-x"}, "not a valid git branch name"),
    ({"branch": "x.lock"}, "not a valid git branch name"),
    ({"branch": ""}, "This field is required"),
    ({"branch": "dev", "commit": "xyz1234"}, "7 to 40 hexadecimal digits"),
    ({"branch": "dev", "commit": "abc12"}, "7 to 40 hexadecimal digits"),
])
def test_it_refuses_a_bad_branch_or_commit(client, users, project, jenkins_settings, data, error):
    client.force_login(users.developer)
    response = client.post(trigger_url(), data)
    assert response.status_code == 400
    assert error in response.content.decode()
    assert not PipelineRun.objects.exists()


def test_it_says_so_when_jenkins_is_not_configured(client, users, project, settings):
    settings.JENKINS_URL = ""
    client.force_login(users.developer)
    with mock.patch("deliveries.triggers.async_task") as async_task:
        response = client.post(trigger_url(), {"branch": "dev"}, follow=True)
    assert "Jenkins is not configured (JENKINS_URL is empty)" in response.content.decode()
    assert not PipelineRun.objects.exists()
    async_task.assert_not_called()


def test_the_project_page_offers_the_form_to_developers_only(client, users, project, jenkins_settings):
    RunFactory(project=project, branch="feature/old")
    client.force_login(users.developer)
    body = client.get(project.get_absolute_url()).content.decode()
    assert "Run pipeline" in body
    assert '<option value="feature/old">' in body and '<option value="master">' in body
    client.force_login(users.techlead)
    assert f'action="{trigger_url()}"' not in client.get(project.get_absolute_url()).content.decode()


def test_the_pages_say_when_jenkins_is_simulated(client, users, project, jenkins_settings):
    client.force_login(users.developer)
    assert "simulated Jenkins" not in client.get(project.get_absolute_url()).content.decode()
    jenkins_settings.JENKINS_SIMULATED = True
    body = client.get(project.get_absolute_url()).content.decode()
    assert 'class="banner simulated"' in body
    assert "Simulated Jenkins: the run is played by an imitation" in body
    assert "simulated Jenkins" in client.get(reverse("home")).content.decode()


def test_a_triggered_run_follows_the_build_on_jenkins(client, users, project, fake,
                                                      django_capture_on_commit_callbacks):
    client.force_login(users.developer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(trigger_url(), {"branch": "dev"})
    take_scheduled_looks(fake)
    run = PipelineRun.objects.get()
    # The test settings run tasks inline: the trigger task has run, and the looks it scheduled followed the item.
    assert (run.queue_id, run.build_number, run.status) == (100, 1, RunStatus.RUNNING)
    assert fake.queue[100].params["PORTAL_RUN_ID"] == str(run.pk)
    assert response.status_code == 302


def test_it_refuses_a_second_run_of_a_branch_and_commit_still_queued_and_names_the_first(
        client, users, project, jenkins_settings, django_capture_on_commit_callbacks):
    client.force_login(users.developer)
    with mock.patch("deliveries.triggers.async_task") as async_task:
        with django_capture_on_commit_callbacks(execute=True):
            client.post(trigger_url(), {"branch": "dev", "commit": "abcdef1"})
            response = client.post(trigger_url(), {"branch": "dev", "commit": "abcdef1"})
    first = PipelineRun.objects.get()  # no second run
    assert async_task.call_count == 1  # and no second Jenkins trigger
    assert response.status_code == 302 and response.url == first.get_absolute_url()
    page = client.get(response.url).content.decode()
    assert f"A run of dev at abcdef1 is already queued: run {first.pk}." in page


def test_a_run_of_the_same_commit_may_be_queued_once_the_first_has_started_or_for_another_commit(
        client, users, project, jenkins_settings, django_capture_on_commit_callbacks):
    client.force_login(users.developer)
    with mock.patch("deliveries.triggers.async_task") as async_task:
        with django_capture_on_commit_callbacks(execute=True):
            client.post(trigger_url(), {"branch": "dev", "commit": "abcdef1"})
            client.post(trigger_url(), {"branch": "dev", "commit": "abcdef2"})
            client.post(trigger_url(), {"branch": "dev"})
            PipelineRun.objects.update(status=RunStatus.RUNNING)
            client.post(trigger_url(), {"branch": "dev", "commit": "abcdef1"})
            client.post(trigger_url(), {"branch": "dev"})
    assert PipelineRun.objects.count() == 5 and async_task.call_count == 5


def test_a_run_of_the_branch_head_already_queued_is_named_too(client, users, project, jenkins_settings):
    queued = RunFactory(project=project, branch="dev", commit_sha="", build_number=7, status=RunStatus.QUEUED,
                        started_at=None, finished_at=None)
    client.force_login(users.developer)
    with mock.patch("deliveries.triggers.async_task") as async_task:
        response = client.post(trigger_url(), {"branch": "dev"}, follow=True)
    async_task.assert_not_called()
    assert "A run of the head of dev is already queued: #7." in response.content.decode()
    assert PipelineRun.objects.get() == queued


# --- Retry ----------------------------------------------------------------------------------------------


def failed_trigger(project):
    return RunFactory(project=project, build_number=None, branch="feature/x", commit_sha="abc1234",
                      status=RunStatus.TRIGGER_FAILED, status_reason="Jenkins at http://j is unreachable.",
                      trigger=RunTrigger.PORTAL)


def test_a_failed_trigger_is_retried_through_run_pipeline(client, users, project, fake,
                                                          django_capture_on_commit_callbacks):
    failed = failed_trigger(project)
    client.force_login(users.developer)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("run-retry", args=["shop", failed.pk]))
    take_scheduled_looks(fake)
    retried = PipelineRun.objects.exclude(pk=failed.pk).get()
    assert response.status_code == 302 and response.url == retried.get_absolute_url()
    assert (retried.branch, retried.commit_sha, retried.triggered_by) == ("feature/x", "abc1234", users.developer)
    assert (retried.queue_id, retried.build_number, retried.status) == (100, 1, RunStatus.RUNNING)
    assert fake.queue[100].params["COMMIT"] == "abc1234" and fake.queue[100].params["BRANCH"] == "feature/x"
    event = AuditEvent.objects.get(action="run.requested")
    assert event.data == {"branch": "feature/x", "commit": "abc1234", "retry_of": failed.pk}
    failed.refresh_from_db()
    assert failed.status == RunStatus.TRIGGER_FAILED  # the failed run stays as it was: history


def test_the_retry_button_shows_on_failed_triggers_for_those_who_may_run_the_pipeline(client, users, project):
    failed = failed_trigger(project)
    retry = reverse("run-retry", args=["shop", failed.pk])
    client.force_login(users.developer)
    assert retry in client.get(failed.get_absolute_url()).content.decode()
    client.force_login(users.operator)
    assert retry not in client.get(failed.get_absolute_url()).content.decode()
    client.force_login(users.developer)
    running = running_run(project)
    page = client.get(running.get_absolute_url()).content.decode()
    assert reverse("run-retry", args=["shop", running.pk]) not in page


@pytest.mark.parametrize("role", ["outsider", "techlead", "operator"])
def test_only_developers_may_retry(client, users, project, jenkins_settings, role):
    failed = failed_trigger(project)
    client.force_login(getattr(users, role))
    assert client.post(reverse("run-retry", args=["shop", failed.pk])).status_code == 403
    assert PipelineRun.objects.count() == 1


def test_only_a_failed_trigger_is_retried(client, users, project, jenkins_settings):
    run = RunFactory(project=project, status=RunStatus.FAILED)
    client.force_login(users.developer)
    response = client.post(reverse("run-retry", args=["shop", run.pk]))
    assert response.status_code == 409
    assert "Only a run whose trigger failed can be retried; this one is failed." in response.content.decode()
    assert client.get(reverse("run-retry", args=["shop", run.pk])).status_code == 405
    assert PipelineRun.objects.count() == 1


# --- Close by hand --------------------------------------------------------------------------------------


def close_url(run):
    return reverse("run-close", args=[run.project.slug, run.pk])


def test_an_operator_closes_a_run_by_hand_with_a_reason_and_it_is_audited(client, users, project):
    run = running_run(project)
    client.force_login(users.operator)
    response = client.post(close_url(run), {"reason": "Jenkins was rebuilt; this build is gone."})
    assert response.status_code == 302 and response.url == run.get_absolute_url()
    run.refresh_from_db()
    reason = "Closed by ops: Jenkins was rebuilt; this build is gone."
    assert (run.status, run.status_reason) == (RunStatus.ABORTED, reason)
    assert run.finished_at is not None
    event = AuditEvent.objects.get(action="run.closed")
    assert (event.actor, event.target_id) == (users.operator, str(run.pk))
    assert event.data == {"reason": reason}
    assert event.created_at is not None
    page = client.get(run.get_absolute_url()).content.decode()
    assert "Run closed as aborted." in page and "Closed by ops: Jenkins was rebuilt" in page


def test_a_superuser_may_close_a_run(client, project):
    run = running_run(project)
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    assert client.post(close_url(run), {"reason": "stale"}).status_code == 302
    run.refresh_from_db()
    assert run.status == RunStatus.ABORTED


@pytest.mark.parametrize("role", ["developer", "techlead", "outsider"])
def test_other_roles_may_not_close_a_run(client, users, project, role):
    run = running_run(project)
    client.force_login(getattr(users, role))
    assert client.post(close_url(run), {"reason": "stale"}).status_code == 403
    assert close_url(run) not in client.get(run.get_absolute_url()).content.decode()
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_closing_needs_a_reason_a_post_and_the_csrf_token(users, project):
    from django.test import Client

    run = running_run(project)
    client = Client(enforce_csrf_checks=True)
    client.force_login(users.operator)
    page = client.get(run.get_absolute_url()).content.decode()
    assert f'action="{close_url(run)}"' in page and 'name="reason"' in page and "csrfmiddlewaretoken" in page
    assert client.post(close_url(run), {"reason": "stale"}).status_code == 403  # no CSRF token
    token = client.cookies["csrftoken"].value
    response = client.post(close_url(run), {"reason": "   ", "csrfmiddlewaretoken": token})
    assert response.status_code == 400 and "This field is required." in response.content.decode()
    assert client.get(close_url(run)).status_code == 405
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and not AuditEvent.objects.exists()


def test_closing_a_finished_run_is_a_conflict(client, users, project):
    run = RunFactory(project=project, status=RunStatus.SUCCESS)
    client.force_login(users.operator)
    response = client.post(close_url(run), {"reason": "stale"})
    assert response.status_code == 409
    assert "already finished (success): nothing to close" in response.content.decode()
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCESS


# --- Abort --------------------------------------------------------------------------------------------


def test_it_aborts_a_running_build(client, users, project, fake, django_capture_on_commit_callbacks):
    fake.scenario = Scenario(hold_at="Checkout")
    client.force_login(users.developer)
    with django_capture_on_commit_callbacks(execute=True):
        client.post(trigger_url(), {"branch": "dev"})
    take_scheduled_looks(fake)
    run = PipelineRun.objects.get()
    assert run.build_number == 1 and fake.build(JOB, 1).building
    client.force_login(users.operator)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("run-abort", args=["shop", run.pk]))
    assert response.status_code == 302 and response.url == run.get_absolute_url()
    assert fake.saw("POST", "/job/delivery/job/shop/1/stop")
    run.refresh_from_db()
    assert run.status == RunStatus.ABORTED
    assert fake.wait_for_builds(5) and fake.build(JOB, 1).result == "ABORTED"


@pytest.mark.parametrize("role", ["outsider", "techlead"])
def test_only_developers_and_operators_may_abort(client, users, project, role):
    run = running_run(project)
    client.force_login(getattr(users, role))
    assert client.post(reverse("run-abort", args=["shop", run.pk])).status_code == 403
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING


def test_aborting_needs_a_post(client, users, project):
    client.force_login(users.developer)
    assert client.get(reverse("run-abort", args=["shop", running_run(project).pk])).status_code == 405


def test_aborting_a_finished_run_is_a_conflict(client, users, project):
    run = RunFactory(project=project, status=RunStatus.FAILED)
    client.force_login(users.developer)
    response = client.post(reverse("run-abort", args=["shop", run.pk]))
    assert response.status_code == 409
    assert "already finished (failed): nothing to abort" in response.content.decode()


def test_aborting_a_run_of_another_project_is_404(client, users, project):
    other = running_run(ProjectFactory())
    client.force_login(users.developer)
    assert client.post(reverse("run-abort", args=["shop", other.pk])).status_code == 404


def test_the_abort_button_shows_on_runs_in_progress_for_those_who_may_press_it(client, users, project):
    run = running_run(project)
    url = reverse("run-detail", args=["shop", run.pk])
    abort = reverse("run-abort", args=["shop", run.pk])
    client.force_login(users.developer)
    assert abort in client.get(url).content.decode()
    client.force_login(users.techlead)
    assert abort not in client.get(url).content.decode()
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCESS)
    client.force_login(users.developer)
    assert abort not in client.get(url).content.decode()


# --- the live run page ----------------------------------------------------------------------------------


def test_the_live_fragment_shows_the_current_stages(client, users, project):
    run = running_run(project)
    StageFactory(run=run, name="Checkout", order=1)
    StageFactory(run=run, name="App checks", order=2, status="running")
    client.force_login(users.techlead)
    response = client.get(reverse("run-live", args=["shop", run.pk]))
    body = response.content.decode()
    assert response.status_code == 200
    assert "<html" not in body and 'data-finished="false"' in body
    assert "Checkout" in body and "App checks" in body
    assert "no-store" in response["Cache-Control"] or "max-age=0" in response["Cache-Control"]
    StageFactory(run=run, name="Infrastructure checks", order=3)
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCESS)
    body = client.get(reverse("run-live", args=["shop", run.pk])).content.decode()
    assert "Infrastructure checks" in body and 'data-finished="true"' in body


def test_the_live_fragment_says_the_status_and_current_stage_for_the_status_region(client, users, project):
    run = running_run(project)
    StageFactory(run=run, name="Checkout", order=1)
    StageFactory(run=run, name="App checks", order=2, status="running")
    client.force_login(users.developer)
    page = client.get(run.get_absolute_url()).content.decode()
    region = '<p id="run-announcer" data-live-announcer class="visually-hidden" role="status"></p>'
    assert region in page  # outside the fragment
    body = client.get(reverse("run-live", args=["shop", run.pk])).content.decode()
    assert 'data-announce="Running, stage App checks"' in body
    # Abort in a part of its own: live.js leaves it, and the focus on it, alone while only the stages change
    actions = body.split('data-live-part="actions"')[1].split("data-live-part=")[0]
    assert reverse("run-abort", args=["shop", run.pk]) in actions and "App checks" not in actions
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCESS)
    Stage.objects.filter(run=run).update(status="success")
    body = client.get(reverse("run-live", args=["shop", run.pk])).content.decode()
    assert 'data-announce="Success"' in body
    assert "run-announcer" not in client.get(run.get_absolute_url()).content.decode()


def test_the_live_fragment_needs_a_role(client, users, project):
    run = running_run(project)
    client.force_login(users.outsider)
    assert client.get(reverse("run-live", args=["shop", run.pk])).status_code == 403
    client.logout()
    assert client.get(reverse("run-live", args=["shop", run.pk])).status_code == 302


def test_the_run_page_polls_only_while_the_run_is_in_progress(client, users, project):
    run = running_run(project)
    client.force_login(users.developer)
    body = client.get(run.get_absolute_url()).content.decode()
    assert "portal/live.js" in body
    assert f'data-live-url="{reverse("run-live", args=["shop", run.pk])}"' in body
    assert '<noscript><meta http-equiv="refresh"' in body  # without JavaScript, the page reloads itself
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.SUCCESS)
    body = client.get(run.get_absolute_url()).content.decode()
    assert "portal/live.js" not in body and "http-equiv" not in body


@pytest.mark.parametrize("name", ["run-detail", "run-live"])
def test_run_page_queries_do_not_grow_with_the_number_of_stages(client, users, project, name):
    from tests.factories import ArtifactFactory, DeploymentFactory

    run = running_run(project)
    url = reverse(name, args=["shop", run.pk])
    client.force_login(users.developer)
    for order in range(2):
        StageFactory(run=run, order=order)
    ArtifactFactory(run=run)
    DeploymentFactory(source_run=run)
    client.get(url)  # warm the session
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    for order in range(2, 10):
        StageFactory(run=run, order=order)
    ArtifactFactory(run=run, tag="other")
    DeploymentFactory(source_run=run)
    with CaptureQueriesContext(connection) as large:
        client.get(url)
    assert len(large) == len(small)


def test_the_live_script_is_served_from_our_own_static_files():
    from django.contrib.staticfiles import finders

    path = finders.find("portal/live.js")
    assert path
    with open(path) as file:
        script = file.read()
    assert "data-finished" in script and "INTERVAL_MS = 2000" in script
    assert "<script" not in script and "https://" not in script  # no library, no CDN

"""Starting, following and aborting runs on Jenkins (services and tasks), against the imitation Jenkins."""

import socket
import time
from unittest import mock

import pytest

from deliveries import tasks, triggers
from deliveries.models import AuditEvent, PipelineRun, RunStatus, RunTrigger
from simulators.jenkins import Scenario, SimulatedJenkins
from tests.factories import ProjectFactory, RunFactory, UserFactory

pytestmark = pytest.mark.django_db

USER, TOKEN = "portal", "api-token"
JOB = "delivery/shop"


@pytest.fixture
def fast(monkeypatch):
    """Backoff in milliseconds rather than seconds; `fast.sleeps` records every wait."""
    monkeypatch.setattr(triggers, "TRIGGER_BACKOFF_SECONDS", 0.01)
    monkeypatch.setattr(triggers, "QUEUE_POLL_FIRST_SECONDS", 0.01)
    monkeypatch.setattr(triggers, "QUEUE_POLL_MAX_SECONDS", 0.05)
    monkeypatch.setattr(triggers, "QUEUE_WAIT_SECONDS", 5.0)
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        time.sleep(seconds)

    monkeypatch.setattr(triggers, "sleep", sleep)
    sleep.sleeps = sleeps
    return sleep


@pytest.fixture
def fake(settings):
    with SimulatedJenkins(users={USER: TOKEN}, queue_seconds=0.05, speed=0.02) as fake:
        fake.add_job(JOB)
        settings.JENKINS_URL = fake.url
        settings.JENKINS_USER = USER
        settings.JENKINS_TOKEN = TOKEN
        yield fake


@pytest.fixture
def project():
    return ProjectFactory(slug="shop", jenkins_job_path=JOB)


@pytest.fixture
def developer(db):
    return UserFactory(username="dana", roles=["developer"])


def queued_run(project, **fields):
    return RunFactory(project=project, build_number=None, status=RunStatus.QUEUED, trigger=RunTrigger.PORTAL,
                      started_at=None, finished_at=None, **fields)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- request_run / request_abort (the web side) ----------------------------------------------------------


def test_it_records_a_queued_run_and_queues_the_trigger_on_commit(fake, project, developer,
                                                                   django_capture_on_commit_callbacks):
    with mock.patch("deliveries.triggers.async_task") as async_task:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            run = triggers.request_run(project=project, branch="dev", commit="abc1234", user=developer)
        async_task.assert_not_called()  # nothing leaves before the commit
        for callback in callbacks:
            callback()
    async_task.assert_called_once_with("deliveries.tasks.trigger_run", run.pk, task_name=f"trigger run {run.pk}")
    assert (run.status, run.trigger, run.triggered_by, run.branch, run.commit_sha) == (
        RunStatus.QUEUED, RunTrigger.PORTAL, developer, "dev", "abc1234")
    event = AuditEvent.objects.get(action="run.requested")
    assert (event.actor, event.target_id) == (developer, str(run.pk))
    assert event.data == {"branch": "dev", "commit": "abc1234"}
    assert fake.requests_seen == []  # the web request never talked to Jenkins


def test_it_refuses_to_request_a_run_without_jenkins(settings, project, developer):
    settings.JENKINS_URL = ""
    with pytest.raises(triggers.TriggerRefused, match="JENKINS_URL is empty"):
        triggers.request_run(project=project, branch="dev", user=developer)
    assert not PipelineRun.objects.exists()


def test_it_refuses_to_request_a_run_of_a_project_without_a_job(fake, developer):
    with pytest.raises(triggers.TriggerRefused, match="no Jenkins job path"):
        triggers.request_run(project=ProjectFactory(jenkins_job_path=""), branch="dev", user=developer)


def test_it_refuses_to_abort_a_finished_run(project, developer):
    run = RunFactory(project=project, status=RunStatus.SUCCESS)
    with pytest.raises(triggers.TriggerRefused, match=r"already finished \(success\)"):
        triggers.request_abort(run=run, user=developer)
    assert not AuditEvent.objects.exists()


# --- trigger_run (the worker side) -------------------------------------------------------------------


def test_it_triggers_the_build_and_follows_it_out_of_the_queue(fake, fast, project):
    run = queued_run(project, branch="feature/x", commit_sha="abc1234")
    assert tasks.trigger_run(run.pk) == RunStatus.RUNNING
    run.refresh_from_db()
    assert run.queue_id == 100
    assert run.build_number == 1
    assert run.build_url == f"{fake.url}job/delivery/job/shop/1/"
    assert run.started_at is not None
    assert fake.queue[100].params["PORTAL_RUN_ID"] == str(run.pk)
    assert fake.queue[100].params["BRANCH"] == "feature/x"
    assert fast.sleeps and max(fast.sleeps) <= 0.05


def test_triggering_twice_queues_one_build(fake, fast, project):
    run = queued_run(project)
    tasks.trigger_run(run.pk)
    tasks.trigger_run(run.pk)
    assert len(fake.queue) == 1


def test_a_run_with_a_queue_item_is_followed_not_triggered_again(fake, fast, project):
    run = queued_run(project)
    tasks.trigger_run(run.pk)
    PipelineRun.objects.filter(pk=run.pk).update(build_number=None, status=RunStatus.QUEUED)
    tasks.trigger_run(run.pk)
    assert len(fake.queue) == 1
    run.refresh_from_db()
    assert run.build_number == 1


def test_it_leaves_the_build_number_a_callback_attached(fake, fast, project):
    run = queued_run(project)
    PipelineRun.objects.filter(pk=run.pk).update(build_number=7, status=RunStatus.SUCCESS)
    tasks.trigger_run(run.pk)
    assert fake.requests_seen == []
    run.refresh_from_db()
    assert (run.build_number, run.status) == (7, RunStatus.SUCCESS)


def test_it_never_records_a_build_twice(fake, fast, project, caplog):
    # A callback without PORTAL_RUN_ID made a run of its own for build #1 meanwhile.
    other = RunFactory(project=project, build_number=1, status=RunStatus.RUNNING)
    run = queued_run(project)
    tasks.trigger_run(run.pk)
    run.refresh_from_db()
    assert run.build_number is None and run.queue_id == 100
    assert PipelineRun.objects.filter(project=project, build_number=1).get() == other
    assert "already recorded as another run" in caplog.text


def test_it_fails_the_run_when_jenkins_stays_unreachable(settings, fast, project):
    settings.JENKINS_URL = f"http://127.0.0.1:{closed_port()}"
    run = queued_run(project)
    assert tasks.trigger_run(run.pk) == RunStatus.TRIGGER_FAILED
    run.refresh_from_db()
    assert run.status_reason == f"Jenkins at {settings.JENKINS_URL} is unreachable."
    assert run.finished_at is not None
    assert fast.sleeps == [0.01, 0.02]  # three attempts, the wait doubling
    assert AuditEvent.objects.filter(action="run.trigger_failed", target_id=str(run.pk)).exists()


def test_refused_credentials_fail_the_run_at_once(fake, fast, project, settings):
    settings.JENKINS_TOKEN = "wrong"
    run = queued_run(project)
    tasks.trigger_run(run.pk)
    run.refresh_from_db()
    assert (run.status, run.status_reason) == (RunStatus.TRIGGER_FAILED, "Jenkins refused the credentials (401).")
    assert fast.sleeps == []
    assert fake.queue == {}


def test_an_unknown_job_fails_the_run_at_once(fake, fast):
    run = queued_run(ProjectFactory(jenkins_job_path="delivery/nope"))
    tasks.trigger_run(run.pk)
    run.refresh_from_db()
    assert (run.status, run.status_reason) == (RunStatus.TRIGGER_FAILED, "Jenkins has no job delivery/nope (404).")
    assert fast.sleeps == []


def test_a_trigger_that_succeeds_on_a_retry_queues_one_build(fake, fast, project, monkeypatch):
    from deliveries import jenkins

    real_trigger, calls = jenkins.trigger, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise jenkins.JenkinsError("Jenkins at x is unreachable.", retryable=True)
        return real_trigger(*args, **kwargs)

    monkeypatch.setattr(jenkins, "trigger", flaky)
    run = queued_run(project)
    assert tasks.trigger_run(run.pk) == RunStatus.RUNNING
    assert len(calls) == 2 and len(fake.queue) == 1


def test_a_cancelled_queue_item_ends_the_run_aborted(fake, fast, project, monkeypatch):
    fake.queue_seconds = 5

    def cancel_in_jenkins_then_sleep(seconds):
        fake.cancel_item(str(min(fake.queue)))  # someone cancels it in the Jenkins UI
        fast(seconds)

    monkeypatch.setattr(triggers, "sleep", cancel_in_jenkins_then_sleep)
    run = queued_run(project)
    assert tasks.trigger_run(run.pk) == RunStatus.ABORTED
    run.refresh_from_db()
    assert run.status_reason == "The build was cancelled in the Jenkins queue."
    assert run.build_number is None


def test_it_stops_following_a_long_wait_and_leaves_the_run_queued(fake, fast, project, monkeypatch):
    fake.queue_seconds = 5
    monkeypatch.setattr(triggers, "QUEUE_WAIT_SECONDS", 0.1)
    run = queued_run(project)
    assert tasks.trigger_run(run.pk) == RunStatus.QUEUED  # the build's callback will attach it
    assert sum(fast.sleeps) < 0.3


def test_a_finished_run_is_not_triggered(fake, fast, project):
    run = queued_run(project)
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.ABORTED)
    tasks.trigger_run(run.pk)
    assert fake.requests_seen == []


# --- abort_run ---------------------------------------------------------------------------------------


def test_it_stops_a_running_build(fake, fast, project):
    fake.scenario = Scenario(hold_at="Checkout")
    run = queued_run(project)
    tasks.trigger_run(run.pk)
    assert tasks.abort_run(run.pk) == RunStatus.ABORTED
    assert fake.saw("POST", "/job/delivery/job/shop/1/stop")
    assert fake.wait_for_builds(5)
    assert fake.build(JOB, 1).result == "ABORTED"
    run.refresh_from_db()
    assert (run.status, run.status_reason) == (RunStatus.ABORTED, "Aborted from the portal.")
    assert run.finished_at is not None
    assert AuditEvent.objects.filter(action="run.aborted", target_id=str(run.pk)).exists()


def test_it_cancels_a_queued_item(fake, fast, project):
    fake.queue_seconds = 5
    run = queued_run(project)
    PipelineRun.objects.filter(pk=run.pk).update(queue_id=fake_queue_item(fake))
    assert tasks.abort_run(run.pk) == RunStatus.ABORTED
    assert fake.saw("POST", "/queue/cancelItem?id=100")
    assert fake.queue[100].cancelled
    assert not [path for method, path in fake.requests_seen if path.endswith("/stop")]


def test_it_stops_the_build_an_item_became_meanwhile(fake, fast, project):
    fake.scenario = Scenario(hold_at="Checkout")
    run = queued_run(project)
    PipelineRun.objects.filter(pk=run.pk).update(queue_id=fake_queue_item(fake))
    assert fake_wait(lambda: fake.queue[100].build)
    assert tasks.abort_run(run.pk) == RunStatus.ABORTED
    assert fake.saw("POST", "/job/delivery/job/shop/1/stop")
    run.refresh_from_db()
    assert run.build_number == 1


def test_a_run_not_yet_sent_to_jenkins_is_aborted_without_asking_it(fake, fast, project):
    run = queued_run(project)
    assert tasks.abort_run(run.pk) == RunStatus.ABORTED
    assert fake.requests_seen == []
    tasks.trigger_run(run.pk)  # the trigger task, coming late, does nothing
    assert fake.requests_seen == []


def test_aborting_twice_or_a_finished_run_changes_nothing(fake, fast, project):
    run = RunFactory(project=project, status=RunStatus.SUCCESS)
    assert tasks.abort_run(run.pk) == RunStatus.SUCCESS
    assert fake.requests_seen == []
    queued = queued_run(project)
    tasks.abort_run(queued.pk)
    tasks.abort_run(queued.pk)
    assert AuditEvent.objects.filter(action="run.aborted").count() == 1


def test_an_abort_jenkins_refuses_leaves_the_run_with_the_reason(fake, fast, project, settings):
    fake.scenario = Scenario(hold_at="Checkout")
    run = queued_run(project)
    tasks.trigger_run(run.pk)
    settings.JENKINS_TOKEN = "wrong"
    assert tasks.abort_run(run.pk) == RunStatus.RUNNING
    run.refresh_from_db()
    assert run.status_reason == "Could not abort: Jenkins refused the credentials (401)."


def test_an_abort_during_the_trigger_stops_what_jenkins_queued(fake, fast, project, monkeypatch):
    fake.queue_seconds = 5
    run = queued_run(project)

    def aborted_in_the_portal_then_sleep(seconds):
        # abort_run came while the trigger was on its way: it marked the run aborted, with nothing to cancel yet.
        PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.ABORTED)
        fast(seconds)

    monkeypatch.setattr(triggers, "sleep", aborted_in_the_portal_then_sleep)
    assert tasks.trigger_run(run.pk) == RunStatus.ABORTED
    assert fake.queue[100].cancelled


def fake_queue_item(fake) -> int:
    import jenkins as python_jenkins

    server = python_jenkins.Jenkins(fake.url, username=USER, password=TOKEN, timeout=5)
    return server.build_job(JOB, {"BRANCH": "dev"})


def fake_wait(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False

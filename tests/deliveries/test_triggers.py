"""Starting, following and aborting runs on Jenkins (services and tasks), against the imitation Jenkins."""

import socket
import time
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.utils import timezone

from deliveries import tasks, triggers
from deliveries.models import AuditEvent, PipelineRun, RunStatus, RunTrigger
from simulators.jenkins import Scenario, SimulatedJenkins
from tests.factories import ProjectFactory, RunFactory, StageFactory, UserFactory

pytestmark = pytest.mark.django_db

USER, TOKEN = "portal", "api-token"
JOB = "delivery/shop"


@pytest.fixture
def fast(monkeypatch):
    """Backoff in milliseconds rather than seconds; `fast.sleeps` records every wait."""
    monkeypatch.setattr(triggers, "TRIGGER_BACKOFF_SECONDS", 0.01)
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


def scheduled_looks() -> list[tuple]:
    """The one-off Schedules that look at a queue item again: (run id, look number, seconds from now)."""
    import ast

    from django_q.models import Schedule

    now = timezone.now()
    return [(*ast.literal_eval(schedule.args), round((schedule.next_run - now).total_seconds()))
            for schedule in Schedule.objects.filter(func="deliveries.tasks.follow_queue").order_by("pk")]


def run_scheduled_look() -> str:
    """Run the next scheduled look, as the default cluster's scheduler does when its time comes."""
    import ast

    from django_q.models import Schedule

    schedule = Schedule.objects.filter(func="deliveries.tasks.follow_queue").order_by("pk").first()
    schedule.delete()  # a ONCE schedule is deleted when it runs
    return tasks.follow_queue(*ast.literal_eval(schedule.args))


def take_scheduled_looks(fake) -> str | None:
    """Once Jenkins' queue items have left the queue, take the looks scheduled at them; the run's last status."""
    status = None
    while scheduled_looks():
        assert fake_wait(lambda: all(item.build or item.cancelled for item in fake.queue.values()))
        status = run_scheduled_look()
    return status


def trigger_and_follow(fake, run) -> str:
    """Trigger the run's build, then follow its queue item out of the queue as the scheduled looks do."""
    status = tasks.trigger_run(run.pk)
    return take_scheduled_looks(fake) or status


def test_it_triggers_the_build_and_follows_it_out_of_the_queue_without_sleeping(fake, fast, project):
    fake.queue_seconds = 1.0  # long enough that the first look finds it waiting, even on a loaded machine
    run = queued_run(project, branch="feature/x", commit_sha="abc1234")
    assert tasks.trigger_run(run.pk) == RunStatus.QUEUED
    assert fast.sleeps == []  # the worker is free at once
    assert scheduled_looks() == [(run.pk, 1, 10)]  # looked at again later, by a task of its own
    assert fake_wait(lambda: fake.queue[100].build)
    assert run_scheduled_look() == RunStatus.RUNNING
    run.refresh_from_db()
    assert run.queue_id == 100
    assert run.build_number == 1
    assert run.build_url == f"{fake.url}job/delivery/job/shop/1/"
    assert run.started_at is not None
    assert fake.queue[100].params["PORTAL_RUN_ID"] == str(run.pk)
    assert fake.queue[100].params["BRANCH"] == "feature/x"
    assert scheduled_looks() == []


def test_a_queue_item_is_looked_at_a_bounded_number_of_times(fake, fast, project):
    fake.queue_seconds = 60
    run = queued_run(project)
    tasks.trigger_run(run.pk)
    looks = 1
    while scheduled_looks():
        assert run_scheduled_look() == RunStatus.QUEUED
        looks += 1
    assert looks == len(triggers.QUEUE_CHECK_DELAYS) + 1
    assert sum(triggers.QUEUE_CHECK_DELAYS) <= 600  # about as long as Jenkins keeps a queue item it left
    assert fast.sleeps == []


def test_triggering_twice_queues_one_build(fake, fast, project):
    run = queued_run(project)
    tasks.trigger_run(run.pk)
    tasks.trigger_run(run.pk)
    assert len(fake.queue) == 1


def test_a_run_with_a_queue_item_is_followed_not_triggered_again(fake, fast, project):
    run = queued_run(project)
    trigger_and_follow(fake, run)
    PipelineRun.objects.filter(pk=run.pk).update(build_number=None, status=RunStatus.QUEUED)
    trigger_and_follow(fake, run)
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
    trigger_and_follow(fake, run)
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
    assert trigger_and_follow(fake, run) == RunStatus.RUNNING
    assert len(calls) == 2 and len(fake.queue) == 1


def test_a_cancelled_queue_item_ends_the_run_aborted(fake, fast, project):
    fake.queue_seconds = 5
    run = queued_run(project)
    assert tasks.trigger_run(run.pk) == RunStatus.QUEUED
    fake.cancel_item(str(min(fake.queue)))  # someone cancels it in the Jenkins UI
    assert run_scheduled_look() == RunStatus.ABORTED
    run.refresh_from_db()
    assert run.status_reason == "The build was cancelled in the Jenkins queue."
    assert run.build_number is None
    assert scheduled_looks() == []


def test_an_unreachable_jenkins_is_looked_at_again_later(fake, fast, project, settings):
    fake.queue_seconds = 5
    run = queued_run(project)
    tasks.trigger_run(run.pk)
    settings.JENKINS_URL = f"http://127.0.0.1:{closed_port()}"
    assert run_scheduled_look() == RunStatus.QUEUED
    assert scheduled_looks() == [(run.pk, 2, 20)]


def test_a_finished_run_is_not_triggered(fake, fast, project):
    run = queued_run(project)
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.ABORTED)
    tasks.trigger_run(run.pk)
    assert fake.requests_seen == []


# --- abort_run ---------------------------------------------------------------------------------------


def test_it_stops_a_running_build(fake, fast, project):
    fake.scenario = Scenario(hold_at="Checkout")
    run = queued_run(project)
    trigger_and_follow(fake, run)
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
    trigger_and_follow(fake, run)
    settings.JENKINS_TOKEN = "wrong"
    assert tasks.abort_run(run.pk) == RunStatus.RUNNING
    run.refresh_from_db()
    assert run.status_reason == "Could not abort: Jenkins refused the credentials (401)."


def test_an_abort_during_the_trigger_stops_what_jenkins_queued(fake, fast, project):
    fake.queue_seconds = 5
    run = queued_run(project)
    assert tasks.trigger_run(run.pk) == RunStatus.QUEUED
    # abort_run came while the trigger was on its way: it marked the run aborted, with nothing to cancel yet.
    PipelineRun.objects.filter(pk=run.pk).update(status=RunStatus.ABORTED)
    assert run_scheduled_look() == RunStatus.ABORTED
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


# --- the reconciler: runs that stopped reporting -----------------------------------------------------------
# The `fake` Jenkins's job has no portal to call back: its builds run and end without a word to the portal, as
# when Jenkins' callbacks are lost (the portal down, a Jenkins restart, a misconfigured URL).

HOUR_AGO = timedelta(hours=1)


def silent_run(project, fake, **scenario) -> PipelineRun:
    """A run triggered on the fake Jenkins, whose build has since ended (or is held), quiet for an hour."""
    run = queued_run(project)
    trigger_and_follow(fake, run)
    quieten(run)
    return PipelineRun.objects.get(pk=run.pk)


def quieten(run, ago=HOUR_AGO):
    then = timezone.now() - ago
    PipelineRun.objects.filter(pk=run.pk).update(created_at=then, started_at=then)


def build_info_requests(fake, number=1):
    return [path for method, path in fake.requests_seen if f"/shop/{number}/api/json" in path]


@pytest.mark.parametrize(("result", "status"), [
    ("SUCCESS", RunStatus.SUCCESS), ("UNSTABLE", RunStatus.UNSTABLE), ("ABORTED", RunStatus.ABORTED),
])
def test_a_run_that_stopped_reporting_takes_the_result_jenkins_gives(fake, fast, project, result, status):
    run = silent_run(project, fake)
    assert fake.wait_for_builds(10)
    fake.build(JOB, 1).result = result
    assert run.status == RunStatus.RUNNING  # Jenkins has finished; the portal heard nothing
    assert tasks.reconcile_runs() == {"asked": 1, "finished": 1, "still_going": 0}
    run.refresh_from_db()
    build = fake.build(JOB, 1)
    assert run.status == status
    jenkins_start = datetime.fromtimestamp(build.timestamp / 1000, tz=UTC)
    assert run.finished_at == jenkins_start + timedelta(milliseconds=build.duration)  # when Jenkins says it ended
    if status == RunStatus.SUCCESS:
        assert run.status_reason == ""
    else:
        assert run.status_reason == f"Jenkins says build #1 ended {result}; the run had stopped reporting."
    event = AuditEvent.objects.get(action="run.updated", target_id=str(run.pk))
    assert event.actor_label == "reconciler" and event.data["status"] == status


def test_a_failed_build_ends_the_run_with_how_its_console_ends(fake, fast, project):
    fake.scenario = Scenario(fail_at="App checks")
    run = silent_run(project, fake)
    assert fake.wait_for_builds(10)
    tasks.reconcile_runs()
    run.refresh_from_db()
    assert run.status == RunStatus.FAILED
    assert run.status_reason.startswith("Jenkins says build #1 ended FAILURE; the run had stopped reporting. Console:")
    assert run.status_reason.endswith("ERROR: App checks failed (simulated) / Finished: FAILURE")
    assert fake.saw("GET", "/job/delivery/job/shop/1/consoleText")


def test_a_long_console_is_cut_to_its_last_whole_lines(fake, fast, project):
    fake.scenario = Scenario(fail_at="Gauntlt attacks")
    run = silent_run(project, fake)
    assert fake.wait_for_builds(10)
    fake.build(JOB, 1).console[1:1] = [f"noise line {i} " + "x" * 60 for i in range(40)]
    tasks.reconcile_runs()
    run.refresh_from_db()
    assert len(run.status_reason) <= 500 and run.status_reason.endswith("Finished: FAILURE")
    assert "Console: noise line" in run.status_reason or "Console: [Pipeline]" in run.status_reason


def test_a_build_still_going_is_left_running_and_not_asked_again_at_once(fake, fast, project):
    fake.scenario = Scenario(hold_at="Load test")
    run = silent_run(project, fake)
    assert tasks.reconcile_runs() == {"asked": 1, "finished": 0, "still_going": 1}
    run.refresh_from_db()
    assert run.status == RunStatus.RUNNING and run.jenkins_checked_at is not None
    assert tasks.reconcile_runs() == {"asked": 0, "finished": 0, "still_going": 0}
    assert len(build_info_requests(fake)) == 1
    PipelineRun.objects.filter(pk=run.pk).update(jenkins_checked_at=timezone.now() - HOUR_AGO)
    assert tasks.reconcile_runs()["still_going"] == 1  # asked again once quiet as long again


def test_a_build_jenkins_no_longer_knows_ends_the_run_aborted_with_the_reason(client, fake, fast, project):
    run = silent_run(project, fake)
    assert fake.wait_for_builds(10)
    fake.forget_build(JOB, 1)
    tasks.reconcile_runs()
    run.refresh_from_db()
    assert run.status == RunStatus.ABORTED and run.finished_at is not None
    reason = ("Jenkins has no build #1 of delivery/shop (404). The run had stopped reporting: the reconciler ended it "
              "as aborted.")
    assert run.status_reason == reason
    client.force_login(UserFactory(roles=["techlead"]))
    assert reason in client.get(run.get_absolute_url()).content.decode()


def test_a_queue_item_that_became_a_build_is_followed_to_its_result(fake, fast, project):
    run = queued_run(project)
    PipelineRun.objects.filter(pk=run.pk).update(queue_id=fake_queue_item(fake), created_at=timezone.now() - HOUR_AGO)
    assert fake.wait_for_builds(10)
    tasks.reconcile_runs()
    run.refresh_from_db()
    assert (run.build_number, run.status) == (1, RunStatus.SUCCESS)


def test_a_queue_item_jenkins_forgot_without_a_build_ends_the_run_aborted(fake, fast, project):
    run = queued_run(project, queue_id=999, created_at=timezone.now() - HOUR_AGO)
    tasks.reconcile_runs()
    run.refresh_from_db()
    assert run.status == RunStatus.ABORTED
    assert run.status_reason.startswith("Jenkins has no queue item 999 (404).")


def test_an_unreachable_jenkins_changes_nothing_and_is_logged(fast, project, settings, caplog):
    settings.JENKINS_URL = f"http://127.0.0.1:{closed_port()}"
    run = RunFactory(project=project, build_number=3, status=RunStatus.RUNNING, finished_at=None)
    quieten(run)
    assert tasks.reconcile_runs() == {"asked": 0, "finished": 0, "still_going": 0}
    run.refresh_from_db()
    assert (run.status, run.status_reason, run.jenkins_checked_at) == (RunStatus.RUNNING, "", None)
    assert f"Reconciler: stopped at run {run.pk}, nothing changed: Jenkins at {settings.JENKINS_URL} is unreachable" \
        in caplog.text
    assert fast.sleeps == []  # a task never sleeps waiting on Jenkins


def test_runs_with_recent_news_are_not_asked(fake, fast, project):
    fake.scenario = Scenario(hold_at="Checkout")
    recent = silent_run(project, fake)
    StageFactory(run=recent, name="Checkout", started_at=timezone.now() - timedelta(minutes=2), finished_at=None,
                 status="running")
    quiet = RunFactory(project=project, build_number=5, status=RunStatus.RUNNING, finished_at=None)
    quieten(quiet, ago=timedelta(minutes=10))
    finished = RunFactory(project=project, build_number=6, status=RunStatus.SUCCESS)
    quieten(finished)
    assert tasks.reconcile_runs() == {"asked": 0, "finished": 0, "still_going": 0}
    assert fake.requests_seen[-1][1].startswith("/queue/item/")  # nothing asked after the trigger's own calls
    assert triggers.reconcile_runs(quiet_for=timedelta(minutes=5)) == {"asked": 1, "finished": 1, "still_going": 0}
    quiet.refresh_from_db()
    assert quiet.status == RunStatus.ABORTED  # build #5 never existed on this Jenkins


def redis_broker(monkeypatch, list_key: str):
    import os

    import redis
    from django_q.brokers.redis_broker import Redis
    from django_q.conf import Conf

    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
    try:
        redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError:
        pytest.skip(f"no Redis at {url} (set REDIS_URL) for the Redis broker case")
    monkeypatch.setattr(Conf, "REDIS", url)
    return Redis(list_key=list_key)


def funcs_the_scheduler_queues(monkeypatch, broker_name: str) -> set[str]:
    """Run django-q2's scheduler once, as a running cluster does, on a fresh queue of the broker; what it queued."""
    import uuid

    from django_q import scheduler as django_q_scheduler
    from django_q.brokers.orm import ORM
    from django_q.conf import Conf
    from django_q.signing import SignedPackage

    monkeypatch.setattr(Conf, "SYNC", False)  # queue the task on the broker, as a running cluster does
    monkeypatch.setattr(django_q_scheduler, "close_old_django_connections", lambda: None)  # the test's transaction
    list_key = f"scheduler-test-{uuid.uuid4().hex}"
    broker = ORM(list_key=list_key) if broker_name == "orm" else redis_broker(monkeypatch, list_key)
    funcs = set()
    try:
        django_q_scheduler.scheduler(broker=broker)
        while broker.queue_size():
            funcs |= {SignedPackage.loads(package)["func"] for _, package in broker.dequeue()}
    finally:
        broker.delete_queue()
    return funcs


@pytest.mark.parametrize("broker_name", ["orm", "redis"])
def test_the_reconciler_schedule_exists_and_queues_its_task_on_either_broker(monkeypatch, broker_name):
    from django_q.models import Schedule

    schedule = Schedule.objects.get(name="Reconcile runs with Jenkins")  # made by a migration
    assert (schedule.func, schedule.schedule_type, schedule.repeats) == (
        "deliveries.tasks.reconcile_runs", Schedule.MINUTES, -1)
    assert "deliveries.tasks.reconcile_runs" in funcs_the_scheduler_queues(monkeypatch, broker_name)
    schedule.refresh_from_db()
    assert schedule.next_run > timezone.now()


@pytest.mark.parametrize(("value", "error"), [("0", "must be at least 1"), ("soon", "is not a whole number")])
def test_a_reconcile_window_that_makes_no_sense_stops_the_portal_at_start(value, error):
    import os
    import subprocess
    import sys
    from pathlib import Path

    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "portal.test_settings",
                   "RECONCILE_RUNS_AFTER_MINUTES": value}
    checked = subprocess.run([sys.executable, "manage.py", "check"], cwd=Path(__file__).resolve().parents[2],
                             env=environment, capture_output=True, text=True, timeout=60)
    assert checked.returncode != 0
    assert "RECONCILE_RUNS_AFTER_MINUTES" in checked.stderr and error in checked.stderr


@pytest.mark.django_db(transaction=True)
def test_simultaneous_run_pipeline_presses_queue_one_run(settings):
    import threading

    from django.db import connections

    settings.JENKINS_URL = "http://127.0.0.1:9"  # never reached: the trigger task is not queued here
    project = ProjectFactory(jenkins_job_path=JOB)
    user = UserFactory(username="dana", roles=["developer"])
    barrier, outcomes = threading.Barrier(6), []

    def press():
        try:
            barrier.wait(timeout=10)
            triggers.request_run(project=project, branch="dev", commit="abc1234", user=user)
            outcomes.append("queued")
        except triggers.AlreadyQueued:
            outcomes.append("refused")
        except Exception as exc:  # noqa: BLE001 - any other error fails the test below
            outcomes.append(repr(exc))
        finally:
            connections.close_all()

    with mock.patch("deliveries.triggers.async_task"):
        threads = [threading.Thread(target=press) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert sorted(outcomes) == ["queued"] + ["refused"] * 5
    assert PipelineRun.objects.filter(project=project).count() == 1

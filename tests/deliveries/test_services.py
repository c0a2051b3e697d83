"""The callback services: ordering rules, all-or-nothing writes, and racing first callbacks."""

import io
import threading
from datetime import UTC, datetime, timedelta
from unittest import mock

import pytest
from django.db import connection, connections

from deliveries import services
from deliveries.models import Artifact, AuditEvent, PipelineRun, RunStatus, RunTrigger, Stage
from environments.models import Deployment
from scanners.models import Report
from tests.factories import ProjectFactory, RunFactory, StageFactory
from tests.scanners import samples

pytestmark = pytest.mark.django_db

T0 = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
ACTOR = "jenkins (dp_12345678)"


def stage(project, build_number=1, name="Build", **fields):
    return services.upsert_stage(project=project, build_number=build_number, name=name, fields=fields,
                                 actor_label=ACTOR)


def test_the_services_take_keyword_arguments_only():
    project = ProjectFactory()
    with pytest.raises(TypeError):
        services.upsert_run(project, 1, {}, ACTOR)
    with pytest.raises(TypeError):
        services.upsert_stage(project, 1, "Build", {}, ACTOR)
    with pytest.raises(TypeError):
        services.apply_notification(project, {}, ACTOR)


def test_it_writes_an_audit_event_per_change_with_the_token_as_actor():
    project = ProjectFactory()
    run, created = services.upsert_run(project=project, build_number=3, fields={"status": "running"},
                                       actor_label=ACTOR)
    assert created
    stage(project, 3, status="running")
    events = list(AuditEvent.objects.order_by("id").values_list("action", "actor_label", "target_type"))
    assert events == [("run.created", ACTOR, "pipelinerun"), ("stage.upserted", ACTOR, "stage")]


def test_nothing_is_left_half_written_when_a_write_fails():
    project = ProjectFactory()
    with mock.patch.object(services, "audit", side_effect=RuntimeError("disk full")):
        with pytest.raises(RuntimeError):
            stage(project, 9, status="running")
        with pytest.raises(RuntimeError):
            services.upsert_run(project=project, build_number=9, fields={"status": "running"}, actor_label=ACTOR)
        with pytest.raises(RuntimeError):
            services.upsert_artifact(project=project, build_number=9, repository="r", tag="t", fields={},
                                     actor_label=ACTOR)
    assert not PipelineRun.objects.exists() and not Stage.objects.exists() and not Artifact.objects.exists()


def test_a_run_created_meanwhile_by_another_callback_is_updated_not_duplicated():
    project = ProjectFactory()
    existing = RunFactory(project=project, build_number=5, status=RunStatus.RUNNING, finished_at=None)
    real_first = services.first
    calls = []

    def blind_first(queryset):
        # The look-up misses the run, as if another callback inserted it just after we looked: the insert then
        # fails on the unique constraint, and the stage goes to the run that won.
        calls.append(queryset.model)
        return None if len(calls) == 1 else real_first(queryset)

    with (mock.patch.object(services, "fetch_locked_run", return_value=None),
          mock.patch.object(services, "first", side_effect=blind_first)):
        stage_row, created = stage(project, 5, status="running")
    assert stage_row.run_id == existing.pk
    assert PipelineRun.objects.filter(project=project, build_number=5).count() == 1


def test_a_run_callback_racing_another_run_callback_retries_as_an_update():
    project = ProjectFactory()
    existing = RunFactory(project=project, build_number=5, status=RunStatus.RUNNING, finished_at=None)
    real_first = services.first
    calls = []

    def blind_first(queryset):
        calls.append(1)
        return None if len(calls) == 1 else real_first(queryset)

    with mock.patch.object(services, "first", side_effect=blind_first):
        run, created = services.upsert_run(project=project, build_number=5, fields={"status": "success"},
                                           actor_label=ACTOR)
    assert (run.pk, created, run.status) == (existing.pk, False, "success")
    assert PipelineRun.objects.count() == 1


def test_a_stage_created_meanwhile_is_updated_not_duplicated():
    project = ProjectFactory()
    run = RunFactory(project=project, build_number=5, status=RunStatus.RUNNING, finished_at=None)
    StageFactory(run=run, name="Build", status="running", started_at=T0)

    with (mock.patch.object(services, "fetch_run_and_stage", return_value=(None, None)),
          mock.patch.object(services, "fetch_stage", return_value=None)):
        row, created = stage(project, 5, status="success", finished_at=T0 + timedelta(minutes=1))
    assert not created
    assert Stage.objects.get().status == "success"


def test_stage_statuses_only_move_forward():
    project = ProjectFactory()
    stage(project, status="success", started_at=T0, finished_at=T0 + timedelta(minutes=2))
    for late in ("running", "pending"):
        row, _ = stage(project, status=late, started_at=T0 + timedelta(minutes=1), finished_at=None)
        assert row.status == "success"
        assert (row.started_at, row.finished_at) == (T0, T0 + timedelta(minutes=2))
    row, _ = stage(project, status="failed")  # a finished status may correct another
    assert row.status == "failed"


def test_a_stage_given_its_finish_and_duration_gets_its_start():
    project = ProjectFactory()
    row, _ = stage(project, status="success", finished_at=T0, duration_ms=60_000)
    assert row.started_at == T0 - timedelta(minutes=1)


def test_a_running_stage_without_a_start_gets_the_time_it_was_reported():
    project = ProjectFactory()
    row, _ = stage(project, status="running")
    assert row.started_at is not None and row.finished_at is None


def test_a_stage_callback_never_changes_a_finished_runs_status():
    project = ProjectFactory()
    RunFactory(project=project, build_number=1, status=RunStatus.ABORTED)
    row, _ = stage(project, status="running")
    assert row.run.status == RunStatus.ABORTED
    assert PipelineRun.objects.get().status == RunStatus.ABORTED


def test_folding_an_early_run_into_the_portal_run_moves_everything_it_holds():
    project = ProjectFactory()
    portal_run = RunFactory(project=project, build_number=None, trigger=RunTrigger.PORTAL, status=RunStatus.QUEUED,
                            branch="dev", commit_sha="c" * 40, started_at=None, finished_at=None)
    stage(project, 21, status="success", started_at=T0, finished_at=T0 + timedelta(minutes=1))
    early = PipelineRun.objects.get(build_number=21)
    content = samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001")])
    services.upload_report(project=project, build_number=21, file=io.BytesIO(content), original_name="t.json",
                           kind="trivy", actor_label=ACTOR)

    run, created = services.upsert_run(project=project, build_number=21, actor_label=ACTOR,
                                       fields={"portal_run_id": portal_run.pk, "status": "success"})
    assert (run.pk, created) == (portal_run.pk, False)
    assert not PipelineRun.objects.filter(pk=early.pk).exists()
    run.refresh_from_db()
    assert (run.build_number, run.status, run.branch, run.trigger) == (21, "success", "dev", "portal")
    assert list(run.stages.values_list("name", flat=True)) == ["Build"]
    assert Report.objects.get().run_id == portal_run.pk
    event = AuditEvent.objects.filter(action="run.updated").get()
    assert event.data["absorbed_run"] == early.pk and event.data["attached_to_portal_run"] == portal_run.pk


def test_a_report_uploaded_twice_at_once_is_one_report():
    project = ProjectFactory()
    RunFactory(project=project, build_number=4)
    content = samples.trivy_report([samples.trivy_vulnerability("CVE-2024-0001")])
    first, created = services.upload_report(project=project, build_number=4, file=io.BytesIO(content),
                                            original_name="a.json", kind="", actor_label=ACTOR)
    # The second upload does not see the first (it looked before the first committed): the unique
    # constraint stops it, and it answers with the first one.
    with mock.patch("scanners.services.Report.objects.filter") as blind:
        blind.return_value.first.return_value = None
        again, created_again = services.upload_report(project=project, build_number=4, file=io.BytesIO(content),
                                                      original_name="a.json", kind="", actor_label=ACTOR)
    assert (again.pk, created_again) == (first.pk, False)
    assert Report.objects.count() == 1


def test_notification_timestamps_follow_the_plugins_job_listener():
    project = ProjectFactory()
    ms = int(T0.timestamp() * 1000)
    message = {"build": {"number": 3, "phase": "COMPLETED", "status": "SUCCESS", "timestamp": ms + 90_000,
                         "duration": 90_000}}
    run = services.apply_notification(project=project, payload=message, actor_label=ACTOR)
    assert (run.started_at, run.finished_at) == (T0, T0 + timedelta(seconds=90))


@pytest.mark.parametrize(
    ("payload", "field"),
    [(None, "body"), ([], "body"), ({}, "build"), ({"build": []}, "build"),
     ({"build": {"number": True, "phase": "STARTED"}}, "build.number"),
     ({"build": {"number": 2**31, "phase": "STARTED"}}, "build.number"),
     ({"build": {"number": 1, "phase": 3}}, "build.phase")],
)
def test_a_notification_it_cannot_understand_names_the_field(payload, field):
    with pytest.raises(services.CallbackError) as caught:
        services.parse_notification(payload)
    assert caught.value.field == field


@pytest.mark.parametrize(("branch", "expected"), [("origin/dev", "dev"), ("refs/heads/dev", "dev"),
                                                   ("refs/remotes/origin/release/1.2", "release/1.2"),
                                                   ("dev", "dev"), ("", "")])
def test_it_normalises_branch_names(branch, expected):
    assert services.normalise_branch(branch) == expected


# --- Real concurrency (SQLite file database, one connection per thread) ---------------------------


def race(count, work):
    """Run `work()` in `count` threads released together; returns the exceptions raised."""
    barrier = threading.Barrier(count)
    errors = []

    def target():
        try:
            barrier.wait()
            work()
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return errors


@pytest.mark.django_db(transaction=True)
def test_simultaneous_first_callbacks_make_one_run_and_one_stage():
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith(("file:memorydb", ":memory:")):
        pytest.skip("threads need a database file")
    project = ProjectFactory()
    errors = race(6, lambda: stage(project, 31, name="Checkout", status="running", started_at=T0))
    errors += race(6, lambda: services.upsert_run(project=project, build_number=32, fields={"status": "running"},
                                                  actor_label=ACTOR))
    assert errors == []
    assert PipelineRun.objects.filter(project=project, build_number=31).count() == 1
    assert Stage.objects.filter(run__build_number=31, name="Checkout").count() == 1
    assert PipelineRun.objects.filter(project=project, build_number=32).count() == 1
    assert AuditEvent.objects.filter(action="run.created").count() == 1
    assert Deployment.objects.count() == 0

"""The callback services: ordering rules, all-or-nothing writes, and racing first callbacks."""

import ast
import io
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import pytest
from django.db import DatabaseError, connection, connections, transaction

from deliveries import services
from deliveries.models import Artifact, AuditEvent, PipelineRun, RunStatus, RunTrigger, Stage
from environments.models import Deployment
from scanners import services as scanner_services
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


@pytest.fixture
def failing_audit_inserts():
    """The database refuses every audit event from now on (a trigger, gone with the test's transaction): a real
    failure in the middle of a write, whichever statement does it."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS "
                           "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$")
            cursor.execute("CREATE TRIGGER test_refuse_audit BEFORE INSERT ON deliveries_auditevent "
                           "FOR EACH ROW EXECUTE FUNCTION test_refuse_audit()")
        else:
            cursor.execute("CREATE TRIGGER test_refuse_audit BEFORE INSERT ON deliveries_auditevent "
                           "BEGIN SELECT RAISE(ABORT, 'disk full'); END")


def failed(write) -> bool:
    """Run a write that must fail; its own savepoint keeps the test's transaction usable afterwards."""
    try:
        with transaction.atomic():
            write()
    except DatabaseError:
        return True
    return False


def test_nothing_is_left_half_written_when_a_write_fails(failing_audit_inserts):
    project = ProjectFactory()
    assert failed(lambda: stage(project, 9, status="running"))
    assert failed(lambda: services.upsert_run(project=project, build_number=9, fields={"status": "running"},
                                              actor_label=ACTOR))
    assert failed(lambda: services.upsert_artifact(project=project, build_number=9, repository="r", tag="t",
                                                   fields={}, actor_label=ACTOR))
    assert not PipelineRun.objects.exists() and not Stage.objects.exists() and not Artifact.objects.exists()


def test_a_stage_update_that_fails_leaves_the_stage_as_it_was(failing_audit_inserts):
    project = ProjectFactory()
    run = RunFactory(project=project, build_number=9, status=RunStatus.QUEUED, finished_at=None)
    StageFactory(run=run, name="Build", status="running", started_at=T0, finished_at=None)
    # The known stage of a known run: on PostgreSQL, the one statement that updates and audits.
    assert failed(lambda: stage(project, 9, status="success", finished_at=T0 + timedelta(minutes=1)))
    assert Stage.objects.values_list("status", "finished_at").get() == ("running", None)
    assert PipelineRun.objects.get().status == RunStatus.QUEUED


def test_a_run_created_meanwhile_by_another_callback_is_updated_not_duplicated():
    project = ProjectFactory()
    existing = RunFactory(project=project, build_number=5, status=RunStatus.RUNNING, finished_at=None)
    real_first = services.first
    calls = []

    def blind_first(queryset):
        # The look-up misses the run, as if another callback inserted it just after we looked: the insert then
        # fails on the unique constraint, and the stage goes to the run that won.
        calls.append(queryset.model)
        return None if calls.count(PipelineRun) == 1 and queryset.model is PipelineRun else real_first(queryset)

    with mock.patch.object(services, "first", side_effect=blind_first):
        stage_row, created = stage(project, 5, status="running")
    assert calls[0] is PipelineRun  # no stage yet (locked_stage found none): the run is looked up, and missed
    assert stage_row.run_id == existing.pk and created
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


def test_a_stage_audit_event_says_what_the_callback_changed():
    project = ProjectFactory()
    stage(project, 3, status="running", started_at=T0)
    stage(project, 3, status="success", finished_at=T0 + timedelta(minutes=1), log_excerpt="ok")
    stage(project, 3, status="success", finished_at=T0 + timedelta(minutes=1), log_excerpt="ok")  # a retry
    events = AuditEvent.objects.filter(action="stage.upserted").order_by("id")
    assert [event.data for event in events] == [
        {"build_number": 3, "name": "Build", "status": "running", "changed": ["status", "started_at"],
         "created": True, "run_created": True},
        {"build_number": 3, "name": "Build", "status": "success",
         "changed": ["status", "finished_at", "log_excerpt"]},
    ]
    stage_row = Stage.objects.get()
    assert {(event.actor_label, event.project_id, event.target_type, event.target_id) for event in events} == {
        (ACTOR, project.pk, "stage", str(stage_row.pk))}


def test_a_known_stage_moves_a_queued_run_to_running_but_never_a_finished_one():
    project = ProjectFactory()
    queued = RunFactory(project=project, build_number=1, status=RunStatus.QUEUED, finished_at=None)
    StageFactory(run=queued, name="Build", status="pending", started_at=None, finished_at=None)
    finished = RunFactory(project=project, build_number=2, status=RunStatus.ABORTED)
    StageFactory(run=finished, name="Build", status="pending", started_at=None, finished_at=None)
    row, created = stage(project, 1, status="running")
    assert (row.run.status, created) == (RunStatus.RUNNING, False)
    assert PipelineRun.objects.get(pk=queued.pk).status == RunStatus.RUNNING
    row, _ = stage(project, 2, status="running")
    assert row.run.status == RunStatus.ABORTED
    assert PipelineRun.objects.get(pk=finished.pk).status == RunStatus.ABORTED


def test_a_stage_that_moves_a_queued_run_to_running_gives_the_run_its_start():
    project = ProjectFactory()
    RunFactory(project=project, build_number=1, status=RunStatus.QUEUED, started_at=None, finished_at=None)
    StageFactory(run=PipelineRun.objects.get(), name="Build", status="pending", started_at=None, finished_at=None)
    stage(project, 1, status="running", started_at=T0)  # a known stage of a known run
    assert PipelineRun.objects.values_list("status", "started_at").get() == (RunStatus.RUNNING, T0)
    RunFactory(project=project, build_number=2, status=RunStatus.QUEUED, started_at=None, finished_at=None)
    stage(project, 2, status="running")  # a stage the portal has not seen, without a start of its own
    assert PipelineRun.objects.get(build_number=2).started_at is not None


def test_a_pending_callback_leaves_a_queued_run_queued():
    project = ProjectFactory()
    RunFactory(project=project, build_number=1, status=RunStatus.QUEUED, finished_at=None)
    row, _ = stage(project, 1, status="pending", order=2)
    assert row.run.status == RunStatus.QUEUED and row.order == 2


def test_a_skipped_stage_gets_no_end_and_a_duration_does_not_invent_one():
    project = ProjectFactory()
    row, _ = stage(project, status="skipped", duration_ms=5_000)
    assert (row.status, row.started_at, row.finished_at) == ("skipped", None, None)


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
    scanner_services.upload_report(project=project, build_number=21, file=io.BytesIO(content),
                                   original_name="t.json", kind="trivy", actor_label=ACTOR)

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
    upload = {"project": project, "build_number": 4, "original_name": "a.json", "kind": "", "actor_label": ACTOR}
    first, created = scanner_services.upload_report(file=io.BytesIO(content), **upload)
    # The second upload does not see the first (it looked before the first committed): the unique
    # constraint stops it, and it answers with the first one.
    with mock.patch("scanners.services.Report.objects.filter") as blind:
        blind.return_value.first.return_value = None
        again, created_again = scanner_services.upload_report(file=io.BytesIO(content), **upload)
    assert (again.pk, created_again) == (first.pk, False)
    assert Report.objects.count() == 1


def test_notification_timestamps_follow_the_plugins_job_listener():
    project = ProjectFactory(jenkins_job_path="")  # a message naming no job
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


def imported_modules(path: Path) -> set[str]:
    """Every module a source file imports, at its top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("module", ["services", "audit", "statuses"])
def test_the_deliveries_core_builds_on_no_other_app(module):
    # environments and scanners build on it: an import back, even inside a function, is a cycle.
    source = Path(services.__file__).with_name(f"{module}.py")
    assert {name for name in imported_modules(source) if name.startswith(("environments", "scanners"))} == set()


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


@pytest.mark.django_db(transaction=True)
def test_simultaneous_callbacks_for_one_stage_end_in_the_state_their_order_would_not_change():
    if connection.vendor == "sqlite" and connection.settings_dict["NAME"].startswith(("file:memorydb", ":memory:")):
        pytest.skip("threads need a database file")
    project = ProjectFactory()
    stage(project, 41, status="pending")  # the stage exists: every callback below takes the hot path
    numbers = iter(range(8))
    lock = threading.Lock()

    def work():
        with lock:
            number = next(numbers)
        if number % 2:
            stage(project, 41, status="success", finished_at=T0 + timedelta(minutes=10), log_excerpt=f"#{number}")
        else:
            stage(project, 41, status="running", started_at=T0 + timedelta(minutes=number))

    assert race(8, work) == []
    row = Stage.objects.get()
    assert (row.status, row.started_at, row.finished_at) == ("success", T0, T0 + timedelta(minutes=10))
    events = [event.data for event in AuditEvent.objects.filter(action="stage.upserted")]
    # The creation, then only real changes (a start, an earlier start, the finish, a new log excerpt).
    assert [data for data in events if data.get("created")] == [
        {"build_number": 41, "name": "Build", "status": "pending", "changed": [], "created": True,
         "run_created": True}]
    assert all(data["changed"] for data in events if not data.get("created")) and len(events) <= 9

import pytest
from django.db import IntegrityError, connection, transaction

from deliveries.models import AuditEvent, PipelineRun, ProjectToken, Stage
from environments.models import FreezeWindow
from tests.factories import EnvironmentFactory, ProjectFactory, RunFactory, StageFactory

pytestmark = pytest.mark.django_db


def test_it_refuses_a_second_run_with_the_same_build_number_in_a_project():
    run = RunFactory(build_number=7)
    with pytest.raises(IntegrityError), transaction.atomic():
        RunFactory(project=run.project, build_number=7)


def test_it_allows_the_same_build_number_in_another_project():
    RunFactory(build_number=7)
    RunFactory(build_number=7)
    assert PipelineRun.objects.filter(build_number=7).count() == 2


def test_it_allows_several_runs_not_yet_numbered():
    # A run triggered from the portal has no build number until Jenkins takes it off the queue.
    project = ProjectFactory()
    RunFactory(project=project, build_number=None)
    RunFactory(project=project, build_number=None)
    assert project.runs.count() == 2


def test_it_refuses_a_second_stage_with_the_same_name_in_a_run():
    stage = StageFactory(name="Build images")
    with pytest.raises(IntegrityError), transaction.atomic():
        StageFactory(run=stage.run, name="Build images")
    StageFactory(name="Build images")  # another run may have it
    assert Stage.objects.filter(name="Build images").count() == 2


def test_it_refuses_a_freeze_window_that_ends_before_it_starts():
    from django.utils import timezone

    now = timezone.now()
    with pytest.raises(IntegrityError), transaction.atomic():
        FreezeWindow.objects.create(environment=EnvironmentFactory(), starts_at=now, ends_at=now, reason="x")


def test_it_keeps_only_a_hash_of_a_project_token():
    project = ProjectFactory()
    row, token = ProjectToken.issue(project=project)
    assert token not in {row.token_hash, row.prefix}
    assert token.startswith(f"dp_{row.prefix}_")
    assert ProjectToken.find(token) == row


@pytest.mark.parametrize("mangle", [lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"), lambda t: t + "x", lambda t: ""])
def test_it_does_not_find_a_wrong_token(mangle):
    _, token = ProjectToken.issue(project=ProjectFactory())
    assert ProjectToken.find(mangle(token)) is None


def test_it_does_not_find_a_revoked_token():
    from django.utils import timezone

    row, token = ProjectToken.issue(project=ProjectFactory())
    row.revoked_at = timezone.now()
    row.save()
    assert ProjectToken.find(token) is None


def test_a_token_is_live_until_it_is_revoked_or_deleted():
    from django.utils import timezone

    live, _ = ProjectToken.issue(project=ProjectFactory())
    revoked, _ = ProjectToken.issue(project=live.project, name="old")
    ProjectToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    assert ProjectToken.is_live(live.pk) is True
    assert ProjectToken.is_live(revoked.pk) is False
    assert ProjectToken.is_live(live.pk + revoked.pk + 1) is False  # deleted, or never made


def test_the_live_token_statement_refuses_a_live_condition_with_values_of_its_own(monkeypatch):
    # The statement is written once: a value in LIVE (a moment) would be frozen at its first use.
    from django.db.models import Q
    from django.utils import timezone

    from deliveries import models

    monkeypatch.setattr(ProjectToken, "LIVE", Q(revoked_at__isnull=True) | Q(revoked_at__gt=timezone.now()))
    models.live_token_sql.cache_clear()
    try:
        with pytest.raises(TypeError, match="LIVE must not bind values"):
            models.live_token_sql(connection.vendor)
    finally:
        models.live_token_sql.cache_clear()


def test_audit_events_cannot_be_changed_or_deleted():
    event = AuditEvent.objects.create(actor_label="jenkins", action="run.started")
    event.action = "something else"
    with pytest.raises(ValueError, match="append-only"):
        event.save()
    with pytest.raises(ValueError, match="append-only"):
        event.delete()


def test_it_finds_the_latest_run_of_each_branch():
    project = ProjectFactory()
    RunFactory(project=project, branch="dev")
    newest_dev = RunFactory(project=project, branch="dev")
    master = RunFactory(project=project, branch="master")
    other_project_run = RunFactory(branch="dev")
    assert set(PipelineRun.objects.latest_per_branch()) == {newest_dev, master, other_project_run}


def test_the_latest_run_of_a_branch_is_found_project_by_project_and_filtered_afterwards():
    project, other = ProjectFactory(), ProjectFactory()
    RunFactory(project=project, branch="feature/b")
    newest_b = RunFactory(project=project, branch="feature/b")
    a = RunFactory(project=project, branch="feature/a")
    RunFactory(project=other, branch="feature/a")
    assert set(PipelineRun.objects.latest_per_branch().filter(project=project)) == {newest_b, a}


def test_the_branches_of_a_project_are_listed_once_each_by_name():
    from deliveries.selectors import project_branches

    project = ProjectFactory()
    for branch in ("master", "dev", "feature/x", "dev", "master"):
        RunFactory(project=project, branch=branch)
    RunFactory(branch="elsewhere")
    assert project_branches(project) == ["dev", "feature/x", "master"]


def test_the_latest_run_per_branch_is_read_from_an_index_branch_by_branch():
    # a loose index scan: one probe per branch, whatever the number of runs (no GROUP BY over the history)
    RunFactory(branch="dev")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a test table is small: ask which index fits
        plan = PipelineRun.objects.latest_per_branch().explain()
    assert "run_project_branch_id" in plan
    assert "Group Key: u0" not in plan  # PostgreSQL's GROUP BY over every run
    assert not [line for line in plan.splitlines() if " SCAN " in f" {line} " and "run_" in line]  # SQLite's

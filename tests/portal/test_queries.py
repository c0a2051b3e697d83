"""The hot paths' writes (portal.queries.insert_row, update_row) store what Model.save stores, on both databases:
the same values read back, only the fields named, a clear error for a row that is gone."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import DatabaseError, connection
from django.db.models.signals import post_save
from django.test.utils import CaptureQueriesContext

from deliveries.models import AuditEvent, Stage
from portal.queries import insert_row, update_row
from tests.factories import ProjectFactory, RunFactory, StageFactory, UserFactory

pytestmark = pytest.mark.django_db

STARTED = datetime(2026, 3, 29, 1, 30, 15, 123456, tzinfo=UTC)


def stored(row):
    """Every concrete field of the row as the database holds it now."""
    fresh = type(row).objects.get(pk=row.pk)
    return {field.attname: getattr(fresh, field.attname) for field in type(row)._meta.concrete_fields}


def test_an_inserted_event_reads_back_as_the_orm_would_have_stored_it():
    project, user = ProjectFactory(), UserFactory()
    data = {"changed": ["status"], "note": "déjà vu ✓", "nested": {"n": 1, "none": None}, "ratio": 0.5}
    made = AuditEvent(project=project, actor=user, actor_label="jenkins", action="stage.upserted",
                      target_type="stage", target_id="7", data=data)
    insert_row(made)
    by_orm = AuditEvent.objects.create(project=project, actor=user, actor_label="jenkins", action="stage.upserted",
                                       target_type="stage", target_id="7", data=data, created_at=made.created_at)
    assert made.pk is not None and made.pk != by_orm.pk
    assert not made._state.adding
    ours, theirs = stored(made), stored(by_orm)
    assert ours.pop("id") != theirs.pop("id")
    assert ours == theirs
    assert ours["data"] == data and ours["created_at"] == made.created_at


def test_an_inserted_row_takes_the_model_defaults():
    event = AuditEvent(action="run.started")
    insert_row(event)
    row = AuditEvent.objects.get(pk=event.pk)
    assert (row.project_id, row.actor_id, row.actor_label, row.data) == (None, None, "", {})
    assert abs(row.created_at - datetime.now(UTC)) < timedelta(minutes=1)


def test_an_update_writes_the_named_fields_only_as_save_would():
    run = RunFactory(project=ProjectFactory())
    ours, theirs = StageFactory(run=run, name="Build"), StageFactory(run=run, name="Test")
    for stage in (ours, theirs):
        stage.status, stage.started_at, stage.order, stage.log_excerpt = "success", STARTED, 3, "ok ✓\n"
        stage.name = "renamed on the instance only"
    update_row(ours, ["status", "started_at", "order", "log_excerpt"])
    theirs.save(update_fields=["status", "started_at", "order", "log_excerpt"])
    written, saved = stored(ours), stored(theirs)
    assert written["name"] == "Build" and saved["name"] == "Test"
    for row in (written, saved):
        del row["id"], row["name"]
    assert written == saved
    assert written["started_at"] == STARTED and written["status"] == "success"


def test_an_update_of_a_row_that_is_gone_says_so():
    stage = StageFactory(run=RunFactory(project=ProjectFactory()))
    Stage.objects.filter(pk=stage.pk).delete()
    stage.status = "failed"
    with pytest.raises(DatabaseError, match=f"Stage {stage.pk} is gone"):
        update_row(stage, ["status"])


def test_each_write_is_one_statement_with_its_values_bound():
    stage = StageFactory(run=RunFactory(project=ProjectFactory()), log_excerpt="")
    stage.log_excerpt = "'; DROP TABLE deliveries_stage; --"
    event = AuditEvent(action="stage.upserted", data={"quote": "'"})
    with CaptureQueriesContext(connection) as queries:
        update_row(stage, ["log_excerpt"])
        insert_row(event)
    assert len(queries) == 2
    assert queries[0]["sql"].startswith("UPDATE") and queries[1]["sql"].startswith("INSERT")
    assert Stage.objects.get(pk=stage.pk).log_excerpt == "'; DROP TABLE deliveries_stage; --"
    assert AuditEvent.objects.get(pk=event.pk).data == {"quote": "'"}


def test_a_model_with_save_receivers_is_refused_rather_than_skipped():
    def receiver(**_kwargs):
        raise AssertionError("not called: the write is refused first")

    stage = StageFactory(run=RunFactory(project=ProjectFactory()))
    post_save.connect(receiver, sender=Stage, weak=False, dispatch_uid="test_queries")
    try:
        with pytest.raises(TypeError, match="Stage has save signal receivers"):
            update_row(stage, ["status"])
        with pytest.raises(TypeError, match="Stage has save signal receivers"):
            insert_row(Stage(run=stage.run, name="Deploy"))
    finally:
        post_save.disconnect(sender=Stage, dispatch_uid="test_queries")
    assert not Stage.objects.filter(name="Deploy").exists()


def test_a_row_that_already_has_a_key_is_not_inserted_again():
    event = AuditEvent(action="run.started")
    insert_row(event)
    with pytest.raises(ValueError, match=f"AuditEvent {event.pk} is not new"):
        insert_row(event)
    assert AuditEvent.objects.filter(action="run.started").count() == 1

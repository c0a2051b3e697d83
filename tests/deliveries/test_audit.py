"""The audit log is append-only in fact: the model and the admin refuse changes, and on PostgreSQL a trigger refuses
UPDATE and DELETE from anyone (raw SQL included), but for the foreign keys a deleted user or project sets to NULL.
Token issue and revocation are audited."""

import pytest
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from deliveries.models import AuditEvent, ProjectToken
from tests.factories import ProjectFactory, UserFactory, issue_project_token

pytestmark = pytest.mark.django_db


def test_the_database_refuses_to_rewrite_or_delete_an_event():
    project = ProjectFactory()
    event = AuditEvent.objects.create(project=project, action="promotion.approved", data={"by": "tom"})
    with pytest.raises(ValueError):
        event.save()
    with pytest.raises(ValueError):
        event.delete()
    if connection.vendor != "postgresql":
        return  # SQLite, the embedded default, has the model's refusal only (README says so)
    for sql in ("UPDATE deliveries_auditevent SET action = 'nothing' WHERE id = %s",
                "DELETE FROM deliveries_auditevent WHERE id = %s"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, [event.pk])
    with pytest.raises(DatabaseError), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(data={})
    assert AuditEvent.objects.get(pk=event.pk).action == "promotion.approved"


def test_deleting_a_user_or_a_project_keeps_their_events():
    project, user = ProjectFactory(), UserFactory(username="gone")
    event = AuditEvent.objects.create(project=project, actor=user, action="waiver.created")
    user.delete()
    project.delete()
    kept = AuditEvent.objects.get(pk=event.pk)
    assert (kept.actor_id, kept.project_id, kept.action) == (None, None, "waiver.created")


def test_issuing_and_revoking_tokens_in_the_admin_is_audited(client):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    client.force_login(admin)
    project = ProjectFactory()
    client.post(reverse("admin:deliveries_project_changelist"),
                {"action": "issue_token", "_selected_action": [project.pk]})
    row = ProjectToken.objects.get(project=project)
    issued = AuditEvent.objects.get(action="token.issued")
    assert (issued.actor, issued.target_id, issued.data["prefix"]) == (admin, str(row.pk), row.prefix)
    client.post(reverse("admin:deliveries_projecttoken_changelist"),
                {"action": "revoke", "_selected_action": [row.pk]})
    client.post(reverse("admin:deliveries_projecttoken_changelist"),
                {"action": "revoke", "_selected_action": [row.pk]})  # already revoked: nothing more
    revoked = AuditEvent.objects.filter(action="token.revoked")
    assert [(e.actor, e.target_id) for e in revoked] == [(admin, str(row.pk))]


def test_a_token_is_revoked_by_the_action_only_never_by_editing_it(client):
    admin = UserFactory(username="root", is_staff=True, is_superuser=True)
    _, row, _ = issue_project_token()
    client.force_login(admin)
    page = client.get(reverse("admin:deliveries_projecttoken_change", args=[row.pk]))
    assert page.status_code == 200 and b'name="revoked_at' not in page.content
    assert client.post(reverse("admin:deliveries_projecttoken_delete", args=[row.pk]), {"post": "yes"}).status_code \
        == 403

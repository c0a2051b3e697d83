"""The audit log's one writer. Every app records its state changes through `audit()`: it lives in deliveries
core, which every other app builds on, so no app climbs back up to reach it."""

from __future__ import annotations

from deliveries.models import AuditEvent, Project
from portal.queries import insert_row


def audit(*, project: Project | None = None, project_id: int | None = None, action: str, target, data: dict,
          actor=None, actor_label: str = "") -> AuditEvent:
    """Append an event: who (a user, or a label such as a token's name), what was done to which row, and the
    details. The project is given as a row, or by its id where the caller holds only that. Call it inside the
    transaction of the change, so that the two stand or fall together."""
    event = AuditEvent(
        actor=actor,
        actor_label=actor_label[:150],
        project_id=project.pk if project is not None else project_id,
        action=action,
        target_type=target._meta.model_name,
        target_id=str(target.pk),
        data=data,
    )
    insert_row(event)  # every callback writes one: the statement is made once (portal.queries)
    return event

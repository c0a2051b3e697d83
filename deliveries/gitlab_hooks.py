"""GitLab webhooks: the payloads parsed (plain functions, nothing touches the database before they pass), then
applied by services.

- The project is the one whose `gitlab_project_path` is the payload's `project.path_with_namespace` and whose
  webhook secret is the `X-Gitlab-Token` (only a hash of it is stored, compared in constant time).
- A delivery is handled once: its `Idempotency-Key` (else its `X-Gitlab-Event-UUID`) is recorded in the same
  transaction as what it changes, so a replay answers "duplicate" and does nothing.
- A push to the project's dev or release branch starts a run when the project asks for it (`runs_on_push`),
  through the same service as the Run pipeline button.
- A merge request event keeps `mr_state` of the promotions that use that MR in step with GitLab.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from django.db import IntegrityError, transaction

from deliveries import triggers
from deliveries.audit import audit
from deliveries.models import (
    GitLabHookDelivery,
    MergeRequestState,
    Project,
    Promotion,
    RunTrigger,
)

logger = logging.getLogger(__name__)

PUSH, MERGE_REQUEST = "push", "merge_request"
EVENT_KINDS = {"Push Hook": PUSH, "Merge Request Hook": MERGE_REQUEST}  # X-Gitlab-Event -> object_kind
ZERO_SHA = "0" * 40
SHA = re.compile(r"^[0-9a-f]{40}([0-9a-f]{24})?$")  # SHA-1, or SHA-256 repositories
MAX_KEY_LENGTH = 255
ACTOR = "GitLab webhook"


# --- Parsing: untrusted JSON in, dataclasses out ------------------------------------------------------------


class HookError(Exception):
    """A payload the portal cannot use; `field` names the part that is wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class PushEvent:
    branch: str  # "" for a tag or another kind of ref
    before: str
    after: str
    pusher: str

    @property
    def deleted(self) -> bool:
        return self.after == ZERO_SHA


@dataclass(frozen=True)
class MergeRequestEvent:
    iid: int
    state: str
    action: str
    source_branch: str
    target_branch: str
    last_commit: str
    url: str
    user: str


def event_kind(header: str, payload: dict) -> str | None:
    """`push`, `merge_request`, or None for an event the portal does not handle."""
    kind = EVENT_KINDS.get(header.strip()) if header else None
    object_kind = payload.get("object_kind")
    if kind is None:
        return object_kind if not header and object_kind in EVENT_KINDS.values() else None
    if object_kind is not None and object_kind != kind:
        raise HookError("object_kind", f"is {object_kind!r}, but X-Gitlab-Event says {header!r}")
    return kind


def project_path_of(payload: dict) -> str:
    project = payload.get("project")
    if not isinstance(project, dict):
        raise HookError("project", "is missing or not an object")
    return text(project, "path_with_namespace", where="project.", required=True)


def parse_push(payload: dict) -> PushEvent:
    ref = text(payload, "ref", required=True)
    before, after = sha(payload, "before"), sha(payload, "after")
    return PushEvent(branch=ref.removeprefix("refs/heads/") if ref.startswith("refs/heads/") else "",
                     before=before, after=after, pusher=text(payload, "user_username"))


def parse_merge_request(payload: dict) -> MergeRequestEvent:
    attributes = payload.get("object_attributes")
    if not isinstance(attributes, dict):
        raise HookError("object_attributes", "is missing or not an object")
    iid = attributes.get("iid")
    if isinstance(iid, bool) or not isinstance(iid, int) or iid < 1:
        raise HookError("object_attributes.iid", "must be a positive whole number")
    state = text(attributes, "state", where="object_attributes.", required=True)
    if state not in MergeRequestState.values:
        raise HookError("object_attributes.state", f"{state!r} is not one of {', '.join(MergeRequestState.values)}")
    last_commit = attributes.get("last_commit")
    if last_commit is not None and not isinstance(last_commit, dict):
        raise HookError("object_attributes.last_commit", "must be an object")
    user = payload.get("user")
    return MergeRequestEvent(
        iid=iid,
        state=state,
        action=text(attributes, "action", where="object_attributes."),
        source_branch=text(attributes, "source_branch", where="object_attributes."),
        target_branch=text(attributes, "target_branch", where="object_attributes."),
        last_commit=text(last_commit or {}, "id", where="object_attributes.last_commit."),
        url=text(attributes, "url", where="object_attributes."),
        user=text(user, "username", where="user.") if isinstance(user, dict) else "",
    )


def text(data: dict, name: str, *, where: str = "", required: bool = False) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise HookError(where + name, "is required")
        return ""
    if not isinstance(value, str):
        raise HookError(where + name, "must be a string")
    return value


def sha(data: dict, name: str) -> str:
    value = text(data, name, required=True)
    if not SHA.match(value):
        raise HookError(name, f"{value[:80]!r} is not a commit sha")
    return value


def delivery_key(*, idempotency_key: str, event_uuid: str) -> str:
    key = (idempotency_key or event_uuid or "").strip()
    if len(key) > MAX_KEY_LENGTH:
        raise HookError("Idempotency-Key" if idempotency_key else "X-Gitlab-Event-UUID",
                        f"is longer than {MAX_KEY_LENGTH} characters")
    return key


# --- Services ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    status: str  # triggered, synced, ignored, duplicate
    detail: str
    run: int | None = None
    promotions: tuple[int, ...] = ()


def authenticated_project(*, project_path: str, token: str) -> Project | None:
    """The project at this GitLab path whose webhook secret is `token`, or None (unknown path, wrong token)."""
    if not token:
        return None
    for project in Project.objects.filter(gitlab_project_path__iexact=project_path.strip("/")):
        if project.gitlab_webhook_secret_matches(token):
            return project
    return None


def receive(*, project: Project, kind: str, key: str, event: PushEvent | MergeRequestEvent) -> Outcome:
    """Apply one delivery, once: the delivery's key is written in the same transaction as its effects."""
    try:
        with transaction.atomic():
            delivery = GitLabHookDelivery.objects.create(project=project, key=key, event=kind) if key else None
            if kind == PUSH:
                outcome = apply_push(project=project, event=event)
            else:
                outcome = apply_merge_request(project=project, event=event)
            if delivery is not None:
                delivery.outcome = f"{outcome.status}: {outcome.detail}"[:500]
                delivery.save(update_fields=["outcome"])
    except IntegrityError:
        if key and GitLabHookDelivery.objects.filter(project=project, key=key).exists():
            return Outcome("duplicate", f"Delivery {key} was already handled; nothing done.")
        raise
    return outcome


def apply_push(*, project: Project, event: PushEvent) -> Outcome:
    if not event.branch:
        return Outcome("ignored", "Not a branch push.")
    if event.deleted:
        return Outcome("ignored", f"Branch {event.branch} was deleted.")
    if not project.runs_on_push:
        return Outcome("ignored", f"{project.name} does not start runs on push (Project > runs on push).")
    if event.branch not in (project.dev_branch, project.release_branch):
        return Outcome("ignored", f"{event.branch} is neither {project.dev_branch} nor {project.release_branch}.")
    try:
        run = triggers.request_run(project=project, branch=event.branch, commit=event.after, user=None,
                                   trigger=RunTrigger.WEBHOOK)
    except triggers.TriggerRefused as exc:
        return Outcome("ignored", f"No run started: {exc}")
    audit(project=project, actor_label=ACTOR, action="gitlab.push_run_requested", target=run,
          data={"branch": event.branch, "before": event.before, "after": event.after, "pusher": event.pusher})
    return Outcome("triggered", f"Run {run.pk} requested for {event.branch} at {event.after[:8]}.", run=run.pk)


def apply_merge_request(*, project: Project, event: MergeRequestEvent) -> Outcome:
    promotions = list(Promotion.objects.select_for_update().filter(project=project, mr_iid=event.iid).order_by("pk"))
    if not promotions:
        return Outcome("ignored", f"No promotion uses merge request !{event.iid}.")
    changed = []
    for promotion in promotions:
        if promotion.mr_state == event.state:
            continue
        if promotion.mr_state == MergeRequestState.MERGED:
            continue  # merged is final in GitLab: an older event arriving late does not undo it
        previous = promotion.mr_state
        Promotion.objects.filter(pk=promotion.pk).update(mr_state=event.state)
        audit(project=project, actor_label=ACTOR, action="promotion.mr_state_changed", target=promotion,
              data={"mr": event.iid, "from": previous, "to": event.state, "action": event.action,
                    "by": event.user, "last_commit": event.last_commit})
        changed.append(promotion.pk)
    if not changed:
        return Outcome("ignored", f"Merge request !{event.iid} is already {event.state} in the portal.")
    return Outcome("synced", f"Merge request !{event.iid} is {event.state}.", promotions=tuple(changed))


def issue_webhook_secret(*, project: Project, user=None, actor_label: str = "") -> str:
    """A new webhook secret for the project (the old one stops working); returned in clear, once."""
    with transaction.atomic():
        secret = project.issue_gitlab_webhook_secret()
        audit(project=project, actor=user, actor_label=actor_label, action="gitlab_webhook_secret.issued",
              target=project, data={})
    return secret

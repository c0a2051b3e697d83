"""Writes of the promotion flow: request, decide, merge through GitLab, release. Every transition is audited.

    requested --approve--> approved --merge (task)--> merged --production deployment--> released
        |                     |  GitLab unreachable: stays approved, "merge pending", retried (Schedule)
        +--reject--> rejected +--dev moved / not mergeable / refused--> failed

Web requests only write rows and queue tasks on commit; GitLab is called from the worker (promotions.tasks),
which retries a GitLab that is down through a django-q2 Schedule rather than by sleeping.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone
from django_q.tasks import async_task, schedule

from deliveries import gitlab, triggers
from deliveries.audit import audit
from deliveries.models import (
    GateCondition,
    MergeRequestState,
    PipelineRun,
    Project,
    Promotion,
    PromotionState,
    QualityGate,
    Waiver,
    WaiverKind,
)
from environments.models import Deployment, DeploymentStatus, Tier
from portal.roles import Role, has_role
from promotions import gates, selectors

logger = logging.getLogger(__name__)

MERGE_ATTEMPTS = 6  # a GitLab down for longer fails the promotion, saying so: a tech lead approves again later
MERGE_RETRY_FIRST_SECONDS = 60
MERGE_RETRY_MAX_SECONDS = 30 * 60
PORTAL = "portal"


class PromotionRefused(Exception):
    """An action the rules refuse: `forbidden` when it is the user who may not (403), `invalid` when the input is
    wrong (400), else the state of things (409)."""

    def __init__(self, reason: str, *, forbidden: bool = False, invalid: bool = False):
        super().__init__(reason)
        self.reason, self.forbidden, self.invalid = reason, forbidden, invalid


def record(promotion: Promotion, *, action: str, user=None, data: dict | None = None) -> None:
    audit(project_id=promotion.project_id, actor=user, actor_label="" if user else PORTAL, action=action,
          target=promotion, data={"state": promotion.state, **(data or {})})


def queue(function: str, *args) -> None:
    transaction.on_commit(partial(async_task, f"promotions.tasks.{function}", *args,
                                  task_name=f"{function} {' '.join(map(str, args))}"[:100]))


# --- the gate ---------------------------------------------------------------------------------------------------


def ensure_default_gate(*, project: Project) -> QualityGate:
    """The project's gate; a new project gets the default one (gates.DEFAULT_GATE)."""
    gate, created = QualityGate.objects.get_or_create(project=project)
    if created:
        GateCondition.objects.bulk_create([
            GateCondition(gate=gate, metric=metric, comparator=comparator, threshold=threshold,
                          relative_to_production=relative)
            for metric, comparator, threshold, relative in gates.DEFAULT_GATE
        ])
    return gate


def evaluate_gate(run: PipelineRun) -> dict:
    """The project's gate against the run now, with the waivers in force."""
    now = timezone.now()
    return gates.evaluate(selectors.gate_conditions(run.project), selectors.evidence(run),
                          selectors.active_waivers(run.project, at=now), now=now)


def current_gate(promotion: Promotion) -> dict:
    """The frozen evaluation with today's waivers: what a decision is judged on."""
    now = timezone.now()
    return gates.apply_waivers(promotion.gate_snapshot, selectors.active_waivers(promotion.project, at=now), now=now)


def save_gate(*, project: Project, user, formset) -> None:
    """Save a tech lead's edit of the gate (a valid GateCondition formset), audited with the conditions after."""
    if not has_role(user, Role.TECHLEAD):
        raise PromotionRefused("Only tech leads edit the quality gate.", forbidden=True)
    with transaction.atomic():
        formset.save()
        conditions = [str(condition) for condition in formset.instance.conditions.order_by("pk")]
        audit(project=project, actor=user, action="gate.changed", target=formset.instance,
              data={"conditions": conditions})


def create_waiver(*, project: Project, user, kind: str, identifier: str, reason: str, expires_at) -> Waiver:
    if not has_role(user, Role.TECHLEAD):
        raise PromotionRefused("Only tech leads grant waivers.", forbidden=True)
    if kind not in WaiverKind.values:
        raise PromotionRefused(f"A waiver excuses a vulnerability or a scenario, not {kind!r}.", invalid=True)
    if not identifier.strip() or not reason.strip():
        raise PromotionRefused("A waiver names what it excuses and says why.", invalid=True)
    if expires_at <= timezone.now():
        raise PromotionRefused("A waiver must expire in the future.", invalid=True)
    with transaction.atomic():
        waiver = Waiver.objects.create(project=project, kind=kind, identifier=identifier.strip(), owner=user,
                                       reason=reason.strip(), expires_at=expires_at)
        audit(project=project, actor=user, action="waiver.created", target=waiver,
              data={"kind": kind, "identifier": waiver.identifier, "reason": waiver.reason,
                    "expires_at": expires_at.isoformat()})
    return waiver


# --- request and decision ---------------------------------------------------------------------------------------


def request_promotion(*, run: PipelineRun, user) -> Promotion:
    """Ask for the run's promotion to production: its gate evaluated and frozen, the MR opened by a task, tech
    leads told. Raises PromotionRefused saying why the run cannot be promoted."""
    if not has_role(user, Role.DEVELOPER, Role.TECHLEAD):
        raise PromotionRefused("Only developers and tech leads request promotions.", forbidden=True)
    with transaction.atomic():
        Project.objects.select_for_update().filter(pk=run.project_id).first()  # one request per project at a time
        run = PipelineRun.objects.select_related("project").get(pk=run.pk)
        reason = selectors.refusal(run)
        if reason:
            raise PromotionRefused(reason)
        snapshot = evaluate_gate(run)
        try:
            with transaction.atomic():
                promotion = Promotion.objects.create(project=run.project, source_run=run, requested_by=user,
                                                     gate_snapshot=snapshot)
        except IntegrityError as exc:  # another request won a race the lock did not cover
            raise PromotionRefused(selectors.refusal(run) or "Another promotion is open for this project.") from exc
        record(promotion, action="promotion.requested", user=user,
               data={"run": run.pk, "commit": run.commit_sha, "gate_passed": snapshot["passed"],
                     "failures": gates.failures(snapshot)})
        queue("open_merge_request", promotion.pk)
        queue("notify", promotion.pk, "requested")
    return promotion


def locked(promotion: Promotion) -> Promotion:
    return Promotion.objects.select_for_update().select_related("project", "source_run").get(pk=promotion.pk)


def check_decider(promotion: Promotion, user) -> None:
    if not has_role(user, Role.TECHLEAD):
        raise PromotionRefused("Only tech leads decide on promotions.", forbidden=True)
    if user.pk == promotion.requested_by_id:
        raise PromotionRefused("You requested this promotion: another tech lead must decide on it.", forbidden=True)
    if promotion.state != PromotionState.REQUESTED:
        state = promotion.get_state_display().lower()
        raise PromotionRefused(f"This promotion is {state}: there is nothing to decide.")


def approve_promotion(*, promotion: Promotion, user, comment: str = "") -> Promotion:
    """A tech lead who is not the requester approves; refused while the frozen gate fails and no waiver covers it."""
    with transaction.atomic():
        promotion = locked(promotion)
        check_decider(promotion, user)
        judged = current_gate(promotion)
        if not judged["passed"]:
            raise PromotionRefused("The quality gate fails: " + "; ".join(gates.failures(judged))
                                   + ". A waiver for the failure or a new run that passes is needed.")
        promotion.state, promotion.approved_by, promotion.decided_by = PromotionState.APPROVED, user, user
        promotion.decided_at, promotion.decision_comment = timezone.now(), comment.strip()
        promotion.decision_gate = judged
        promotion.save(update_fields=["state", "approved_by", "decided_by", "decided_at", "decision_comment",
                                      "decision_gate", "updated_at"])
        record(promotion, action="promotion.approved", user=user,
               data={"comment": promotion.decision_comment,
                     "waivers_used": [w["id"] for w in judged["waivers_used"]]})
        queue("merge_promotion", promotion.pk)
        queue("notify", promotion.pk, "decided")
    return promotion


def reject_promotion(*, promotion: Promotion, user, comment: str) -> Promotion:
    if not comment.strip():
        raise PromotionRefused("Say why the promotion is rejected.", invalid=True)
    with transaction.atomic():
        promotion = locked(promotion)
        check_decider(promotion, user)
        promotion.state, promotion.decided_by, promotion.decided_at = PromotionState.REJECTED, user, timezone.now()
        promotion.decision_comment = comment.strip()
        promotion.save(update_fields=["state", "decided_by", "decided_at", "decision_comment", "updated_at"])
        record(promotion, action="promotion.rejected", user=user, data={"comment": promotion.decision_comment})
        queue("notify", promotion.pk, "decided")
    return promotion


# --- GitLab, from the worker ------------------------------------------------------------------------------------


def mr_title(promotion: Promotion) -> str:
    run = promotion.source_run
    return f"Promote {run.project.name} {run.label} ({run.short_sha}) to production"


def ensure_merge_request(promotion: Promotion) -> Promotion:
    """Open (or reuse) the MR from dev into the release branch and keep its iid and URL. Raises GitLabError."""
    if promotion.mr_iid:
        return promotion
    project, run = promotion.project, promotion.source_run
    mr = gitlab.open_merge_request(
        project_path=project.gitlab_project_path, source_branch=project.dev_branch,
        target_branch=project.release_branch, title=mr_title(promotion),
        description=f"Requested in the delivery portal (promotion {promotion.pk}) for the tested commit "
                    f"{run.commit_sha}.",
    )
    with transaction.atomic():
        updated = Promotion.objects.filter(pk=promotion.pk, mr_iid__isnull=True).update(
            mr_iid=mr.iid, mr_url=mr.web_url[:500], mr_state=mr.state)
        if updated:
            promotion.mr_iid, promotion.mr_url, promotion.mr_state = mr.iid, mr.web_url, mr.state
            record(promotion, action="promotion.mr_opened",
                   data={"mr": mr.iid, "url": mr.web_url, "reused": mr.reused})
    return Promotion.objects.select_related("project", "source_run").get(pk=promotion.pk)


def open_merge_request(*, promotion_id: int) -> Promotion:
    """At request: link the MR. A failure here is only logged and shown: the merge task opens it again."""
    promotion = Promotion.objects.select_related("project", "source_run").get(pk=promotion_id)
    if promotion.mr_iid or not promotion.is_open:
        return promotion
    try:
        return ensure_merge_request(promotion)
    except gitlab.GitLabError as exc:
        logger.warning("Promotion %s: no merge request yet: %s", promotion.pk, exc.reason)
        with transaction.atomic():
            Promotion.objects.filter(pk=promotion.pk).update(state_reason=f"No merge request yet: {exc.reason}"[:500])
            record(promotion, action="promotion.mr_failed", data={"reason": exc.reason})
        return promotion


def merge_promotion(*, promotion_id: int) -> Promotion:
    """Approve the MR in GitLab and merge it with the tested sha, then trigger the master run. GitLab down: the
    promotion stays approved ("merge pending") and a Schedule tries again later; a refusal fails it with the
    reason; a moved dev fails it and merges nothing."""
    promotion = Promotion.objects.select_related("project", "source_run").get(pk=promotion_id)
    if promotion.state != PromotionState.APPROVED:
        return promotion
    project, sha = promotion.project, promotion.source_run.commit_sha
    try:
        promotion = ensure_merge_request(promotion)
        gitlab.approve_merge_request(project_path=project.gitlab_project_path, iid=promotion.mr_iid, sha=sha)
        mr = gitlab.merge_merge_request(project_path=project.gitlab_project_path, iid=promotion.mr_iid, sha=sha,
                                        message=f"{mr_title(promotion)}\n\nApproved in the delivery portal.")
    except gitlab.GitLabError as exc:
        # GitLab's refusal in words: dev moved since the tested run (ShaMismatch), not mergeable, refused...
        if exc.retryable:
            return merge_later(promotion, exc.reason)
        return fail(promotion, exc.reason)
    return merged(promotion, mr)


def fail(promotion: Promotion, reason: str) -> Promotion:
    with transaction.atomic():
        updated = Promotion.objects.filter(pk=promotion.pk, state=PromotionState.APPROVED).update(
            state=PromotionState.FAILED, state_reason=reason[:500], next_merge_attempt_at=None,
            updated_at=timezone.now())
        promotion.refresh_from_db()
        if updated:
            record(promotion, action="promotion.failed", data={"reason": reason})
            queue("notify", promotion.pk, "failed")
    return promotion


def merge_later(promotion: Promotion, reason: str) -> Promotion:
    attempts = promotion.merge_attempts + 1
    if attempts >= MERGE_ATTEMPTS:
        return fail(promotion, f"GitLab could not be reached in {attempts} attempts: {reason}")
    delay = min(MERGE_RETRY_FIRST_SECONDS * 2 ** (attempts - 1), MERGE_RETRY_MAX_SECONDS)
    when = timezone.now() + timedelta(seconds=delay)
    with transaction.atomic():
        updated = Promotion.objects.filter(pk=promotion.pk, state=PromotionState.APPROVED,
                                           merge_attempts=promotion.merge_attempts).update(
            merge_attempts=attempts, next_merge_attempt_at=when, updated_at=timezone.now(),
            state_reason=reason[:500])  # the page says "merge pending" before it
        promotion.refresh_from_db()
        if updated:
            record(promotion, action="promotion.merge_pending",
                   data={"reason": reason, "attempt": attempts, "next_attempt_at": when.isoformat()})
            transaction.on_commit(partial(
                schedule, "promotions.tasks.merge_promotion", promotion.pk, next_run=when, repeats=1,
                name=f"Merge promotion {promotion.pk}, attempt {attempts + 1}"))
    return promotion


def merged(promotion: Promotion, mr: gitlab.MergeRequest) -> Promotion:
    with transaction.atomic():
        now = timezone.now()
        updated = Promotion.objects.filter(pk=promotion.pk, state=PromotionState.APPROVED).update(
            state=PromotionState.MERGED, mr_state=MergeRequestState.MERGED, merge_commit_sha=mr.merge_commit_sha or "",
            merged_at=now, state_reason="", next_merge_attempt_at=None, updated_at=now)
        promotion.refresh_from_db()
        if not updated:
            return promotion
        record(promotion, action="promotion.merged", data={"mr": mr.iid, "merge_commit": mr.merge_commit_sha})
    return trigger_master_run(promotion)


def trigger_master_run(promotion: Promotion) -> Promotion:
    """Start the release branch's pipeline at the merge commit and link it (or the run already queued for it)."""
    project = promotion.project
    try:
        run = triggers.request_run(project=project, branch=project.release_branch,
                                   commit=promotion.merge_commit_sha, user=None)
    except triggers.AlreadyQueued as exc:
        run = exc.run
    except triggers.TriggerRefused as exc:
        logger.warning("Promotion %s: master run not triggered: %s", promotion.pk, exc)
        Promotion.objects.filter(pk=promotion.pk).update(state_reason=f"Master run not triggered: {exc}"[:500])
        return promotion
    with transaction.atomic():
        if Promotion.objects.filter(pk=promotion.pk, master_run__isnull=True).update(master_run=run):
            promotion.master_run = run
            record(promotion, action="promotion.master_run_linked", data={"run": run.pk})
    return promotion


# --- release ---------------------------------------------------------------------------------------------------


def record_production_deployment(*, deployment: Deployment) -> Promotion | None:
    """On environments' deployment_succeeded (promotions.signals): a successful production deployment of a
    promotion's master run (or of a run at its merge commit, arrived by webhook or callback) releases it."""
    if deployment.status != DeploymentStatus.SUCCESS or deployment.source_run_id is None:
        return None
    if deployment.environment.tier != Tier.PRODUCTION:
        return None
    run = deployment.source_run
    with transaction.atomic():
        promotion = (
            Promotion.objects.select_for_update()
            .filter(project_id=deployment.project_id, state=PromotionState.MERGED)
            .filter(led_to(run)).order_by("-created_at").first()
        )
        if promotion is None:
            return None
        promotion.state, promotion.released_at = PromotionState.RELEASED, timezone.now()
        promotion.production_deployment, promotion.state_reason = deployment, ""
        promotion.master_run_id = promotion.master_run_id or run.pk
        promotion.save(update_fields=["state", "released_at", "production_deployment", "master_run", "state_reason",
                                      "updated_at"])
        record(promotion, action="promotion.released",
               data={"deployment": deployment.pk, "run": run.pk, "commit": run.commit_sha})
    return promotion


def led_to(run: PipelineRun) -> Q:
    """Promotions whose master run is `run`, or, with none linked yet, whose merge commit `run` built."""
    by_sha = Q(merge_commit_sha=run.commit_sha) if run.commit_sha else Q(pk__in=[])
    return Q(master_run=run) | (Q(master_run__isnull=True) & by_sha)


# --- deployments that break the rules ---------------------------------------------------------------------------


def flag_rule_violations(*, deployment: Deployment, images: list[dict], actor_label: str = "") -> list[str]:
    """Called by the top layer after Jenkins recorded a deployment: the deployment happened, so it is kept, but
    the rules it broke (no promotion approved for its commit, a freeze in force when it started, images that are
    not its run's artifacts) are written on it and audited, each once. Returns the ones it breaks."""
    run = deployment.source_run
    _, breaches = selectors.deploy_rule_breaches(
        project=deployment.project, environment=deployment.environment, commit_sha=run.commit_sha if run else "",
        at=deployment.started_at,
    )
    foreign = selectors.foreign_images(run, images) if run is not None else []
    if foreign:
        breaches.append(f"Images not built by build {run.build_number}: {', '.join(foreign)}.")
    with transaction.atomic():
        flagged = Deployment.objects.select_for_update().only("rule_violations").get(pk=deployment.pk)
        new = [breach for breach in breaches if breach not in flagged.rule_violations]
        if new:
            deployment.rule_violations = flagged.rule_violations + new
            Deployment.objects.filter(pk=deployment.pk).update(rule_violations=deployment.rule_violations)
            audit(project_id=deployment.project_id, actor_label=actor_label or PORTAL, action="deployment.rule_broken",
                  target=deployment, data={"environment": deployment.environment.slug, "violations": new,
                                           "build_number": run.build_number if run else None})
        else:
            deployment.rule_violations = flagged.rule_violations
    return deployment.rule_violations

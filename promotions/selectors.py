"""Reads of the promotion flow: what a run proved (for the gate), whether it may be promoted, and the pages' lists."""

from __future__ import annotations

from django.db import connection
from django.db.models import BooleanField, Exists, OuterRef, Q
from django.db.models.expressions import RawSQL
from django.utils import timezone

from deliveries.models import (
    OPEN_PROMOTION_STATES,
    AuditEvent,
    GateCondition,
    PipelineRun,
    Project,
    Promotion,
    PromotionState,
    RunStatus,
    Waiver,
)
from environments import selectors as environment_selectors
from environments.models import AvailabilityCheck, Deployment, DeploymentStatus, Tier
from portal.formats import moment
from portal.queries import first
from promotions import gates
from scanners import selectors as scanner_selectors
from scanners.models import (
    AttackScenario,
    FindingClass,
    LoadTestStat,
    Report,
    ReportKind,
    ReportStatus,
    ScenarioStatus,
    Severity,
)

AVAILABILITY_STAGE = "Availability test"


# --- the gate's inputs ------------------------------------------------------------------------------------------


def gate_conditions(project: Project) -> list[gates.Condition]:
    """The project's gate as the evaluator takes it; none when the gate is switched off."""
    rows = GateCondition.objects.filter(gate__project=project, gate__is_active=True).order_by("pk")
    return [
        gates.Condition(row.metric, row.comparator, row.threshold, row.relative_to_production,
                        label=row.get_metric_display())
        for row in rows
    ]


def active_waivers(project: Project, *, at=None) -> list[gates.ActiveWaiver]:
    at = at or timezone.now()
    rows = Waiver.objects.filter(project=project, expires_at__gt=at).select_related("owner").order_by("pk")
    return [
        gates.ActiveWaiver(row.pk, row.kind, row.identifier, row.owner.get_username(), row.reason, row.expires_at)
        for row in rows
    ]


def report_problem(run: PipelineRun, kind: str, label: str) -> str:
    """Why a run has no parsed report of a kind: none uploaded, or only ones that failed or wait to be parsed."""
    statuses = set(Report.objects.filter(run=run, kind=kind).values_list("status", flat=True))
    if ReportStatus.FAILED in statuses:
        return f"the {label} report of this run failed to parse"
    if statuses:
        return f"the {label} report of this run is not parsed yet"
    return f"no {label} report in this run"


def evidence(run: PipelineRun) -> gates.Evidence:
    """What the run proved, compared with what production runs now. A fixed number of queries."""
    production = environment_selectors.production_run(run.project_id)
    parsed = set(Report.objects.filter(run=run, status=ReportStatus.PARSED).values_list("kind", flat=True))
    found = gates.Evidence(first_release=production is None)
    found.has_trivy = ReportKind.TRIVY in parsed
    if found.has_trivy:
        findings = scanner_selectors.with_production_flag(
            scanner_selectors.run_findings(run).filter(
                Q(finding_class=FindingClass.VULNERABILITY, severity__in=[Severity.CRITICAL, Severity.HIGH])
                | Q(finding_class=FindingClass.SECRET)
            ),
            production,
        )
        for identifier, finding_class, severity, fixed, new in findings.order_by("identifier").values_list(
            "identifier", "finding_class", "severity", "fixed_version", "new_vs_production"
        ):
            if finding_class == FindingClass.SECRET:
                found.secrets.append(identifier)
            else:
                found.vulnerabilities.append(gates.Vulnerability(identifier, severity, bool(fixed),
                                                                 None if new is None else not new))
    else:
        found.trivy_problem = report_problem(run, ReportKind.TRIVY, "Trivy")
    found.has_gauntlt = ReportKind.GAUNTLT in parsed
    if found.has_gauntlt:
        found.failed_scenarios = list(
            AttackScenario.objects.filter(run=run, report__status=ReportStatus.PARSED, status=ScenarioStatus.FAILED)
            .order_by("name").values_list("name", flat=True).distinct()
        )
    found.has_jmeter = ReportKind.JMETER in parsed
    if found.has_jmeter:
        stats = LoadTestStat.objects.filter(run=run, report__status=ReportStatus.PARSED, report__kind=ReportKind.JMETER,
                                            is_total=False).order_by("report__created_at", "report_id")
        found.labels = {stat.label: gates.LabelFigures(stat.p95_ms, stat.error_percent) for stat in stats}
        baseline = scanner_selectors.production_load_stats(production)
        if baseline:
            found.production_labels = {
                label: gates.LabelFigures(stat.p95_ms, stat.error_percent)
                for (label, is_total), stat in baseline.items() if not is_total
            }
    found.availability = staging_availability(run)
    return found


def staging_deployment(run: PipelineRun) -> Deployment | None:
    """The run's latest successful deployment to staging."""
    return (
        Deployment.objects.filter(source_run=run, environment__tier=Tier.STAGING, status=DeploymentStatus.SUCCESS)
        .select_related("environment").order_by("-started_at", "-id").first()
    )


def staging_availability(run: PipelineRun) -> tuple[bool, str] | None:
    """The last availability check of staging since the run was deployed there (the portal's own checks), else
    the run's own "Availability test" stage; None when neither exists."""
    deployment = staging_deployment(run)
    if deployment is not None:
        check = (
            AvailabilityCheck.objects.filter(environment_id=deployment.environment_id,
                                             checked_at__gte=deployment.started_at)
            .order_by("-checked_at").first()
        )
        if check is not None:
            code = f" ({check.status_code})" if check.status_code else ""
            return check.ok, f"check of {check.url}{code}" + (f": {check.error}" if check.error else "")
    stage = run.stages.filter(name=AVAILABILITY_STAGE).first()
    if stage is None or not stage.finished_at:
        return None
    return stage.status == "success", f"the run's {AVAILABILITY_STAGE} stage ended {stage.status}"


# --- may this run be promoted? ---------------------------------------------------------------------------------


# The open states written into the statement rather than bound as parameters, so that both databases can prove the
# partial unique index promotion_one_open_per_project applies: with bound states SQLite walked every promotion of the
# project, and PostgreSQL's cached (generic) plan of the prepared statement scanned the table. Constants, never input.
IS_OPEN = RawSQL('{}."state" IN ({})'.format(  # noqa: S611
    connection.ops.quote_name(Promotion._meta.db_table), ", ".join(f"'{state}'" for state in OPEN_PROMOTION_STATES)),
    (), output_field=BooleanField())


def open_promotion(project: Project) -> Promotion | None:
    """The project's open promotion, or None: at most one (promotion_one_open_per_project), read unordered through
    that index."""
    return first(Promotion.objects.filter(IS_OPEN, project=project).select_related("source_run"))


def refusal(run: PipelineRun) -> str:
    """Why the run cannot be requested for promotion, in words; "" when it can."""
    project = run.project
    if run.branch != project.dev_branch:
        return f"Only runs of {project.dev_branch} are promoted; this run is on {run.branch}."
    if run.status != RunStatus.SUCCESS:
        return f"This run is {run.get_status_display().lower()}: only a green run can be promoted."
    if not run.commit_sha:
        return "This run has no commit sha: the portal could not merge exactly what was tested."
    if staging_deployment(run) is None:
        return "This run has not been deployed to staging successfully: it cannot be promoted yet."
    if not project.gitlab_project_path:
        return "The project has no GitLab project path (set it in the admin): no merge request can be opened."
    current = open_promotion(project)
    if current is not None:
        return (f"Promotion {current.pk} of {current.source_run.label} is already {current.get_state_display().lower()}"
                f": one open promotion per project at a time.")
    return ""


def run_promotions(run: PipelineRun):
    return Promotion.objects.filter(source_run=run).order_by("-created_at", "-id")


def candidate_run(project: Project) -> PipelineRun | None:
    """The run the project page offers to promote: the newest green dev run deployed to staging."""
    deployed = Deployment.objects.filter(source_run=OuterRef("pk"), environment__tier=Tier.STAGING,
                                         status=DeploymentStatus.SUCCESS)
    return (
        PipelineRun.objects.filter(project=project, branch=project.dev_branch, status=RunStatus.SUCCESS)
        .filter(Exists(deployed)).select_related("project").order_by("-created_at", "-id").first()
    )


# --- pages ------------------------------------------------------------------------------------------------------


def project_promotions(project: Project):
    return (
        Promotion.objects.filter(project=project)
        .select_related("source_run", "master_run", "requested_by", "decided_by")
        .order_by("-created_at", "-id")
    )


def promotions_with_details():
    """Promotions with what their page shows, in one query."""
    return Promotion.objects.select_related(
        "project", "source_run", "master_run", "requested_by", "approved_by", "decided_by",
        "production_deployment__environment",
    )


def promotions_waiting():
    """Promotions a tech lead has to look at, oldest first (the home page's list)."""
    return (
        Promotion.objects.filter(state=PromotionState.REQUESTED)
        .select_related("project", "source_run", "requested_by")
        .order_by("created_at")
    )


def project_waivers(project: Project):
    return Waiver.objects.filter(project=project).select_related("owner").order_by("-created_at", "-id")


def project_audit(project: Project):
    return AuditEvent.objects.filter(project=project).select_related("actor").order_by("-created_at", "-id")


# --- the deploy permission --------------------------------------------------------------------------------------

# A commit counts as approved for production from the tech lead's approval on: merging and merged are GitLab's
# mechanics after that decision (the merge uses the tested sha, so the master run builds that exact commit or the
# merge commit GitLab made from it), and a released promotion stays approved so that a redeploy of it, or a
# rollback to it, is allowed. Requested, rejected and failed ones never are (failed: nothing reached master).
APPROVED_PROMOTION_STATES = [PromotionState.APPROVED, PromotionState.MERGING, PromotionState.MERGED,
                             PromotionState.RELEASED]


def needs_promotion(environment) -> bool:
    """Whether deploying to the environment needs an approved promotion: production, or one marked so."""
    return environment.tier == Tier.PRODUCTION or environment.requires_approval


def approved_promotion(project_id: int, commit_sha: str) -> Promotion | None:
    """The newest promotion approved for exactly that commit: the tested one, or the merge commit GitLab made."""
    if not commit_sha:
        return None
    return (
        Promotion.objects.filter(project_id=project_id, state__in=APPROVED_PROMOTION_STATES)
        .filter(Q(source_run__commit_sha=commit_sha) | Q(merge_commit_sha=commit_sha))
        .select_related("source_run", "approved_by").order_by("-created_at", "-id").first()
    )


def deploy_rule_breaches(*, project: Project, environment, commit_sha: str,
                         at=None) -> tuple[Promotion | None, list[str]]:
    """(the approving promotion, the deploy rules a deploy of the commit to the environment breaks, in words). The
    one rule that Jenkins' deploy permission and the flags on deployment callbacks share."""
    breaches = []
    freeze = environment_selectors.active_freeze(environment_id=environment.pk, at=at)
    if freeze is not None:
        breaches.append(f"{environment.name} is frozen until {moment(freeze.ends_at)}: {freeze.reason}")
    promotion = None
    if needs_promotion(environment):
        promotion = approved_promotion(project.pk, commit_sha)
        if promotion is None:
            short = commit_sha[:12] if commit_sha else "(no commit)"
            breaches.append(f"No promotion of {project.name} approved for commit {short}: a tech lead must approve a "
                            f"promotion of exactly this commit before it goes to {environment.name}.")
    return promotion, breaches


def deploy_refusal(*, project: Project, environment, commit_sha: str, at=None) -> tuple[Promotion | None, str]:
    """(the approving promotion, why the deploy is refused: "" when it is allowed)."""
    promotion, breaches = deploy_rule_breaches(project=project, environment=environment, commit_sha=commit_sha, at=at)
    return promotion, breaches[0] if breaches else ""


def foreign_images(run: PipelineRun, images: list[dict]) -> list[str]:
    """The deployed images that are not the run's artifacts: by digest when one is given, else by repository and
    tag."""
    if not images:
        return []
    built = list(run.artifacts.values_list("repository", "tag", "digest"))
    digests = {digest for _, _, digest in built if digest}
    names = {(repository, tag) for repository, tag, _ in built}
    foreign = []
    for image in images:
        digest = image.get("digest")
        if digest and digest not in digests:
            foreign.append(f"{image['repository']}@{digest}")
        elif not digest and (image["repository"], image["tag"]) not in names:
            foreign.append(f"{image['repository']}:{image['tag']}")
    return foreign


# --- the evidence of a promotion --------------------------------------------------------------------------------

EVIDENCE_FINDINGS = 200  # findings listed per side; the counts say how many there are in all
FINDING_FIELDS = ["identifier", "severity", "finding_class", "package", "installed_version", "fixed_version",
                  "artifact_name", "title"]


def evidence_baseline(promotion: Promotion) -> PipelineRun | None:
    """What production ran before the promotion: the run its production deployment replaced once released, else
    what production runs now."""
    deployment = promotion.production_deployment
    if deployment is not None:  # released: what it replaced (nothing, on a first release)
        replaced = Deployment.objects.filter(pk=deployment.replaced_id).select_related("source_run").first()
        return replaced.source_run if replaced is not None else None
    production = environment_selectors.production_run(promotion.project_id)
    return None if production is not None and production.pk == promotion.master_run_id else production


def run_facts(run: PipelineRun | None) -> dict | None:
    if run is None:
        return None
    return {"id": run.pk, "label": run.label, "build_number": run.build_number, "branch": run.branch,
            "commit_sha": run.commit_sha, "commit_title": run.commit_title, "status": run.status,
            "committed_at": run.committed_at, "started_at": run.started_at, "finished_at": run.finished_at}


def findings_vs_production(run: PipelineRun, baseline: PipelineRun | None) -> dict:
    """The run's findings that production does not have, and production's findings the run no longer has."""
    rows = scanner_selectors.run_findings(run)
    if baseline is None:
        return {"compared_with": None, "new": [], "new_count": None, "fixed": [], "fixed_count": None}
    new = rows.exclude(scanner_selectors.same_finding_in(baseline.pk)).order_by("identifier", "id")
    fixed = (scanner_selectors.run_findings(baseline).exclude(scanner_selectors.same_finding_in(run.pk))
             .order_by("identifier", "id"))
    return {
        "compared_with": baseline.label,
        "new": list(new.values(*FINDING_FIELDS)[:EVIDENCE_FINDINGS]), "new_count": new.count(),
        "fixed": list(fixed.values(*FINDING_FIELDS)[:EVIDENCE_FINDINGS]), "fixed_count": fixed.count(),
    }


def change_percent(value, base) -> float | None:
    if value is None or base in (None, 0):
        return None
    return round((value - base) / base * 100, 1)


def performance_vs_production(run: PipelineRun, baseline: PipelineRun | None) -> list[dict]:
    """Per label (and the Total): p95 and error % of the run's load test against production's last one."""
    stats = scanner_selectors.load_stats(scanner_selectors.parsed_reports(run, ReportKind.JMETER))
    base = scanner_selectors.production_load_stats(baseline) if baseline is not None else {}
    rows = []
    for stat in stats:
        before = base.get((stat.label, stat.is_total))
        rows.append({
            "label": "Total" if stat.is_total else stat.label, "is_total": stat.is_total, "samples": stat.samples,
            "p95_ms": stat.p95_ms, "production_p95_ms": before.p95_ms if before else None,
            "p95_change_percent": change_percent(stat.p95_ms, before.p95_ms if before else None),
            "error_percent": stat.error_percent,
            "production_error_percent": before.error_percent if before else None,
        })
    return rows


def attack_results(run: PipelineRun) -> list[dict]:
    return list(
        AttackScenario.objects.filter(run=run, report__status=ReportStatus.PARSED)
        .order_by("feature", "name", "id").values("feature", "name", "status", "failing_step", "failure_message")
    )


def evidence_document(promotion: Promotion) -> dict:
    """Everything a promotion rests on, for its printable page and its JSON (the same dict): the commit range and
    MR, the dev and master runs, the frozen gate, findings and performance against production, attacks, waivers
    used and the decisions. A fixed number of queries whatever the history."""
    run = promotion.source_run
    baseline = evidence_baseline(promotion)
    gate = promotion.decision_gate or promotion.gate_snapshot
    events = (AuditEvent.objects.filter(target_type="promotion", target_id=str(promotion.pk))
              .select_related("actor").order_by("created_at", "id"))
    return {
        "promotion": {"id": promotion.pk, "project": promotion.project.slug, "state": promotion.state,
                      "state_reason": promotion.state_reason},
        "commits": {"from": baseline.commit_sha if baseline else None, "to": run.commit_sha,
                    "merge_commit": promotion.merge_commit_sha or None,
                    "from_run": baseline.label if baseline else None},
        "merge_request": {"iid": promotion.mr_iid, "url": promotion.mr_url or None,
                          "state": promotion.mr_state or None},
        "dev_run": run_facts(run),
        "master_run": run_facts(promotion.master_run),
        "gate": {"passed": gate.get("passed"), "evaluated_at": gate.get("evaluated_at"),
                 "conditions": gate.get("conditions", []), "waivers_used": gate.get("waivers_used", []),
                 "frozen_at_decision": bool(promotion.decision_gate)},
        "findings": findings_vs_production(run, baseline),
        "performance": performance_vs_production(run, baseline),
        "attacks": attack_results(run),
        "approvals": {
            "requested_by": promotion.requested_by.get_username(), "requested_at": promotion.created_at,
            "decided_by": promotion.decided_by.get_username() if promotion.decided_by else None,
            "decided_at": promotion.decided_at,
            "decision": "rejected" if promotion.state == PromotionState.REJECTED else (
                "approved" if promotion.approved_by_id else None),
            "comment": promotion.decision_comment,
            "merged_at": promotion.merged_at, "released_at": promotion.released_at,
        },
        "audit": [{"at": event.created_at, "who": event.actor.get_username() if event.actor else event.actor_label,
                   "action": event.action} for event in events],
    }

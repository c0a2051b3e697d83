"""The promotion flow's services against the imitation GitLab over real HTTP (python-gitlab unchanged): request,
gate frozen, MR, decision with four eyes and waivers, merge with the tested sha and its faults, master run,
release; every transition audited."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django_q.models import Schedule

from deliveries.models import AuditEvent, PipelineRun, Promotion, PromotionState, RunStatus
from environments import deployments
from environments.models import Deployment, DeploymentStatus
from environments.services import record_deployment
from promotions import services
from promotions.services import PromotionRefused
from scanners import services as scanner_services
from tests.factories import DeploymentFactory, UserFactory
from tests.promotions.conftest import PATH, requested


def actions(promotion) -> list[str]:
    return list(AuditEvent.objects.filter(target_type="promotion", target_id=str(promotion.pk))
                .order_by("id").values_list("action", flat=True))


def at_dev_head(gitlab_server, promotion):
    gitlab_server.push(PATH, "dev", promotion.source_run.commit_sha)
    return promotion


def approved(gitlab_server, world, dana, tom) -> Promotion:
    promotion = at_dev_head(gitlab_server, requested(world, dana))
    services.open_merge_request(promotion_id=promotion.pk)
    return services.approve_promotion(promotion=promotion, user=tom, comment="Ship it")


# --- request ----------------------------------------------------------------------------------------------------


def test_it_requests_a_green_staged_run_with_its_gate_frozen(world, dana, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks() as queued:
        promotion = requested(world, dana)
    assert promotion.state == PromotionState.REQUESTED and promotion.requested_by == dana
    assert promotion.gate_snapshot["passed"] is True
    metrics = [row["metric"] for row in promotion.gate_snapshot["conditions"]]
    assert metrics[0] == "new_critical_vulnerabilities" and "staging_availability" in metrics
    assert actions(promotion) == ["promotion.requested"]
    assert len(queued) == 2  # the MR and the tech leads' notification, after commit


@pytest.mark.parametrize(("fields", "reason"), [
    ({"status": RunStatus.FAILED}, "This run is failed: only a green run can be promoted."),
    ({"staged": False}, "This run has not been deployed to staging successfully: it cannot be promoted yet."),
    ({"branch": "feature/x"}, "Only runs of dev are promoted; this run is on feature/x."),
])
def test_it_refuses_a_run_that_is_not_green_staged_or_on_dev_saying_why(world, dana, fields, reason):
    run = world.green_run(**fields)
    with pytest.raises(PromotionRefused) as refused:
        services.request_promotion(run=run, user=dana)
    assert refused.value.reason == reason
    assert not Promotion.objects.exists()


def test_one_open_promotion_per_project_and_the_refusal_names_it(world, dana):
    first = requested(world, dana)
    with pytest.raises(PromotionRefused) as refused:
        requested(world, dana)
    assert refused.value.reason == (f"Promotion {first.pk} of {first.source_run.label} is already requested: one "
                                    "open promotion per project at a time.")


def test_an_operator_cannot_request(world, db):
    with pytest.raises(PromotionRefused) as refused:
        requested(world, UserFactory(username="olga", roles=["operator"]))
    assert refused.value.forbidden


def test_no_evidence_is_not_green(world, dana):
    promotion = requested(world, dana, reports=("gauntlt", "jmeter"))
    snapshot = promotion.gate_snapshot
    assert snapshot["passed"] is False
    assert snapshot["conditions"][0]["detail"] == "no Trivy report in this run"


def test_a_trivy_report_that_failed_to_parse_says_so(world, dana):
    run = world.green_run(reports=("gauntlt", "jmeter"))
    scanner_services.ingest_content(run=run, content=b"{not json", original_name="trivy.json", kind="trivy")
    snapshot = services.request_promotion(run=run, user=dana).gate_snapshot
    assert snapshot["conditions"][0]["detail"] == "the Trivy report of this run failed to parse"


def test_a_new_project_gets_the_default_gate(world):
    conditions = [str(c) for c in world.project.quality_gate.conditions.order_by("pk")]
    assert conditions == [
        "New critical vulnerabilities vs production ≤ 0",
        "Failed attack scenarios ≤ 0",
        "Load test p95 (ms) per label ≤ 20 vs production",
        "Load test error % per label ≤ 1",
        "Last staging availability check passed = 1",
    ]


# --- decision ---------------------------------------------------------------------------------------------------


def test_the_requester_can_never_approve_even_as_a_tech_lead(world, db):
    lead = UserFactory(username="lea", roles=["developer", "techlead"])
    promotion = requested(world, lead)
    with pytest.raises(PromotionRefused) as refused:
        services.approve_promotion(promotion=promotion, user=lead)
    assert refused.value.forbidden
    promotion.refresh_from_db()
    assert (promotion.state, promotion.approved_by) == (PromotionState.REQUESTED, None)


def test_a_developer_cannot_decide(world, dana, db):
    promotion = requested(world, dana)
    with pytest.raises(PromotionRefused) as refused:
        services.approve_promotion(promotion=promotion, user=UserFactory(username="dev2", roles=["developer"]))
    assert refused.value.forbidden


def test_a_failing_gate_refuses_approval_until_a_waiver_covers_it(world, dana, tom):
    promotion = requested(world, dana, failed_scenarios=["xss"])
    with pytest.raises(PromotionRefused) as refused:
        services.approve_promotion(promotion=promotion, user=tom)
    assert "Failed attack scenarios: 1, failed: xss" in refused.value.reason
    assert not refused.value.forbidden
    services.create_waiver(project=world.project, user=tom, kind="scenario", identifier="xss",
                           reason="false positive", expires_at=timezone.now() + timedelta(days=7))
    promotion = services.approve_promotion(promotion=promotion, user=tom, comment="xss is a false positive")
    assert promotion.state == PromotionState.APPROVED
    assert [w["identifier"] for w in promotion.decision_gate["waivers_used"]] == ["xss"]
    assert promotion.gate_snapshot["passed"] is False  # the frozen evaluation stays as it was
    assert AuditEvent.objects.filter(action="waiver.created", actor=tom).exists()


def test_an_expired_waiver_does_not_unblock(world, dana, tom):
    promotion = requested(world, dana, failed_scenarios=["xss"])
    with pytest.raises(PromotionRefused):
        services.create_waiver(project=world.project, user=tom, kind="scenario", identifier="xss", reason="late",
                               expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(PromotionRefused):
        services.approve_promotion(promotion=promotion, user=tom)


def test_a_developer_cannot_grant_a_waiver(world, dana):
    with pytest.raises(PromotionRefused) as refused:
        services.create_waiver(project=world.project, user=dana, kind="scenario", identifier="xss", reason="x",
                               expires_at=timezone.now() + timedelta(days=1))
    assert refused.value.forbidden


def test_a_rejection_needs_a_reason_and_closes_the_promotion(world, dana, tom):
    promotion = requested(world, dana)
    with pytest.raises(PromotionRefused):
        services.reject_promotion(promotion=promotion, user=tom, comment="  ")
    promotion = services.reject_promotion(promotion=promotion, user=tom, comment="Wait for the release window")
    assert (promotion.state, promotion.decided_by, promotion.approved_by) == (PromotionState.REJECTED, tom, None)
    assert actions(promotion) == ["promotion.requested", "promotion.rejected"]
    requested(world, dana)  # no longer open: a new request is allowed


# --- GitLab -----------------------------------------------------------------------------------------------------


def test_it_opens_the_mr_and_reuses_an_open_one(gitlab_server, world, dana, tom):
    existing = gitlab_server.open_merge_request(PATH, source_branch="dev", target_branch="master", author="dana")
    promotion = services.open_merge_request(promotion_id=requested(world, dana).pk)
    assert (promotion.mr_iid, promotion.mr_url, promotion.mr_state) == (existing.iid, existing.web_url, "opened")
    assert "promotion.mr_opened" in actions(promotion)


def test_approval_merges_with_the_tested_sha_and_triggers_the_master_run(gitlab_server, world, dana, tom):
    promotion = approved(gitlab_server, world, dana, tom)
    promotion = services.merge_promotion(promotion_id=promotion.pk)
    mr = gitlab_server.merge_request(PATH, promotion.mr_iid)
    assert (mr.state, [u.username for u in mr.approved_by]) == ("merged", ["portal-bot"])
    assert promotion.state == PromotionState.MERGED
    assert promotion.merge_commit_sha == mr.merge_commit_sha == gitlab_server.project(PATH).branches["master"]
    master = promotion.master_run
    assert (master.branch, master.commit_sha, master.status) == ("master", mr.merge_commit_sha, RunStatus.QUEUED)
    assert actions(promotion) == ["promotion.requested", "promotion.mr_opened", "promotion.approved",
                                  "promotion.merged", "promotion.master_run_linked"]


def test_dev_moved_since_the_tested_run_fails_and_merges_nothing(gitlab_server, world, dana, tom):
    promotion = approved(gitlab_server, world, dana, tom)
    master_before = gitlab_server.project(PATH).branches["master"]
    gitlab_server.push(PATH, "dev")  # someone pushed after the tested run
    promotion = services.merge_promotion(promotion_id=promotion.pk)
    assert promotion.state == PromotionState.FAILED
    assert promotion.state_reason == "dev has moved since the tested run; a new run is needed."
    assert gitlab_server.project(PATH).branches["master"] == master_before
    assert gitlab_server.merge_request(PATH, promotion.mr_iid).state == "opened"
    assert promotion.master_run is None and not PipelineRun.objects.filter(branch="master", status="queued").exists()


def test_a_conflicting_mr_fails_with_gitlab_s_reason(gitlab_server, world, dana, tom):
    promotion = approved(gitlab_server, world, dana, tom)
    gitlab_server.set_conflict(PATH, promotion.mr_iid)
    promotion = services.merge_promotion(promotion_id=promotion.pk)
    assert promotion.state == PromotionState.FAILED
    assert promotion.state_reason.startswith(f"GitLab cannot merge !{promotion.mr_iid} (405")
    assert "conflict" in promotion.state_reason
    assert "promotion.failed" in actions(promotion)


def test_gitlab_down_leaves_it_approved_merge_pending_and_retried_later(gitlab_server, world, dana, tom,
                                                                        django_capture_on_commit_callbacks):
    promotion = approved(gitlab_server, world, dana, tom)
    gitlab_server.fail(503)
    with django_capture_on_commit_callbacks(execute=True):
        promotion = services.merge_promotion(promotion_id=promotion.pk)
    assert (promotion.state, promotion.merge_pending, promotion.merge_attempts) == (PromotionState.APPROVED, True, 1)
    assert promotion.state_reason.startswith("GitLab failed with an internal error (503)")
    retry = Schedule.objects.get(func="promotions.tasks.merge_promotion")
    assert (retry.args, retry.repeats, retry.next_run) == (f"({promotion.pk},)", 1, promotion.next_merge_attempt_at)
    assert promotion.next_merge_attempt_at > timezone.now() + timedelta(seconds=50)
    gitlab_server.heal()
    promotion = services.merge_promotion(promotion_id=promotion.pk)  # what the Schedule runs
    assert promotion.state == PromotionState.MERGED and promotion.state_reason == ""


def test_gitlab_unreachable_too_long_fails_saying_so(gitlab_server, world, dana, tom, monkeypatch):
    monkeypatch.setattr(services, "MERGE_ATTEMPTS", 2)
    promotion = approved(gitlab_server, world, dana, tom)
    gitlab_server.unreachable()
    assert services.merge_promotion(promotion_id=promotion.pk).state == PromotionState.APPROVED
    promotion = services.merge_promotion(promotion_id=promotion.pk)
    assert promotion.state == PromotionState.FAILED
    assert promotion.state_reason.startswith("GitLab could not be reached in 2 attempts: GitLab at")


# --- release ----------------------------------------------------------------------------------------------------


def test_the_master_run_s_production_deployment_releases_it(gitlab_server, world, dana, tom):
    promotion = services.merge_promotion(promotion_id=approved(gitlab_server, world, dana, tom).pk)
    master = promotion.master_run
    PipelineRun.objects.filter(pk=master.pk).update(build_number=500, status=RunStatus.SUCCESS)
    staging_deploy = DeploymentFactory(source_run=master, environment=world.staging)
    assert services.record_production_deployment(deployment=staging_deploy) is None
    deployment, _ = record_deployment(project=world.project, run=master, environment=world.production,
                                      status="success", images=[])  # as Jenkins' callback records it
    released = Promotion.objects.get(pk=promotion.pk)
    assert (released.state, released.production_deployment) == (PromotionState.RELEASED, deployment)
    assert actions(released)[-1] == "promotion.released"
    assert services.record_production_deployment(deployment=deployment) is None  # released once
    assert actions(released).count("promotion.released") == 1


def test_a_production_deployment_by_the_portal_s_deployer_releases_it(gitlab_server, world, dana, tom):
    promotion = services.merge_promotion(promotion_id=approved(gitlab_server, world, dana, tom).pk)
    running = DeploymentFactory(source_run=promotion.master_run, environment=world.production,
                                status=DeploymentStatus.RUNNING, deployed_by_label="olga.ops", finished_at=None)
    deployments.succeed(running)
    released = Promotion.objects.get(pk=promotion.pk)
    assert (released.state, released.production_deployment) == (PromotionState.RELEASED, running)
    assert actions(released)[-1] == "promotion.released"


def test_a_failed_deployment_by_the_portal_s_deployer_releases_nothing(gitlab_server, world, dana, tom):
    promotion = services.merge_promotion(promotion_id=approved(gitlab_server, world, dana, tom).pk)
    running = DeploymentFactory(source_run=promotion.master_run, environment=world.production,
                                status=DeploymentStatus.RUNNING, finished_at=None)
    deployments.give_up(running, reason="the trial never answered")
    assert Promotion.objects.get(pk=promotion.pk).state == PromotionState.MERGED


def test_a_run_at_the_merge_commit_arriving_by_callback_releases_it_too(gitlab_server, world, dana, tom):
    promotion = services.merge_promotion(promotion_id=approved(gitlab_server, world, dana, tom).pk)
    Promotion.objects.filter(pk=promotion.pk).update(master_run=None)
    from_jenkins = world.run(branch="master", commit_sha=promotion.merge_commit_sha)
    deployment = DeploymentFactory(source_run=from_jenkins, environment=world.production)
    released = services.record_production_deployment(deployment=deployment)
    assert (released.pk, released.master_run) == (promotion.pk, from_jenkins)



def test_a_master_run_the_portal_cannot_trigger_is_said_and_the_promotion_stays_merged(gitlab_server, world, dana,
                                                                                      tom, settings):
    promotion = approved(gitlab_server, world, dana, tom)
    settings.JENKINS_URL = ""
    promotion = services.merge_promotion(promotion_id=promotion.pk)
    promotion.refresh_from_db()
    assert (promotion.state, promotion.master_run) == (PromotionState.MERGED, None)
    assert promotion.state_reason == ("Master run not triggered: Jenkins is not configured (JENKINS_URL is empty): "
                                      "the portal cannot start runs.")


def test_a_first_release_is_judged_without_production_to_compare_with(world):
    Deployment.objects.filter(environment=world.production).delete()  # nothing of the project in production yet
    judged = services.evaluate_gate(world.green_run(latencies={"home": 900, "cart": 2000}))
    p95 = [(row["subject"], row["verdict"], row["detail"]) for row in judged["conditions"] if row["metric"] == "p95_ms"]
    assert p95 == [("cart", "passed", "nothing runs in production yet: nothing to compare with"),
                   ("home", "passed", "nothing runs in production yet: nothing to compare with")]
    assert judged["passed"]
    # with something in production but no load test of it, the comparison is missing evidence: it fails
    DeploymentFactory(source_run=world.run(branch="master"), environment=world.production)
    judged = services.evaluate_gate(world.green_run())
    assert [(row["verdict"], row["detail"]) for row in judged["conditions"] if row["metric"] == "p95_ms"] == [
        ("failed", "production has no load test to compare with")]

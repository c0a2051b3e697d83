import pytest
from django.core import serializers
from django.core.management import call_command

from deliveries.models import Artifact, PipelineRun, Project, Promotion, RunStatus, Stage
from environments.models import AvailabilityCheck, Deployment, DeploymentKind, Environment, Host

pytestmark = pytest.mark.django_db

SEEDED_MODELS = [Project, PipelineRun, Stage, Artifact, Environment, Host, Deployment, AvailabilityCheck, Promotion]


def snapshot() -> dict:
    return {model.__name__: serializers.serialize("json", model.objects.order_by("pk")) for model in SEEDED_MODELS}


def test_it_builds_a_living_history():
    call_command("seed_demo")
    assert Project.objects.count() >= 3
    assert set(Environment.objects.values_list("slug", flat=True)) == {"dev", "staging", "production"}
    runs = PipelineRun.objects.all()
    assert 180 <= runs.count() <= 220
    first, last = runs.order_by("created_at").first(), runs.order_by("created_at").last()
    assert (last.created_at - first.created_at).days >= 55
    assert runs.filter(status=RunStatus.FAILED).exists()
    assert Stage.objects.filter(run__status=RunStatus.SUCCESS).count() >= 10 * runs.filter(status="success").count()
    assert Artifact.objects.count() >= runs.count()
    assert Deployment.objects.filter(environment__slug="production").exists()
    # only the portal's deployer rolls back, on a Docker host the demo does not have
    assert not Deployment.objects.filter(kind=DeploymentKind.ROLLBACK).exists()
    assert Promotion.objects.filter(state="released").count() >= 10
    assert Promotion.objects.filter(state="requested").exists()


def test_its_history_gives_every_dora_key():
    from deliveries import dora

    call_command("seed_demo")
    keys = dora.four_keys(Project.objects.get(slug="storefront"), days=60)
    assert keys.deployments >= 5 and keys.median_lead_time is not None
    assert all(lead.waiting_for_approval is not None for lead in keys.lead_times)


def test_running_it_twice_gives_the_same_data():
    call_command("seed_demo")
    first = snapshot()
    call_command("seed_demo")
    assert snapshot() == first


def test_it_gives_demo_users_their_roles(monkeypatch):
    monkeypatch.setenv("DEMO_PASSWORD", "demo-password-123")
    call_command("seed_demo")
    from django.contrib.auth import authenticate
    from django.test import RequestFactory

    # As the login page does: with the request, which the login lockout (django-axes) needs.
    login = RequestFactory().post("/accounts/login/")
    user = authenticate(login, username="tom.lead", password="demo-password-123")
    assert user is not None
    assert list(user.groups.values_list("name", flat=True)) == ["techlead"]
    operator = authenticate(login, username="olga.ops", password="demo-password-123")
    assert operator.is_staff and operator.has_perm("environments.change_environment")
    assert not user.is_staff


def test_its_history_links_to_no_jenkins_that_does_not_exist():
    call_command("seed_demo")
    assert PipelineRun.objects.exists()
    assert not PipelineRun.objects.exclude(build_url="").exists()


def test_its_open_and_rejected_promotions_are_made_by_the_promotion_flow():
    from deliveries.models import AuditEvent
    from promotions import services
    from promotions.demo import SUPERSEDED

    call_command("seed_demo")
    made = list(Promotion.objects.filter(state="requested").select_related("source_run__project")) + list(
        Promotion.objects.filter(decision_comment=SUPERSEDED).select_related("source_run__project"))
    assert {p.state for p in made} == {"requested", "rejected"}
    for promotion in made:
        fresh = services.evaluate_gate(promotion.source_run)  # the gate evaluation made it, not the seed
        assert promotion.gate_snapshot == {**fresh, "evaluated_at": promotion.gate_snapshot["evaluated_at"]}
        events = AuditEvent.objects.filter(target_type="promotion", target_id=str(promotion.pk)).order_by("id")
        trail = [(event.action, event.actor.username) for event in events]
        expected = [("promotion.requested", "dana.dev")]
        if promotion.state == "rejected":
            expected.append(("promotion.rejected", "tom.lead"))
        assert trail == expected


def test_its_waiting_promotions_are_ones_a_tech_lead_can_approve_with_waivers_at_most():
    from promotions import services
    from promotions.demo import passable

    call_command("seed_demo")
    waiting = Promotion.objects.filter(state="requested")
    assert waiting.exists()
    assert all(passable(services.current_gate(promotion)) for promotion in waiting)


def test_its_past_promotions_went_through_gitlab_and_released_what_was_approved():
    from deliveries.models import AuditEvent, Waiver

    call_command("seed_demo")
    released = list(Promotion.objects.filter(state="released")
                    .select_related("source_run", "master_run", "production_deployment", "approved_by"))
    assert len(released) >= 10
    for promotion in released:
        trail = [(event.action, event.actor.username if event.actor else event.actor_label) for event in
                 AuditEvent.objects.filter(target_type="promotion", target_id=str(promotion.pk)).order_by("id")]
        assert trail[:2] == [("promotion.requested", "dana.dev"), ("promotion.mr_opened", "portal")]
        assert ("promotion.approved", "tom.lead") in trail and ("promotion.merged", "portal") in trail
        assert trail[-1] == ("promotion.released", "portal")
        # the gate was evaluated (not a fabricated pass), the tested sha merged, the merge commit built and deployed
        assert promotion.gate_snapshot["conditions"] and promotion.decision_gate["passed"]
        assert promotion.mr_iid and promotion.merge_commit_sha == promotion.master_run.commit_sha
        assert promotion.production_deployment.source_run == promotion.master_run
        # each step at its moment in the past, in order (the merge at once on approval)
        assert (promotion.source_run.finished_at < promotion.created_at < promotion.decided_at
                <= promotion.merged_at < promotion.master_run.created_at < promotion.released_at)
    used = {waiver["id"] for p in released for waiver in p.decision_gate["waivers_used"]}
    assert used and used <= set(Waiver.objects.values_list("pk", flat=True))
    assert AuditEvent.objects.filter(action="waiver.created", actor__username="tom.lead").count() == (
        Waiver.objects.count())


def test_its_production_runs_only_what_was_approved_and_jenkins_recorded_every_deployment():
    from deliveries.models import AuditEvent

    call_command("seed_demo")
    production = Deployment.objects.filter(environment__slug="production").select_related("source_run")
    assert production.exists()
    assert not Deployment.objects.exclude(rule_violations=[]).exists()
    for deployment in production:  # a merge the tech lead approved, built by the release run
        assert Promotion.objects.filter(merge_commit_sha=deployment.source_run.commit_sha).exclude(
            approved_by=None).exists()
    recorded = AuditEvent.objects.filter(action="deployment.recorded").values_list("target_id", flat=True)
    assert set(recorded) == {str(pk) for pk in Deployment.objects.values_list("pk", flat=True)}
    # a release run with no approved promotion was stopped by the portal at its production stage
    refused = Stage.objects.filter(name="Deploy production",
                                   log_excerpt__contains="deploy-permission/ (HTTP 403): No promotion")
    assert refused.exists()
    assert not refused.exclude(run__status=RunStatus.FAILED).exists()
    assert not production.filter(source_run__stages__in=refused).exists()


def test_its_health_history_is_what_jenkins_reported():
    from datetime import timedelta

    from deliveries import dora

    call_command("seed_demo")
    checks = AvailabilityCheck.objects.select_related("deployment__source_run")
    assert set(checks.values_list("source", flat=True)) == {"jenkins"}
    staging = checks.filter(environment__slug="staging")
    assert staging.count() >= 100 and staging.filter(ok=False).exists()
    for check in staging.filter(ok=True)[:20]:  # the availability stage's verdict, when it ended
        stage = Stage.objects.get(run=check.deployment.source_run, name="Availability test")
        assert (stage.status, stage.finished_at) == ("success", check.checked_at)
    # production is checked once each of its deployments is over: after a failed one, the version put back serves
    for deployment in Deployment.objects.filter(environment__slug="production"):
        check = checks.get(environment__slug="production", checked_at=deployment.finished_at + timedelta(seconds=20))
        assert check.ok and check.project == deployment.project
    failed = Deployment.objects.filter(environment__slug="production", status="failed").select_related("project")
    assert failed.exists()
    keys = dora.four_keys(failed[0].project, days=60)
    assert keys.failed_changes >= 1 and keys.median_time_to_restore == timedelta(seconds=20)


def test_the_huge_scale_is_ten_times_the_large_one_over_two_years():
    from deliveries import demo

    large = sum(project.runs for project in demo.LARGE_PROJECTS)
    assert sum(project.runs for project in demo.HUGE_PROJECTS) == 10 * large == 100_000
    assert {project.days for project in demo.HUGE_PROJECTS} == {730}


def test_it_spreads_a_huge_project_over_its_two_years_with_its_reports(monkeypatch):
    from deliveries import demo
    from scanners.models import Finding

    small_huge = demo.DemoProject("Tiny Huge", "tiny-huge", "shop/tiny-huge", 30, days=730, scale="huge")
    monkeypatch.setitem(demo.SCALE_PROJECTS, "huge", [small_huge])
    call_command("seed_demo", scale="huge")
    runs = PipelineRun.objects.filter(project__slug="tiny-huge")
    assert runs.count() == 30
    first, last = runs.order_by("created_at").first(), runs.order_by("created_at").last()
    assert (last.created_at - first.created_at).days >= 600  # 30 runs a step of 730 / 31 days apart, not 60 days
    assert Finding.objects.filter(report__run__project__slug="tiny-huge").exists()

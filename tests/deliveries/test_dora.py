from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from deliveries import dora
from deliveries.models import Promotion
from environments import deployments
from environments.models import AvailabilityCheck, Deployment, DeploymentKind, DeploymentStatus
from tests.factories import (
    ArtifactFactory,
    DeploymentFactory,
    EnvironmentFactory,
    ProjectFactory,
    RunFactory,
    StageFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


@pytest.fixture
def project():
    return ProjectFactory()


@pytest.fixture
def production():
    return EnvironmentFactory(slug="production", tier="production", order=3)


def deploy(project, production, finished, *, status=DeploymentStatus.SUCCESS, kind=DeploymentKind.DEPLOY,
           run=None, replaced=None):
    run = run or RunFactory(project=project, branch="master", created_at=finished - timedelta(minutes=30))
    return DeploymentFactory(project=project, source_run=run, environment=production, status=status, kind=kind,
                             started_at=finished - timedelta(minutes=5), finished_at=finished, replaced=replaced)


def test_it_counts_successful_production_deployments_per_day(project, production):
    for days_ago in (1, 5, 9):
        deploy(project, production, NOW - timedelta(days=days_ago))
    deploy(project, production, NOW - timedelta(days=40))  # before the period
    deploy(project, production, NOW - timedelta(days=2), status=DeploymentStatus.FAILED)
    DeploymentFactory(project=project, finished_at=NOW - timedelta(days=1))  # staging does not count
    keys = dora.four_keys(project, days=30, now=NOW)
    assert keys.deployments_per_day == pytest.approx(3 / 30)
    assert keys.bands()["deployment_frequency"] == "Medium"


def test_it_breaks_lead_time_down_from_commit_to_production(project, production):
    t0 = NOW - timedelta(days=2)
    dev = RunFactory(project=project, branch="dev", committed_at=t0, created_at=t0 + timedelta(minutes=1),
                     started_at=t0 + timedelta(minutes=1), finished_at=t0 + timedelta(minutes=40))
    StageFactory(run=dev, name="Push images", finished_at=t0 + timedelta(minutes=10))
    master = RunFactory(project=project, branch="master", created_at=t0 + timedelta(hours=3))
    deployment = deploy(project, production, t0 + timedelta(hours=3, minutes=30), run=master)
    Promotion.objects.create(project=project, source_run=dev, master_run=master, requested_by=UserFactory(),
                             state="released", production_deployment=deployment)
    (lead,) = dora.four_keys(project, now=NOW).lead_times
    assert lead.total == timedelta(hours=3, minutes=30)
    assert lead.build == timedelta(minutes=10)
    assert lead.staging_tests == timedelta(minutes=30)
    assert lead.waiting_for_approval == timedelta(hours=2, minutes=20)
    assert lead.production_pipeline == timedelta(minutes=30)
    assert dora.four_keys(project, now=NOW).bands()["lead_time"] == "High"


def test_without_a_promotion_the_latest_green_dev_run_is_the_change(project, production):
    t0 = NOW - timedelta(days=3)
    RunFactory(project=project, branch="dev", committed_at=t0 - timedelta(days=1), finished_at=t0 - timedelta(hours=20))
    dev = RunFactory(project=project, branch="dev", committed_at=t0, created_at=t0, finished_at=t0 + timedelta(hours=1))
    master = RunFactory(project=project, branch="master", created_at=t0 + timedelta(hours=2))
    deploy(project, production, t0 + timedelta(hours=2, minutes=20), run=master)
    (lead,) = dora.four_keys(project, now=NOW).lead_times
    assert lead.total == timedelta(hours=2, minutes=20)
    assert dev.finished_at == t0 + timedelta(hours=1)


def test_it_counts_changes_followed_by_a_failure_or_a_rollback(project, production):
    good = deploy(project, production, NOW - timedelta(days=10))
    deploy(project, production, NOW - timedelta(days=8), status=DeploymentStatus.FAILED)
    bad = deploy(project, production, NOW - timedelta(days=6))
    deploy(project, production, NOW - timedelta(days=6) + timedelta(minutes=20), kind=DeploymentKind.ROLLBACK,
           run=good.source_run, replaced=bad)
    flaky = deploy(project, production, NOW - timedelta(days=4))
    AvailabilityCheck.objects.create(environment=production, deployment=flaky, url="https://p/healthz", ok=False,
                                     status_code=502, checked_at=NOW - timedelta(days=3))
    deploy(project, production, NOW - timedelta(days=2))
    keys = dora.four_keys(project, now=NOW)
    assert keys.deployments == 5  # the rollback is not a change
    assert keys.failed_changes == 3
    assert keys.change_failure_rate == pytest.approx(60.0)
    assert keys.bands()["change_failure_rate"] == "Low"


def test_it_measures_time_to_restore(project, production):
    deploy(project, production, NOW - timedelta(days=5))
    down = NOW - timedelta(days=3)
    AvailabilityCheck.objects.create(environment=production, url="https://p/healthz", ok=False, checked_at=down)
    AvailabilityCheck.objects.create(environment=production, url="https://p/healthz", ok=False,
                                     checked_at=down + timedelta(minutes=10))
    AvailabilityCheck.objects.create(environment=production, url="https://p/healthz", ok=True,
                                     checked_at=down + timedelta(minutes=25))
    deploy(project, production, NOW - timedelta(days=1), status=DeploymentStatus.FAILED)
    deploy(project, production, NOW - timedelta(days=1) + timedelta(hours=2))
    keys = dora.four_keys(project, now=NOW)
    assert sorted(keys.restores) == [timedelta(minutes=25), timedelta(hours=2)]
    assert keys.bands()["time_to_restore"] == "High"


def test_an_empty_period_has_no_bands_but_frequency(project):
    keys = dora.four_keys(project, now=NOW)
    assert keys.deployments == 0 and keys.median_lead_time is None and keys.change_failure_rate is None
    assert keys.bands() == {"deployment_frequency": "Low", "lead_time": None, "change_failure_rate": None,
                            "time_to_restore": None}


def test_an_automatic_rollback_counts_the_failed_change_and_its_restore(project, production):
    v1 = deploy(project, production, NOW - timedelta(days=2))
    v2 = deploy(project, production, NOW - timedelta(days=1), status=DeploymentStatus.RUNNING)
    Deployment.objects.filter(pk=v2.pk).update(finished_at=None)
    v2.refresh_from_db()
    rollback = deployments.roll_back_automatically(v2, reason="v2 was never healthy", restored=v1)
    assert (rollback.kind, rollback.replaced, rollback.finished_at) == (DeploymentKind.ROLLBACK, v2, v2.finished_at)
    keys = dora.four_keys(project, now=timezone.now() + timedelta(minutes=1))
    assert (keys.deployments, keys.failed_changes) == (2, 1), "the rollback is no change; the failed deploy is"
    assert keys.restores == [timedelta(0)], "the previous version serves again as the failure is recorded"


def test_a_manual_rollback_counts_the_change_it_undid_and_ends_the_outage(project, production):
    production.docker_host_url, production.health_url = "unix:///x.sock", "https://p.example.com/healthz"
    production.save()
    v1 = deploy(project, production, NOW - timedelta(hours=5))
    v1.artifacts.set([ArtifactFactory(run=v1.source_run)])
    v2 = deploy(project, production, NOW - timedelta(hours=3))
    broken = NOW - timedelta(hours=2)
    AvailabilityCheck.objects.create(environment=production, project=project, deployment=v2, url="https://p",
                                     ok=False, status_code=500, checked_at=broken)
    rollback = deployments.request_rollback(to=v1, actor_label="olga.ops")
    deployments.succeed(rollback)
    assert rollback.replaced == v2
    keys = dora.four_keys(project, now=timezone.now() + timedelta(minutes=1))
    assert (keys.deployments, keys.failed_changes) == (2, 1)
    (restore,) = keys.restores
    assert restore == rollback.finished_at - broken


def test_another_projects_failing_checks_do_not_count(project, production):
    deploy(project, production, NOW - timedelta(days=4))
    AvailabilityCheck.objects.create(environment=production, project=ProjectFactory(), url="https://other",
                                     ok=False, checked_at=NOW - timedelta(days=3))
    keys = dora.four_keys(project, now=NOW)
    assert (keys.failed_changes, keys.restores) == (0, [])


def test_the_windows_production_deployments_are_read_from_the_index_at_the_window(project, production):
    # a long history is not read back to its start: each query seeks (project, environment, finished_at)
    deploy(project, production, NOW - timedelta(days=1))
    executed = []

    def keep(execute, sql, params, many, context):
        executed.append((sql, params))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(keep):
        dora.four_keys(project, days=30, now=NOW)
    reads = [(sql, params) for sql, params in executed if 'FROM "environments_deployment"' in sql]
    assert len(reads) == 2  # finished since the window (less a week), and never finished (few by nature)
    sql, params = reads[0]
    explain = "EXPLAIN" if connection.vendor == "postgresql" else "EXPLAIN QUERY PLAN"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a test table is small: ask which index fits
        cursor.execute(f"{explain} {sql}", params)
        plan = "\n".join(str(row[-1]) for row in cursor.fetchall())
    assert "deploy_project_env_finished" in plan and "finished_at" in plan, plan


def test_every_read_of_the_four_keys_is_a_range_over_the_window(project, production, long_history):
    # a history of two years: each read starts at the window (less a week or a month), none reads the tables whole
    from environments.models import Environment
    from tests.plans import Executed, analyze, deploy_history, plan_of, scans

    staging = EnvironmentFactory(slug="staging", tier="staging", order=2)
    runs = long_history(project, other_projects=[ProjectFactory()])
    deploy_history(runs, production=production, staging=staging)
    AvailabilityCheck.objects.bulk_create([
        AvailabilityCheck(environment=production, project=project, url="https://p", ok=n % 9 != 0, status_code=200,
                          checked_at=NOW - timedelta(hours=3 * n)) for n in range(5000)], batch_size=500)
    analyze("environments_deployment", "environments_availabilitycheck")
    assert Environment.objects.count() == 2
    with Executed() as executed:
        keys = dora.four_keys(project, days=90, now=NOW)
    assert keys.deployments and keys.lead_times
    for table in ("environments_deployment", "environments_availabilitycheck", "deliveries_pipelinerun"):
        assert executed.reading(table), table
        for sql, params in executed.reading(table):
            plan = plan_of(sql, params)
            assert not scans(plan, table.split("_", 1)[1]), (sql, plan)

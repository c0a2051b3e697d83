from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from environments import selectors
from environments.models import AvailabilityCheck, Deployment, FreezeWindow
from tests.factories import DeploymentFactory, EnvironmentFactory, ProjectFactory, RunFactory

pytestmark = pytest.mark.django_db
NOW = timezone.now()


@pytest.fixture
def environments():
    return (
        EnvironmentFactory(slug="staging", tier="staging", order=2),
        EnvironmentFactory(slug="production", tier="production", order=3),
    )


def history(project, environments, runs: int):
    staging, production = environments
    in_production = RunFactory(project=project, branch="master", created_at=NOW - timedelta(days=5))
    DeploymentFactory(source_run=in_production, environment=production, finished_at=NOW - timedelta(days=5))
    for index in range(runs):
        run = RunFactory(project=project, branch="dev", created_at=NOW - timedelta(days=4) + timedelta(hours=index))
        DeploymentFactory(source_run=run, environment=staging, finished_at=run.created_at + timedelta(minutes=30))
    return in_production


def test_the_board_shows_what_runs_where(environments):
    project = ProjectFactory()
    in_production = history(project, environments, 3)
    AvailabilityCheck.objects.create(environment=environments[1], project=project, url="https://p", ok=True,
                                     status_code=200)
    envs, rows = selectors.environment_board()
    assert [env.slug for env in envs] == ["staging", "production"]
    (row,) = rows
    staging_cell, production_cell = row.cells
    assert production_cell.source_run == in_production
    assert staging_cell.source_run.created_at == NOW - timedelta(days=4) + timedelta(hours=2)
    assert (production_cell.health.state, staging_cell.health.state) == ("healthy", "unknown")


def test_the_board_says_how_many_runs_staging_is_ahead_of_production(environments):
    project = ProjectFactory()
    history(project, environments, 3)  # 3 green dev runs after production's, the last on staging
    _, (row,) = selectors.environment_board()
    assert row.drift == [("staging", "production", 3)]


def test_runs_ahead_count_every_built_run_of_the_branch_whatever_its_result(environments):
    project = ProjectFactory()
    history(project, environments, 3)
    between = NOW - timedelta(days=4) + timedelta(minutes=30)  # after production's run, before staging's
    for status in ("unstable", "failed", "aborted"):  # their changes are in staging's run too
        RunFactory(project=project, branch="dev", status=status, created_at=between)
    RunFactory(project=project, branch="dev", status="trigger_failed", build_number=None, created_at=between)
    RunFactory(project=project, branch="feature/x", created_at=between)  # another branch: not on staging
    RunFactory(project=project, branch="dev", status="unstable", created_at=NOW)  # after staging's run
    _, (row,) = selectors.environment_board()
    assert row.drift == [("staging", "production", 6)]


def test_the_board_costs_the_same_queries_for_a_long_history(environments):
    small, large = ProjectFactory(), ProjectFactory()
    history(small, environments, 2)
    with CaptureQueriesContext(connection) as few:
        selectors.environment_board()
    history(large, environments, 40)
    with CaptureQueriesContext(connection) as many:
        selectors.environment_board()
    assert len(many) == len(few)


def test_it_finds_the_freeze_window_in_force(environments):
    staging, production = environments
    window = FreezeWindow.objects.create(environment=production, starts_at=NOW - timedelta(hours=1),
                                         ends_at=NOW + timedelta(hours=1), reason="Black Friday")
    FreezeWindow.objects.create(environment=production, starts_at=NOW + timedelta(days=1),
                                ends_at=NOW + timedelta(days=2), reason="later")
    assert selectors.active_freeze(environment_id=production.pk, at=NOW) == window
    assert selectors.active_freeze(environment_id=production.pk, at=NOW + timedelta(hours=2)) is None
    assert selectors.active_freeze(environment_id=production.pk, at=NOW + timedelta(hours=1)) is None
    assert selectors.active_freeze(environment_id=staging.pk, at=NOW) is None


def test_what_runs_where_is_the_newest_successful_deployment_of_each_project_and_environment(environments):
    staging, production = environments
    project, other = ProjectFactory(), ProjectFactory()
    old = DeploymentFactory(source_run=RunFactory(project=project), environment=production)
    DeploymentFactory(source_run=RunFactory(project=project), environment=production, status="failed")
    on_staging = DeploymentFactory(source_run=RunFactory(project=project), environment=staging)
    elsewhere = DeploymentFactory(source_run=RunFactory(project=other), environment=production)
    assert set(Deployment.objects.current_per_environment()) == {old, on_staging, elsewhere}
    assert list(Deployment.objects.current_per_environment().filter(project=project, environment=production)) == [old]


def test_what_runs_where_is_read_from_an_index_pair_by_pair(environments):
    DeploymentFactory(environment=environments[1])
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a test table is small: ask which index fits
        plan = Deployment.objects.current_per_environment().explain()
    assert "deploy_current" in plan
    assert "Group Key: u0" not in plan  # PostgreSQL's GROUP BY over every deployment
    assert not [line for line in plan.splitlines() if " SCAN " in f" {line} " and "deploy_" in line]  # SQLite's


def test_the_newest_rule_breaking_deployments_are_read_from_an_index_of_those_only(environments):
    DeploymentFactory(environment=environments[1], rule_violations=["no approved promotion"])
    DeploymentFactory(environment=environments[1])
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a test table is small: ask which index fits
        plan = selectors.rule_breaking_deployments().explain()
    assert "deploy_rule_breaking" in plan
    assert [d.rule_violations for d in selectors.rule_breaking_deployments()] == [["no approved promotion"]]


def test_the_runs_a_deploy_may_pick_are_read_newest_first_without_reading_every_artifact(environments):
    from deliveries.models import Artifact

    ready, undigested = RunFactory(), RunFactory()
    Artifact.objects.create(run=ready, repository="shop/app", tag="1", digest="sha256:1")
    Artifact.objects.create(run=undigested, repository="shop/app", tag="2", digest="")
    assert list(selectors.deployable_runs()) == [ready]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SET LOCAL enable_seqscan = off")  # a test table is small: ask which index fits
        plan = selectors.deployable_runs()[:50].explain()
    assert "run_status_created" in plan
    # PostgreSQL excludes the runs with an undigested image through the index of those only; SQLite probes per run
    assert "artifact_undigested" in plan or "SEARCH U0 USING INDEX sqlite_autoindex_deliveries_artifact" in plan


def test_what_production_runs_now_is_read_from_the_end_of_each_environments_index_range(long_history):
    from tests.plans import Executed, analyze, deploy_history, plan_of, scans

    project = ProjectFactory()
    production = EnvironmentFactory(slug="production", tier="production", order=3)
    staging = EnvironmentFactory(slug="staging", tier="staging", order=2)
    runs = long_history(project, other_projects=[ProjectFactory()])
    deploy_history(runs, production=production, staging=staging)
    analyze("environments_deployment")
    newest = Deployment.objects.filter(project=project, environment=production).order_by("-finished_at").first()
    with Executed() as executed:
        running = selectors.production_run(project.pk)
    assert running == newest.source_run
    ((sql, params),) = executed.statements
    plan = plan_of(sql, params)
    assert "deploy_project_env_finished" in plan and not scans(plan, "deployment"), plan
    assert not scans(plan, "pipelinerun"), plan  # the run of the one deployment chosen, by its key


def test_what_one_project_runs_is_read_from_that_project_only(long_history):
    from tests.plans import Executed, deploy_history, plan_of, scans

    project = ProjectFactory()
    production = EnvironmentFactory(slug="production", tier="production", order=3)
    staging = EnvironmentFactory(slug="staging", tier="staging", order=2)
    deploy_history(long_history(project, other_projects=[ProjectFactory()]), production=production, staging=staging)
    with Executed() as executed:
        current = list(selectors.current_deployments(project))
    assert {d.environment.slug for d in current} == {"production", "staging"} and {d.project for d in current} == {
        project}
    (sql, params), = executed.reading("environments_deployment")
    # the loose index scan starts from the project, not from every project narrowed afterwards: that made SQLite
    # without statistics read every deployment of the project through its index (benchmarks/pages.py, huge scale)
    assert 'FROM "deliveries_project" p WHERE p.id = ' in sql and '"environments_deployment"."project_id" =' not in sql
    plan = plan_of(sql, params)
    assert not scans(plan, "deployment") and "deploy_project_env_finished" not in plan, plan

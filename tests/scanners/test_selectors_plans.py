"""The trends read the last TREND_RUNS runs of a branch through indexes, from the run shown down: not the history."""

import pytest

from deliveries.models import PipelineRun
from scanners import selectors
from scanners.models import Report
from tests.factories import ProjectFactory
from tests.plans import analyze, plan_of, range_reads, scans

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("kind", ["trivy", "jmeter", "gauntlt"])
def test_a_trend_reads_the_branch_from_the_run_down_through_indexes(long_history, kind):
    project = ProjectFactory()
    runs = long_history(project, other_projects=[ProjectFactory()])
    Report.objects.bulk_create([Report(run=run, kind=kind, status="parsed", sha256=str(run.pk)) for run in runs
                                if run.status == "success"], batch_size=500)
    analyze("scanners_report")
    shown = PipelineRun.objects.filter(project=project, branch="dev", status="success").order_by("-created_at")[500]
    sql, params = selectors.trend_runs(shown, kind).query.sql_with_params()
    plan = plan_of(sql, params)
    assert "run_project_branch_created" in plan and range_reads(plan, "created_at"), plan
    assert not scans(plan, "pipelinerun") and not scans(plan, "report"), plan  # a report probe per run
    expected = PipelineRun.objects.filter(project=project, branch="dev", status="success",
                                          created_at__lte=shown.created_at).order_by("-created_at")[:30]
    assert list(selectors.trend_runs(shown, kind).values_list("id", flat=True)) == [run.pk for run in expected]

"""Lead time from the promotion's real times: the tech lead's decision splits waiting for approval from the
production pipeline (merge, master run, deployment)."""

from datetime import timedelta

import pytest

from deliveries import dora
from deliveries.models import Promotion
from tests.deliveries.test_dora import NOW, deploy
from tests.factories import EnvironmentFactory, ProjectFactory, RunFactory, StageFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_it_splits_lead_time_at_the_approval():
    project = ProjectFactory()
    production = EnvironmentFactory(slug="production", tier="production", order=3)
    t0 = NOW - timedelta(days=2)
    dev = RunFactory(project=project, branch="dev", committed_at=t0, created_at=t0 + timedelta(minutes=1),
                     started_at=t0 + timedelta(minutes=1), finished_at=t0 + timedelta(minutes=40))
    StageFactory(run=dev, name="Push images", finished_at=t0 + timedelta(minutes=10))
    master = RunFactory(project=project, branch="master", created_at=t0 + timedelta(hours=2, minutes=5))
    deployment = deploy(project, production, t0 + timedelta(hours=3, minutes=30), run=master)
    Promotion.objects.create(project=project, source_run=dev, master_run=master, requested_by=UserFactory(),
                             state="released", production_deployment=deployment,
                             created_at=t0 + timedelta(hours=1), decided_at=t0 + timedelta(hours=2))
    (lead,) = dora.four_keys(project, now=NOW).lead_times
    assert lead.total == timedelta(hours=3, minutes=30)
    assert lead.build == timedelta(minutes=10)
    assert lead.staging_tests == timedelta(minutes=30)
    assert lead.waiting_for_approval == timedelta(hours=1, minutes=20)  # tests done -> requested -> approved
    assert lead.production_pipeline == timedelta(hours=1, minutes=30)  # approved -> merged, master run, deployed
    assert lead.build + lead.staging_tests + lead.waiting_for_approval + lead.production_pipeline == lead.total

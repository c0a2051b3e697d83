"""Reads of the promotion pages that must not grow with the history."""

from deliveries.models import Promotion, PromotionState
from promotions import selectors
from tests.factories import ProjectFactory, UserFactory


def test_the_open_promotion_is_read_by_project_and_state_not_through_every_promotion(long_history):
    from tests.plans import Executed, generic_plan_of, plan_of, scans

    project = ProjectFactory(slug="shop")
    runs = long_history(project, runs=2000)
    dana = UserFactory()
    closed = [Promotion(project=project, source_run=run, requested_by=dana, state=PromotionState.RELEASED if n % 3 else
                        PromotionState.REJECTED) for n, run in enumerate(runs[:-1])]
    Promotion.objects.bulk_create(closed, batch_size=500)
    assert selectors.open_promotion(project) is None
    waiting = Promotion.objects.create(project=project, source_run=runs[-1], requested_by=dana,
                                       state=PromotionState.REQUESTED)
    with Executed() as executed:
        assert selectors.open_promotion(project) == waiting
    ((sql, params),) = executed.reading("deliveries_promotion")
    for plan in (plan_of(sql, params), generic_plan_of(sql, params)):  # also as PostgreSQL caches it, prepared
        assert not scans(plan, "promotion") and "promotion_project_created" not in plan, plan

"""Release through Jenkins' deployment callback: the top layer (the REST API) hands a recorded production
deployment to the promotion flow, which releases the promotion whose master run it deployed."""

from django.urls import reverse

from deliveries.models import PipelineRun, Promotion, PromotionState, RunStatus
from promotions import services
from tests.factories import issue_project_token
from tests.promotions.conftest import PATH, requested


def test_a_production_deployment_callback_of_the_master_run_releases_the_promotion(client, gitlab_server, world,
                                                                                  dana, tom):
    promotion = requested(world, dana)
    gitlab_server.push(PATH, "dev", promotion.source_run.commit_sha)
    services.approve_promotion(promotion=promotion, user=tom)
    promotion = services.merge_promotion(promotion_id=promotion.pk)
    PipelineRun.objects.filter(pk=promotion.master_run_id).update(build_number=900, status=RunStatus.SUCCESS)
    _, _, token = issue_project_token(world.project)
    url = reverse("api-deployments", args=["shop", 900])
    body = {"environment": "production", "status": "running"}
    auth = {"HTTP_AUTHORIZATION": f"Bearer {token}"}
    assert client.post(url, body, content_type="application/json", **auth).status_code == 201
    assert Promotion.objects.get().state == PromotionState.MERGED  # not yet: still deploying
    assert client.post(url, {**body, "status": "success"}, content_type="application/json", **auth).status_code == 200
    promotion = Promotion.objects.get()
    assert promotion.state == PromotionState.RELEASED
    assert promotion.production_deployment.source_run_id == promotion.master_run_id

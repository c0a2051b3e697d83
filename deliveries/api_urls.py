from csp.decorators import csp_update
from django.contrib.auth.decorators import login_not_required
from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from deliveries import api
from deliveries.gitlab_hooks_api import gitlab_hook_view

project = "v1/projects/<slug:slug>/"
run = project + "runs/<int:build_number>/"

urlpatterns = [
    path("schema/", login_not_required(SpectacularAPIView.as_view()), name="api-schema"),
    # Swagger UI's script from a URL of its own (the Content-Security-Policy allows no inline script); its page
    # keeps an inline <style>.
    path("docs/", csp_update({"style-src": ["'unsafe-inline'"]})(
        login_not_required(SpectacularSwaggerSplitView.as_view(url_name="api-schema"))), name="api-docs"),
    path(run + "stages/", api.api_view(api.StagesView), name="api-stages"),  # the most called: first
    path(project + "runs/", api.api_view(api.RunsView), name="api-runs"),
    path(run, api.api_view(api.RunView), name="api-run"),
    path(run + "artifacts/", api.api_view(api.ArtifactsView), name="api-artifacts"),
    path(run + "reports/", api.api_view(api.ReportsView), name="api-reports"),
    path(run + "deployments/", api.api_view(api.DeploymentsView), name="api-deployments"),
    path(project + "checks/", api.api_view(api.ChecksView), name="api-checks"),
    path("v1/hooks/jenkins-notification/", api.api_view(api.JenkinsNotificationView), name="api-jenkins-notification"),
    path("v1/hooks/gitlab/", gitlab_hook_view, name="api-gitlab-hook"),
]

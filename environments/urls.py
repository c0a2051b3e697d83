from django.urls import path

from environments import stack_views, views

urlpatterns = [
    path("environments/", views.environment_list, name="environment-list"),
    path("environments/<slug:slug>/", views.environment_detail, name="environment-detail"),
    path("environments/<slug:slug>/deploy/", views.deploy_run, name="environment-deploy"),
    path("environments/<slug:slug>/check/", views.check_now, name="environment-check"),
    path("environments/<slug:slug>/stack/", stack_views.stack_page, name="environment-stack"),
    path("environments/<slug:slug>/stack/apply/", stack_views.stack_apply, name="environment-stack-apply"),
    path("environments/<slug:slug>/stack/refresh/", stack_views.stack_refresh, name="environment-stack-refresh"),
    path("deployments/<int:deployment_id>/", views.deployment_detail, name="deployment-detail"),
    path("deployments/<int:deployment_id>/live/", views.deployment_live, name="deployment-live"),
    path("deployments/<int:deployment_id>/redeploy/", views.redeploy, name="deployment-redeploy"),
    path("deployments/<int:deployment_id>/rollback/", views.roll_back, name="deployment-rollback"),
]

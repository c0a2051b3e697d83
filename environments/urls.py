from django.urls import path

from environments import views

urlpatterns = [
    path("environments/", views.environment_list, name="environment-list"),
    path("environments/<slug:slug>/", views.environment_detail, name="environment-detail"),
    path("environments/<slug:slug>/deploy/", views.deploy_run, name="environment-deploy"),
    path("environments/<slug:slug>/check/", views.check_now, name="environment-check"),
    path("deployments/<int:deployment_id>/", views.deployment_detail, name="deployment-detail"),
    path("deployments/<int:deployment_id>/live/", views.deployment_live, name="deployment-live"),
    path("deployments/<int:deployment_id>/redeploy/", views.redeploy, name="deployment-redeploy"),
    path("deployments/<int:deployment_id>/rollback/", views.roll_back, name="deployment-rollback"),
]

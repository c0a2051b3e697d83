from django.urls import path

from deliveries import views

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<slug:slug>/", views.project_detail, name="project-detail"),
    path("projects/<slug:slug>/runs/", views.run_pipeline, name="run-pipeline"),
    path("projects/<slug:slug>/dora/", views.project_dora, name="project-dora"),
    path("projects/<slug:slug>/runs/<int:run_id>/", views.run_detail, name="run-detail"),
    path("projects/<slug:slug>/runs/<int:run_id>/live/", views.run_live, name="run-live"),
    path("projects/<slug:slug>/runs/<int:run_id>/abort/", views.run_abort, name="run-abort"),
    path("projects/<slug:slug>/runs/<int:run_id>/close/", views.run_close, name="run-close"),
    path("projects/<slug:slug>/runs/<int:run_id>/retry/", views.run_retry, name="run-retry"),
]

from django.urls import path

from deliveries import views

urlpatterns = [
    path("", views.home, name="home"),
    path("projects/<slug:slug>/", views.project_detail, name="project-detail"),
    path("projects/<slug:slug>/runs/<int:run_id>/", views.run_detail, name="run-detail"),
]

from django.urls import path

from scanners import views

urlpatterns = [
    path("reports/<int:report_id>/", views.report_detail, name="report-detail"),
    path("reports/<int:report_id>/raw/", views.report_download, name="report-download"),
    path("reports/<int:report_id>/parse-again/", views.report_parse_again, name="report-parse-again"),
    path("projects/<slug:slug>/security/", views.project_security, name="project-security"),
    path("projects/<slug:slug>/performance/", views.project_performance, name="project-performance"),
    path("projects/<slug:slug>/attacks/", views.project_attacks, name="project-attacks"),
    path("projects/<slug:slug>/runs/<int:run_id>/security/", views.run_security, name="run-security"),
    path("projects/<slug:slug>/runs/<int:run_id>/performance/", views.run_performance, name="run-performance"),
    path("projects/<slug:slug>/runs/<int:run_id>/attacks/", views.run_attacks, name="run-attacks"),
]

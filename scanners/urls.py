from django.urls import path

from scanners import views

urlpatterns = [
    path("reports/<int:report_id>/", views.report_detail, name="report-detail"),
]

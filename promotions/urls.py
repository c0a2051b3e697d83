from django.urls import path

from promotions import api, views

project = "projects/<slug:slug>/"

urlpatterns = [
    path(project + "runs/<int:run_id>/promote/", views.request_promotion, name="promotion-request"),
    path(project + "promotions/", views.promotion_list, name="promotion-list"),
    path(project + "promotions/<int:promotion_id>/", views.promotion_detail, name="promotion-detail"),
    path(project + "promotions/<int:promotion_id>/evidence/", views.promotion_evidence, name="promotion-evidence"),
    path(project + "promotions/<int:promotion_id>/approve/", views.promotion_decide, {"decision": "approve"},
         name="promotion-approve"),
    path(project + "promotions/<int:promotion_id>/reject/", views.promotion_decide, {"decision": "reject"},
         name="promotion-reject"),
    path(project + "gate/", views.gate_edit, name="project-gate"),
    path(project + "waivers/", views.waivers, name="project-waivers"),
    path(project + "audit/", views.audit_log, name="project-audit"),
    path("api/v1/promotions/<int:promotion_id>/approve/", api.decision_view("approve"), name="api-promotion-approve"),
    path("api/v1/promotions/<int:promotion_id>/reject/", api.decision_view("reject"), name="api-promotion-reject"),
    path("api/v1/" + project + "deploy-permission/", api.deploy_permission_view, name="api-deploy-permission"),
]

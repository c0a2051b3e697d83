from django.urls import path

from environments import stack_views

urlpatterns = [
    path("environments/<slug:slug>/stack/", stack_views.stack_page, name="environment-stack"),
    path("environments/<slug:slug>/stack/apply/", stack_views.stack_apply, name="environment-stack-apply"),
    path("environments/<slug:slug>/stack/refresh/", stack_views.stack_refresh, name="environment-stack-refresh"),
]

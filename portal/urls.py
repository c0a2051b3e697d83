from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path

from portal import views

urlpatterns = [
    # The API first: Jenkins calls it far more often than people open pages.
    path("api/", include("deliveries.api_urls")),
    path("", include("deliveries.urls")),
    path("", include("scanners.urls")),
    path("", include("promotions.urls")),
    path("", include("environments.urls")),
    path("healthz", views.health, name="health"),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
]

# JSON under /api/, Django's pages elsewhere.
handler400 = "portal.views.bad_request"
handler403 = "portal.views.permission_denied"
handler404 = "portal.views.page_not_found"
handler500 = "portal.views.server_error"

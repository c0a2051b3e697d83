"""The portal's URLs plus views that fail on purpose, for the error-page tests (ROOT_URLCONF override)."""

from django.contrib.auth.decorators import login_not_required
from django.urls import path
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from portal.urls import handler400, handler403, handler404, handler500, urlpatterns  # noqa: F401


@login_not_required
def django_view_raising(request):
    raise RuntimeError("a bug")


class ApiViewRaising(APIView):
    authentication_classes = []
    permission_classes = [AllowAny]

    def get(self, request):
        raise RuntimeError("a bug")


urlpatterns = [
    path("api/v1/test-raising/", login_not_required(ApiViewRaising.as_view())),
    path("api/v1/test-raising-django/", django_view_raising),
    path("test-raising/", django_view_raising),
    *urlpatterns,
]

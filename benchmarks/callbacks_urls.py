"""The portal's URLs plus the baseline of benchmarks/callbacks.py.

/bench/minimal/ is the smallest Django JSON view: it goes through the same middleware as the API (sessions,
CSRF, login required, ...), exempt from CSRF and from the login requirement as the API is, and answers without
touching the database.
"""

from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
@login_not_required
def minimal(request):
    return JsonResponse({"ok": True})


urlpatterns = [
    path("bench/minimal/", minimal),
    path("", include("portal.urls")),
]

from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import BadRequest
from django.db import connection
from django.http import JsonResponse
from django.views import defaults
from django.views.decorators.http import require_GET

API_PREFIX = "/api/"


@login_not_required
@require_GET
def health(request):
    """For load balancers and monitors: 200 when the database answers, 503 otherwise."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - any database failure means unhealthy
        return JsonResponse({"status": "unavailable", "database": "down"}, status=503)
    return JsonResponse({"status": "ok", "database": "up"})


# Django's error pages (handler400, 403, 404, 500 in portal.urls): JSON under /api/, where every caller is a
# program, Django's HTML pages elsewhere. DRF answers JSON for what its views raise on purpose; these cover the
# rest (an unknown API path, a body Django refuses before DRF sees it, an unexpected exception).


def is_api(request) -> bool:
    return request.path.startswith(API_PREFIX)


def api_error(status: int, detail: str) -> JsonResponse:
    return JsonResponse({"detail": detail}, status=status)


def bad_request(request, exception, template_name=defaults.ERROR_400_TEMPLATE_NAME):
    if is_api(request):
        # The portal's own refusals say why; Django's (SuspiciousOperation: a bad Host, a body too large) may
        # name settings, so they do not.
        return api_error(400, str(exception) if type(exception) is BadRequest else "Bad request.")
    return defaults.bad_request(request, exception, template_name)


def permission_denied(request, exception, template_name=defaults.ERROR_403_TEMPLATE_NAME):
    if is_api(request):
        return api_error(403, "You do not have permission to perform this action.")
    return defaults.permission_denied(request, exception, template_name)


def page_not_found(request, exception, template_name=defaults.ERROR_404_TEMPLATE_NAME):
    if is_api(request):
        return api_error(404, "Not found.")
    return defaults.page_not_found(request, exception, template_name)


def server_error(request, template_name=defaults.ERROR_500_TEMPLATE_NAME):
    if is_api(request):
        return api_error(500, "Server error.")
    return defaults.server_error(request, template_name)

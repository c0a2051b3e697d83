"""The portal's URLs plus the views only the callback benchmark measures.

- /bench/minimal/: the smallest Django JSON view, the baseline. It goes through the same middleware as the API
  (sessions, CSRF, login required, ...), exempt from CSRF and from the login requirement as the API is, and
  answers without touching the database.
- /bench/queued/<slug>/runs/<n>/stages/ (with --queued-bound): the request half of a write-behind design. It is
  the stage API's own view, token and validation included, but instead of writing it appends the callback to a
  Redis stream (the script names it) and answers 202. No database work, so its rate bounds from above what any
  design that applies stage callbacks after answering could reach.
"""

import os

import orjson
from django.contrib.auth.decorators import login_not_required
from django.http import JsonResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt

from deliveries.api import StagesView, json_answer, project_of, validated
from deliveries.serializers import StageInSerializer


@csrf_exempt
@login_not_required
def minimal(request):
    return JsonResponse({"ok": True})


class QueuedStagesView(StagesView):
    redis = None

    def post(self, request, slug, build_number):
        project = project_of(request, slug)
        data = validated(StageInSerializer, request.data)
        if QueuedStagesView.redis is None:
            import redis

            QueuedStagesView.redis = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
        event = {"project": project.pk, "build_number": build_number, **data}
        stream = os.environ["BENCH_QUEUE_STREAM"]
        self.redis.xadd(stream, {"event": orjson.dumps(event)}, maxlen=100_000, approximate=True)
        return json_answer({"accepted": True}, status=202)


urlpatterns = [
    path("bench/minimal/", minimal),
    path("bench/queued/<slug:slug>/runs/<int:build_number>/stages/", QueuedStagesView.as_view()),
    path("", include("portal.urls")),
]

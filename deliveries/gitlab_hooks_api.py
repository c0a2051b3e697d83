"""`POST /api/v1/hooks/gitlab/`: GitLab's webhooks (deliveries.gitlab_hooks parses and applies them).

Authenticated by the project's webhook secret in `X-Gitlab-Token`, not by an API token: GitLab sends the secret
in clear with every delivery. A wrong or missing secret is 401 and nothing is recorded.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from deliveries import gitlab_hooks
from deliveries.gitlab_hooks import HookError
from portal.parsers import JSONParser
from portal.throttles import LimitFailedAuthentication

OUTCOME = inline_serializer("GitLabHookOutcome", fields={
    "status": serializers.ChoiceField(choices=["triggered", "synced", "ignored", "duplicate"]),
    "detail": serializers.CharField(),
    "run": serializers.IntegerField(required=False, help_text="The run a push started"),
    "promotions": serializers.ListField(child=serializers.IntegerField(), required=False,
                                        help_text="Promotions whose mr_state changed"),
})


def unauthorized() -> Response:
    return Response({"detail": "Missing or wrong X-Gitlab-Token for this project."}, status=401)


def header(name: str, description: str, *, required: bool = False) -> OpenApiParameter:
    return OpenApiParameter(name, str, OpenApiParameter.HEADER, required=required, description=description)


class GitLabHookView(LimitFailedAuthentication, APIView):
    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = [JSONParser]

    @extend_schema(
        operation_id="gitlab_webhook",
        summary="GitLab webhook: Push Hook and Merge Request Hook",
        description="Point a GitLab project webhook here with the secret token issued in the admin (Projects > "
                    "Issue a new GitLab webhook secret). A push to the dev or release branch starts a run when the "
                    "project has `runs_on_push`; a merge request event updates the state of the MR on the "
                    "promotions that use it. Each delivery is handled once (by `Idempotency-Key`, else "
                    "`X-Gitlab-Event-UUID`): a replay answers `duplicate`. Other events answer 202, ignored.",
        auth=[],
        parameters=[
            header("X-Gitlab-Token", "The project's webhook secret", required=True),
            header("X-Gitlab-Event", "Push Hook, Merge Request Hook (others are ignored)"),
            header("Idempotency-Key", "Same for every retry of a delivery"),
            header("X-Gitlab-Event-UUID", "The event's id: deduplicates when there is no Idempotency-Key"),
        ],
        request=OpenApiTypes.OBJECT,
        responses={
            200: OUTCOME,
            202: OpenApiResponse(OUTCOME, description="An event kind the portal does not handle: ignored"),
            400: OpenApiResponse(description="Malformed JSON or payload: the body names the field"),
            401: OpenApiResponse(description="Missing or wrong X-Gitlab-Token, or no project at that path"),
            429: OpenApiResponse(description="Too many refused secrets from this address (API_AUTH_FAILURE_RATE): "
                                             "see Retry-After"),
        },
    )
    def post(self, request):
        token = request.META.get("HTTP_X_GITLAB_TOKEN", "")
        if not token:
            return unauthorized()
        payload = request.data
        if not isinstance(payload, dict):
            return Response({"payload": ["must be a JSON object"]}, status=400)
        try:
            kind = gitlab_hooks.event_kind(request.META.get("HTTP_X_GITLAB_EVENT", ""), payload)
            if kind is None:
                return self.ignore(payload, token)
            project = gitlab_hooks.authenticated_project(project_path=gitlab_hooks.project_path_of(payload),
                                                         token=token)
            if project is None:
                return unauthorized()
            parse = gitlab_hooks.parse_push if kind == gitlab_hooks.PUSH else gitlab_hooks.parse_merge_request
            event = parse(payload)
            key = gitlab_hooks.delivery_key(idempotency_key=request.META.get("HTTP_IDEMPOTENCY_KEY", ""),
                                            event_uuid=request.META.get("HTTP_X_GITLAB_EVENT_UUID", ""))
        except HookError as exc:
            return Response({exc.field: [exc.message]}, status=400)
        outcome = gitlab_hooks.receive(project=project, kind=kind, key=key, event=event)
        body = {"status": outcome.status, "detail": outcome.detail}
        if outcome.run is not None:
            body["run"] = outcome.run
        if outcome.promotions:
            body["promotions"] = list(outcome.promotions)
        return Response(body, status=200)

    def ignore(self, payload: dict, token: str) -> Response:
        """An event kind the portal does not handle; still 401 when it names a project the token does not fit."""
        try:
            project_path = gitlab_hooks.project_path_of(payload)
        except HookError:
            project_path = ""
        if project_path and gitlab_hooks.authenticated_project(project_path=project_path, token=token) is None:
            return unauthorized()
        return Response({"status": "ignored", "detail": "The portal does not handle this event."}, status=202)


gitlab_hook_view = login_not_required(GitLabHookView.as_view())
